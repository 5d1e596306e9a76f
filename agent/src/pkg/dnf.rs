//! RHEL family: installed packages from `rpm -qa`, pending updates from `dnf repoquery
//! --upgrades` (security ones from the same query with `--security`, i.e. updateinfo
//! advisories of type security), patch runs with `dnf upgrade`.
//!
//! # Patch runs
//! `dnf [--installroot ROOT] --refresh [--exclude=NAME...] -y upgrade` plus, per scope:
//! - `All`: nothing more (every upgrade).
//! - `Security`: `--security` (packages named by a security advisory).
//! - `Packages`: `-- NAME...`, the named packages that are installed, minus exclusions.
//!   `upgrade` (unlike `install`) never installs a package that is not installed.
//!
//! Exclusions are dnf's own `--exclude`, which holds for the whole transaction (also for
//! dependencies). `--refresh` fetches current metadata first. `plan` runs the same command with
//! `--assumeno` instead of `-y` and reads dnf's transaction table.
//!
//! Reboot: `needs-restarting -r` (dnf-utils; exit 1 = reboot needed) when it exists,
//! otherwise the newest installed kernel against `uname -r`. With an install root never:
//! the root is not the running system (its kernel and services are not what runs here), so
//! rebooting this machine would not make its updates take effect.
//!
//! Locks (what an agent restarted after a crash waits for, `jobs::lock`): dnf 4 writes its
//! PID into `ROOT/var/cache/dnf/metadata_lock.pid` while loading metadata,
//! `download_lock.pid` next to it while downloading and `ROOT/var/lib/dnf/rpmdb_lock.pid`
//! around the transaction, keeping no kernel lock on them; rpm (inside dnf) locks its
//! `.rpm.lock` during the transaction.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{command, rpm, ApplyOutcome, Options, PackageBackend, PatchRequest};
use crate::error::{AgentError, Result};
use crate::proto::jobs::{PackageChange, PatchScope};
use crate::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

pub const DNF: &str = "dnf";
pub const NEEDS_RESTARTING: &str = "needs-restarting";

const TIMEOUT: Duration = Duration::from_secs(600);
const UPGRADES_QF: &str = "%{name}\\t%{arch}\\t%{epoch}\\t%{version}\\t%{release}\\t%{repoid}\\n";

pub struct Dnf {
    dnf: PathBuf,
    rpm: PathBuf,
    needs_restarting: PathBuf,
    options: Options,
}

impl Dnf {
    pub fn new(dnf: PathBuf, rpm: PathBuf, options: Options) -> Dnf {
        Dnf { dnf, rpm, needs_restarting: PathBuf::from(NEEDS_RESTARTING), options }
    }

    pub fn with_needs_restarting(mut self, path: PathBuf) -> Dnf {
        self.needs_restarting = path;
        self
    }

    fn root_args(&self) -> Vec<String> {
        match &self.options.root {
            Some(root) => vec!["--installroot".into(), root.display().to_string()],
            None => Vec::new(),
        }
    }

    fn query(&self, args: &[&str]) -> Result<String> {
        let mut all: Vec<String> = vec!["-q".into()];
        all.extend(self.root_args());
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        Ok(command::run(&self.dnf, &all, TIMEOUT)?.check(&self.dnf)?.stdout)
    }

    fn updates(&self, installed: &[InstalledPackage]) -> Result<Vec<PendingUpdate>> {
        let all = self.query(&["repoquery", "--upgrades", "--latest-limit=1", "--qf", UPGRADES_QF])?;
        let security =
            self.query(&["repoquery", "--upgrades", "--latest-limit=1", "--security", "--qf", UPGRADES_QF])?;
        Ok(parse_upgrades(&all, &security, installed))
    }

