//! The job journal: one JSON file per job in `<state_dir>/jobs/`, rewritten atomically at
//! every state change, plus the job's output log next to it.
//!
//! # Files
//! - `<job_id>.json`: an [`Entry`] (format [`FORMAT`]).
//! - `<job_id>.log`: everything the job ran and printed, appended as it comes (see
//!   [`super::output`]); survives a crash of the agent.
//! - `refused/<digest>.json`: a [`Refused`] delivery (signature, host or names wrong), keyed
//!   by the SHA-256 of the signed bytes, never by the unverified job id, so a forged delivery
//!   can never block the real job of the same id.
//! - `<job_id>.paused-<stage>`: written only by the test hook (`PM_AGENT_PAUSE_AT`).
//!
//! # State machine ([`Phase`])
//! ```text
//! (verified) -> received --server says proceed--> accepted -> running -> finished
//!                   \--server says cancel / refuses--> finished (cancelled, nothing to report)
//! accepted --outside the window--> finished (skipped)
//! running  --agent restarted--> finished (interrupted: before snapshot vs. package db now)
//! ```
//! `finished` carries the terminal [`Outcome`]; its [`Report`] goes `pending` ->
//! `acknowledged` (or `rejected` when the server refused it for good) and its [`RebootStep`]
//! `pending` -> `started` once the report was accepted.
//!
//! # Ordering rules
//! 1. Journal before acknowledging: the entry is `received` on disk before the `Received`
//!    event is posted, so a job the server considers acknowledged is always known locally.
//! 2. Acknowledge before starting: nothing runs until the server answered `proceed`.
//! 3. `running` is on disk before the first side effect (pre-commands), and the before
//!    snapshot before the package manager starts. An entry found `running` after a restart
//!    is never run again: it is reported `interrupted` with what actually changed.
//! 4. The result is journaled (`finished`, report `pending`) before it is reported, so a
//!    crash between the two re-reports the same result instead of re-running.
//! 5. The reboot happens only after the server accepted the report, and at most once
//!    (`started` is journaled before the reboot command runs).
//! 6. A job id that has an entry is never run again. Entries are pruned only after
//!    [`DEFAULT_RETENTION_DAYS`] past both their last change and the job's `not_after`, so
//!    a pruned job could never start again anyway (its window closed long ago).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AgentError, Result};
use crate::proto::jobs::{JobResult, JobSpec, JobState, PackageChange, SignedJob};
use crate::proto::InstalledPackage;
use crate::state::{self, StateDir};

/// Version of the entry layout on disk.
pub const FORMAT: u32 = 1;
/// Days a finished job stays in the journal.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Journal files hold package lists and command output: root only.
const MODE: u32 = 0o600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Verified and journaled; the `Received` event may not have reached the server.
    Received,
    /// The server answered `proceed`; nothing has run yet.
    Accepted,
    /// Side effects may have happened (see [`Stage`]).
    Running,
    /// [`Entry::outcome`] is set.
    Finished,
}

/// Where in `running` the job is (journaled before each step starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    PreCommands,
    /// Reading the package database and planning; the package manager has not started.
    Snapshot,
    /// The package manager is (or was) changing packages.
    Applying,
    PostCommands,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::PreCommands => "during the pre-commands, before the package manager started",
            Stage::Snapshot => "before the package manager started",
            Stage::Applying => "while the package manager was running",
            Stage::PostCommands => "during the post-commands, after the package manager finished",
        }
    }
}

/// The terminal state and what is reported with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub state: JobState,
    pub result: JobResult,
}

/// Whether the server has the terminal report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Report {
    Pending,
    /// The server answered (recorded, or `duplicate`).
    Acknowledged {
        at: i64,
    },
    /// The server refused it with a non-retryable error; not retried.
    Rejected {
        at: i64,
        reason: String,
    },
    /// The server itself decided the end (cancelled): nothing to report.
    NotNeeded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RebootStep {
    NotNeeded,
    /// To be done once the report is acknowledged.
    Pending,
    /// The reboot command was started in the boot with this id (never run twice).
    Started {
        at: i64,
        boot_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub format: u32,
    pub job_id: String,
    /// Exactly as delivered (the signature can be checked again later).
    pub signed: SignedJob,
    pub spec: JobSpec,
    pub phase: Phase,
    pub stage: Option<Stage>,
    pub received_at: i64,
    pub updated_at: i64,
    /// 0 until `running`.
    pub started_at: i64,
    /// Installed packages right before the package manager ran.
    pub before: Option<Vec<InstalledPackage>>,
    /// What the package manager said it would change (simulation before apply).
    pub planned: Option<Vec<PackageChange>>,
    pub outcome: Option<Outcome>,
    pub report: Report,
    pub reboot: RebootStep,
}

impl Entry {
    pub fn new(signed: SignedJob, spec: JobSpec, now: i64) -> Entry {
        Entry {
            format: FORMAT,
            job_id: spec.job_id.clone(),
            signed,
            spec,
            phase: Phase::Received,
            stage: None,
            received_at: now,
            updated_at: now,
            started_at: 0,
            before: None,
            planned: None,
            outcome: None,
            report: Report::Pending,
            reboot: RebootStep::NotNeeded,
        }
    }

    /// Records the terminal outcome (the caller saves it before reporting).
    pub fn finish(&mut self, outcome: Outcome, report: Report) {
        self.reboot = if outcome.result.reboot_pending { RebootStep::Pending } else { RebootStep::NotNeeded };
        self.phase = Phase::Finished;
        self.outcome = Some(outcome);
        self.report = report;
    }
}

/// A delivery refused before anything ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub format: u32,
    /// SHA-256 (hex) over the signed bytes and the signature as delivered.
    pub digest: String,
    /// The job id the (unverified) spec names, when it is a valid id; reports go to it.
    pub claimed_job_id: Option<String>,
    pub reason: String,
    pub at: i64,
    pub report: Report,
}

