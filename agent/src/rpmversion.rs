//! RPM version ordering, exactly as librpm's `rpmvercmp` and `rpmverCmp` (rpm 4.18).
//!
//! An EVR is `[epoch:]version[-release]`. Epochs compare first (missing = 0), then versions,
//! then releases, each with [`vercmp`]: separators (anything but ASCII letters, digits, `~`
//! and `^`) only split segments; digit segments compare numerically (leading zeros ignored) and
//! beat letter segments; letter segments compare bytewise; `~` sorts before everything, even
//! the end of the string (`1.0~rc1 < 1.0`); `^` sorts after the end of the string but before
//! any further segment (`1.0 < 1.0^git1 < 1.0.1`). A missing release sorts before any
//! release, as in `rpm.labelCompare` (both sides have one whenever rpm reports a package).

use std::cmp::Ordering;

/// The parts of an EVR string. Borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evr<'a> {
    pub epoch: Option<&'a str>,
    pub version: &'a str,
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Splits `[epoch:]version[-release]`: the epoch is the digits before the first `:`, the
    /// release whatever follows the last `-`. Surrounding whitespace is ignored.
    pub fn parse(evr: &'a str) -> Evr<'a> {
        let evr = evr.trim();
        let (epoch, rest) = match evr.split_once(':') {
            Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (Some(e), rest),
            _ => (None, evr),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v, Some(r)),
            None => (rest, None),
        };
        Evr { epoch, version, release }
    }
}

/// Compares two EVR strings like `rpm.labelCompare` (after splitting them with [`Evr::parse`]).
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_evr(&Evr::parse(a), &Evr::parse(b))
}

/// `rpm.labelCompare`: epoch (missing = `0`), version, release (missing < present), each
/// with [`vercmp`].
pub fn compare_evr(a: &Evr<'_>, b: &Evr<'_>) -> Ordering {
    let (ea, eb) = (a.epoch.unwrap_or("0"), b.epoch.unwrap_or("0"));
    vercmp(ea, eb).then_with(|| vercmp(a.version, b.version)).then_with(|| match (a.release, b.release) {
        (Some(ra), Some(rb)) => vercmp(ra, rb),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    })
}

