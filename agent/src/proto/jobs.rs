//! Patch jobs on the wire: what the server asks a host to do (signed), and what the host
//! reports back.
//!
//! Signing: the server serialises a [`JobSpec`] to JSON once and signs
//! [`JOB_SIGNATURE_CONTEXT`] followed by those exact bytes with its Ed25519 job-signing key.
//! The bytes travel base64-encoded in [`SignedJob::spec_b64`], so the agent verifies exactly
//! what was signed before parsing anything. The agent pins the job-signing public key at
//! enrollment ([`super::EnrollResponse::job_signing_key`]).
//!
//! Delivery is at least once (a check-in response or a long poll may repeat a job); the agent
//! journals every job before acknowledging it and never runs one job id twice. A host's
//! result is recorded by the server exactly once: a repeated terminal report is answered
//! with `duplicate: true` and changes nothing.

use serde::{Deserialize, Serialize};

/// Agent listener: POST [`JobPoll`], answered by [`JobPollResponse`] (long poll).
pub const JOBS_POLL_PATH: &str = "/agent/v1/jobs/poll";
/// Agent listener: POST [`JobEvent`], answered by [`JobEventResponse`].
pub const JOB_EVENT_PATH: &str = "/agent/v1/jobs/event";
/// Domain separation for job signatures: the signed message is this, then the spec bytes.
pub const JOB_SIGNATURE_CONTEXT: &[u8] = b"patch-manager job v1\0";
/// Upper bound of [`JobResult::output`]; longer output keeps its head and tail around a
/// `[... N bytes omitted ...]` marker.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Longest long poll the server holds open.
pub const MAX_POLL_WAIT_SECS: u64 = 55;

/// Which updates a job installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PatchScope {
    /// Every pending update.
    All,
    /// Only updates that come from a security suite/pocket/advisory.
    Security,
    /// Upgrades of these installed packages only (names validated by [`crate::pkgname`]).
    Packages { names: Vec<String> },
}

/// Reboot after a successful apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootPolicy {
    Never,
    /// When the host reports that it needs one after the updates (reboot-required flag,
    /// `needs-restarting -r`, `zypper needs-rebooting`).
    IfRequired,
    Always,
}

/// Apply for real, or only report what would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobMode {
    Apply,
    DryRun,
}

/// A pre- or post-command defined by an Admin on the server (never free text from an
/// Operator). Run without a shell: `argv[0]` is the program, the rest its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookCommand {
    pub name: String,
    pub argv: Vec<String>,
    pub timeout_secs: u64,
}

/// The signed instruction for one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub job_id: String,
    /// The one host this spec is for; the agent refuses a spec for another host id.
    pub host_id: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// The agent refuses to start before this instant (unix seconds)...
    pub not_before: i64,
    /// ...and at or after this one (the end of the maintenance window, or the job's deadline).
    pub not_after: i64,
    pub mode: JobMode,
    pub scope: PatchScope,
    /// Never touch these packages (names validated by [`crate::pkgname`]).
    pub exclude: Vec<String>,
    pub reboot: RebootPolicy,
    pub pre_commands: Vec<HookCommand>,
    pub post_commands: Vec<HookCommand>,
}

/// A [`JobSpec`] as delivered: the signed bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedJob {
    /// Base64 (standard alphabet, padded) of the spec's JSON bytes.
    pub spec_b64: String,
    /// Base64 (standard, padded) Ed25519 signature over `JOB_SIGNATURE_CONTEXT || spec bytes`.
    pub signature_b64: String,
    /// First 16 hex digits of SHA-256 over the raw 32-byte public key that signed.
    pub key_id: String,
}

/// A host's state in a job, as the agent reports it and the server shows it. `Queued` and
/// `Cancelled` are set by the server only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    /// The agent journaled the job and asks whether it may start.
    Received,
    Running,
    Succeeded,
    Failed,
    /// Not started on purpose (outside its window, nothing to do is NOT a skip: that is a
    /// success with no changes).
    Skipped,
    /// The agent died during the job; after restart it reports what actually changed.
    Interrupted,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Skipped | JobState::Interrupted | JobState::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Received => "received",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Skipped => "skipped",
            JobState::Interrupted => "interrupted",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Received,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Skipped,
            JobState::Interrupted,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One package's version before and after (None: not installed), from the package database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageChange {
    pub name: String,
    pub arch: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The outcome of a job on one host (terminal states only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// Short reason for the operator ("apt-get exited with 100", "outside its window", ...).
    pub reason: String,
    /// Apply: what changed, diffed from the package database before and after. Dry run:
    /// what would change.
    pub changes: Vec<PackageChange>,
    /// Every command run and its output, in order (at most [`MAX_OUTPUT_BYTES`]).
    pub output: String,
    /// Unix seconds; 0 when the job never started.
    pub started_at: i64,
    pub finished_at: i64,
    /// The agent reboots the host right after this report was accepted.
    pub reboot_pending: bool,
}

/// Agent -> server: a state change of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobEvent {
    pub job_id: String,
    /// `Received`, `Running`, or a terminal state (then `result` is set).
    pub state: JobState,
    /// Unix seconds on the agent's clock.
    pub at: i64,
    pub result: Option<JobResult>,
}

/// Server -> agent: the answer to a [`JobEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEventResponse {
    /// Meaningful for `Received`: the agent may start. False when the job was cancelled
    /// (or the host's part of it is already finished): the agent journals it as cancelled
    /// and never runs it.
    pub proceed: bool,
    /// The server already had a terminal state for this host; nothing was changed.
    pub duplicate: bool,
}

/// Agent -> server: wait up to `wait_secs` (capped at [`MAX_POLL_WAIT_SECS`]) for jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPoll {
    pub wait_secs: u64,
}

/// Jobs dispatched to this host and not yet acknowledged by it (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct JobPollResponse {
    pub jobs: Vec<SignedJob>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_scope_is_tagged() {
        for s in ["queued", "received", "running", "succeeded", "failed", "skipped", "interrupted", "cancelled"] {
            assert_eq!(JobState::parse(s).map(JobState::as_str), Some(s));
        }
        assert_eq!(JobState::parse("done"), None);
        let json = serde_json::to_string(&PatchScope::Packages { names: vec!["openssl".into()] }).unwrap();
        assert_eq!(json, r#"{"kind":"packages","names":["openssl"]}"#);
        assert_eq!(serde_json::to_string(&PatchScope::Security).unwrap(), r#"{"kind":"security"}"#);
    }
}
