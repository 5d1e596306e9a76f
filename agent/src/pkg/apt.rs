//! Debian/Ubuntu: installed packages from `dpkg-query`, pending updates from a simulated
//! `apt-get dist-upgrade` (no lock taken, nothing changed).
//!
//! Counts the server shows can be reproduced on the host with:
//! - installed: `dpkg-query -W -f='${db:Status-Abbrev}\n' | grep -c '^.i'`
//! - pending:   `LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -c '^Inst [^ ]* \['`
//! - security:  `LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -cE '^Inst [^ ]* \[[^]]*\] \([^)]*[Ss]ecurity'`
//!   (a `*-security` suite or a `*Security*` origin in the candidate's `(...)` part).

use std::path::PathBuf;
use std::time::Duration;

use super::command;
use super::PackageBackend;
use crate::error::{AgentError, Result};
use crate::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

pub const DPKG_QUERY: &str = "dpkg-query";
pub const APT_GET: &str = "apt-get";

const DPKG_FORMAT: &str = "--showformat=${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n";
const TIMEOUT: Duration = Duration::from_secs(300);

pub struct Apt {
    dpkg_query: PathBuf,
    apt_get: PathBuf,
}

impl Apt {
    pub fn new(dpkg_query: PathBuf, apt_get: PathBuf) -> Apt {
        Apt { dpkg_query, apt_get }
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let out = command::run(&self.dpkg_query, &["-W", DPKG_FORMAT], TIMEOUT)?;
        if !out.success {
            return Err(AgentError::Command {
                program: self.dpkg_query.display().to_string(),
                message: format!("exit status {:?}: {}", out.code, out.stderr_tail()),
            });
        }
        Ok(parse_dpkg_query(&out.stdout))
    }

    fn updates(&self) -> Result<Vec<PendingUpdate>> {
        let args = ["-s", "-o", "Debug::NoLocking=1", "dist-upgrade"];
        let out = command::run(&self.apt_get, &args, TIMEOUT)?;
        if !out.success {
            return Err(AgentError::Command {
                program: self.apt_get.display().to_string(),
                message: format!("exit status {:?}: {}", out.code, out.stderr_tail()),
            });
        }
        Ok(parse_simulation(&out.stdout))
    }
}

impl PackageBackend for Apt {
    fn manager(&self) -> PackageManager {
        PackageManager::Apt
    }

    fn inventory(&self) -> Result<Inventory> {
        Ok(Inventory { manager: PackageManager::Apt, installed: self.installed()?, updates: self.updates()? })
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        Apt::installed(self)
    }

    // Placeholder until the apt job backend lands (same series of commits).
    fn plan(&self, _request: super::PatchRequest<'_>) -> Result<Vec<crate::proto::jobs::PackageChange>> {
        Err(AgentError::Usage("apt plan: not available in this build".into()))
    }

    fn apply(&self, _request: super::PatchRequest<'_>, _output: &mut dyn FnMut(&str)) -> Result<super::ApplyOutcome> {
        Err(AgentError::Usage("apt apply: not available in this build".into()))
    }

    fn reboot_required(&self) -> Result<bool> {
        Ok(std::path::Path::new(crate::config::DEFAULT_REBOOT_REQUIRED_PATH).exists())
    }
}

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

/// `Inst NAME [CURRENT] (CANDIDATE ORIGIN:VERSION/SUITE[, ...] [ARCH])` lines of
/// `apt-get -s`. Lines without `[CURRENT]` are new packages, not updates, and are skipped, as
/// is anything that does not parse.
pub fn parse_simulation(text: &str) -> Vec<PendingUpdate> {
    text.lines().filter_map(parse_inst_line).collect()
}

fn parse_inst_line(line: &str) -> Option<PendingUpdate> {
    let rest = line.strip_prefix("Inst ")?;
    let (name, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix('[')?;
    let (current, rest) = rest.split_once(']')?;
    let rest = rest.trim_start().strip_prefix('(')?;
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
    let (base_name, qualifier) = match name.split_once(':') {
        Some((n, q)) => (n, q),
        None => (name, ""),
    };
    let arch = if arch.is_empty() { qualifier } else { arch };
    let releases: Vec<Release> = origins.split(',').filter_map(Release::parse).collect();
    let security = releases.iter().any(Release::is_security);
    let source =
        releases.iter().find(|r| r.is_security()).or(releases.first()).map(|r| r.suite.to_string()).unwrap_or_default();

    if base_name.is_empty() || current.is_empty() || candidate.is_empty() {
        return None;
    }
    Some(PendingUpdate {
        name: base_name.to_string(),
        arch: arch.to_string(),
        current_version: current.to_string(),
        candidate_version: candidate.to_string(),
        source,
        security,
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
    fn backend_runs_configured_programs() {
        let dir = tempfile::tempdir().unwrap();
        let dpkg = dir.path().join("dpkg-query");
        let apt = dir.path().join("apt-get");
        std::fs::write(&dpkg, "#!/bin/sh\nprintf 'bash\\t5.2.15-2+b2\\tamd64\\tii \\nold\\t1\\tamd64\\trc \\n'\n")
            .unwrap();
        std::fs::write(
            &apt,
            format!(
                "#!/bin/sh\n[ \"$*\" = '-s -o Debug::NoLocking=1 dist-upgrade' ] || exit 9\ncat <<'X'\n{DEBIAN_SIM}X\n"
            ),
        )
        .unwrap();
        for p in [&dpkg, &apt] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let backend = Apt::new(dpkg, apt.clone());
        let inv = backend.inventory().unwrap();
        assert_eq!(inv.installed.len(), 1);
        assert_eq!(inv.updates.len(), 5);
        assert_eq!(inv.updates.iter().filter(|u| u.security).count(), 2);

        std::fs::write(&apt, "#!/bin/sh\necho 'E: Unmet dependencies' >&2\nexit 100\n").unwrap();
        let err = backend.inventory().unwrap_err();
        assert!(err.to_string().contains("Unmet dependencies"), "{err}");
    }
}