/// librpm's `rpmvercmp` on one version or release string.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let separator = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && separator(a[i]) {
            i += 1;
        }
        while j < b.len() && separator(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());

        // Tilde sorts before everything else, even the end.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // Caret: like tilde, except that the end of a string sorts before it.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(first), Some(_)) = (ca, cb) else { break };

        let numeric = first.is_ascii_digit();
        let in_segment = |c: &u8| if numeric { c.is_ascii_digit() } else { c.is_ascii_alphabetic() };
        let end_a = i + a[i..].iter().take_while(|c| in_segment(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| in_segment(c)).count();
        let (mut seg_a, mut seg_b) = (&a[i..end_a], &b[j..end_b]);
        // Different segment types: the numeric one is newer.
        if seg_b.is_empty() {
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        if numeric {
            while seg_a.first() == Some(&b'0') {
                seg_a = &seg_a[1..];
            }
            while seg_b.first() == Some(&b'0') {
                seg_b = &seg_b[1..];
            }
            match seg_a.len().cmp(&seg_b.len()) {
                Ordering::Equal => {}
                longer_wins => return longer_wins,
            }
        }
        match seg_a.cmp(seg_b) {
            Ordering::Equal => {}
            other => return other,
        }
        i = end_a;
        j = end_b;
    }
    // All segments equal: whichever still has characters left wins.
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};
    use Ordering::*;

    #[test]
    fn classic_cases() {
        // From rpm's own test suite (tests/rpmvercmp.at).
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0.1", Equal),
            ("2.0", "2.0.1", Less),
            ("2.0.1a", "2.0.1a", Equal),
            ("2.0.1a", "2.0.1", Greater),
            ("5.5p1", "5.5p1", Equal),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p10", Equal),
            ("5.5p1", "5.5p10", Less),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10", Equal),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "xyz.4", Equal),
            ("xyz.4", "8", Less),
            ("xyz.4", "2", Less),
            ("5.5p2", "5.6p1", Less),
            ("5.6p1", "6.5p1", Less),
            ("6.0.rc1", "6.0", Greater),
            ("10b2", "10a1", Greater),
            ("1.0aa", "1.0aa", Equal),
            ("1.0a", "1.0aa", Less),
            ("10.0001", "10.0001", Equal),
            ("10.0001", "10.1", Equal),
            ("10.0001", "10.0039", Less),
            ("4.999.9", "5.0", Less),
            ("20101121", "20101121", Equal),
            ("20101121", "20101122", Less),
            ("2_0", "2_0", Equal),
            ("2.0", "2_0", Equal),
            ("a", "a", Equal),
            ("a+", "a+", Equal),
            ("a+", "a_", Equal),
            ("+a", "_a", Equal),
            ("+_", "_+", Equal),
            ("_+", "+", Equal),
            ("+", "_", Equal),
            ("1.0~rc1", "1.0~rc1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            ("1.0^", "1.0^", Equal),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git1", "1.01", Less),
            ("1.0^20160101", "1.0.1", Less),
            ("1.0^20160101^git1", "1.0^20160101", Greater),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("1.0^git1~pre", "1.0^git1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(vercmp(a, b), want, "{a} vs {b}");
            assert_eq!(vercmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn evr_parsing_and_comparison() {
        assert_eq!(Evr::parse("1:2.0-3.el9"), Evr { epoch: Some("1"), version: "2.0", release: Some("3.el9") });
        assert_eq!(Evr::parse("2.0"), Evr { epoch: None, version: "2.0", release: None });
        assert_eq!(compare("1:1.0-1", "2.0-1"), Greater);
        assert_eq!(compare("0:1.0-1", "1.0-1"), Equal);
        assert_eq!(compare("1.0-1", "1.0"), Greater);
        assert_eq!(compare("00:1.0", "1.0"), Equal);
        assert_eq!(compare("1.0-1", "1.0-2"), Less);
        assert_eq!(compare("5.14.0-362.8.1.el9_3", "5.14.0-70.13.1.el9_0"), Greater);
    }

    /// Deterministic splitmix64: the same pairs on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick(&mut self, s: &[u8]) -> char {
            char::from(s[self.below(s.len() as u64) as usize])
        }
    }

    const CHARS: &[u8] = b"0123456789000111abzAZ..._+~~^^";

    fn random_part(rng: &mut Rng) -> String {
        let len = 1 + rng.below(8);
        (0..len).map(|_| rng.pick(CHARS)).collect()
    }

    fn mutate(rng: &mut Rng, s: &str) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        match rng.below(7) {
            0 => s.to_string(),
            1 => format!("{s}~1"),
            2 => format!("{s}^1"),
            3 => format!("{s}.0"),
            4 => format!("0{s}"),
            _ => {
                let at = rng.below(chars.len() as u64 + 1) as usize;
                let c = rng.pick(CHARS);
                if at < chars.len() && rng.below(2) == 0 {
                    chars[at] = c;
                } else {
                    chars.insert(at, c);
                }
                chars.into_iter().collect()
            }
        }
    }

    type Label = (String, String, Option<String>);

    fn random_label(rng: &mut Rng) -> Label {
        let epoch = if rng.below(4) == 0 { rng.below(3).to_string() } else { "0".to_string() };
        let release = (rng.below(8) != 0).then(|| random_part(rng));
        (epoch, random_part(rng), release)
    }

    fn close_label(rng: &mut Rng, l: &Label) -> Label {
        let (e, v, r) = l.clone();
        match rng.below(4) {
            0 => (e, mutate(rng, &v), r),
            1 => (e, v, r.map(|r| mutate(rng, &r))),
            2 => (if rng.below(2) == 0 { "1".into() } else { e }, v, r),
            _ => (e, v, None),
        }
    }

    /// One python3 process compares every pair with librpm's own `rpm.labelCompare`.
    fn librpm_compare(pairs: &[(Label, Label)]) -> Option<Vec<Ordering>> {
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| Command::new(p).args(["-c", "import rpm"]).output().is_ok_and(|o| o.status.success()))?;
        let script = "import sys, rpm\n\
            out = []\n\
            for line in sys.stdin:\n\
            \x20   f = line.rstrip('\\n').split('\\t')\n\
            \x20   a = (f[0], f[1], f[2] if f[2] != '\\x01' else None)\n\
            \x20   b = (f[3], f[4], f[5] if f[5] != '\\x01' else None)\n\
            \x20   out.append(str(rpm.labelCompare(a, b)))\n\
            sys.stdout.write('\\n'.join(out) + '\\n')\n";
        let mut child =
            Command::new(python).args(["-c", script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().ok()?;
        let mut input = String::new();
        let field = |r: &Option<String>| r.clone().unwrap_or_else(|| "\u{1}".to_string());
        for ((ea, va, ra), (eb, vb, rb)) in pairs {
            input.push_str(&format!("{ea}\t{va}\t{}\t{eb}\t{vb}\t{}\n", field(ra), field(rb)));
        }
        let mut stdin = child.stdin.take()?;
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let output = child.wait_with_output().ok()?;
        writer.join().ok()?.ok()?;
        assert!(output.status.success(), "python3 rpm.labelCompare failed");
        let text = String::from_utf8(output.stdout).ok()?;
        Some(
            text.lines()
                .map(|l| match l.trim() {
                    "-1" => Less,
                    "0" => Equal,
                    "1" => Greater,
                    other => panic!("unexpected labelCompare output {other:?}"),
                })
                .collect(),
        )
    }

    #[test]
    fn matches_librpm_on_generated_pairs() {
        let mut rng = Rng(0x0072_706D_7665_7263);
        let pairs: Vec<(Label, Label)> = (0..20_000)
            .map(|_| {
                let a = random_label(&mut rng);
                let b = if rng.below(3) == 0 { random_label(&mut rng) } else { close_label(&mut rng, &a) };
                (a, b)
            })
            .collect();
        let Some(theirs) = librpm_compare(&pairs) else {
            let why = "python3 with the rpm module (Debian python3-rpm) not found";
            assert!(std::env::var_os("PM_REQUIRE_REAL_PACKAGE_MANAGERS").is_none(), "{why}");
            eprintln!("note: SKIPPED the comparison against librpm: {why}");
            return;
        };
        assert_eq!(theirs.len(), pairs.len());
        let mut mismatches = Vec::new();
        for (((ea, va, ra), (eb, vb, rb)), want) in pairs.iter().zip(&theirs) {
            let a = Evr { epoch: Some(ea), version: va, release: ra.as_deref() };
            let b = Evr { epoch: Some(eb), version: vb, release: rb.as_deref() };
            let ours = compare_evr(&a, &b);
            if ours != *want {
                mismatches.push(format!("{a:?} vs {b:?}: ours {ours:?}, librpm {want:?}"));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{} mismatches, e.g. {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
        let count = |o| theirs.iter().filter(|t| **t == o).count();
        assert!(count(Equal) > 1000 && count(Less) > 3000 && count(Greater) > 3000, "generator too one-sided");
        eprintln!("compared {} EVR pairs with librpm", pairs.len());
    }
}