    /// The transaction arguments for a request (after the root arguments); `None`: nothing
    /// selected. Skipped names go to `note`.
    fn transaction_args(
        &self,
        request: &PatchRequest<'_>,
        confirm: &str,
        note: &mut dyn FnMut(String),
    ) -> Result<Option<Vec<String>>> {
        let mut args = self.root_args();
        args.push("--refresh".into());
        args.extend(request.exclude.iter().map(|e| format!("--exclude={e}")));
        args.push(confirm.into());
        args.push("upgrade".into());
        match request.scope {
            PatchScope::All => {}
            PatchScope::Security => args.push("--security".into()),
            PatchScope::Packages { names } => {
                let installed = self.installed_packages()?;
                let selected = super::installed_selection(names, &installed, request.exclude, &[], note);
                if selected.is_empty() {
                    return Ok(None);
                }
                args.push("--".into());
                args.extend(selected);
            }
        }
        Ok(Some(args))
    }

    fn installed_packages(&self) -> Result<Vec<InstalledPackage>> {
        rpm::installed(&self.rpm, self.options.root.as_deref())
    }
}

impl PackageBackend for Dnf {
    fn manager(&self) -> PackageManager {
        PackageManager::Dnf
    }

    fn inventory(&self) -> Result<Inventory> {
        let installed = self.installed_packages()?;
        let updates = self.updates(&installed)?;
        Ok(Inventory { manager: PackageManager::Dnf, installed, updates })
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        self.installed_packages()
    }

    fn plan(&self, request: PatchRequest<'_>) -> Result<Vec<PackageChange>> {
        super::validate_request(PackageManager::Dnf, &request)?;
        let Some(args) = self.transaction_args(&request, "--assumeno", &mut |_| {})? else { return Ok(Vec::new()) };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = command::run(&self.dnf, &args, self.options.apply_timeout)?;
        // --assumeno ends a transaction with "Operation aborted." and status 1.
        let aborted = out.code == Some(1) && out.stderr.contains("Operation aborted");
        if !out.success && !aborted {
            return Err(AgentError::Command {
                program: self.dnf.display().to_string(),
                message: format!("exit status {}: {}", command::code_text(out.code), out.stderr_tail()),
            });
        }
        Ok(parse_transaction(&out.stdout, &self.installed_packages()?))
    }

    fn apply(&self, request: PatchRequest<'_>, output: &mut dyn FnMut(&str)) -> Result<ApplyOutcome> {
        super::validate_request(PackageManager::Dnf, &request)?;
        let deadline = Instant::now() + self.options.apply_timeout;
        let Some(args) = self.transaction_args(&request, "-y", &mut |note| output(&note))? else {
            output("nothing to upgrade");
            return Ok(ApplyOutcome { success: true, code: Some(0), summary: "nothing to upgrade".into() });
        };
        let exit = super::run_step(&self.dnf, &args, &[], deadline, output)?;
        if !exit.success {
            return Ok(super::failed_step(&self.dnf, &exit, self.options.apply_timeout));
        }
        let what = match request.scope {
            PatchScope::All => "dnf upgrade",
            PatchScope::Security => "dnf upgrade --security",
            PatchScope::Packages { .. } => "dnf upgrade of the selected packages",
        };
        Ok(ApplyOutcome { success: true, code: exit.code, summary: format!("{what} succeeded") })
    }

    fn reboot_required(&self) -> Result<bool> {
        if self.options.root.is_some() {
            return Ok(false);
        }
        if super::find_program(&self.needs_restarting).is_some() {
            let out = command::run(&self.needs_restarting, &["-r"], TIMEOUT)?;
            match out.code {
                Some(0) => return Ok(false),
                Some(1) => return Ok(true),
                _ => tracing::warn!(code = ?out.code, "needs-restarting -r failed; comparing kernels instead"),
            }
        }
        let running = rpm::running_kernel();
        let installed = self.installed_packages()?;
        Ok(!running.is_empty() && rpm::kernel_reboot_needed(&installed, &running))
    }
}

