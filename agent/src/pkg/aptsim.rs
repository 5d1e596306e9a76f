//! Parsers for what apt and dpkg print: `dpkg-query -W` (installed packages), `apt-get -s`
//! (a simulated transaction: pending updates for the inventory, planned changes for jobs) and
//! `apt-mark showhold`.

use crate::proto::{InstalledPackage, PendingUpdate};

/// Lines `name\tversion\tarch\tstatus`; keeps packages whose current state is "installed"
/// (second status letter `i`: `ii`, `hi`, `ri`, ...), dropping `rc`, `un`, half-installed ...
pub fn parse_dpkg_query(text: &str) -> Vec<InstalledPackage> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, version, arch, status) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let installed = status.chars().nth(1) == Some('i');
            (installed && !name.is_empty() && !version.is_empty()).then(|| InstalledPackage {
                name: name.to_string(),
                version: version.to_string(),
                arch: arch.to_string(),
            })
        })
        .collect()
}

/// One package line of `apt-get -s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLine {
    /// The name as apt prints it, with a `:arch` qualifier for foreign architectures: the
    /// argument that selects exactly this package.
    pub apt_name: String,
    pub name: String,
    /// Empty when apt did not print one (removals of native packages).
    pub arch: String,
    /// Installed version (`None`: a new package).
    pub current: Option<String>,
    /// Version after the transaction (`None`: removed).
    pub candidate: Option<String>,
    /// The suite the candidate comes from (a security suite when there is one).
    pub source: String,
    pub security: bool,
}

/// The package lines of `apt-get -s`: `Inst NAME [CURRENT] (CANDIDATE ORIGIN:VERSION/SUITE[,
/// ...] [ARCH])`, `Inst NAME (CANDIDATE ...)` (a new package) and `Remv NAME [CURRENT]`.
/// Lines that do not parse are skipped.
pub fn parse_sim_lines(text: &str) -> Vec<SimLine> {
    text.lines().filter_map(|l| parse_inst_line(l).or_else(|| parse_remv_line(l))).collect()
}

/// Pending updates for the inventory: the `Inst` lines that upgrade (or downgrade) an
/// installed package; new packages are not updates.
pub fn parse_simulation(text: &str) -> Vec<PendingUpdate> {
    parse_sim_lines(text)
        .into_iter()
        .filter_map(|l| {
            Some(PendingUpdate {
                name: l.name,
                arch: l.arch,
                current_version: l.current?,
                candidate_version: l.candidate?,
                source: l.source,
                security: l.security,
            })
        })
        .collect()
}

/// `apt-mark showhold`: one package name per line.
pub fn parse_holds(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

fn split_name(apt_name: &str) -> (&str, &str) {
    apt_name.split_once(':').unwrap_or((apt_name, ""))
}

fn parse_inst_line(line: &str) -> Option<SimLine> {
    let rest = line.strip_prefix("Inst ")?;
    let (apt_name, rest) = rest.split_once(' ')?;
    let (current, rest) = match rest.strip_prefix('[') {
        Some(rest) => {
            let (current, rest) = rest.split_once(']')?;
            (Some(current), rest.trim_start())
        }
        None => (None, rest),
    };
    let rest = rest.strip_prefix('(')?;
    // The candidate part ends at the first ')' (versions and suites contain none); apt may
    // append more (e.g. ` []`) after it.
    let (candidate_part, _) = rest.split_once(')')?;
    let (candidate, origins_and_arch) = candidate_part.split_once(' ').unwrap_or((candidate_part, ""));

    let (origins, arch) = match origins_and_arch.rfind('[') {
        Some(i) if origins_and_arch.ends_with(']') => {
            (&origins_and_arch[..i], &origins_and_arch[i + 1..origins_and_arch.len() - 1])
        }
        _ => (origins_and_arch, ""),
    };
    let (name, qualifier) = split_name(apt_name);
    let arch = if arch.is_empty() { qualifier } else { arch };
    let releases: Vec<Release> = origins.split(',').filter_map(Release::parse).collect();
    let security = releases.iter().any(Release::is_security);
    let source =
        releases.iter().find(|r| r.is_security()).or(releases.first()).map(|r| r.suite.to_string()).unwrap_or_default();

    if name.is_empty() || current == Some("") || candidate.is_empty() {
        return None;
    }
    Some(SimLine {
        apt_name: apt_name.to_string(),
        name: name.to_string(),
        arch: arch.to_string(),
        current: current.map(String::from),
        candidate: Some(candidate.to_string()),
        source,
        security,
    })
}

fn parse_remv_line(line: &str) -> Option<SimLine> {
    let rest = line.strip_prefix("Remv ")?;
    let (apt_name, rest) = rest.split_once(' ')?;
    let (current, _) = rest.strip_prefix('[')?.split_once(']')?;
    let (name, arch) = split_name(apt_name);
    if name.is_empty() || current.is_empty() {
        return None;
    }
    Some(SimLine {
        apt_name: apt_name.to_string(),
        name: name.to_string(),
        arch: arch.to_string(),
        current: Some(current.to_string()),
        candidate: None,
        source: String::new(),
        security: false,
    })
}

/// One `ORIGIN:VERSION/SUITE` entry (`ORIGIN:` and `/SUITE` may be missing).
struct Release<'a> {
    origin: &'a str,
    suite: &'a str,
}

