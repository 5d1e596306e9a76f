//! Runner tests with a small in-memory package backend (the real apt backend with fake
//! programs is exercised by the integration tests in `tests/it/jobs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::error::AgentError;
use crate::jobs::journal::tests::spec;
use crate::pkg::ApplyOutcome;
use crate::proto::jobs::{HookCommand, RebootPolicy, SignedJob};
use crate::proto::{InstalledPackage, PackageManager};
use crate::state::StateDir;

/// Installs `plan` on apply (unless told otherwise); counts apply calls.
struct MemoryBackend {
    installed: Mutex<Vec<InstalledPackage>>,
    plan: Vec<PackageChange>,
    apply_installs: bool,
    apply_succeeds: bool,
    reboot_required: bool,
    applies: AtomicUsize,
}

fn pkg(name: &str, version: &str) -> InstalledPackage {
    InstalledPackage { name: name.into(), version: version.into(), arch: "amd64".into() }
}

fn change(name: &str, before: Option<&str>, after: Option<&str>) -> PackageChange {
    PackageChange {
        name: name.into(),
        arch: "amd64".into(),
        before: before.map(String::from),
        after: after.map(String::from),
    }
}

impl MemoryBackend {
    fn new() -> MemoryBackend {
        MemoryBackend {
            installed: Mutex::new(vec![pkg("bash", "5.2"), pkg("openssl", "3.0.11")]),
            plan: vec![change("openssl", Some("3.0.11"), Some("3.0.13"))],
            apply_installs: true,
            apply_succeeds: true,
            reboot_required: false,
            applies: AtomicUsize::new(0),
        }
    }
}

impl PackageBackend for MemoryBackend {
    fn manager(&self) -> PackageManager {
        PackageManager::Apt
    }
    fn inventory(&self) -> crate::Result<crate::proto::Inventory> {
        Err(AgentError::Job("not used".into()))
    }
    fn installed(&self) -> crate::Result<Vec<InstalledPackage>> {
        Ok(self.installed.lock().unwrap().clone())
    }
    fn plan(&self, _request: PatchRequest<'_>) -> crate::Result<Vec<PackageChange>> {
        Ok(self.plan.clone())
    }
    fn apply(&self, _request: PatchRequest<'_>, output: &mut dyn FnMut(&str)) -> crate::Result<ApplyOutcome> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        output("Unpacking openssl (3.0.13) over (3.0.11) ...");
        if self.apply_installs {
            let mut installed = self.installed.lock().unwrap();
            for c in &self.plan {
                installed.retain(|p| p.name != c.name);
                if let Some(v) = &c.after {
                    installed.push(pkg(&c.name, v));
                }
            }
        }
        let code = if self.apply_succeeds { 0 } else { 100 };
        Ok(ApplyOutcome {
            success: self.apply_succeeds,
            code: Some(code),
            summary: format!("apt-get exited with status {code}"),
        })
    }
    fn reboot_required(&self) -> crate::Result<bool> {
        Ok(self.reboot_required)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    journal: Journal,
    pause: Pause,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&StateDir::new(dir.path())).unwrap();
    Fixture { _dir: dir, journal, pause: Pause::default() }
}

fn now() -> i64 {
    1_000
}

fn env<'a>(f: &'a Fixture, backend: &'a MemoryBackend) -> RunEnv<'a> {
    RunEnv { journal: &f.journal, backend: Ok(backend), pause: &f.pause, now: &now }
}

fn hook(name: &str, script: &str) -> HookCommand {
    HookCommand { name: name.into(), argv: vec!["/bin/sh".into(), "-c".into(), script.into()], timeout_secs: 10 }
}

fn accepted(f: &Fixture, spec: JobSpec) -> Entry {
    let signed = SignedJob { spec_b64: String::new(), signature_b64: String::new(), key_id: String::new() };
    let mut entry = Entry::new(signed, spec, 900);
    entry.phase = Phase::Accepted;
    f.journal.save(&mut entry, 900).unwrap();
    entry
}

/// prepare + execute, as the worker does.
fn run(f: &Fixture, backend: &MemoryBackend, entry: &mut Entry) -> Outcome {
    match prepare(entry, &env(f, backend)).unwrap() {
        Prepared::Ready => execute(entry, &env(f, backend)).unwrap(),
        Prepared::Done(outcome) => outcome,
    }
}