/// `repoquery --upgrades` lines (`name arch epoch version release repoid`, tab-separated) for
/// all upgrades and for security upgrades; current versions come from `installed` (same name
/// and architecture, else same name: a package may change architecture, e.g. to noarch).
pub fn parse_upgrades(all: &str, security: &str, installed: &[InstalledPackage]) -> Vec<PendingUpdate> {
    let fields = |line: &str| -> Option<(String, String, String, String)> {
        let mut f = line.split('\t');
        let (name, arch, epoch, version, release) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let repo = f.next().unwrap_or("");
        (!name.is_empty() && !version.is_empty())
            .then(|| (name.to_string(), arch.to_string(), rpm::evr(epoch, version, release), repo.to_string()))
    };
    let security: HashSet<(String, String)> =
        security.lines().filter_map(fields).map(|(name, arch, _, _)| (name, arch)).collect();
    let mut updates: Vec<PendingUpdate> = all
        .lines()
        .filter_map(fields)
        .filter_map(|(name, arch, candidate, source)| {
            let current = current_version(installed, &name, &arch)?;
            Some(PendingUpdate {
                security: security.contains(&(name.clone(), arch.clone())),
                name,
                arch,
                current_version: current,
                candidate_version: candidate,
                source,
            })
        })
        .collect();
    updates.sort();
    updates.dedup();
    updates
}

/// The newest installed version of `name` (same architecture preferred).
fn current_version(installed: &[InstalledPackage], name: &str, arch: &str) -> Option<String> {
    let newest = |same_arch: bool| {
        installed
            .iter()
            .filter(|p| p.name == name && (!same_arch || p.arch == arch))
            .max_by(|a, b| crate::rpmversion::compare(&a.version, &b.version))
            .map(|p| p.version.clone())
    };
    newest(true).or_else(|| newest(false))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Install,
    Upgrade,
    Remove,
    Other,
}

/// dnf's transaction table (`--assumeno` output). Sections `Upgrading:`/`Downgrading:`
/// (before = installed version), `Installing...:` (new; `replacing NAME.ARCH EVR` lines under
/// them are removals), `Removing...:` (the listed version goes). A name too long for its
/// column stands alone on its line and the other columns follow on the next.
pub fn parse_transaction(text: &str, installed: &[InstalledPackage]) -> Vec<PackageChange> {
    let mut changes = Vec::new();
    let mut section = Section::Other;
    let mut pending: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            section = Section::Other;
            pending.clear();
            continue;
        }
        if !line.starts_with(' ') {
            pending.clear();
            section = match line.trim_end() {
                h if !h.ends_with(':') => Section::Other,
                h if h.starts_with("Upgrading") || h.starts_with("Downgrading") => Section::Upgrade,
                h if h.starts_with("Installing") && !h.contains("module") && !h.contains("group") => Section::Install,
                h if h.starts_with("Removing") => Section::Remove,
                _ => Section::Other,
            };
            continue;
        }
        if section == Section::Other {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.first() == Some(&"replacing") {
            // `replacing  NAME.ARCH EVR`
            if let (Some(name_arch), Some(evr)) = (tokens.get(1), tokens.get(2)) {
                if let Some((name, arch)) = name_arch.rsplit_once('.') {
                    changes.push(PackageChange {
                        name: name.into(),
                        arch: arch.into(),
                        before: Some(evr.to_string()),
                        after: None,
                    });
                }
            }
            continue;
        }
        pending.extend(tokens.iter().map(|t| t.to_string()));
        if pending.len() < 3 {
            continue;
        }
        let (name, arch, evr) = (pending[0].clone(), pending[1].clone(), pending[2].clone());
        pending.clear();
        changes.push(match section {
            Section::Upgrade => {
                PackageChange { before: current_version(installed, &name, &arch), name, arch, after: Some(evr) }
            }
            Section::Remove => PackageChange { name, arch, before: Some(evr), after: None },
            _ => PackageChange { name, arch, before: None, after: Some(evr) },
        });
    }
    changes.sort();
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, version: &str, arch: &str) -> InstalledPackage {
        InstalledPackage { name: name.into(), version: version.into(), arch: arch.into() }
    }

    const TABLE: &str = "\
Last metadata expiration check: 0:00:46 ago on Fri Dec  4 07:27:04 2026.
Dependencies resolved.
=================================================================================================
 Package                                                      Arch    Version
                                                                            Repository       Size
