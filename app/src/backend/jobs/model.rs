//! A job as stored: the `jobs` row decoded, the column encodings of its enums, and the
//! rollout arithmetic (wave sizes, halt rule).

use agent::proto::jobs::{HookCommand, JobMode as WireMode, PatchScope, RebootPolicy};
use sqlx::Row;

use crate::api::job_dto::{JobMode, JobStatus, RebootChoice, ScheduleKind, ScopeKind};
use crate::backend::error::{BackendError, Result};

/// Columns of `jobs` that [`JobRow::from_row`] reads.
pub const JOB_COLUMNS: &str = "j.id, j.title, j.created_by, j.created_at, j.mode, j.scope, j.exclude, j.reboot, \
     j.pre_hooks, j.post_hooks, j.schedule_kind, j.start_at, j.window_spec, j.start_within_secs, j.canary, \
     j.batch_size, j.batch_percent, j.max_concurrent, j.failure_threshold, j.state, j.current_wave, j.wave_count, \
     j.halt_reason, j.started_at, j.finished_at, j.source_job_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    pub canary: i64,
    pub batch_size: i64,
    pub batch_percent: bool,
    pub max_concurrent: i64,
    /// Percent, 0..=100.
    pub failure_threshold: i64,
}

impl Rollout {
    /// Sizes of the waves for `total` hosts: the canary wave (if any), then batches.
    pub fn wave_sizes(&self, total: i64) -> Vec<i64> {
        let mut sizes = Vec::new();
        let mut left = total.max(0);
        let canary = self.canary.clamp(0, left);
        if canary > 0 {
            sizes.push(canary);
            left -= canary;
        }
        let batch = if self.batch_percent {
            // Of all targets, rounded up, at least one host.
            ((total * self.batch_size.clamp(1, 100) + 99) / 100).max(1)
        } else {
            self.batch_size.max(1)
        };
        while left > 0 {
            let n = batch.min(left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }

    /// True when `failures` (failed + interrupted) in a wave of `size` hosts exceed the
    /// threshold.
    pub fn over_threshold(&self, failures: i64, size: i64) -> bool {
        failures > 0 && failures * 100 > self.failure_threshold * size.max(1)
    }
}

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub title: String,
    pub created_by: String,
    pub created_at: i64,
    pub mode: JobMode,
    pub scope: PatchScope,
    pub exclude: Vec<String>,
    pub reboot: RebootChoice,
    pub pre_hooks: Vec<HookCommand>,
    pub post_hooks: Vec<HookCommand>,
    pub schedule: ScheduleKind,
    pub start_at: i64,
    pub window_spec: String,
    pub start_within_secs: i64,
    pub rollout: Rollout,
    pub status: JobStatus,
    pub current_wave: i64,
    pub wave_count: i64,
    pub halt_reason: String,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub source_job_id: Option<String>,
}

fn corrupt(what: &str) -> BackendError {
    BackendError::Internal(format!("jobs row: bad {what}"))
}

fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

pub fn mode_str(m: JobMode) -> &'static str {
    match m {
        JobMode::Apply => "apply",
        JobMode::DryRun => "dry_run",
    }
}

pub fn parse_mode(s: &str) -> Result<JobMode> {
    match s {
        "apply" => Ok(JobMode::Apply),
        "dry_run" => Ok(JobMode::DryRun),
        _ => Err(corrupt("mode")),
    }
}

pub fn wire_mode(m: JobMode) -> WireMode {
    match m {
        JobMode::Apply => WireMode::Apply,
        JobMode::DryRun => WireMode::DryRun,
    }
}

pub fn reboot_str(r: RebootChoice) -> &'static str {
    match r {
        RebootChoice::Never => "never",
        RebootChoice::IfRequired => "if_required",
        RebootChoice::Always => "always",
    }
}

fn parse_reboot(s: &str) -> Result<RebootChoice> {
    match s {
        "never" => Ok(RebootChoice::Never),
        "if_required" => Ok(RebootChoice::IfRequired),
        "always" => Ok(RebootChoice::Always),
        _ => Err(corrupt("reboot")),
    }
}