/// Identifies a delivery by its exact bytes (what was signed, and the signature).
pub fn delivery_digest(signed: &SignedJob) -> String {
    let mut h = Sha256::new();
    h.update(signed.spec_b64.as_bytes());
    h.update([0u8]);
    h.update(signed.signature_b64.as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    /// `<state_dir>/jobs` (created 0700).
    pub fn open(state: &StateDir) -> Result<Journal> {
        let journal = Journal { dir: state.root().join("jobs") };
        for dir in [journal.dir.clone(), journal.refused_dir()] {
            create_private_dir(&dir)?;
        }
        Ok(journal)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn refused_dir(&self) -> PathBuf {
        self.dir.join("refused")
    }

    /// Job ids are checked ([`super::verify::valid_job_id`]) before they name a file.
    pub fn entry_path(&self, job_id: &str) -> PathBuf {
        self.dir.join(format!("{job_id}.json"))
    }

    pub fn log_path(&self, job_id: &str) -> PathBuf {
        self.dir.join(format!("{job_id}.log"))
    }

    pub fn refused_path(&self, digest: &str) -> PathBuf {
        self.refused_dir().join(format!("{digest}.json"))
    }

    /// Whether this job id was ever journaled (even if its entry is unreadable: such a job
    /// must not run again either).
    pub fn knows(&self, job_id: &str) -> bool {
        self.entry_path(job_id).exists()
    }

    pub fn load(&self, job_id: &str) -> Result<Option<Entry>> {
        read_json(&self.entry_path(job_id))
    }

    /// Writes `entry` atomically, stamping `updated_at`.
    pub fn save(&self, entry: &mut Entry, now: i64) -> Result<()> {
        entry.updated_at = now;
        write_json(&self.entry_path(&entry.job_id), entry)
    }

    /// Every readable entry, oldest first. Unreadable ones are logged and left alone.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for path in json_files(&self.dir)? {
            match read_json::<Entry>(&path) {
                Ok(Some(entry)) => out.push(entry),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, "unreadable job journal entry; leaving it alone")
                }
            }
        }
        out.sort_by(|a, b| (a.received_at, &a.job_id).cmp(&(b.received_at, &b.job_id)));
        Ok(out)
    }

    pub fn load_refused(&self, digest: &str) -> Result<Option<Refused>> {
        read_json(&self.refused_path(digest))
    }

    pub fn save_refused(&self, refused: &Refused) -> Result<()> {
        write_json(&self.refused_path(&refused.digest), refused)
    }

    pub fn refusals(&self) -> Result<Vec<Refused>> {
        let mut out = Vec::new();
        for path in json_files(&self.refused_dir())? {
            if let Ok(Some(r)) = read_json::<Refused>(&path) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Deletes finished entries (and their logs) and refusals whose report is settled and
    /// which are older than `retention_days` past their last change and the job's
    /// `not_after`. Returns how many were removed.
    pub fn prune(&self, now: i64, retention_days: u64) -> Result<usize> {
        let keep_secs = i64::try_from(retention_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
        let expired = |at: i64| at.saturating_add(keep_secs) <= now;
        let mut removed = 0;
        for entry in self.entries()? {
            let settled = entry.phase == Phase::Finished && entry.report != Report::Pending;
            if settled && expired(entry.updated_at.max(entry.spec.not_after)) {
                state::remove_if_exists(&self.log_path(&entry.job_id))?;
                state::remove_if_exists(&self.entry_path(&entry.job_id))?;
                removed += 1;
            }
        }
        for refused in self.refusals()? {
            if refused.report != Report::Pending && expired(refused.at) {
                state::remove_if_exists(&self.refused_path(&refused.digest))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| AgentError::io("cannot create job journal dir", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| AgentError::io("cannot set permissions on", dir, e))?;
    }
    Ok(())
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| AgentError::io("cannot list", dir, e))?;
    let mut out = Vec::new();
    for item in rd.flatten() {
        let path = item.path();
        let name = item.file_name();
        let name = name.to_string_lossy();
        // Skips write_atomic's temp files (`.name.tmp-...`).
        if !name.starts_with('.') && name.ends_with(".json") && path.is_file() {
            out.push(path);
        }
    }
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AgentError::io("cannot read job journal", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| AgentError::Journal { path: path.to_path_buf(), message: e.to_string() })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| AgentError::Journal { path: path.to_path_buf(), message: e.to_string() })?;
    state::write_atomic(path, &bytes, MODE)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::jobs::{JobMode, PatchScope, RebootPolicy};

    pub(crate) fn spec(job_id: &str, not_after: i64) -> JobSpec {
        JobSpec {
            job_id: job_id.into(),
            host_id: "host-1".into(),
            issued_at: 0,
            not_before: 0,
            not_after,
            mode: JobMode::Apply,
            scope: PatchScope::All,
            exclude: vec![],
            reboot: RebootPolicy::Never,
            pre_commands: vec![],
            post_commands: vec![],
        }
    }

    fn signed() -> SignedJob {
        SignedJob { spec_b64: "c3BlYw==".into(), signature_b64: "c2ln".into(), key_id: "k".into() }
    }

    fn result() -> JobResult {
        JobResult {
            reason: "ok".into(),
            changes: vec![],
            output: String::new(),
            started_at: 1,
            finished_at: 2,
            reboot_pending: true,
        }
    }

    #[test]
    fn entries_round_trip_privately_and_finish_sets_the_reboot_step() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&StateDir::new(dir.path())).unwrap();
        assert_eq!(std::fs::metadata(journal.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(!journal.knows("j1"));
        let mut entry = Entry::new(signed(), spec("j1", 100), 10);
        journal.save(&mut entry, 11).unwrap();
        assert!(journal.knows("j1"));
        let mode = std::fs::metadata(journal.entry_path("j1")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(journal.load("j1").unwrap(), Some(entry.clone()));
        assert_eq!(entry.updated_at, 11);

        entry.finish(Outcome { state: JobState::Succeeded, result: result() }, Report::Pending);
        assert_eq!(entry.reboot, RebootStep::Pending);
        assert_eq!(entry.phase, Phase::Finished);
        journal.save(&mut entry, 12).unwrap();
        assert_eq!(journal.entries().unwrap(), vec![entry]);
        assert_eq!(journal.load("missing").unwrap(), None);
    }

    #[test]
    fn unreadable_entry_still_counts_as_known() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&StateDir::new(dir.path())).unwrap();
        std::fs::write(journal.entry_path("bad"), b"{not json").unwrap();
        assert!(journal.knows("bad"));
        assert!(matches!(journal.load("bad"), Err(AgentError::Journal { .. })));
        assert!(journal.entries().unwrap().is_empty());
    }

    #[test]
    fn prune_keeps_unsettled_and_recent_entries() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&StateDir::new(dir.path())).unwrap();
        let day = 86_400;
        let now = 100 * day;
        // Finished and acknowledged 31 days ago, window closed long ago: pruned.
        let mut old = Entry::new(signed(), spec("old", 60 * day), 60 * day);
        old.finish(Outcome { state: JobState::Succeeded, result: result() }, Report::Acknowledged { at: 0 });
        journal.save(&mut old, 69 * day).unwrap();
        std::fs::write(journal.log_path("old"), "output").unwrap();
        // Same age, but the report never got through: kept.
        let mut unreported = Entry::new(signed(), spec("unreported", 60 * day), 60 * day);
        unreported.finish(Outcome { state: JobState::Succeeded, result: result() }, Report::Pending);
        journal.save(&mut unreported, 69 * day).unwrap();
        // Old but its window is still recent: kept.
        let mut late_window = Entry::new(signed(), spec("late", 90 * day), 60 * day);
        late_window.finish(Outcome { state: JobState::Skipped, result: result() }, Report::NotNeeded);
        journal.save(&mut late_window, 60 * day).unwrap();
        // Never finished: kept whatever its age.
        let mut running = Entry::new(signed(), spec("running", 1), 1);
        running.phase = Phase::Running;
        journal.save(&mut running, 1).unwrap();
        let refused = Refused {
            format: FORMAT,
            digest: "ab".into(),
            claimed_job_id: None,
            reason: "signature invalid".into(),
            at: 1,
            report: Report::Acknowledged { at: 1 },
        };
        journal.save_refused(&refused).unwrap();

        assert_eq!(journal.prune(now, DEFAULT_RETENTION_DAYS).unwrap(), 2);
        assert!(!journal.knows("old"));
        assert!(!journal.log_path("old").exists());
        for kept in ["unreported", "late", "running"] {
            assert!(journal.knows(kept), "{kept}");
        }
        assert_eq!(journal.load_refused("ab").unwrap(), None);
    }

    #[test]
    fn delivery_digest_depends_on_bytes_and_signature() {
        let a = signed();
        let mut b = signed();
        b.signature_b64 = "other".into();
        assert_ne!(delivery_digest(&a), delivery_digest(&b));
        assert_eq!(delivery_digest(&a), delivery_digest(&signed()));
        assert_eq!(delivery_digest(&a).len(), 64);
    }
}
