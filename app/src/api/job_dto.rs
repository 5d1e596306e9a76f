//! View types of patch jobs and hooks, shared by the WASM front end and the server (serde
//! only). The signed wire types the agent sees live in `agent::proto::jobs`; these are what
//! the browser sees.

use serde::{Deserialize, Serialize};

use super::dto::GroupRef;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum JobMode {
    #[default]
    Apply,
    /// Only report, per host, what would change.
    DryRun,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum ScopeKind {
    #[default]
    All,
    Security,
    /// The packages named in [`NewJob::packages`].
    Packages,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum RebootChoice {
    #[default]
    Never,
    IfRequired,
    Always,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum ScheduleKind {
    #[default]
    Now,
    /// At [`NewJob::at`].
    At,
    /// Inside the recurring maintenance window [`NewJob::window`].
    Window,
}

/// What the new-job form sends (validated on the server; nothing is trusted).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct NewJob {
    /// Free text shown in the job list (may be empty).
    pub title: String,
    pub host_ids: Vec<String>,
    pub group_ids: Vec<String>,
    pub mode: JobMode,
    pub scope: ScopeKind,
    /// Package names for [`ScopeKind::Packages`].
    pub packages: Vec<String>,
    /// Never touch these packages.
    pub exclude: Vec<String>,
    pub schedule: ScheduleKind,
    /// For [`ScheduleKind::At`]: `2030-01-31 02:00 Europe/Berlin` (zone optional, UTC by
    /// default), `2030-01-31T02:00` or RFC 3339.
    pub at: String,
    /// For [`ScheduleKind::Window`]: e.g. `Sun 02:00-04:00 Europe/Berlin`, `Mon-Fri 22:00-02:00 UTC`.
    pub window: String,
    /// Outside a window, a dispatched host must start within this many minutes, else it is
    /// skipped.
    pub start_within_mins: u32,
    /// Hosts in the first (canary) wave; 0 = no canary wave.
    pub canary: u32,
    /// Hosts per later wave, or a percentage of all targets when `batch_percent`.
    pub batch_size: u32,
    pub batch_percent: bool,
    /// At most this many hosts at once.
    pub max_concurrent: u32,
    /// Halt when failed + interrupted hosts of a wave exceed this percentage of the wave.
    pub failure_threshold: u32,
    pub reboot: RebootChoice,
    pub pre_hook_ids: Vec<String>,
    pub post_hook_ids: Vec<String>,
}

/// One package a host would change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviewChange {
    pub name: String,
    pub arch: String,
    pub from: String,
    pub to: String,
    pub security: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreviewHost {
    pub host_id: String,
    pub hostname: String,
    pub package_manager: String,
    /// When the inventory this is computed from arrived (None: the host never sent one).
    pub inventory_at: Option<i64>,
    pub changes: Vec<PreviewChange>,
}

/// The instant preview: pending updates from each host's stored inventory, filtered by scope
/// and exclusions. The dry-run job gives the agents' exact plan.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobPreview {
    pub hosts: Vec<PreviewHost>,
    /// All target hosts (`hosts` may be cut short).
    pub total_hosts: i64,
    pub total_changes: i64,
    /// Sizes of the waves in order (the first is the canary wave when there is one).
    pub waves: Vec<i64>,
    /// For a window schedule: the current or next occurrence (unix seconds).
    pub window_next: Option<(i64, i64)>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Waiting for its start time or window.
    Scheduled,
    Running,
    /// A wave failed more than the threshold allows: resume or cancel.
    Halted,
    Completed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Scheduled, JobStatus::Running, JobStatus::Halted, JobStatus::Completed, JobStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Scheduled => "scheduled",
            JobStatus::Running => "running",
            JobStatus::Halted => "halted",
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Cancelled)
    }
}

/// A host's part in a job, as the server records it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum HostJobState {
    Queued,
    /// Signed and sent, not yet acknowledged by the agent ("queued (sent)").
    Dispatched,
    Received,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Interrupted,
    Cancelled,
}

impl HostJobState {
    pub const ALL: [HostJobState; 9] = [
        HostJobState::Queued,
        HostJobState::Dispatched,
        HostJobState::Received,
        HostJobState::Running,
        HostJobState::Succeeded,
        HostJobState::Failed,
        HostJobState::Skipped,
        HostJobState::Interrupted,
        HostJobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostJobState::Queued => "queued",
            HostJobState::Dispatched => "dispatched",
            HostJobState::Received => "received",
            HostJobState::Running => "running",
            HostJobState::Succeeded => "succeeded",
            HostJobState::Failed => "failed",
            HostJobState::Skipped => "skipped",
            HostJobState::Interrupted => "interrupted",
            HostJobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<HostJobState> {
        HostJobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            HostJobState::Succeeded
                | HostJobState::Failed
                | HostJobState::Skipped
                | HostJobState::Interrupted
                | HostJobState::Cancelled
        )
    }

