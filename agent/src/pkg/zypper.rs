//! SUSE: installed packages from `rpm -qa`, pending updates from `zypper list-updates`, the
//! security ones from a dry run of `zypper patch --category security` (the packages the
//! security patches would upgrade), patch runs with `zypper patch` / `zypper update`.
//!
//! # Patch runs
//! First `zypper --non-interactive [--root ROOT] refresh`, then
//! `zypper --non-interactive [--root ROOT]` plus, per scope:
//! - `Security`: `patch --category security --auto-agree-with-licenses` (the security patches).
//! - `All`: `update --auto-agree-with-licenses` (every newer package).
//! - `Packages`: `update --auto-agree-with-licenses -- NAME...`, the named packages that are
//!   installed, minus exclusions (`update` never installs a package that is not installed).
//! - With exclusions, `Security` and `All` become `update ... -- NAME...` of the packages the
//!   command above would upgrade, minus the exclusions (zypper has no per-run exclusion; its
//!   locks are persistent). Such runs are simulated first and refused when a dependency would
//!   change an excluded package.
//!
//! Exit 103 (zypper updated itself) runs the same command again (at most 3 times); 102
//! (reboot needed) and 106 (some repositories skipped) count as success. The lock wait is
//! `ZYPP_LOCK_TIMEOUT`. `plan` runs the same command with `--xmlout` and `--dry-run`.
//!
//! Reboot: `zypper needs-rebooting` (exit 102 = needed: libzypp's `/run/reboot-needed` flag).
//! With an install root never: `zypper --root` would report the root's own flag
//! (`ROOT/run/reboot-needed`), but the root is not the running system, so rebooting this
//! machine would not make its updates take effect.
//!
//! With an install root zypper logs to `ROOT/var/log/zypper.log` (`ZYPP_LOGFILE`, unless the
//! agent's environment sets it), not to the machine's `/var/log/zypper.log`; its lock is
//! `ROOT/run/zypp.pid` (zypper sets libzypp's `ZYPP_LOCKFILE_ROOT` to the root), a PID file
//! with no kernel lock on it while zypper runs (see `jobs::lock`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::xml::{self, Event};
use super::{command, rpm, ApplyOutcome, Options, PackageBackend, PatchRequest};
use crate::error::{AgentError, Result};
use crate::proto::jobs::{PackageChange, PatchScope};
use crate::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

pub const ZYPPER: &str = "zypper";

const TIMEOUT: Duration = Duration::from_secs(600);
/// zypper's "package manager restarted itself, run again" exit status.
const EXIT_RESTART_NEEDED: i32 = 103;
const EXIT_REBOOT_NEEDED: i32 = 102;
const EXIT_REPOS_SKIPPED: i32 = 106;
const MAX_PASSES: usize = 3;

pub struct Zypper {
    zypper: PathBuf,
    rpm: PathBuf,
    options: Options,
    lock_timeout: String,
    /// `ZYPP_LOGFILE` inside the install root (none without a root).
    log_file: Option<String>,
}

/// The zypper command a request resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    SecurityPatches,
    UpdateAll,
    Update(Vec<String>),
    Nothing,
}

impl Zypper {
    pub fn new(zypper: PathBuf, rpm: PathBuf, options: Options) -> Zypper {
        let lock_timeout = options.lock_timeout.as_secs().to_string();
        let log_file = match &options.root {
            Some(root) if std::env::var_os("ZYPP_LOGFILE").is_none() => {
                Some(root.join("var/log/zypper.log").display().to_string())
            }
            _ => None,
        };
        Zypper { zypper, rpm, options, lock_timeout, log_file }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        let mut env = vec![("ZYPP_LOCK_TIMEOUT", self.lock_timeout.as_str())];
        if let Some(log_file) = &self.log_file {
            env.push(("ZYPP_LOGFILE", log_file.as_str()));
        }
        env
    }

    /// `--non-interactive [--xmlout] [--root ROOT]`.
    fn global_args(&self, xml: bool) -> Vec<String> {
        let mut args = vec!["--non-interactive".to_string()];
        if xml {
            args.push("--xmlout".into());
        }
        if let Some(root) = &self.options.root {
            args.extend(["--root".into(), root.display().to_string()]);
        }
        args
    }

