//! Debian/Ubuntu: installed packages from `dpkg-query`, pending updates from a simulated
//! `apt-get dist-upgrade` (no lock taken, nothing changed), patch runs with `apt-get`.
//!
//! Counts the server shows can be reproduced on the host with:
//! - installed: `dpkg-query -W -f='${db:Status-Abbrev}\n' | grep -c '^.i'`
//! - pending:   `LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -c '^Inst [^ ]* \['`
//! - security:  `LC_ALL=C apt-get -s -o Debug::NoLocking=1 dist-upgrade | grep -cE '^Inst [^ ]* \[[^]]*\] \([^)]*[Ss]ecurity'`
//!   (a `*-security` suite or a `*Security*` origin in the candidate's `(...)` part).
//!
//! # Patch runs
//! Every run first refreshes the lists (`apt-get update`), then installs with
//! `apt-get -y -q -o DPkg::Lock::Timeout=N -o Dpkg::Options::=--force-confdef
//! -o Dpkg::Options::=--force-confold --no-remove` followed by, per scope:
//! - `All`: `upgrade --with-new-pkgs`: every upgrade, including ones that need a new package
//!   (a kernel ABI bump), but never a removal (`dist-upgrade` may remove packages, which
//!   needs a human) and never a held package. With exclusions: the packages that command
//!   would upgrade, minus exclusions and holds, as below.
//! - `Security`: the upgrades of that same simulation whose candidate comes from a security
//!   suite, minus exclusions and holds: `install --only-upgrade -- NAME...`.
//! - `Packages`: the named packages that are installed, minus exclusions and holds:
//!   `install --only-upgrade -- NAME...` (never installs a package that is not installed).
//!
//! apt-get has no per-run exclusion, so a run with exclusions is simulated first and refused
//! when a dependency would change an excluded package. Held packages are never named (apt
//! would refuse the whole run); dpkg keeps changed conffiles as they are. Environment:
//! `DEBIAN_FRONTEND=noninteractive`, `NEEDRESTART_MODE=a`, `NEEDRESTART_SUSPEND=1`,
//! `APT_LISTCHANGES_FRONTEND=none`, `UCF_FORCE_CONFFOLD=1`. `plan` runs the same command with
//! `-s -o Debug::NoLocking=1` after the same refresh.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::aptsim::{self, SimLine};
use super::{command, ApplyOutcome, Options, PackageBackend, PatchRequest};
use crate::error::Result;
use crate::proto::jobs::{PackageChange, PatchScope};
use crate::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

pub use super::aptsim::{parse_dpkg_query, parse_simulation};

pub const DPKG_QUERY: &str = "dpkg-query";
pub const APT_GET: &str = "apt-get";
pub const APT_MARK: &str = "apt-mark";

const DPKG_FORMAT: &str = "--showformat=${Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n";
const TIMEOUT: Duration = Duration::from_secs(300);
const SIMULATE: [&str; 3] = ["-s", "-o", "Debug::NoLocking=1"];
const ENV: [(&str, &str); 5] = [
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("NEEDRESTART_MODE", "a"),
    ("NEEDRESTART_SUSPEND", "1"),
    ("APT_LISTCHANGES_FRONTEND", "none"),
    ("UCF_FORCE_CONFFOLD", "1"),
];

pub struct Apt {
    dpkg_query: PathBuf,
    apt_get: PathBuf,
    apt_mark: PathBuf,
    options: Options,
}

/// The apt-get command a request resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Upgrade,
    OnlyUpgrade(Vec<String>),
    Nothing,
}

impl Apt {
    pub fn new(dpkg_query: PathBuf, apt_get: PathBuf) -> Apt {
        Apt { dpkg_query, apt_get, apt_mark: PathBuf::from(APT_MARK), options: Options::default() }
    }

    pub fn with_apt_mark(mut self, apt_mark: PathBuf) -> Apt {
        self.apt_mark = apt_mark;
        self
    }

    pub fn with_options(mut self, options: Options) -> Apt {
        self.options = options;
        self
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let out = command::run(&self.dpkg_query, &["-W", DPKG_FORMAT], TIMEOUT)?.check(&self.dpkg_query)?;
        Ok(parse_dpkg_query(&out.stdout))
    }

