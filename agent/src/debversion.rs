//! Debian version ordering, exactly as dpkg's `verrevcmp` (deb-version(7)).
//!
//! `[epoch:]upstream[-revision]`: epochs compare numerically; upstream and revision compare
//! alternating non-digit runs (`~` before everything, even the end; letters before other
//! characters) and digit runs (numerically, leading zeros ignored). A missing revision
//! equals `0`.

use std::cmp::Ordering;

/// The three parts of a version string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    pub revision: &'a str,
}

impl<'a> Parts<'a> {
    /// Splits like dpkg: epoch before the first `:`, revision after the last `-`. Surrounding
    /// whitespace is ignored; an unparseable epoch counts as 0.
    pub fn parse(version: &'a str) -> Parts<'a> {
        let version = version.trim();
        let (epoch, rest) = match version.split_once(':') {
            Some((e, rest)) => (e.parse().unwrap_or(0), rest),
            None => (0, version),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        Parts { epoch, upstream, revision }
    }
}

/// Compares two Debian versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (Parts::parse(a), Parts::parse(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// Sort weight of one character of a non-digit run (0 = end of the run).
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let is_digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        // Non-digit run.
        while (i < a.len() && !is_digit(a, i)) || (j < b.len() && !is_digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Digit run, numerically: skip leading zeros, then longer wins, then first difference.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit(a, i) && is_digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit(a, i) {
            return Ordering::Greater;
        }
        if is_digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn classic_cases() {
        use Ordering::*;
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.0", "1.00", Equal),
            ("1.01", "1.1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("1.0.1", "1.0a", Greater),
            ("1:0.1", "2.0", Greater),
            ("2.0-1", "2.0-1ubuntu1", Less),
            ("2.0-1ubuntu1", "2.0-2", Less),
            ("1.2.3-1~deb12u1", "1.2.3-1", Less),
            ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1", Less),
            ("12.4+deb12u4", "12.4+deb12u5", Less),
            ("2024a-0+deb12u1", "2024a-1~deb12u1", Less),
            ("1.10", "1.9", Greater),
            ("10", "9", Greater),
            ("1-1-1", "1-1", Greater),
            ("a", "b", Less),
            ("", "", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn parts() {
        let p = Parts::parse("2:1.0-rc-3");
        assert_eq!(p, Parts { epoch: 2, upstream: "1.0-rc", revision: "3" });
        let p = Parts::parse("1.0");
        assert_eq!(p, Parts { epoch: 0, upstream: "1.0", revision: "" });
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
        fn pick(&mut self, s: &[u8]) -> u8 {
            s[self.below(s.len() as u64) as usize]
        }
    }

    const DIGITS: &[u8] = b"0123456789";
    const PART_CHARS: &[u8] = b"0123456789000111ab.~+.~+zAZ";

    fn random_run(rng: &mut Rng, len: u64) -> String {
        (0..len).map(|_| rng.pick(PART_CHARS) as char).collect()
    }

    /// A syntactically valid version: upstream starts with a digit; `-` only with a revision.
    fn random_version(rng: &mut Rng) -> String {
        let mut v = String::new();
        if rng.below(4) == 0 {
            v.push_str(&rng.below(3).to_string());
            v.push(':');
        }
        v.push(rng.pick(DIGITS) as char);
        let len = rng.below(7);
        v.push_str(&random_run(rng, len));
        if rng.below(2) == 0 {
            if rng.below(5) == 0 {
                v.push('-');
                v.push(rng.pick(DIGITS) as char);
            }
            v.push('-');
            let len = 1 + rng.below(5);
            v.push_str(&random_run(rng, len));
        }
        v
    }

    /// A close variant of `v`: one character changed, inserted or removed, or `~`/`+` tails.
    fn mutate(rng: &mut Rng, v: &str) -> String {
        let mut chars: Vec<char> = v.chars().collect();
        match rng.below(6) {
            0 => v.to_string(),
            1 => format!("{v}~"),
            2 => format!("{v}+1"),
            3 => format!("{v}0"),
            _ => {
                // Edit after the first upstream digit so the result stays valid.
                let start = v.find(':').map_or(1, |i| i + 2).min(chars.len());
                let at = start + rng.below((chars.len() - start + 1) as u64) as usize;
                let c = rng.pick(PART_CHARS) as char;
                if at < chars.len() && rng.below(2) == 0 {
                    chars[at] = c;
                } else {
                    chars.insert(at.min(chars.len()), c);
                }
                chars.into_iter().collect()
            }
        }
    }

    fn dpkg_says(a: &str, op: &str, b: &str) -> bool {
        Command::new("dpkg").args(["--compare-versions", a, op, b]).status().map(|s| s.success()).unwrap_or(false)
    }

    fn dpkg_compare(a: &str, b: &str) -> Ordering {
        if dpkg_says(a, "lt", b) {
            Ordering::Less
        } else if dpkg_says(a, "eq", b) {
            Ordering::Equal
        } else {
            Ordering::Greater
        }
    }

    #[test]
    fn matches_dpkg_on_random_pairs() {
        if Command::new("dpkg").arg("--version").output().is_err() {
            assert!(std::env::var_os("PM_REQUIRE_REAL_PACKAGE_MANAGERS").is_none(), "dpkg not found");
            eprintln!("note: SKIPPED the comparison against dpkg: dpkg not found");
            return;
        }
        let mut rng = Rng(0x05EE_D0FD_EB1A);
        let pairs: Vec<(String, String)> = (0..1500)
            .map(|_| {
                let a = random_version(&mut rng);
                let b = if rng.below(3) == 0 { random_version(&mut rng) } else { mutate(&mut rng, &a) };
                (a, b)
            })
            .collect();
        // Skip pairs dpkg itself rejects (so a generator slip cannot fake a mismatch).
        let valid = |v: &str| dpkg_says(v, "eq", v);
        let chunks: Vec<_> = pairs.chunks(pairs.len() / 2 + 1).map(<[_]>::to_vec).collect();
        let results: Vec<(usize, Vec<String>)> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut checked = 0;
                        let mut mismatches = Vec::new();
                        for (a, b) in chunk {
                            let ours = compare(a, b);
                            let theirs = dpkg_compare(a, b);
                            if theirs == Ordering::Greater && !(valid(a) && valid(b)) {
                                continue;
                            }
                            checked += 1;
                            if ours != theirs {
                                mismatches.push(format!("{a:?} vs {b:?}: ours {ours:?}, dpkg {theirs:?}"));
                            }
                        }
                        (checked, mismatches)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let checked: usize = results.iter().map(|r| r.0).sum();
        let mismatches: Vec<_> = results.into_iter().flat_map(|r| r.1).collect();
        assert!(
            mismatches.is_empty(),
            "{} mismatches, e.g. {:?}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(10)]
        );
        assert!(checked > 1400, "only {checked} pairs were valid for dpkg");
        let equal = pairs.iter().filter(|(a, b)| compare(a, b) == Ordering::Equal).count();
        assert!(equal > 50, "the generator should produce some equal pairs, got {equal}");
    }
}