pub fn wire_reboot(r: RebootChoice) -> RebootPolicy {
    match r {
        RebootChoice::Never => RebootPolicy::Never,
        RebootChoice::IfRequired => RebootPolicy::IfRequired,
        RebootChoice::Always => RebootPolicy::Always,
    }
}

pub fn schedule_str(s: ScheduleKind) -> &'static str {
    match s {
        ScheduleKind::Now => "now",
        ScheduleKind::At => "at",
        ScheduleKind::Window => "window",
    }
}

fn parse_schedule(s: &str) -> Result<ScheduleKind> {
    match s {
        "now" => Ok(ScheduleKind::Now),
        "at" => Ok(ScheduleKind::At),
        "window" => Ok(ScheduleKind::Window),
        _ => Err(corrupt("schedule_kind")),
    }
}

pub fn scope_kind(s: &PatchScope) -> (ScopeKind, Vec<String>) {
    match s {
        PatchScope::All => (ScopeKind::All, Vec::new()),
        PatchScope::Security => (ScopeKind::Security, Vec::new()),
        PatchScope::Packages { names } => (ScopeKind::Packages, names.clone()),
    }
}

impl JobRow {
    pub fn from_row(r: &sqlx::any::AnyRow) -> Result<JobRow> {
        let status: String = r.try_get("state")?;
        Ok(JobRow {
            id: r.try_get("id")?,
            title: r.try_get("title")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            mode: parse_mode(&r.try_get::<String, _>("mode")?)?,
            scope: json(&r.try_get::<String, _>("scope")?, "scope")?,
            exclude: json(&r.try_get::<String, _>("exclude")?, "exclude")?,
            reboot: parse_reboot(&r.try_get::<String, _>("reboot")?)?,
            pre_hooks: json(&r.try_get::<String, _>("pre_hooks")?, "pre_hooks")?,
            post_hooks: json(&r.try_get::<String, _>("post_hooks")?, "post_hooks")?,
            schedule: parse_schedule(&r.try_get::<String, _>("schedule_kind")?)?,
            start_at: r.try_get("start_at")?,
            window_spec: r.try_get("window_spec")?,
            start_within_secs: r.try_get("start_within_secs")?,
            rollout: Rollout {
                canary: r.try_get("canary")?,
                batch_size: r.try_get("batch_size")?,
                batch_percent: r.try_get::<i64, _>("batch_percent")? != 0,
                max_concurrent: r.try_get("max_concurrent")?,
                failure_threshold: r.try_get("failure_threshold")?,
            },
            status: JobStatus::parse(&status).ok_or_else(|| corrupt("state"))?,
            current_wave: r.try_get("current_wave")?,
            wave_count: r.try_get("wave_count")?,
            halt_reason: r.try_get("halt_reason")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            source_job_id: r.try_get("source_job_id")?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn r(canary: i64, batch_size: i64, batch_percent: bool, threshold: i64) -> Rollout {
        Rollout { canary, batch_size, batch_percent, max_concurrent: 1, failure_threshold: threshold }
    }

    #[test]
    fn waves_are_canary_then_batches() {
        assert_eq!(r(1, 2, false, 0).wave_sizes(6), vec![1, 2, 2, 1]);
        assert_eq!(r(0, 10, false, 0).wave_sizes(3), vec![3]);
        assert_eq!(r(5, 10, false, 0).wave_sizes(3), vec![3]);
        // 25 % of 10 hosts = 2.5 -> 3 per batch.
        assert_eq!(r(1, 25, true, 0).wave_sizes(10), vec![1, 3, 3, 3]);
        assert_eq!(r(0, 1, true, 0).wave_sizes(3), vec![1, 1, 1]);
        assert_eq!(r(0, 100, true, 0).wave_sizes(7), vec![7]);
        assert!(r(1, 1, false, 0).wave_sizes(0).is_empty());
    }

    #[test]
    fn halt_only_when_failures_exceed_the_threshold() {
        assert!(!r(0, 1, false, 0).over_threshold(0, 5));
        assert!(r(0, 1, false, 0).over_threshold(1, 5));
        assert!(!r(0, 1, false, 20).over_threshold(1, 5));
        assert!(r(0, 1, false, 20).over_threshold(2, 5));
        assert!(!r(0, 1, false, 100).over_threshold(5, 5));
    }
}
