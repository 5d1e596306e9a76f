//! os-release(5) parsing: `KEY=value` lines, shell-style quoting, `#` comments.

use std::collections::HashMap;

/// The fields the server shows; empty when missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    pub id: String,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = parse_fields(text);
        let mut take = |k: &str| fields.remove(k).unwrap_or_default();
        OsRelease { id: take("ID"), version_id: take("VERSION_ID"), pretty_name: take("PRETTY_NAME") }
    }
}

/// All assignments; malformed lines are skipped, later assignments win.
pub fn parse_fields(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.insert(key.to_string(), unquote(raw.trim()));
    }
    out
}

/// Undoes shell quoting: `"..."` (with `\` escapes for `"\$\``), `'...'` (literal), or bare
/// words (a trailing ` # comment` is dropped). An unterminated quote keeps what follows it.
fn unquote(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some(&n) if matches!(n, '"' | '\\' | '$' | '`') => {
                                out.push(n);
                                chars.next();
                            }
                            _ => out.push('\\'),
                        },
                        c => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() => {
                // Unquoted whitespace ends the value; what follows can only be a comment.
                break;
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_file() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
                    VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";
        let os = OsRelease::parse(text);
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    }

    #[test]
    fn edge_cases() {
        let text = "# comment\n\n   ID='opensuse-leap'  \nVERSION_ID=15.5 # trailing comment\n\
                    PRETTY_NAME=\"Say \\\"hi\\\" \\$HOME \\n\"\nnot a line\n=novalue\nBAD KEY=x\n\
                    ID_LIKE=\"suse opensuse\"\r\n";
        let os = OsRelease::parse(text);
        assert_eq!(os.id, "opensuse-leap");
        assert_eq!(os.version_id, "15.5");
        assert_eq!(os.pretty_name, "Say \"hi\" $HOME \\n");
        assert_eq!(parse_fields(text).get("ID_LIKE").map(String::as_str), Some("suse opensuse"));
    }

    #[test]
    fn missing_fields_and_unterminated_quotes() {
        let os = OsRelease::parse("NAME=Arch\nPRETTY_NAME=\"Unterminated\n");
        assert_eq!(os.id, "");
        assert_eq!(os.version_id, "");
        assert_eq!(os.pretty_name, "Unterminated");
        assert_eq!(OsRelease::parse(""), OsRelease::default());
        // Later assignments win, like the shell.
        assert_eq!(OsRelease::parse("ID=a\nID=b\n").id, "b");
    }
}