    fn run_xml(&self, command_args: &[String], timeout: Duration) -> Result<String> {
        let mut args = self.global_args(true);
        args.extend(command_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = command::run_env(&self.zypper, &args, &self.env(), timeout)?;
        match out.code {
            Some(0 | EXIT_REBOOT_NEEDED | EXIT_REPOS_SKIPPED) => Ok(out.stdout),
            _ => Err(AgentError::Command {
                program: self.zypper.display().to_string(),
                message: format!("exit status {}: {}", command::code_text(out.code), error_message(&out)),
            }),
        }
    }

    fn action_args(action: &Action, dry_run: bool) -> Vec<String> {
        let mut args: Vec<String> = match action {
            Action::SecurityPatches => ["patch", "--category", "security"].map(String::from).to_vec(),
            _ => vec!["update".into()],
        };
        args.push("--auto-agree-with-licenses".into());
        if dry_run {
            args.push("--dry-run".into());
        }
        if let Action::Update(names) = action {
            args.push("--".into());
            args.extend(names.iter().cloned());
        }
        args
    }

    fn simulate(&self, action: &Action) -> Result<Vec<PackageChange>> {
        if *action == Action::Nothing {
            return Ok(Vec::new());
        }
        Ok(parse_install_summary(&self.run_xml(&Self::action_args(action, true), self.options.apply_timeout)?))
    }

    fn refresh(&self) -> Result<()> {
        self.run_xml(&["refresh".to_string()], self.options.apply_timeout).map(|_| ())
    }

    fn action(&self, request: &PatchRequest<'_>, note: &mut dyn FnMut(String)) -> Result<Action> {
        let without_excluded = |changes: Vec<PackageChange>, note: &mut dyn FnMut(String)| {
            let mut names: Vec<String> = Vec::new();
            for c in changes.into_iter().filter(|c| c.before.is_some() && c.after.is_some()) {
                if super::is_excluded(request.exclude, &c.name, &c.arch) {
                    note(format!("skipping {}: excluded by the job", c.name));
                } else if crate::pkgname::validate(PackageManager::Zypper, &c.name).is_err() {
                    note(format!("skipping {:?}: not a valid package name", c.name));
                } else if !names.contains(&c.name) {
                    names.push(c.name);
                }
            }
            if names.is_empty() {
                Action::Nothing
            } else {
                Action::Update(names)
            }
        };
        Ok(match request.scope {
            PatchScope::Security if request.exclude.is_empty() => Action::SecurityPatches,
            PatchScope::All if request.exclude.is_empty() => Action::UpdateAll,
            PatchScope::Security => without_excluded(self.simulate(&Action::SecurityPatches)?, note),
            PatchScope::All => without_excluded(self.simulate(&Action::UpdateAll)?, note),
            PatchScope::Packages { names } => {
                let installed = self.installed_packages()?;
                let selected = super::installed_selection(names, &installed, request.exclude, &[], note);
                if selected.is_empty() {
                    Action::Nothing
                } else {
                    Action::Update(selected)
                }
            }
        })
    }

    fn installed_packages(&self) -> Result<Vec<InstalledPackage>> {
        rpm::installed(&self.rpm, self.options.root.as_deref())
    }
}

impl PackageBackend for Zypper {
    fn manager(&self) -> PackageManager {
        PackageManager::Zypper
    }

    fn inventory(&self) -> Result<Inventory> {
        let installed = self.installed_packages()?;
        let updates = self.run_xml(&["list-updates".to_string()], TIMEOUT)?;
        let security = self.simulate(&Action::SecurityPatches)?;
        Ok(Inventory { manager: PackageManager::Zypper, installed, updates: parse_list_updates(&updates, &security) })
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        self.installed_packages()
    }

    fn plan(&self, request: PatchRequest<'_>) -> Result<Vec<PackageChange>> {
        super::validate_request(PackageManager::Zypper, &request)?;
        self.refresh()?;
        let action = self.action(&request, &mut |_| {})?;
        self.simulate(&action)
    }