impl<'a> Release<'a> {
    fn parse(text: &'a str) -> Option<Release<'a>> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let (origin, after_origin) = text.split_once(':').unwrap_or(("", text));
        let suite = after_origin.rsplit_once('/').map(|(_, s)| s).unwrap_or(after_origin);
        Some(Release { origin, suite })
    }

    fn is_security(&self) -> bool {
        // Debian's `Debian-Security` origin, Ubuntu's `jammy-security`, Debian's
        // `bookworm-security`/`stable-security` and the pre-bullseye `buster/updates` suite
        // (origin `Debian-Security` covers it).
        self.suite.ends_with("-security") || self.origin.contains("Security") || self.origin.contains("security")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_SIM: &str = "\
NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-21-amd64
The following packages will be upgraded:
  base-files libssl3 openssl tzdata
4 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Inst base-files [12.4+deb12u4] (12.4+deb12u5 Debian:12.5/stable [amd64])
Inst libssl3 [3.0.11-1~deb12u2] (3.0.13-1~deb12u1 Debian:12.5/stable, Debian-Security:12/stable-security [amd64])
Inst openssl [3.0.11-1~deb12u2] (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64]) []
Inst linux-image-6.1.0-21-amd64 (6.1.90-1 Debian-Security:12/stable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2024a-1~deb12u1 Debian:12-updates/stable-updates [all])
Inst libc6:i386 [2.36-9+deb12u4] (2.36-9+deb12u7 Debian:12.5/stable [i386])
Conf base-files (12.4+deb12u5 Debian:12.5/stable [amd64])
Conf libssl3 (3.0.13-1~deb12u1 Debian:12.5/stable, Debian-Security:12/stable-security [amd64])
Remv oldpkg [1.0]
Inst broken [1.0
Inst weird [1.0] no-parens
Inst
";

    #[test]
    fn parses_debian_simulation() {
        let updates = parse_simulation(DEBIAN_SIM);
        let summary: Vec<_> = updates
            .iter()
            .map(|u| {
                (
                    u.name.as_str(),
                    u.arch.as_str(),
                    u.current_version.as_str(),
                    u.candidate_version.as_str(),
                    u.source.as_str(),
                    u.security,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("base-files", "amd64", "12.4+deb12u4", "12.4+deb12u5", "stable", false),
                ("libssl3", "amd64", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "stable-security", true),
                ("openssl", "amd64", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "stable-security", true),
                ("tzdata", "all", "2024a-0+deb12u1", "2024a-1~deb12u1", "stable-updates", false),
                ("libc6", "i386", "2.36-9+deb12u4", "2.36-9+deb12u7", "stable", false),
            ]
        );
        // Same number as the documented shell command: lines `^Inst [^ ]* \[`.
        let shell_count = DEBIAN_SIM
            .lines()
            .filter(|l| l.starts_with("Inst ") && l.splitn(3, ' ').nth(2).is_some_and(|r| r.starts_with('[')))
            .count();
        assert_eq!(shell_count, 7);
        // The 2 truncated `[`-lines are the only difference.
        assert_eq!(updates.len(), shell_count - 2);
    }

    #[test]
    fn parses_ubuntu_simulation() {
        let text = "\
Inst libssl3 [3.0.2-0ubuntu1.10] (3.0.2-0ubuntu1.12 Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security [amd64])
Inst snapd [2.58+22.04] (2.61.3+22.04 Ubuntu:22.04/jammy-updates [amd64])
Inst python3-foo [1.0-1] (1.0-1ubuntu0.1 Ubuntu ESM Apps:22.04/jammy-apps-security [all])
Inst local-pkg [1.0] (1.1 localhost [amd64])
";
        let updates = parse_simulation(text);
        assert_eq!(updates.len(), 4);
        assert!(updates[0].security);
        assert_eq!(updates[0].source, "jammy-security");
        assert!(!updates[1].security);
        assert_eq!(updates[1].source, "jammy-updates");
        assert!(updates[2].security);
        assert!(!updates[3].security);
        assert_eq!(updates[3].source, "localhost");
    }

    #[test]
    fn empty_or_up_to_date_output_has_no_updates() {
        assert!(parse_simulation("").is_empty());
        assert!(parse_simulation(
            "Reading package lists...\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n"
        )
        .is_empty());
    }

    #[test]
    fn dpkg_query_keeps_installed_states_only() {
        let text = "adduser\t3.134\tall\tii \n\
                    libc6\t2.36-9+deb12u4\tamd64\tii \n\
                    libc6\t2.36-9+deb12u4\ti386\thi \n\
                    oldconf\t1.0\tamd64\trc \n\
                    gone\t\tamd64\tun \n\
                    halfway\t2.0\tamd64\tiU \n\
                    removing\t3.0\tamd64\tri \n\
                    error\t4.0\tamd64\tiiR\n\
                    garbage line\n";
        let names: Vec<_> = parse_dpkg_query(text).into_iter().map(|p| format!("{}:{}", p.name, p.arch)).collect();
        assert_eq!(names, vec!["adduser:all", "libc6:amd64", "libc6:i386", "removing:amd64", "error:amd64"]);
    }

    #[test]
    fn plan_lines_cover_installs_upgrades_and_removals() {
        let lines = parse_sim_lines(DEBIAN_SIM);
        let short: Vec<_> = lines
            .iter()
            .map(|l| (l.apt_name.as_str(), l.arch.as_str(), l.current.as_deref(), l.candidate.as_deref()))
            .collect();
        assert_eq!(
            short,
            vec![
                ("base-files", "amd64", Some("12.4+deb12u4"), Some("12.4+deb12u5")),
                ("libssl3", "amd64", Some("3.0.11-1~deb12u2"), Some("3.0.13-1~deb12u1")),
                ("openssl", "amd64", Some("3.0.11-1~deb12u2"), Some("3.0.13-1~deb12u1")),
                ("linux-image-6.1.0-21-amd64", "amd64", None, Some("6.1.90-1")),
                ("tzdata", "all", Some("2024a-0+deb12u1"), Some("2024a-1~deb12u1")),
                ("libc6:i386", "i386", Some("2.36-9+deb12u4"), Some("2.36-9+deb12u7")),
                ("oldpkg", "", Some("1.0"), None),
            ]
        );
        assert_eq!(lines[5].name, "libc6");
        assert!(lines[3].security);
        assert_eq!(parse_holds("openssl\nlibc6:i386\n\n"), ["openssl", "libc6:i386"]);
    }
}
