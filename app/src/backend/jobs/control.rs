//! What people do to a running job: cancel it, cancel one host's part, resume a halted job,
//! and start a finished dry run for real. Each takes the job's row first (like a scheduler
//! step, see `scheduler`), changes it under a guard, and writes its audit row in the same
//! transaction.
//!
//! Authorization: an Operator may act on a job only when every host in it is in their
//! groups (a job that also touches other groups' hosts is visible to them, but not theirs
//! to stop or resume); on one host of a job when that host is theirs.

use serde_json::json;

use super::create::{self, Validated};
use super::queries;
use super::scheduler::{claim, load};
use super::targets;
use super::window::Window;
use crate::api::job_dto::{JobMode, JobStatus, ScheduleKind};
use crate::backend::access::{Caller, Scope};
use crate::backend::audit::{self, Event};
use crate::backend::db::Db;
use crate::backend::error::{BackendError, Result};

/// Visible to `scope` and, for an Operator, entirely inside it.
async fn check_owned(db: &Db, scope: &Scope, job_id: &str) -> Result<()> {
    queries::visible(db, scope, job_id).await?;
    if !queries::fully_in_scope(db, scope, job_id).await? {
        return Err(BackendError::Forbidden);
    }
    Ok(())
}

pub async fn cancel(db: &Db, caller: &Caller, job_id: &str, now: i64) -> Result<()> {
    check_owned(db, &caller.scope(), job_id).await?;
    let mut tx = db.begin().await?;
    if !claim(&mut tx, job_id, "('scheduled', 'running', 'halted')").await? {
        return Err(BackendError::Conflict("job_finished"));
    }
    sqlx::query("UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2")
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    // Hosts that have not acknowledged their job never start it (their Received gets
    // proceed: false); hosts already running finish and report.
    let done = sqlx::query(
        "UPDATE job_hosts SET state = 'cancelled', reason = $1, finished_at = $2 \
         WHERE job_id = $3 AND state IN ('queued', 'dispatched')",
    )
    .bind(format!("cancelled by {}", caller.principal.username))
    .bind(now)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    let actor = caller.actor();
    let details = json!({ "hosts_cancelled": done.rows_affected() });
    audit::append(&mut tx, Event { actor: &actor, action: "job.cancel", target: &format!("job:{job_id}"), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Cancels one host's part (only while it is queued or not yet acknowledged).
pub async fn cancel_host(db: &Db, caller: &Caller, job_id: &str, host_id: &str, now: i64) -> Result<()> {
    let scope = caller.scope();
    queries::visible(db, &scope, job_id).await?;
    let mut conn = db.pool.acquire().await?;
    scope.check_host(&mut conn, host_id).await?;
    drop(conn);
    let mut tx = db.begin().await?;
    if !claim(&mut tx, job_id, "('scheduled', 'running', 'halted')").await? {
        return Err(BackendError::Conflict("job_finished"));
    }
    let done = sqlx::query(
        "UPDATE job_hosts SET state = 'cancelled', reason = $1, finished_at = $2 \
         WHERE job_id = $3 AND host_id = $4 AND state IN ('queued', 'dispatched')",
    )
    .bind(format!("cancelled by {}", caller.principal.username))
    .bind(now)
    .bind(job_id)
    .bind(host_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(BackendError::Conflict("host_already_started"));
    }
    let actor = caller.actor();
    let details = json!({ "host_id": host_id });
    let ev = Event { actor: &actor, action: "job.cancel_host", target: &format!("job:{job_id}"), source_ip: None, details };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Resumes a halted job with its next wave (or completes it when the halted wave was the
/// last).
pub async fn resume(db: &Db, caller: &Caller, job_id: &str, now: i64) -> Result<()> {
    check_owned(db, &caller.scope(), job_id).await?;
    let mut tx = db.begin().await?;
    if !claim(&mut tx, job_id, "('halted')").await? {
        return Err(BackendError::Conflict("job_not_halted"));
    }
    let job = load(&mut tx, job_id).await?;
    let next = job.current_wave + 1;
    let (state, finished_at) = if next >= job.wave_count { (JobStatus::Completed, Some(now)) } else { (JobStatus::Running, None) };
    sqlx::query("UPDATE jobs SET state = $1, current_wave = $2, halt_reason = '', finished_at = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(next.min(job.wave_count - 1).max(0))
        .bind(finished_at)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    let actor = caller.actor();
    let details = json!({ "halted_wave": job.current_wave, "reason": job.halt_reason, "state": state.as_str() });
    audit::append(&mut tx, Event { actor: &actor, action: "job.resume", target: &format!("job:{job_id}"), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Starts a completed dry run for real: same packages, exclusions, hooks, reboot policy and
/// rollout, on the dry run's hosts that are (still) in the caller's scope; a window schedule
/// is kept, anything else starts now.
pub async fn run_for_real(db: &Db, caller: &Caller, source_id: &str, now: i64) -> Result<String> {
    let scope = caller.scope();
    let source = queries::visible(db, &scope, source_id).await?;
    if source.mode != JobMode::DryRun || source.status != JobStatus::Completed {
        return Err(BackendError::Conflict("not_a_finished_dry_run"));
    }
    let host_ids = queries::host_ids(db, source_id).await?;
    let targets = targets::resolve_in_scope(db, &scope, &host_ids).await?;
    if targets.is_empty() {
        return Err(BackendError::Invalid("none of the dry run's hosts is in your host groups any more".into()));
    }
    let (schedule, window) = match source.schedule {
        ScheduleKind::Window => (ScheduleKind::Window, Some(Window::parse(&source.window_spec)?)),
        _ => (ScheduleKind::Now, None),
    };
    let v = Validated {
        title: source.title.clone(),
        mode: JobMode::Apply,
        scope: source.scope.clone(),
        exclude: source.exclude.clone(),
        reboot: source.reboot,
        schedule,
        start_at: now,
        window,
        start_within_secs: source.start_within_secs,
        rollout: source.rollout,
        pre_hooks: source.pre_hooks.clone(),
        post_hooks: source.post_hooks.clone(),
        targets,
    };
    create::insert(db, &caller.actor(), &v, Some(source_id), now).await
}