    fn apply(&self, request: PatchRequest<'_>, output: &mut dyn FnMut(&str)) -> Result<ApplyOutcome> {
        super::validate_request(PackageManager::Zypper, &request)?;
        let deadline = Instant::now() + self.options.apply_timeout;
        let timeout = self.options.apply_timeout;
        let env = self.env();
        let mut refresh = self.global_args(false);
        refresh.push("refresh".into());
        let exit = super::run_step(&self.zypper, &refresh, &env, deadline, output)?;
        if !(exit.success || exit.code == Some(EXIT_REPOS_SKIPPED)) {
            return Ok(super::failed_step(&self.zypper, &exit, timeout));
        }
        let action = self.action(&request, &mut |note| output(&note))?;
        if action == Action::Nothing {
            output("nothing to upgrade");
            return Ok(ApplyOutcome { success: true, code: Some(0), summary: "nothing to upgrade".into() });
        }
        if !request.exclude.is_empty() {
            let touched = super::excluded_changes(&self.simulate(&action)?, request.exclude);
            if !touched.is_empty() {
                let summary = format!(
                    "refused: the update would also change excluded package(s) {}; nothing was installed",
                    touched.join(", ")
                );
                output(&summary);
                return Ok(ApplyOutcome { success: false, code: None, summary });
            }
        }
        let mut args = self.global_args(false);
        args.extend(Self::action_args(&action, false));
        for pass in 1..=MAX_PASSES {
            let exit = super::run_step(&self.zypper, &args, &env, deadline, output)?;
            match exit.code {
                Some(EXIT_RESTART_NEEDED) if pass < MAX_PASSES && !exit.timed_out => {
                    output("zypper updated itself (exit 103); running the same command again");
                }
                Some(code @ (0 | EXIT_REBOOT_NEEDED | EXIT_REPOS_SKIPPED)) if !exit.timed_out => {
                    let mut summary = match action {
                        Action::SecurityPatches => "zypper patch --category security succeeded".to_string(),
                        Action::UpdateAll => "zypper update succeeded".to_string(),
                        _ => "zypper update of the selected packages succeeded".to_string(),
                    };
                    if code == EXIT_REBOOT_NEEDED {
                        summary.push_str(" (reboot needed)");
                    }
                    if code == EXIT_REPOS_SKIPPED {
                        summary.push_str(" (some repositories could not be refreshed and were skipped)");
                    }
                    return Ok(ApplyOutcome { success: true, code: Some(code), summary });
                }
                _ => return Ok(super::failed_step(&self.zypper, &exit, timeout)),
            }
        }
        Ok(ApplyOutcome {
            success: false,
            code: Some(EXIT_RESTART_NEEDED),
            summary: format!("zypper still asked to be run again after {MAX_PASSES} passes"),
        })
    }

