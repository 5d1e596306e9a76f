//! Patch jobs on the agent: signed instructions from the server, verified, journaled, run
//! one at a time, reported at least once, never run twice.
//!
//! # Layout
//! - [`verify`]: signature (pinned key), host id, job id, package names, hooks; the window.
//! - [`journal`]: the on-disk state machine and its ordering rules (read its docs first).
//! - [`intake`]: what happens to each delivered job (start, refuse, recognise a redelivery).
//! - [`worker`]: drives one job through the journal phases, the restart recovery, reports
//!   and the reboot.
//! - [`runner`]: the blocking steps of a job (hooks, snapshots, package manager, result).
//! - [`poll`]: the long poll that delivers jobs between check-ins.
//! - [`report`]: posting job events with retries; [`reboot`]: reboot policy and command;
//!   [`hook`]: running commands without a shell; [`output`]: the per-job log; [`lock`]:
//!   whether the package manager is still busy (its locks, orphaned runs); [`pause`]: the
//!   crash-test hook.
//!
//! # Concurrency
//! One job at a time: a job is started only when the worker is idle; a job delivered while
//! it is busy is not journaled nor acknowledged, so the server delivers it again later. The
//! check-in loop keeps running while a job runs (its blocking steps are in
//! `spawn_blocking`); the long poll waits while the worker is busy. On start the worker is
//! busy with recovery (see [`worker`]) before it takes new jobs.
//!
//! While a job may be changing packages (from its before snapshot to its after snapshot, or
//! while the recovery waits for an interrupted one), the check-in loop sends no inventory: an
//! inventory read across a transaction can mix states (rpm's list from before it, dnf's
//! pending updates from after it). [`Jobs::flux_mark`] and [`Jobs::quiet_since`] let it tell.

pub mod hook;
pub mod intake;
pub mod journal;
pub mod lock;
pub mod output;
pub mod pause;
pub mod poll;
pub mod reboot;
pub mod report;
pub mod runner;
pub mod verify;
pub mod worker;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Notify};

use crate::config::{AgentConfig, DEFAULT_BOOT_ID_PATH};
use crate::error::Result;
use crate::http;
use crate::pkg::{self, PackageBackend};
use crate::proto::jobs::JOB_EVENT_PATH;
use crate::proto::PackageManager;
use crate::state::StateDir;

use journal::Journal;
use lock::PackageLock;
use pause::Pause;
use report::Reporter;
use verify::Verifier;

/// The agent's job machinery; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    journal: Journal,
    verifier: Verifier,
    reporter: Reporter,
    /// `Err`: why no package manager was found (jobs then fail with that reason).
    backend: std::result::Result<Arc<dyn PackageBackend>, String>,
    lock: PackageLock,
    reboot_argv: Vec<String>,
    boot_id_path: PathBuf,
    retention_days: u64,
    pause: Pause,
    shared: Mutex<Shared>,
    /// True while a job (or the start-up recovery) owns the worker.
    busy: watch::Sender<bool>,
    /// Signalled after every job, so the check-in loop reports the new inventory at once.
    finished: Notify,
    /// Starts plus ends of the spans in which a job may change packages (odd: inside one).
    flux: AtomicU64,
}

/// One span in which a job may change packages; ends when dropped.
pub(crate) struct Flux(Jobs);