    fn updates(&self) -> Result<Vec<PendingUpdate>> {
        let args = ["-s", "-o", "Debug::NoLocking=1", "dist-upgrade"];
        let out = command::run(&self.apt_get, &args, TIMEOUT)?.check(&self.apt_get)?;
        Ok(parse_simulation(&out.stdout))
    }

    fn holds(&self) -> Result<Vec<String>> {
        let out = command::run(&self.apt_mark, &["showhold"], TIMEOUT)?.check(&self.apt_mark)?;
        Ok(aptsim::parse_holds(&out.stdout))
    }

    /// Options of every install command (simulated or real).
    fn install_options(&self) -> Vec<String> {
        [
            "-y",
            "-q",
            "-o",
            &format!("DPkg::Lock::Timeout={}", self.options.lock_timeout.as_secs()),
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "--no-remove",
        ]
        .map(String::from)
        .to_vec()
    }

    fn refresh_args(&self) -> Vec<String> {
        ["-q", "-o", &format!("DPkg::Lock::Timeout={}", self.options.lock_timeout.as_secs()), "update"]
            .map(String::from)
            .to_vec()
    }

    fn action_args(&self, action: &Action, simulate: bool) -> Vec<String> {
        let mut args: Vec<String> = if simulate { SIMULATE.map(String::from).to_vec() } else { Vec::new() };
        args.extend(self.install_options());
        match action {
            Action::Upgrade | Action::Nothing => args.extend(["upgrade", "--with-new-pkgs"].map(String::from)),
            Action::OnlyUpgrade(names) => {
                args.extend(["install", "--only-upgrade", "--"].map(String::from));
                args.extend(names.iter().cloned());
            }
        }
        args
    }

    fn simulate(&self, action: &Action) -> Result<Vec<SimLine>> {
        let args = self.action_args(action, true);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = command::run_env(&self.apt_get, &args, &ENV, TIMEOUT)?.check(&self.apt_get)?;
        Ok(aptsim::parse_sim_lines(&out.stdout))
    }

    /// What the request means on this host right now; skipped names are reported to `note`.
    fn action(&self, request: &PatchRequest<'_>, note: &mut dyn FnMut(String)) -> Result<Action> {
        let holds = self.holds()?;
        let upgradable = |security_only: bool, note: &mut dyn FnMut(String)| -> Result<Action> {
            let mut names = Vec::new();
            for line in self.simulate(&Action::Upgrade)? {
                if line.current.is_none() || line.candidate.is_none() || (security_only && !line.security) {
                    continue;
                }
                if super::is_excluded(request.exclude, &line.name, &line.arch) {
                    note(format!("skipping {}: excluded by the job", line.apt_name));
                } else if holds.iter().any(|h| *h == line.apt_name || *h == line.name) {
                    note(format!("skipping {}: held by the package manager", line.apt_name));
                } else if crate::pkgname::validate(PackageManager::Apt, &line.apt_name).is_err() {
                    note(format!("skipping {:?}: not a valid package name", line.apt_name));
                } else {
                    names.push(line.apt_name);
                }
            }
            Ok(if names.is_empty() { Action::Nothing } else { Action::OnlyUpgrade(names) })
        };
        match request.scope {
            PatchScope::All if request.exclude.is_empty() => Ok(Action::Upgrade),
            PatchScope::All => upgradable(false, note),
            PatchScope::Security => upgradable(true, note),
            PatchScope::Packages { names } => {
                let selected = super::installed_selection(names, &self.installed()?, request.exclude, &holds, note);
                Ok(if selected.is_empty() { Action::Nothing } else { Action::OnlyUpgrade(selected) })
            }
        }
    }

    fn plan_action(&self, action: &Action) -> Result<Vec<PackageChange>> {
        if *action == Action::Nothing {
            return Ok(Vec::new());
        }
        let lines = self.simulate(action)?;
        let installed = if lines.iter().any(|l| l.arch.is_empty()) { self.installed()? } else { Vec::new() };
        let mut changes: Vec<PackageChange> = lines
            .into_iter()
            .map(|l| {
                // Removals of native packages carry no architecture: take it from dpkg.
                let arch = if l.arch.is_empty() {
                    installed.iter().find(|p| p.name == l.name).map(|p| p.arch.clone()).unwrap_or_default()
                } else {
                    l.arch
                };
                PackageChange { name: l.name, arch, before: l.current, after: l.candidate }
            })
            .collect();
        changes.sort();
        Ok(changes)
    }

