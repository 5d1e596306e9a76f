//! Running one accepted job (blocking; called from `spawn_blocking`), in two halves around
//! the `Running` event:
//!
//! 1. [`prepare`]: journal `running` (before any side effect), run the pre-commands, take
//!    the before snapshot and the plan from the package database, journal them.
//! 2. [`execute`]: run the package manager (or, for a dry run, nothing), take the after
//!    snapshot, run the post-commands, decide the reboot, build the result.
//!
//! [`interrupted`] is the restart path for a job found `running` in the journal: wait for the
//! package manager's lock, then diff the journaled before snapshot against the package
//! database now. Results never claim what the database does not show: `changes` is always a
//! diff of two `installed()` snapshots (a dry run's is the plan), and a package manager that
//! "succeeded" while the plan was not empty and nothing changed makes the job fail.

use std::time::Duration;

use crate::error::Result;
use crate::pkg::diff::diff;
use crate::pkg::{PackageBackend, PatchRequest};
use crate::proto::jobs::{JobMode, JobResult, JobSpec, JobState, PackageChange, PatchScope, RebootPolicy};

use super::hook;
use super::journal::{Entry, Journal, Outcome, Phase, Stage};
use super::lock::{PackageLock, MAX_LOCK_WAIT};
use super::output::{self, JobLog};
use super::pause::{Pause, PausePoint};
use super::reboot;

/// What a job run needs from the agent.
pub struct RunEnv<'a> {
    pub journal: &'a Journal,
    /// `Err`: why there is no package manager (the job fails with it).
    pub backend: std::result::Result<&'a dyn PackageBackend, String>,
    pub pause: &'a Pause,
    pub now: &'a (dyn Fn() -> i64 + Sync),
}

/// The end of [`prepare`].
#[derive(Debug)]
pub enum Prepared {
    /// Snapshot and plan journaled: report `Running`, then [`execute`].
    Ready,
    /// The job ended early (a pre-command failed, the database could not be read).
    Done(Outcome),
}

/// The terminal outcome of a job that ends without running anything (skipped, refused by
/// the server, cancelled), or any other ending built from the job's log.
pub fn outcome(journal: &Journal, entry: &Entry, state: JobState, reason: &str, now: i64) -> Outcome {
    outcome_with(journal, entry, state, reason, Vec::new(), false, now)
}

fn outcome_with(
    journal: &Journal,
    entry: &Entry,
    state: JobState,
    reason: &str,
    changes: Vec<PackageChange>,
    reboot_pending: bool,
    now: i64,
) -> Outcome {
    Outcome {
        state,
        result: JobResult {
            reason: reason.to_string(),
            changes,
            output: output::read_capped(&journal.log_path(&entry.job_id)),
            started_at: entry.started_at,
            finished_at: now,
            reboot_pending,
        },
    }
}

fn request(spec: &JobSpec) -> PatchRequest<'_> {
    PatchRequest { scope: &spec.scope, exclude: &spec.exclude }
}

/// First half (see the module doc). `Err` only when the journal cannot be written, and
/// then nothing has run.
pub fn prepare(entry: &mut Entry, env: &RunEnv<'_>) -> Result<Prepared> {
    let journal = env.journal;
    let now = env.now;
    entry.phase = Phase::Running;
    entry.stage = Some(Stage::PreCommands);
    entry.started_at = now();
    journal.save(entry, now())?;

    let mut log = JobLog::open(&journal.log_path(&entry.job_id))?;
    log.section(&format!("job {} ({})", entry.job_id, describe(&entry.spec)));
    let backend = match env.backend {
        Ok(b) => b,
        Err(ref why) => {
            log.line(why);
            let reason = format!("no supported package manager on this host ({why})");
            return Ok(Prepared::Done(outcome(journal, entry, JobState::Failed, &reason, now())));
        }
    };

    if entry.spec.mode == JobMode::DryRun {
        if !(entry.spec.pre_commands.is_empty() && entry.spec.post_commands.is_empty()) {
            log.line("dry run: pre- and post-commands are not run");
        }
    } else {
        for hook in &entry.spec.pre_commands {
            if let Err(reason) = run_hook("pre-command", hook, &mut log) {
                log.sync();
                let reason = format!("{reason}; no package was changed");
                return Ok(Prepared::Done(outcome(journal, entry, JobState::Failed, &reason, now())));
            }
        }
    }

    entry.stage = Some(Stage::Snapshot);
    journal.save(entry, now())?;
    let before = match backend.installed() {
        Ok(list) => list,
        Err(e) => {
            log.line(&format!("cannot read the package database: {e}"));
            let reason = format!("cannot read the package database: {e}");
            return finish_after_failed_snapshot(entry, env, &mut log, &reason);
        }
    };
    log.section("planned changes (simulation)");
    let planned = match backend.plan(request(&entry.spec)) {
        Ok(p) => p,
        Err(e) => {
            log.line(&format!("{e}"));
            let reason = format!("cannot plan the update: {e}");
            return finish_after_failed_snapshot(entry, env, &mut log, &reason);
        }
    };
    if planned.is_empty() {
        log.line("nothing to do");
    }
    for change in &planned {
        log.line(&describe_change(change));
    }
    log.sync();
    entry.before = Some(before);
    entry.planned = Some(planned);
    journal.save(entry, now())?;
    Ok(Prepared::Ready)
}