    /// What the UI shows.
    pub fn label(self) -> &'static str {
        match self {
            HostJobState::Dispatched => "queued (sent)",
            other => other.as_str(),
        }
    }
}

/// Hosts of a job per state (`rebooting`: terminal, reboot not yet observed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StateCounts {
    pub queued: i64,
    pub dispatched: i64,
    pub received: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub interrupted: i64,
    pub cancelled: i64,
    pub rebooting: i64,
}

impl StateCounts {
    pub fn add(&mut self, state: HostJobState, n: i64) {
        let slot = match state {
            HostJobState::Queued => &mut self.queued,
            HostJobState::Dispatched => &mut self.dispatched,
            HostJobState::Received => &mut self.received,
            HostJobState::Running => &mut self.running,
            HostJobState::Succeeded => &mut self.succeeded,
            HostJobState::Failed => &mut self.failed,
            HostJobState::Skipped => &mut self.skipped,
            HostJobState::Interrupted => &mut self.interrupted,
            HostJobState::Cancelled => &mut self.cancelled,
        };
        *slot += n;
    }

    pub fn total(&self) -> i64 {
        self.queued
            + self.dispatched
            + self.received
            + self.running
            + self.succeeded
            + self.failed
            + self.skipped
            + self.interrupted
            + self.cancelled
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobSummary {
    pub id: String,
    pub title: String,
    pub mode: JobMode,
    pub status: JobStatus,
    pub created_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Hosts the caller can see (an Operator sees only their groups' part of a job).
    pub counts: StateCounts,
    /// 0-based.
    pub current_wave: i64,
    pub wave_count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookRef {
    pub name: String,
    pub argv: Vec<String>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobHostRow {
    pub host_id: String,
    pub hostname: String,
    /// 0-based; wave 0 is the canary wave when the job has one.
    pub wave: i64,
    pub state: HostJobState,
    pub reason: String,
    pub change_count: i64,
    /// `none` | `pending` | `done` | `timeout`
    pub reboot_state: String,
    pub dispatched_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl JobHostRow {
    /// The word the UI shows: a host whose reboot is pending is "rebooting".
    pub fn display_state(&self) -> &'static str {
        if self.state.is_terminal() && self.reboot_state == "pending" {
            "rebooting"
        } else {
            self.state.label()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobDetail {
    pub summary: JobSummary,
    pub scope: ScopeKind,
    pub packages: Vec<String>,
    pub exclude: Vec<String>,
    pub reboot: RebootChoice,
    pub schedule: ScheduleKind,
    pub start_at: i64,
    pub window: String,
    /// Current or next occurrence of the window.
    pub window_next: Option<(i64, i64)>,
    pub start_within_mins: i64,
    pub canary: i64,
    pub batch_size: i64,
    pub batch_percent: bool,
    pub max_concurrent: i64,
    pub failure_threshold: i64,
    pub pre_hooks: Vec<HookRef>,
    pub post_hooks: Vec<HookRef>,
    pub halt_reason: String,
    pub source_job_id: Option<String>,
    pub hosts: Vec<JobHostRow>,
    /// What the caller may do now.
    pub can_cancel: bool,
    pub can_resume: bool,
    pub can_run_for_real: bool,
    /// The server's clock when this was read.
    pub now: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeRow {
    pub name: String,
    pub arch: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One host's full result: every change and the complete command output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobHostResult {
    pub host_id: String,
    pub hostname: String,
    pub state: HostJobState,
    pub reason: String,
    pub changes: Vec<ChangeRow>,
    pub output: String,
}

/// A job in a host's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostJobRow {
    pub job_id: String,
    pub title: String,
    pub mode: JobMode,
    pub status: JobStatus,
    pub state: HostJobState,
    pub reboot_state: String,
    pub reason: String,
    pub change_count: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookInfo {
    pub id: String,
    pub name: String,
    pub argv: Vec<String>,
    pub timeout_secs: u64,
    pub updated_at: i64,
}

/// A host the caller may target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetHost {
    pub id: String,
    pub hostname: String,
    pub package_manager: String,
    pub pending_updates: i64,
    pub security_updates: i64,
}

/// Everything the new-job form can choose from, cut to the caller's scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetOptions {
    pub hosts: Vec<TargetHost>,
    /// More hosts exist than listed (use groups for large fleets).
    pub truncated: bool,
    pub groups: Vec<GroupRef>,
    pub hooks: Vec<HookInfo>,
}
