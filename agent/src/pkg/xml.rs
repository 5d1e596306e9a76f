//! Just enough XML for zypper's `--xmlout`: a flat sequence of start and end tags with their
//! attributes (text, comments, declarations and CDATA are skipped). Quotes are respected when
//! looking for a tag's end and the five predefined entities plus numeric references are
//! decoded. Not a validating parser: malformed input yields fewer events, never a panic.

/// One tag. A self-closing tag `<a/>` yields `Start` with `empty: true` and no `End`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start { name: String, attrs: Vec<(String, String)>, empty: bool },
    End { name: String },
}

impl Event {
    /// The value of attribute `key` of a start tag.
    pub fn attr(&self, key: &str) -> Option<&str> {
        match self {
            Event::Start { attrs, .. } => attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()),
            Event::End { .. } => None,
        }
    }
}

/// The tags of `text`, in document order.
pub fn events(text: &str) -> Vec<Event> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if let Some(after) = rest.strip_prefix("!--") {
            rest = after.split_once("-->").map_or("", |(_, r)| r);
            continue;
        }
        if let Some(after) = rest.strip_prefix("![CDATA[") {
            rest = after.split_once("]]>").map_or("", |(_, r)| r);
            continue;
        }
        let Some(end) = tag_end(rest) else { break };
        let body = &rest[..end];
        rest = &rest[end + 1..];
        if body.starts_with('?') || body.starts_with('!') {
            continue;
        }
        if let Some(name) = body.strip_prefix('/') {
            out.push(Event::End { name: name.trim().to_string() });
            continue;
        }
        let (body, empty) = match body.strip_suffix('/') {
            Some(b) => (b, true),
            None => (body, false),
        };
        let name_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
        let name = body[..name_end].to_string();
        if !name.is_empty() {
            out.push(Event::Start { name, attrs: attributes(&body[name_end..]), empty });
        }
    }
    out
}

/// Index of the `>` that closes the tag starting at `text` (outside quotes).
fn tag_end(text: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn attributes(mut text: &str) -> Vec<(String, String)> {
    let mut attrs = Vec::new();
    loop {
        text = text.trim_start();
        let Some(eq) = text.find('=') else { return attrs };
        let key = text[..eq].trim().to_string();
        let after = text[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else { return attrs };
        let Some(close) = after[1..].find(quote) else { return attrs };
        attrs.push((key, unescape(&after[1..1 + close])));
        text = &after[close + 2..];
    }
}

pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_attributes_and_entities() {
        let text = "<?xml version='1.0'?>\n<stream><!-- a <b> comment -->\n\
            <message type=\"info\">Patch &apos;X&apos; &lt;1&gt; &amp; more</message>\n\
            <update name=\"a&amp;b\" edition='1:2.0-1' summary=\"x > y\" n=\"&#65;&#x42;&bogus;\"><source alias=\"repo-1\"/></update>\n\
            <![CDATA[<fake attr=\"1\"/>]]></stream>";
        let events = events(text);
        let names: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Start { name, empty, .. } => format!("{name}{}", if *empty { "/" } else { "" }),
                Event::End { name } => format!("/{name}"),
            })
            .collect();
        assert_eq!(names, ["stream", "message", "/message", "update", "source/", "/update", "/stream"]);
        assert_eq!(events[3].attr("name"), Some("a&b"));
        assert_eq!(events[3].attr("edition"), Some("1:2.0-1"));
        assert_eq!(events[3].attr("summary"), Some("x > y"));
        assert_eq!(events[3].attr("n"), Some("AB&bogus;"));
        assert_eq!(events[4].attr("alias"), Some("repo-1"));
        assert_eq!(events[4].attr("missing"), None);
        assert!(super::events("<a b=\"unterminated").is_empty());
        assert!(super::events("").is_empty());
    }
}