#[test]
fn success_lists_versions_from_the_database_and_journals_the_snapshot() {
    let f = fixture();
    let backend = MemoryBackend::new();
    let mut s = spec("j1", 2_000);
    s.pre_commands = vec![hook("drain", "echo draining node")];
    s.post_commands = vec![hook("check", "echo health ok")];
    let mut entry = accepted(&f, s);

    assert!(matches!(prepare(&mut entry, &env(&f, &backend)).unwrap(), Prepared::Ready));
    // What a crash right now would find on disk: running, before snapshot and plan saved.
    let on_disk = f.journal.load("j1").unwrap().unwrap();
    assert_eq!(on_disk.phase, Phase::Running);
    assert_eq!(on_disk.stage, Some(Stage::Snapshot));
    assert_eq!(on_disk.started_at, 1_000);
    assert_eq!(on_disk.before.as_ref().unwrap().len(), 2);
    assert_eq!(on_disk.planned.as_ref().unwrap().len(), 1);
    assert_eq!(backend.applies.load(Ordering::SeqCst), 0);

    let outcome = execute(&mut entry, &env(&f, &backend)).unwrap();
    assert_eq!(outcome.state, JobState::Succeeded);
    assert_eq!(outcome.result.changes, vec![change("openssl", Some("3.0.11"), Some("3.0.13"))]);
    assert_eq!(outcome.result.reason, "1 package(s) updated");
    assert!(!outcome.result.reboot_pending);
    assert_eq!((outcome.result.started_at, outcome.result.finished_at), (1_000, 1_000));
    let out = &outcome.result.output;
    let order = ["draining node", "openssl amd64 3.0.11 -> 3.0.13", "Unpacking openssl", "health ok"];
    let positions: Vec<usize> = order.iter().map(|s| out.find(s).unwrap_or_else(|| panic!("{s} in {out}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert_eq!(backend.applies.load(Ordering::SeqCst), 1);
    assert_eq!(f.journal.load("j1").unwrap().unwrap().stage, Some(Stage::PostCommands));
}

#[test]
fn failing_pre_command_fails_before_any_package_change() {
    let f = fixture();
    let backend = MemoryBackend::new();
    let mut s = spec("j1", 2_000);
    s.pre_commands = vec![hook("ok", "echo first"), hook("stop-db", "echo cannot stop >&2; exit 7")];
    s.post_commands = vec![hook("never", "echo post ran")];
    let mut entry = accepted(&f, s);
    let outcome = run(&f, &backend, &mut entry);
    assert_eq!(outcome.state, JobState::Failed);
    assert_eq!(outcome.result.reason, "pre-command stop-db exited with status 7; no package was changed");
    assert!(outcome.result.output.contains("cannot stop"));
    assert!(!outcome.result.output.contains("post ran"));
    assert!(outcome.result.changes.is_empty());
    assert_eq!(backend.applies.load(Ordering::SeqCst), 0);
}

#[test]
fn success_without_any_change_while_updates_were_planned_is_a_failure() {
    let f = fixture();
    let mut backend = MemoryBackend::new();
    backend.apply_installs = false;
    let mut entry = accepted(&f, spec("j1", 2_000));
    let outcome = run(&f, &backend, &mut entry);
    assert_eq!(outcome.state, JobState::Failed);
    assert!(
        outcome.result.reason.contains("reported success but the package database shows no change"),
        "{}",
        outcome.result.reason
    );

    // Nothing planned and nothing changed: a success with no changes (not a skip).
    let mut idle = MemoryBackend::new();
    idle.plan = vec![];
    let mut entry = accepted(&f, spec("j2", 2_000));
    let outcome = run(&f, &idle, &mut entry);
    assert_eq!((outcome.state, outcome.result.reason.as_str()), (JobState::Succeeded, "nothing to update"));
}

#[test]
fn failed_package_manager_still_reports_what_changed_and_runs_post_commands() {
    let f = fixture();
    let mut backend = MemoryBackend::new();
    backend.apply_succeeds = false;
    let mut s = spec("j1", 2_000);
    s.reboot = RebootPolicy::Always;
    s.post_commands = vec![hook("restart", "echo restarted")];
    let mut entry = accepted(&f, s);
    let outcome = run(&f, &backend, &mut entry);
    assert_eq!(outcome.state, JobState::Failed);
    assert_eq!(outcome.result.reason, "apt-get exited with status 100 (1 package(s) changed)");
    assert_eq!(outcome.result.changes.len(), 1);
    assert!(outcome.result.output.contains("restarted"));
    assert!(!outcome.result.reboot_pending, "never reboot after a failure");
}

#[test]
fn failing_post_command_fails_the_job() {
    let f = fixture();
    let backend = MemoryBackend::new();
    let mut s = spec("j1", 2_000);
    s.reboot = RebootPolicy::Always;
    s.post_commands = vec![hook("smoke", "exit 2"), hook("cleanup", "echo cleaned")];
    let mut entry = accepted(&f, s);
    let outcome = run(&f, &backend, &mut entry);
    assert_eq!(outcome.state, JobState::Failed);
    assert!(outcome.result.reason.starts_with("post-command smoke exited with status 2"));
    assert!(outcome.result.output.contains("cleaned"), "later post-commands still run");
    assert!(!outcome.result.reboot_pending);
}

#[test]
fn dry_run_reports_the_plan_and_changes_nothing() {
    let f = fixture();
    let backend = MemoryBackend::new();
    let mut s = spec("j1", 2_000);
    s.mode = JobMode::DryRun;
    s.reboot = RebootPolicy::Always;
    s.pre_commands = vec![hook("never", "echo pre ran")];
    let mut entry = accepted(&f, s);
    let outcome = run(&f, &backend, &mut entry);
    assert_eq!(outcome.state, JobState::Succeeded);
    assert_eq!(outcome.result.changes, backend.plan);
    assert_eq!(outcome.result.reason, "dry run: 1 package(s) would change");
    assert!(!outcome.result.reboot_pending);
    assert!(!outcome.result.output.contains("pre ran"));
    assert_eq!(backend.applies.load(Ordering::SeqCst), 0);
}

#[test]
fn reboot_follows_the_policy_and_the_hosts_signal() {
    for (policy, required, expected) in [
        (RebootPolicy::Never, true, false),
        (RebootPolicy::IfRequired, false, false),
        (RebootPolicy::IfRequired, true, true),
        (RebootPolicy::Always, false, true),
    ] {
        let f = fixture();
        let mut backend = MemoryBackend::new();
        backend.reboot_required = required;
        let mut s = spec("j1", 2_000);
        s.reboot = policy;
        let mut entry = accepted(&f, s);
        let outcome = run(&f, &backend, &mut entry);
        assert_eq!(outcome.state, JobState::Succeeded);
        assert_eq!(outcome.result.reboot_pending, expected, "{policy:?} required={required}");
    }
}

#[test]
fn no_package_manager_fails_clearly() {
    let f = fixture();
    let mut entry = accepted(&f, spec("j1", 2_000));
    let env = RunEnv { journal: &f.journal, backend: Err("dpkg-query".into()), pause: &f.pause, now: &now };
    let Prepared::Done(outcome) = prepare(&mut entry, &env).unwrap() else { panic!("ran without a backend") };
    assert_eq!(outcome.state, JobState::Failed);
    assert!(outcome.result.reason.contains("no supported package manager"));
}

#[test]
fn interrupted_job_reports_the_real_difference() {
    let f = fixture();
    let backend = MemoryBackend::new();
    let lock = PackageLock::new(vec![]);
    let mut entry = accepted(&f, spec("j1", 2_000));
    assert!(matches!(prepare(&mut entry, &env(&f, &backend)).unwrap(), Prepared::Ready));

    // Killed before the package manager started: nothing changed.
    let outcome = interrupted(&entry, &env(&f, &backend), &lock);
    assert_eq!(outcome.state, JobState::Interrupted);
    assert!(outcome.result.changes.is_empty());
    assert!(outcome.result.reason.contains("before the package manager started"), "{}", outcome.result.reason);
    assert!(outcome.result.reason.ends_with("no package changed"));

    // Killed while it ran, and it went on to install the update.
    entry.stage = Some(Stage::Applying);
    backend.apply(PatchRequest { scope: &PatchScope::All, exclude: &[] }, &mut |_| {}).unwrap();
    let outcome = interrupted(&entry, &env(&f, &backend), &lock);
    assert_eq!(outcome.result.changes, vec![change("openssl", Some("3.0.11"), Some("3.0.13"))]);
    assert!(outcome.result.reason.contains("while the package manager was running; 1 package(s) changed"));
    assert!(outcome.result.output.contains("agent restarted"));

    // Killed before any snapshot: nothing could have changed through the job.
    let mut early = accepted(&f, spec("j2", 2_000));
    early.phase = Phase::Running;
    early.stage = Some(Stage::PreCommands);
    let outcome = interrupted(&early, &env(&f, &backend), &lock);
    assert!(outcome.result.changes.is_empty());
}