impl Drop for Flux {
    fn drop(&mut self) {
        self.0.inner.flux.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Shared {
    /// Job ids (and refusal digests) whose report is being posted right now.
    reporting: HashSet<String>,
    /// Acknowledged results re-sent once in this process after a redelivery.
    resent: HashSet<String>,
}

impl Jobs {
    /// Opens the journal and reads the pinned job-signing key. The worker starts busy; call
    /// [`Jobs::start`] to recover and begin taking jobs.
    pub fn new(state: &StateDir, config: &AgentConfig, client: reqwest::Client) -> Result<Jobs> {
        let journal = Journal::open(state)?;
        let pinned = std::fs::read_to_string(state.job_key_path()).ok();
        if pinned.is_none() {
            tracing::warn!("no job-signing key pinned (enrolled before patch jobs existed?); every job will be refused until this host is enrolled again");
        }
        let backend: std::result::Result<Arc<dyn PackageBackend>, String> =
            pkg::from_settings(&config.local()).map(Arc::from).map_err(|e| e.to_string());
        let manager = backend.as_ref().ok().map(|b| b.manager());
        let lock_paths = config.jobs.lock_paths.clone().unwrap_or_else(|| {
            let rpm_lock = match manager {
                Some(PackageManager::Dnf | PackageManager::Zypper) => {
                    let rpm = config.commands.rpm.clone().unwrap_or_else(|| pkg::rpm::RPM.into());
                    pkg::rpm::lock_path(&rpm)
                }
                _ => None,
            };
            lock::default_paths(manager, config.package_root.as_deref(), rpm_lock.as_deref())
        });
        tracing::debug!(paths = ?lock_paths, "package-manager lock files");
        let reporter = Reporter::new(client, http::join(&config.agent_url, JOB_EVENT_PATH)?);
        let pause = Pause::from_env(journal.dir());
        Ok(Jobs {
            inner: Arc::new(Inner {
                verifier: Verifier::new(pinned.as_deref(), &config.host_id, manager),
                journal,
                reporter,
                backend,
                lock: PackageLock::new(lock_paths).with_orphaned_runs(),
                reboot_argv: config.commands.reboot_argv(),
                boot_id_path: config.boot_id_path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_BOOT_ID_PATH)),
                retention_days: config.jobs.journal_retention_days.unwrap_or(journal::DEFAULT_RETENTION_DAYS),
                pause,
                shared: Mutex::new(Shared::default()),
                busy: watch::Sender::new(true),
                finished: Notify::new(),
                flux: AtomicU64::new(0),
            }),
        })
    }

    /// Spawns the start-up recovery (which then frees the worker) and the long poll.
    pub fn start(&self, client: reqwest::Client, poll_url: String) {
        let jobs = self.clone();
        tokio::spawn(async move { jobs.recover().await });
        let jobs = self.clone();
        tokio::spawn(async move { jobs.poll_loop(client, poll_url).await });
    }

    /// Resolves after a job finished (its report was sent or given up).
    pub async fn finished(&self) {
        self.inner.finished.notified().await;
    }

    pub fn is_busy(&self) -> bool {
        *self.inner.busy.borrow()
    }

    /// Take before reading the inventory; see [`Jobs::quiet_since`].
    pub fn flux_mark(&self) -> u64 {
        self.inner.flux.load(Ordering::SeqCst)
    }

    /// Whether no job changed (or could have changed) packages since `mark` was taken, so an
    /// inventory read in between is consistent.
    pub fn quiet_since(&self, mark: u64) -> bool {
        mark.is_multiple_of(2) && self.flux_mark() == mark
    }

    /// Marks the start of a span in which packages may change, until the guard drops.
    pub(crate) fn enter_flux(&self) -> Flux {
        self.inner.flux.fetch_add(1, Ordering::SeqCst);
        Flux(self.clone())
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere while holding it leaves plain sets behind: still usable.
        self.inner.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims the worker if idle.
    fn try_claim(&self) -> bool {
        self.inner.busy.send_if_modified(|busy| {
            let claimed = !*busy;
            *busy = true;
            claimed
        })
    }

    fn release(&self) {
        self.inner.busy.send_replace(false);
        self.inner.finished.notify_one();
    }

    /// Resolves when no job (nor the recovery) is running.
    pub async fn idle(&self) {
        let mut rx = self.inner.busy.subscribe();
        let _ = rx.wait_for(|busy| !*busy).await;
    }

    /// Drops settled journal entries past their retention.
    fn prune(&self) {
        match self.inner.journal.prune(unix_now(), self.inner.retention_days) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "pruned old job journal entries"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the job journal"),
        }
    }
}

/// Unix seconds now (what the window check and the journal use).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
