//! Drives one job through the journal phases (see [`super::journal`] for the state machine
//! and ordering rules), and the start-up recovery.
//!
//! Recovery, before the worker takes new jobs, for every journal entry:
//! - `received` / `accepted`: nothing ran yet; the job continues normally (the `Received`
//!   event is posted again when it may not have arrived).
//! - `running`: it is not run again. After the package manager's lock is free, the journaled
//!   before snapshot is diffed against the package database and the job is reported
//!   `interrupted` with those changes.
//! - `finished`: an unacknowledged report is sent again; a reboot still due is done.
//!
//! Then pending refusal reports are resent and old entries pruned.

use crate::proto::jobs::{JobEvent, JobState};
use crate::{facts, AgentError};

use super::journal::{Entry, Outcome, Phase, RebootStep, Report};
use super::pause::PausePoint;
use super::report::{self, Posted};
use super::runner::{self, Prepared, RunEnv};
use super::verify::{check_window, Window};
use super::{reboot, unix_now, Jobs};

/// `Running` is informative; the job does not wait long for it.
const RUNNING_EVENT_ATTEMPTS: u32 = 4;

impl Jobs {
    /// Start-up recovery; frees the worker when done.
    pub(super) async fn recover(&self) {
        match self.inner.journal.entries() {
            Ok(entries) => {
                for mut entry in entries {
                    self.recover_entry(&mut entry).await;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the job journal"),
        }
        match self.inner.journal.refusals() {
            Ok(refusals) => refusals.into_iter().for_each(|r| self.report_refusal(r)),
            Err(e) => tracing::error!(error = %e, "cannot read the refused jobs"),
        }
        self.prune();
        self.release();
    }

    async fn recover_entry(&self, entry: &mut Entry) {
        match entry.phase {
            Phase::Received | Phase::Accepted => {
                tracing::info!(job_id = %entry.job_id, "resuming a job that had not started");
                self.run_job(entry).await;
            }
            Phase::Running => {
                tracing::warn!(job_id = %entry.job_id, stage = ?entry.stage, "job was interrupted by an agent restart; reporting what changed");
                let jobs = self.clone();
                let snapshot = entry.clone();
                let flux = self.enter_flux();
                let outcome = tokio::task::spawn_blocking(move || {
                    let env = jobs.env();
                    runner::interrupted(&snapshot, &env, &jobs.inner.lock)
                })
                .await;
                drop(flux);
                match outcome {
                    Ok(outcome) => self.finish_and_report(entry, outcome).await,
                    Err(e) => {
                        tracing::error!(job_id = %entry.job_id, error = %e, "recovery step failed")
                    }
                }
            }
            Phase::Finished => match (&entry.report, &entry.reboot) {
                (Report::Pending, _) => self.report_entry(entry).await,
                (Report::Acknowledged { .. }, RebootStep::Pending) => self.reboot(entry).await,
                (_, RebootStep::Started { boot_id, .. }) if *boot_id == self.boot_id() => {
                    tracing::warn!(job_id = %entry.job_id, "the reboot after this job was started but the host did not reboot; not trying again");
                }
                _ => {}
            },
        }
    }

    /// Everything from `received` to the end of the job (reboot included).
    pub(super) async fn run_job(&self, entry: &mut Entry) {
        if entry.phase == Phase::Received {
            self.inner.pause.pause(PausePoint::Received, &entry.job_id).await;
            let event = report::event(&entry.job_id, JobState::Received, unix_now());
            let cancelled = match self.inner.reporter.post(&event, None).await {
                Ok(Posted::Answered(answer)) if answer.proceed => None,
                Ok(Posted::Answered(_)) => Some("cancelled on the server before it started".to_string()),
                Ok(Posted::Refused(e)) => Some(format!("the server refused to start it: {e}")),
                Err(e) => Some(format!("the server refused to start it: {e}")),
            };
            if let Some(reason) = cancelled {
                tracing::info!(job_id = %entry.job_id, %reason, "job not started");
                let outcome = runner::outcome(&self.inner.journal, entry, JobState::Cancelled, &reason, unix_now());
                entry.finish(outcome, Report::NotNeeded);
                self.save(entry);
                return;
            }
            entry.phase = Phase::Accepted;
            if !self.save(entry) {
                return;
            }
        }
        if entry.phase != Phase::Accepted {
            return;
        }
        loop {
            match check_window(&entry.spec, unix_now()) {
                Window::Open => break,
                Window::WaitSecs(secs) => {
                    tracing::info!(job_id = %entry.job_id, secs, "job window opens shortly; waiting");
                    tokio::time::sleep(std::time::Duration::from_secs(secs.max(1))).await;
                }
                Window::Closed(reason) => {
                    tracing::info!(job_id = %entry.job_id, %reason, "job skipped");
                    let outcome = runner::outcome(&self.inner.journal, entry, JobState::Skipped, &reason, unix_now());
                    return self.finish_and_report(entry, outcome).await;
                }
            }
        }

        // From the before snapshot to the after snapshot (ends on every return below).
        let flux = self.enter_flux();
        let Some((prepared, back)) = self.blocking(entry.clone(), |jobs, e| runner::prepare(e, &jobs.env())).await
        else {
            return;
        };
        *entry = back;
        match prepared {
            Ok(Prepared::Ready) => {}
            Ok(Prepared::Done(outcome)) => {
                drop(flux);
                return self.finish_and_report(entry, outcome).await;
            }
            Err(e) => return self.journal_failed(entry, &e),
        }

        let event = report::event(&entry.job_id, JobState::Running, unix_now());
        if let Err(e) = self.inner.reporter.post(&event, Some(RUNNING_EVENT_ATTEMPTS)).await {
            tracing::warn!(job_id = %entry.job_id, error = %e, "cannot report Running; going on (the result is what counts)");
        }

        let Some((executed, back)) = self
            .blocking(entry.clone(), |jobs, e| {
                jobs.inner.pause.blocking(PausePoint::BeforeExec, &e.job_id);
                runner::execute(e, &jobs.env())
            })
            .await
        else {
            return;
        };
        *entry = back;
        drop(flux);
        match executed {
            Ok(outcome) => self.finish_and_report(entry, outcome).await,
            Err(e) => self.journal_failed(entry, &e),
        }
    }

    /// Runs a blocking step on a copy of the entry; gives back the result and the entry
    /// (`None` when the step panicked: the journal on disk then says where it stopped).
    async fn blocking<T: Send + 'static>(
        &self,
        mut entry: Entry,
        step: impl FnOnce(&Jobs, &mut Entry) -> T + Send + 'static,
    ) -> Option<(T, Entry)> {
        let jobs = self.clone();
        let job_id = entry.job_id.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let out = step(&jobs, &mut entry);
            (out, entry)
        })
        .await;
        match joined {
            Ok(done) => Some(done),
            Err(e) => {
                tracing::error!(job_id = %job_id, error = %e, "job step failed unexpectedly");
                None
            }
        }
    }

    /// The journal cannot be written: stop here. Whatever is on disk decides what the next
    /// start reports (a `running` entry becomes `interrupted`).
    fn journal_failed(&self, entry: &Entry, e: &AgentError) {
        tracing::error!(job_id = %entry.job_id, error = %e, "cannot write the job journal; job stopped");
    }

    fn env(&self) -> RunEnv<'_> {
        RunEnv {
            journal: &self.inner.journal,
            backend: self.inner.backend.as_ref().map(|b| b.as_ref()).map_err(Clone::clone),
            pause: &self.inner.pause,
            now: &unix_now,
        }
    }

    /// Saves; logs and returns false on failure.
    fn save(&self, entry: &mut Entry) -> bool {
        match self.inner.journal.save(entry, unix_now()) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(job_id = %entry.job_id, error = %e, "cannot write the job journal");
                false
            }
        }
    }

    /// Journals the outcome (rule: before reporting), reports it, then reboots if due.
    async fn finish_and_report(&self, entry: &mut Entry, outcome: Outcome) {
        tracing::info!(job_id = %entry.job_id, state = outcome.state.as_str(), reason = %outcome.result.reason, changes = outcome.result.changes.len(), "job finished");
        // Claimed before the entry says `finished`, so a redelivery now sees the report in
        // flight and does not start a second one.
        self.shared().reporting.insert(entry.job_id.clone());
        entry.finish(outcome, Report::Pending);
        if !self.save(entry) {
            self.shared().reporting.remove(&entry.job_id);
            return;
        }
        self.inner.pause.pause(PausePoint::Finished, &entry.job_id).await;
        self.post_terminal(entry).await;
        self.shared().reporting.remove(&entry.job_id);
    }

    /// Reports a finished entry unless that is already in progress.
    pub(super) async fn report_entry(&self, entry: &mut Entry) {
        if !self.shared().reporting.insert(entry.job_id.clone()) {
            return;
        }
        self.post_terminal(entry).await;
        self.shared().reporting.remove(&entry.job_id);
    }

    async fn post_terminal(&self, entry: &mut Entry) {
        let Some(outcome) = entry.outcome.clone() else {
            return;
        };
        let event = JobEvent {
            job_id: entry.job_id.clone(),
            state: outcome.state,
            at: outcome.result.finished_at,
            result: Some(outcome.result),
        };
        let now = unix_now();
        // A duplicate the server answers with `proceed: false` means it holds another end for
        // this host (it skipped or cancelled it meanwhile): it expects no reboot, so none
        // happens. `proceed: true` on a duplicate is our own earlier report.
        let (answered, reboot_ok) = match self.inner.reporter.post(&event, None).await {
            Ok(Posted::Answered(a)) => (Report::Acknowledged { at: now }, !a.duplicate || a.proceed),
            Ok(Posted::Refused(e)) | Err(e) => (Report::Rejected { at: now, reason: e.to_string() }, false),
        };
        let acknowledged = matches!(answered, Report::Acknowledged { .. });
        if entry.report == Report::Pending {
            entry.report = answered;
            if !reboot_ok && entry.reboot == RebootStep::Pending {
                tracing::warn!(job_id = %entry.job_id, "the server did not take this result as the job's end; not rebooting");
                entry.reboot = RebootStep::NotNeeded;
            }
            if !self.save(entry) {
                return;
            }
        }
        if acknowledged && entry.reboot == RebootStep::Pending {
            self.inner.pause.pause(PausePoint::Reported, &entry.job_id).await;
            self.reboot(entry).await;
        }
    }

    /// Journals `started` (at most once), then runs the reboot command.
    async fn reboot(&self, entry: &mut Entry) {
        entry.reboot = RebootStep::Started { at: unix_now(), boot_id: self.boot_id() };
        if !self.save(entry) {
            tracing::error!(job_id = %entry.job_id, "not rebooting: cannot journal it (it must happen at most once)");
            return;
        }
        let argv = self.inner.reboot_argv.clone();
        match tokio::task::spawn_blocking(move || reboot::run_command(&argv)).await {
            Ok(Ok(exit)) if exit.success => {
                tracing::info!(job_id = %entry.job_id, "reboot command started")
            }
            Ok(Ok(exit)) => {
                tracing::error!(job_id = %entry.job_id, status = %super::hook::describe(&exit), "reboot command failed")
            }
            Ok(Err(e)) => {
                tracing::error!(job_id = %entry.job_id, error = %e, "reboot command could not run")
            }
            Err(e) => {
                tracing::error!(job_id = %entry.job_id, error = %e, "reboot command could not run")
            }
        }
    }

    fn boot_id(&self) -> String {
        facts::boot_id(&self.inner.boot_id_path)
    }
}