    fn reboot_required(&self) -> Result<bool> {
        if self.options.root.is_some() {
            return Ok(false);
        }
        let mut args = self.global_args(false);
        args.push("needs-rebooting".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = command::run_env(&self.zypper, &args, &self.env(), TIMEOUT)?;
        match out.code {
            Some(0) => Ok(false),
            Some(EXIT_REBOOT_NEEDED) => Ok(true),
            _ => Err(AgentError::Command {
                program: self.zypper.display().to_string(),
                message: format!(
                    "needs-rebooting: exit status {}: {}",
                    command::code_text(out.code),
                    out.stderr_tail()
                ),
            }),
        }
    }
}

/// zypper reports errors as `<message type="error">TEXT</message>` in XML mode, else on
/// stderr: the last such message (one line, at most 300 characters).
fn error_message(out: &command::Output) -> String {
    let from_xml = out
        .stdout
        .rsplit_once("<message type=\"error\">")
        .and_then(|(_, rest)| rest.split_once("</message>"))
        .map(|(text, _)| xml::unescape(&text.split_whitespace().collect::<Vec<_>>().join(" ")))
        .filter(|text| !text.is_empty());
    from_xml.map_or_else(|| out.stderr_tail(), |text| text.chars().take(300).collect())
}

/// `list-updates` in XML: `<update kind="package" name edition arch edition-old>` with a
/// `<source alias>` inside. `security` are the packages the security patches upgrade.
pub fn parse_list_updates(text: &str, security: &[PackageChange]) -> Vec<PendingUpdate> {
    let security: HashSet<(&str, &str)> = security.iter().map(|c| (c.name.as_str(), c.arch.as_str())).collect();
    let mut updates = Vec::new();
    let mut current: Option<PendingUpdate> = None;
    for event in xml::events(text) {
        match &event {
            Event::Start { name, empty, .. } if name == "update" => {
                let attr = |k| event.attr(k).unwrap_or("").to_string();
                let update = PendingUpdate {
                    name: attr("name"),
                    arch: attr("arch"),
                    current_version: attr("edition-old"),
                    candidate_version: attr("edition"),
                    source: String::new(),
                    security: false,
                };
                let is_package = event.attr("kind").is_none_or(|k| k == "package");
                let complete = !update.name.is_empty()
                    && !update.current_version.is_empty()
                    && !update.candidate_version.is_empty();
                current = (is_package && complete).then_some(update);
                if *empty {
                    updates.extend(current.take());
                }
            }
            Event::Start { name, .. } if name == "source" => {
                if let Some(update) = current.as_mut() {
                    update.source = event.attr("alias").unwrap_or("").to_string();
                }
            }
            Event::End { name } if name == "update" => updates.extend(current.take()),
            _ => {}
        }
    }
    for u in &mut updates {
        u.security = security.contains(&(u.name.as_str(), u.arch.as_str()));
    }
    updates.sort();
    updates
}

/// The `<install-summary>` of a `--dry-run`: package solvables under `to-upgrade`,
/// `to-downgrade`, `to-change-arch`, `to-change-vendor` (edition-old -> edition),
/// `to-install` (new) and `to-remove` (gone).
pub fn parse_install_summary(text: &str) -> Vec<PackageChange> {
    let mut changes = Vec::new();
    let mut section = String::new();
    for event in xml::events(text) {
        match &event {
            Event::Start { name, .. } if name.starts_with("to-") => section = name.clone(),
            Event::End { name } if name.starts_with("to-") => section.clear(),
            Event::Start { name, .. } if name == "solvable" && event.attr("type") == Some("package") => {
                let attr = |k| event.attr(k).filter(|v| !v.is_empty()).map(String::from);
                let (Some(pkg), Some(arch), Some(edition)) = (attr("name"), attr("arch"), attr("edition")) else {
                    continue;
                };
                let (before, after) = match section.as_str() {
                    "to-install" => (None, Some(edition)),
                    "to-remove" => (Some(edition), None),
                    "to-upgrade" | "to-downgrade" | "to-change-arch" | "to-change-vendor" => {
                        (attr("edition-old"), Some(edition))
                    }
                    _ => continue,
                };
                changes.push(PackageChange { name: pkg, arch, before, after });
            }
            _ => {}
        }
    }
    changes.sort();
    changes.dedup();
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRY_RUN: &str = r#"<?xml version='1.0'?>
<stream>
<message type="info">Loading repository data...</message>
<message type="info">Patch &apos;PMTEST-2024-0002-1&apos; is not in the specified category.</message>
<install-summary download-size="6078" space-usage-diff="0" packages-to-change="4">
<to-upgrade>
<solvable type="package" name="pm-test-alpha" edition="2.0-1" arch="noarch" edition-old="1.0-1" arch-old="noarch" summary="test">
<description>test</description></solvable>
</to-upgrade>
<to-install>
<solvable type="patch" name="PMTEST-2024-0001" edition="1" arch="noarch" summary="pm-test-alpha security update">
<description>Test advisory.</description></solvable>
<solvable type="package" name="libnew1" edition="1:1.0-1" arch="x86_64" summary="dep"/>
</to-install>
<to-remove>
<solvable type="package" name="oldlib" edition="0.9-3" arch="x86_64" summary="old"/>
</to-remove>
</install-summary>
<prompt id="0"><text>Continue?</text><option default="1" value="y" desc="Yes"/></prompt>
</stream>"#;

    #[test]
    fn parses_the_dry_run_summary() {
        let changes = parse_install_summary(DRY_RUN);
        let short: Vec<String> =
            changes.iter().map(|c| format!("{}.{} {:?}->{:?}", c.name, c.arch, c.before, c.after)).collect();
        assert_eq!(
            short,
            [
                "libnew1.x86_64 None->Some(\"1:1.0-1\")",
                "oldlib.x86_64 Some(\"0.9-3\")->None",
                "pm-test-alpha.noarch Some(\"1.0-1\")->Some(\"2.0-1\")",
            ]
        );
    }

    #[test]
    fn parses_list_updates() {
        let text = r#"<?xml version='1.0'?>
<stream>
<update-status version="0.6">
<update-list>
<update kind="package" name="pm-test-alpha" edition="2.0-1" arch="noarch" edition-old="1.0-1"><summary>test</summary><description>test</description><license/><source url="file:/tmp/x" alias="pmtest-updates"/></update><update kind="package" name="pm-test-beta" edition="1.1-1" arch="noarch" edition-old="1.0-1"><summary>test</summary><source url="file:/tmp/x" alias="pmtest-updates"/></update>
<update kind="patch" name="SUSE-2024-1" edition="1" arch="noarch"/>
</update-list>
</update-status>
</stream>"#;
        let security = parse_install_summary(DRY_RUN);
        let updates = parse_list_updates(text, &security);
        assert_eq!(updates.len(), 2);
        assert_eq!(
            updates[0],
            PendingUpdate {
                name: "pm-test-alpha".into(),
                arch: "noarch".into(),
                current_version: "1.0-1".into(),
                candidate_version: "2.0-1".into(),
                source: "pmtest-updates".into(),
                security: true,
            }
        );
        assert!(!updates[1].security);
        assert_eq!(updates[1].source, "pmtest-updates");
    }
}