/// The database or plan could not be read: nothing was changed, but post-commands still run
/// (they usually undo what the pre-commands did, e.g. re-enable a service).
fn finish_after_failed_snapshot(
    entry: &mut Entry,
    env: &RunEnv<'_>,
    log: &mut JobLog,
    reason: &str,
) -> Result<Prepared> {
    let mut reason = format!("{reason}; no package was changed");
    if let Some(post_failure) = run_post_commands(entry, log) {
        reason = format!("{reason}; {post_failure}");
    }
    log.sync();
    Ok(Prepared::Done(outcome(env.journal, entry, JobState::Failed, &reason, (env.now)())))
}

/// Second half (see the module doc). `entry` is `running` with its snapshot journaled.
pub fn execute(entry: &mut Entry, env: &RunEnv<'_>) -> Result<Outcome> {
    let journal = env.journal;
    let now = env.now;
    let mut log = JobLog::open(&journal.log_path(&entry.job_id))?;
    let planned = entry.planned.clone().unwrap_or_default();
    let backend = match env.backend {
        Ok(b) => b,
        Err(ref why) => return Ok(outcome(journal, entry, JobState::Failed, why, now())),
    };

    if entry.spec.mode == JobMode::DryRun {
        let reason = format!("dry run: {} package(s) would change", planned.len());
        log.line(&reason);
        let (_, why) = reboot::decide(entry.spec.reboot, JobMode::DryRun, true, || Ok(false));
        log.line(&why);
        log.sync();
        return Ok(outcome_with(journal, entry, JobState::Succeeded, &reason, planned, false, now()));
    }

    entry.stage = Some(Stage::Applying);
    journal.save(entry, now())?;
    log.section(&format!("{:?}: installing updates", backend.manager()).to_lowercase());
    log.sync();
    let applied = backend.apply(request(&entry.spec), &mut |line| log.line(line));
    env.pause.blocking(PausePoint::Applied, &entry.job_id);
    let apply_failure = match &applied {
        Ok(o) if o.success => None,
        Ok(o) => Some(o.summary.clone()),
        Err(e) => Some(format!("the package manager could not run: {e}")),
    };
    if let Ok(o) = &applied {
        log.line(&o.summary);
    }

    let after = backend.installed();
    let before = entry.before.clone().unwrap_or_default();
    let (changes, db_failure) = match &after {
        Ok(after) => (diff(&before, after), None),
        Err(e) => (Vec::new(), Some(format!("cannot read the package database after the update: {e}"))),
    };
    log.section("changes (from the package database)");
    if changes.is_empty() {
        log.line("no package changed");
    }
    for change in &changes {
        log.line(&describe_change(change));
    }

    entry.stage = Some(Stage::PostCommands);
    journal.save(entry, now())?;
    let post_failure = run_post_commands(entry, &mut log);

    let mut failures: Vec<String> = [apply_failure, db_failure].into_iter().flatten().collect();
    if failures.is_empty() && changes.is_empty() && !planned.is_empty() {
        failures.push(format!(
            "the package manager reported success but the package database shows no change ({} planned)",
            planned.len()
        ));
    }
    failures.extend(post_failure);
    let succeeded = failures.is_empty();
    let (reboot_pending, why) =
        reboot::decide(entry.spec.reboot, entry.spec.mode, succeeded, || backend.reboot_required());
    log.line(&why);
    log.sync();
    let reason = if succeeded {
        summary_of(&changes, planned.len())
    } else {
        format!("{} ({} package(s) changed)", failures.join("; "), changes.len())
    };
    let state = if succeeded { JobState::Succeeded } else { JobState::Failed };
    Ok(outcome_with(journal, entry, state, &reason, changes, reboot_pending, now()))
}