=================================================================================================
Upgrading:
 openssl                                                      x86_64  1:3.0.7-25.el9_3 baseos  1.2 M
 a-package-whose-name-is-far-too-long-for-the-name-column-of-the-table-really
                                                              noarch  2.0-1 updates  6.2 k
Installing:
 kernel-core                                                  x86_64  5.14.0-362.8.1.el9_3 baseos  17 M
 newpkg                                                       x86_64  2.0-1 appstream  1.0 M
     replacing  oldpkg.x86_64 1.0-1.el9
Installing dependencies:
 libfoo                                                       x86_64  1.0-1.el9 baseos  50 k
Removing:
 gone                                                         noarch  0.9-1 @System  0
Enabling module streams:
 nodejs                                                               18

Transaction Summary
=================================================================================================
Install  3 Packages
Upgrade  2 Packages
Remove   1 Package
";

    #[test]
    fn parses_the_transaction_table() {
        let installed = [
            p("openssl", "1:3.0.7-24.el9", "x86_64"),
            p("a-package-whose-name-is-far-too-long-for-the-name-column-of-the-table-really", "1.0-1", "noarch"),
            p("kernel-core", "5.14.0-284.11.1.el9_2", "x86_64"),
            p("oldpkg", "1.0-1.el9", "x86_64"),
            p("gone", "0.9-1", "noarch"),
        ];
        let changes = parse_transaction(TABLE, &installed);
        let short: Vec<String> = changes
            .iter()
            .map(|c| format!("{}.{} {:?} -> {:?}", c.name, c.arch, c.before.as_deref(), c.after.as_deref()))
            .collect();
        assert_eq!(
            short,
            [
                "a-package-whose-name-is-far-too-long-for-the-name-column-of-the-table-really.noarch Some(\"1.0-1\") -> Some(\"2.0-1\")",
                "gone.noarch Some(\"0.9-1\") -> None",
                "kernel-core.x86_64 None -> Some(\"5.14.0-362.8.1.el9_3\")",
                "libfoo.x86_64 None -> Some(\"1.0-1.el9\")",
                "newpkg.x86_64 None -> Some(\"2.0-1\")",
                "oldpkg.x86_64 Some(\"1.0-1.el9\") -> None",
                "openssl.x86_64 Some(\"1:3.0.7-24.el9\") -> Some(\"1:3.0.7-25.el9_3\")",
            ]
        );
        assert!(parse_transaction("Dependencies resolved.\nNothing to do.\nComplete!\n", &installed).is_empty());
    }

    #[test]
    fn parses_repoquery_upgrades() {
        let installed = [p("openssl", "1:3.0.7-24.el9", "x86_64"), p("tzdata", "2023c-1.el9", "noarch")];
        let all = "openssl\tx86_64\t1\t3.0.7\t25.el9_3\tbaseos\ntzdata\tnoarch\t0\t2024a-1.el9\t\tappstream\n\
                   notinstalled\tx86_64\t0\t1\t1\tbaseos\n";
        let security = "openssl\tx86_64\t1\t3.0.7\t25.el9_3\tbaseos\n";
        let updates = parse_upgrades(all, security, &installed);
        assert_eq!(updates.len(), 2);
        assert_eq!(
            updates[0],
            PendingUpdate {
                name: "openssl".into(),
                arch: "x86_64".into(),
                current_version: "1:3.0.7-24.el9".into(),
                candidate_version: "1:3.0.7-25.el9_3".into(),
                source: "baseos".into(),
                security: true,
            }
        );
        assert!(!updates[1].security);
        assert_eq!(updates[1].candidate_version, "2024a-1.el9");
    }
}