    fn refresh(&self) -> Result<()> {
        let args = self.refresh_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        command::run_env(&self.apt_get, &args, &ENV, self.options.apply_timeout)?.check(&self.apt_get)?;
        Ok(())
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

    fn plan(&self, request: PatchRequest<'_>) -> Result<Vec<PackageChange>> {
        super::validate_request(PackageManager::Apt, &request)?;
        self.refresh()?;
        let action = self.action(&request, &mut |_| {})?;
        self.plan_action(&action)
    }

    fn apply(&self, request: PatchRequest<'_>, output: &mut dyn FnMut(&str)) -> Result<ApplyOutcome> {
        super::validate_request(PackageManager::Apt, &request)?;
        let deadline = Instant::now() + self.options.apply_timeout;
        let timeout = self.options.apply_timeout;
        let exit = super::run_step(&self.apt_get, &self.refresh_args(), &ENV, deadline, output)?;
        if !exit.success {
            return Ok(super::failed_step(&self.apt_get, &exit, timeout));
        }
        let action = self.action(&request, &mut |note| output(&note))?;
        if action == Action::Nothing {
            output("nothing to upgrade");
            return Ok(ApplyOutcome { success: true, code: Some(0), summary: "nothing to upgrade".into() });
        }
        if !request.exclude.is_empty() {
            let touched = super::excluded_changes(&self.plan_action(&action)?, request.exclude);
            if !touched.is_empty() {
                let summary = format!(
                    "refused: the upgrade would also change excluded package(s) {}; nothing was installed",
                    touched.join(", ")
                );
                output(&summary);
                return Ok(ApplyOutcome { success: false, code: None, summary });
            }
        }
        let exit = super::run_step(&self.apt_get, &self.action_args(&action, false), &ENV, deadline, output)?;
        if !exit.success {
            return Ok(super::failed_step(&self.apt_get, &exit, timeout));
        }
        let summary = match &action {
            Action::OnlyUpgrade(names) => format!("apt-get upgraded the selected packages ({} named)", names.len()),
            _ => "apt-get upgrade --with-new-pkgs succeeded".to_string(),
        };
        Ok(ApplyOutcome { success: true, code: exit.code, summary })
    }

    fn reboot_required(&self) -> Result<bool> {
        Ok(self.options.reboot_required_path.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_runs_configured_programs() {
        let dir = tempfile::tempdir().unwrap();
        let dpkg = dir.path().join("dpkg-query");
        let apt = dir.path().join("apt-get");
        std::fs::write(&dpkg, "#!/bin/sh\nprintf 'bash\\t5.2.15-2+b2\\tamd64\\tii \\nold\\t1\\tamd64\\trc \\n'\n")
            .unwrap();
        std::fs::write(
            &apt,
            "#!/bin/sh\n[ \"$*\" = '-s -o Debug::NoLocking=1 dist-upgrade' ] || exit 9\n\
             echo 'Inst base-files [12.4+deb12u4] (12.4+deb12u5 Debian:12.5/stable [amd64])'\n\
             echo 'Inst openssl [3.0.11-1~deb12u2] (3.0.13-1~deb12u1 Debian-Security:12/stable-security [amd64])'\n",
        )
        .unwrap();
        for p in [&dpkg, &apt] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let backend = Apt::new(dpkg, apt.clone());
        let inv = backend.inventory().unwrap();
        assert_eq!(inv.installed.len(), 1);
        assert_eq!(inv.updates.len(), 2);
        assert_eq!(inv.updates.iter().filter(|u| u.security).count(), 1);

        std::fs::write(&apt, "#!/bin/sh\necho 'E: Unmet dependencies' >&2\nexit 100\n").unwrap();
        let err = backend.inventory().unwrap_err();
        assert!(err.to_string().contains("Unmet dependencies"), "{err}");
    }

    #[test]
    fn reboot_flag_path_is_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("reboot-required");
        let options = Options { reboot_required_path: flag.clone(), ..Options::default() };
        let backend = Apt::new("dpkg-query".into(), "apt-get".into()).with_options(options);
        assert!(!backend.reboot_required().unwrap());
        std::fs::write(&flag, "").unwrap();
        assert!(backend.reboot_required().unwrap());
    }
}