/// Runs the post-commands (none for a dry run). The first failure, if any, for the reason.
fn run_post_commands(entry: &Entry, log: &mut JobLog) -> Option<String> {
    if entry.spec.mode == JobMode::DryRun {
        return None;
    }
    let mut first = None;
    for hook in &entry.spec.post_commands {
        if let Err(reason) = run_hook("post-command", hook, log) {
            first.get_or_insert(reason);
        }
    }
    first
}

fn run_hook(kind: &str, hook: &crate::proto::jobs::HookCommand, log: &mut JobLog) -> std::result::Result<(), String> {
    log.section(&format!("{kind} {}: {}", hook.name, hook.argv.join(" ")));
    match hook::run_hook(hook, &mut |line| log.line(line)) {
        Ok(exit) => {
            log.line(&format!("{kind} {} {}", hook.name, hook::describe(&exit)));
            if exit.success {
                Ok(())
            } else {
                Err(format!("{kind} {} {}", hook.name, hook::describe(&exit)))
            }
        }
        Err(e) => {
            log.line(&e.to_string());
            Err(format!("{kind} {} could not run: {e}", hook.name))
        }
    }
}

/// Restart path: the job was `running` when the agent died. Waits (bounded) for the
/// package manager's lock, then reports what actually changed since the before snapshot.
pub fn interrupted(entry: &Entry, env: &RunEnv<'_>, lock: &PackageLock) -> Outcome {
    let journal = env.journal;
    let mut log = JobLog::open(&journal.log_path(&entry.job_id)).ok();
    let mut note = |text: &str| {
        if let Some(log) = log.as_mut() {
            log.line(text);
        }
    };
    let stage = entry.stage.unwrap_or(Stage::PreCommands);
    note(&format!("==> agent restarted: the job was interrupted {}", stage.describe()));
    let lock_free = lock.wait_free(MAX_LOCK_WAIT, Duration::from_millis(500));
    if !lock_free {
        note("the package manager's lock is still held; reading the package database anyway");
    }
    let (changes, unknown) = match (&entry.before, env.backend.as_ref().map(|b| b.installed())) {
        (Some(before), Ok(Ok(now_installed))) => (diff(before, &now_installed), None),
        (None, _) => (Vec::new(), None),
        (Some(_), Ok(Err(e))) => (Vec::new(), Some(format!("cannot read the package database: {e}"))),
        (Some(_), Err(why)) => (Vec::new(), Some(why.clone())),
    };
    for change in &changes {
        note(&describe_change(change));
    }
    let mut reason = format!("agent restarted {}; ", stage.describe());
    match &unknown {
        Some(why) => reason.push_str(&format!("what changed is unknown ({why})")),
        None if changes.is_empty() => reason.push_str("no package changed"),
        None => reason.push_str(&format!("{} package(s) changed", changes.len())),
    }
    if !lock_free {
        reason.push_str(" (the package manager was still busy)");
    }
    drop(log);
    outcome_with(journal, entry, JobState::Interrupted, &reason, changes, false, (env.now)())
}

fn summary_of(changes: &[PackageChange], planned: usize) -> String {
    if changes.is_empty() {
        return "nothing to update".to_string();
    }
    if changes.len() == planned {
        format!("{} package(s) updated", changes.len())
    } else {
        format!("{} package(s) changed ({planned} planned)", changes.len())
    }
}

fn describe_change(c: &PackageChange) -> String {
    let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    format!("{} {} {} -> {}", c.name, c.arch, v(&c.before), v(&c.after))
}

fn describe(spec: &JobSpec) -> String {
    let scope = match &spec.scope {
        PatchScope::All => "all updates".to_string(),
        PatchScope::Security => "security updates".to_string(),
        PatchScope::Packages { names } => format!("packages {}", names.join(" ")),
    };
    let mode = match spec.mode {
        JobMode::Apply => "apply",
        JobMode::DryRun => "dry run",
    };
    let exclude =
        if spec.exclude.is_empty() { String::new() } else { format!(", excluding {}", spec.exclude.join(" ")) };
    let reboot = match spec.reboot {
        RebootPolicy::Never => "never",
        RebootPolicy::IfRequired => "if required",
        RebootPolicy::Always => "always",
    };
    format!("{mode}, {scope}{exclude}, reboot {reboot}")
}

#[cfg(test)]
mod tests;
