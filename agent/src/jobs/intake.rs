//! What happens to each delivered job (from a check-in response or the long poll).
//!
//! - Refused (signature, host, names, hooks): never run. Journaled under the digest of the
//!   delivered bytes, logged on the security target, and reported `Failed` ("job refused by
//!   the agent: signature invalid", ...) to the job id the delivery claims. Reporting (rather
//!   than only logging) shows the operator the tampering on that host's row and stops the
//!   server from redelivering the job until its deadline; it cannot make anything run, and
//!   the journal key being the digest means a forged delivery cannot block the genuine job.
//!   A refused copy of a job id already in the journal is not reported (it would overwrite
//!   the genuine job's result): only logged and journaled.
//! - Known job id: never run again. A finished job whose report the server has not
//!   acknowledged is reported again; an acknowledged one is re-sent once per agent process
//!   (the server answers `duplicate`, or records it if it lost its state).
//! - New job while the worker is idle: journaled (`received`), then the worker takes it.
//! - New job while busy: left alone (not journaled, not acknowledged): delivered again later.

use crate::proto::jobs::{JobResult, JobState, SignedJob};

use super::journal::{self, Phase, Refused, Report};
use super::report::Posted;
use super::verify::{self, Refusal};
use super::{unix_now, Jobs};

impl Jobs {
    /// Handles delivered jobs; returns how many were started.
    pub fn offer(&self, jobs: Vec<SignedJob>) -> usize {
        jobs.into_iter().filter(|signed| self.offer_one(signed.clone(), unix_now())).count()
    }

    fn offer_one(&self, signed: SignedJob, now: i64) -> bool {
        let spec = match self.inner.verifier.verify(&signed) {
            Ok(spec) => spec,
            Err(refusal) => {
                self.refuse(&signed, &refusal, now);
                return false;
            }
        };
        let journal = &self.inner.journal;
        // Held across check, claim and journal write: the check-in loop and the poll may
        // deliver the same job at the same moment.
        let guard = self.shared();
        if journal.knows(&spec.job_id) {
            drop(guard);
            self.redelivered(&spec.job_id);
            return false;
        }
        if !self.try_claim() {
            tracing::debug!(job_id = %spec.job_id, "busy with another job; it will be delivered again");
            return false;
        }
        let mut entry = journal::Entry::new(signed, spec, now);
        if let Err(e) = journal.save(&mut entry, now) {
            // Not journaled, so not acknowledged: the server delivers it again.
            tracing::error!(job_id = %entry.job_id, error = %e, "cannot journal the job; not taking it");
            drop(guard);
            self.release();
            return false;
        }
        drop(guard);
        tracing::info!(job_id = %entry.job_id, "job received");
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut entry = entry;
            jobs.run_job(&mut entry).await;
            jobs.prune();
            jobs.release();
        });
        true
    }

    fn redelivered(&self, job_id: &str) {
        let entry = match self.inner.journal.load(job_id) {
            Ok(Some(entry)) => entry,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(job_id, error = %e, "journal entry unreadable; the job is not run again");
                return;
            }
        };
        if entry.phase != Phase::Finished {
            tracing::debug!(job_id, "delivered again while in progress; ignored");
            return;
        }
        let resend = match entry.report {
            Report::Pending => true,
            Report::Acknowledged { .. } => self.shared().resent.insert(job_id.to_string()),
            Report::Rejected { .. } | Report::NotNeeded => false,
        };
        if !resend || self.shared().reporting.contains(job_id) {
            tracing::debug!(job_id, "finished job delivered again; not run again");
            return;
        }
        tracing::info!(job_id, "finished job delivered again; reporting its result again, not running it");
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut entry = entry;
            jobs.report_entry(&mut entry).await;
        });
    }

    fn refuse(&self, signed: &SignedJob, refusal: &Refusal, now: i64) {
        let journal = &self.inner.journal;
        let digest = journal::delivery_digest(signed);
        let record = match journal.load_refused(&digest) {
            Ok(Some(existing)) => existing,
            Ok(None) => {
                let claimed_job_id = verify::claimed_job_id(signed);
                tracing::warn!(
                    target: "pm_agent::security",
                    claimed_job_id = claimed_job_id.as_deref().unwrap_or("-"),
                    key_id = %signed.key_id.chars().take(16).collect::<String>(),
                    reason = %refusal,
                    "job refused; it will not run"
                );
                // A forged copy of a job we already took must not overwrite its genuine
                // result on the server: only logged and journaled then.
                let report_to = claimed_job_id.as_deref().filter(|id| !journal.knows(id));
                let record = Refused {
                    format: journal::FORMAT,
                    digest,
                    report: if report_to.is_some() { Report::Pending } else { Report::NotNeeded },
                    claimed_job_id,
                    reason: refusal.to_string(),
                    at: now,
                };
                if let Err(e) = journal.save_refused(&record) {
                    tracing::error!(error = %e, "cannot journal the refused job");
                }
                record
            }
            Err(e) => {
                tracing::error!(error = %e, "refusal journal unreadable");
                return;
            }
        };
        self.report_refusal(record);
    }

    /// Posts the refusal (once at a time) until the server answers.
    pub(super) fn report_refusal(&self, mut record: Refused) {
        let Some(job_id) = record.claimed_job_id.clone() else {
            return;
        };
        if record.report != Report::Pending || !self.shared().reporting.insert(record.digest.clone()) {
            return;
        }
        let jobs = self.clone();
        tokio::spawn(async move {
            let result = JobResult {
                reason: format!("job refused by the agent: {}", record.reason),
                changes: Vec::new(),
                output: String::new(),
                started_at: 0,
                finished_at: record.at,
                reboot_pending: false,
            };
            let event =
                crate::proto::jobs::JobEvent { job_id, state: JobState::Failed, at: record.at, result: Some(result) };
            let now = unix_now();
            record.report = match jobs.inner.reporter.post(&event, None).await {
                Ok(Posted::Answered(_)) => Report::Acknowledged { at: now },
                Ok(Posted::Refused(e)) => Report::Rejected { at: now, reason: e.to_string() },
                Err(e) => Report::Rejected { at: now, reason: e.to_string() },
            };
            if let Err(e) = jobs.inner.journal.save_refused(&record) {
                tracing::error!(error = %e, "cannot journal the refusal report");
            }
            jobs.shared().reporting.remove(&record.digest);
        });
    }
}
