//! What agents report: `Received` (may I start?), `Running`, and the terminal result, each
//! about the reporting host's own part of a job (the host comes from its certificate; a
//! job of host X can never be acknowledged or reported by host Y: Y has no such row).
//!
//! Exactly once: a terminal state is recorded by one guarded UPDATE (`... AND state IN
//! ('dispatched', 'received', 'running')`) together with its `job.host_result` audit row; a
//! repeat (or a late report after the server skipped or cancelled the host) finds no row to
//! change and is answered `duplicate: true`.

use agent::proto::jobs::{JobEvent, JobEventResponse, JobResult, JobState, MAX_OUTPUT_BYTES};
use serde_json::json;
use sqlx::Row;

use super::dispatch::MAX_JOB_ID_LEN;
use super::scheduler::REBOOT_TIMEOUT_SECS;
use crate::api::job_dto::HostJobState;
use crate::backend::audit::{self, Actor, Event};
use crate::backend::db::{Conn, Db};
use crate::backend::error::{BackendError, Result};

/// Room for the agent's `[... N bytes omitted ...]` marker on top of the output limit.
const OUTPUT_SLACK: usize = 4096;
const MAX_CHANGES: usize = 100_000;
const MAX_FIELD_BYTES: usize = 512;
const MAX_REASON_CHARS: usize = 1000;

fn invalid(msg: &str) -> BackendError {
    BackendError::Invalid(msg.into())
}

/// PostgreSQL text cannot hold NUL; keep everything else the host printed.
fn no_nul(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

fn check_result(r: &JobResult) -> Result<()> {
    if r.output.len() > MAX_OUTPUT_BYTES + OUTPUT_SLACK {
        return Err(invalid("job output is larger than the agent may send"));
    }
    if r.changes.len() > MAX_CHANGES {
        return Err(invalid("too many package changes in one result"));
    }
    let field_ok = |s: &str| s.len() <= MAX_FIELD_BYTES && !s.chars().any(char::is_control);
    for c in &r.changes {
        let versions = [c.before.as_deref(), c.after.as_deref()];
        if !field_ok(&c.name) || !field_ok(&c.arch) || versions.into_iter().flatten().any(|v| !field_ok(v)) {
            return Err(invalid("package change fields must be at most 512 bytes without control characters"));
        }
    }
    Ok(())
}

fn answer(proceed: bool, duplicate: bool) -> JobEventResponse {
    JobEventResponse { proceed, duplicate }
}

/// The stored state of `host_id`'s part of `job_id` and the job's state, or `NotFound`.
async fn current(conn: &mut Conn, job_id: &str, host_id: &str) -> Result<(HostJobState, String)> {
    let row = sqlx::query(
        "SELECT jh.state AS host_state, j.state AS job_state FROM job_hosts jh JOIN jobs j ON j.id = jh.job_id \
         WHERE jh.job_id = $1 AND jh.host_id = $2",
    )
    .bind(job_id)
    .bind(host_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(BackendError::NotFound)?;
    let s: String = row.try_get("host_state")?;
    let state = HostJobState::parse(&s).ok_or_else(|| BackendError::Internal("job_hosts: bad state".into()))?;
    Ok((state, row.try_get("job_state")?))
}

/// Records one event from host `host_id` (authenticated by its certificate).
#[tracing::instrument(skip_all, fields(host_id = %host_id, job_id = %ev.job_id, state = ev.state.as_str()))]
pub async fn record(db: &Db, host_id: &str, ev: &JobEvent, now: i64) -> Result<JobEventResponse> {
    if ev.job_id.is_empty() || ev.job_id.len() > MAX_JOB_ID_LEN {
        return Err(invalid("job_id must be 1 to 64 characters"));
    }
    match ev.state {
        JobState::Queued | JobState::Cancelled => Err(invalid("agents report received, running or a terminal state")),
        _ if ev.state.is_terminal() != ev.result.is_some() => {
            Err(invalid("a result comes with a terminal state, and only with one"))
        }
        JobState::Received => received(db, host_id, &ev.job_id, now).await,
        JobState::Running => running(db, host_id, &ev.job_id, now).await,
        _ => match &ev.result {
            Some(result) => terminal(db, host_id, &ev.job_id, ev.state, result, now).await,
            None => Err(invalid("a terminal state needs a result")),
        },
    }
}

async fn received(db: &Db, host_id: &str, job_id: &str, now: i64) -> Result<JobEventResponse> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE job_hosts SET state = 'received', received_at = $1 \
         WHERE job_id = $2 AND host_id = $3 AND state = 'dispatched' \
         AND EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND state IN ('scheduled', 'running', 'halted'))",
    )
    .bind(now)
    .bind(job_id)
    .bind(host_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 1 {
        tx.commit().await?;
        return Ok(answer(true, false));
    }
    let (state, job_state) = current(&mut tx, job_id, host_id).await?;
    let job_cancelled = job_state == "cancelled";
    let resp = match state {
        HostJobState::Queued => return Err(BackendError::Conflict("job_not_dispatched")),
        // Acknowledged before, answer the same (a lost response is retried) unless the job
        // was cancelled meanwhile: then the agent must not start, and we record that.
        HostJobState::Dispatched | HostJobState::Received if job_cancelled || job_state == "completed" => {
            sqlx::query(
                "UPDATE job_hosts SET state = 'cancelled', reason = 'job was cancelled', finished_at = $1 \
                 WHERE job_id = $2 AND host_id = $3 AND state IN ('dispatched', 'received')",
            )
            .bind(now)
            .bind(job_id)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
            answer(false, false)
        }
        HostJobState::Dispatched | HostJobState::Received | HostJobState::Running => answer(true, false),
        _ => answer(false, true),
    };
    tx.commit().await?;
    Ok(resp)
}

async fn running(db: &Db, host_id: &str, job_id: &str, now: i64) -> Result<JobEventResponse> {
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE job_hosts SET state = 'running', started_at = $1 WHERE job_id = $2 AND host_id = $3 AND state = 'received'",
    )
    .bind(now)
    .bind(job_id)
    .bind(host_id)
    .execute(&mut *tx)
    .await?;
    let resp = if done.rows_affected() == 1 {
        answer(true, false)
    } else {
        match current(&mut tx, job_id, host_id).await?.0 {
            HostJobState::Running => answer(true, false),
            HostJobState::Queued | HostJobState::Dispatched => return Err(BackendError::Conflict("job_not_received")),
            _ => answer(false, true),
        }
    };
    tx.commit().await?;
    Ok(resp)
}

async fn terminal(db: &Db, host_id: &str, job_id: &str, state: JobState, r: &JobResult, now: i64) -> Result<JobEventResponse> {
    check_result(r)?;
    let reason: String = no_nul(r.reason.trim()).chars().take(MAX_REASON_CHARS).collect();
    let changes = serde_json::to_string(&r.changes).map_err(|e| BackendError::Internal(e.to_string()))?;
    let output = no_nul(&r.output);
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "UPDATE job_hosts SET state = $1, reason = $2, changes = $3, change_count = $4, output = $5, \
         started_at = CASE WHEN $6 > 0 THEN $6 ELSE started_at END, finished_at = $7, \
         reboot_state = CASE WHEN $8 = 1 THEN 'pending' ELSE 'none' END, \
         reboot_boot_id = COALESCE((SELECT boot_id FROM hosts WHERE id = $10), ''), \
         reboot_deadline = CASE WHEN $8 = 1 THEN $9 ELSE NULL END \
         WHERE job_id = $11 AND host_id = $10 \
         AND (state IN ('dispatched', 'received', 'running') OR (state = 'failed' AND reason = $12))",
    )
    .bind(state.as_str())
    .bind(&reason)
    .bind(&changes)
    .bind(i64::try_from(r.changes.len()).unwrap_or(i64::MAX))
    .bind(&output)
    .bind(r.started_at)
    .bind(now)
    .bind(i64::from(r.reboot_pending))
    .bind(now + REBOOT_TIMEOUT_SECS)
    .bind(host_id)
    .bind(job_id)
    .bind(super::scheduler::LOST_REASON)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        let (stored, _) = current(&mut tx, job_id, host_id).await?;
        tx.commit().await?;
        if matches!(stored, HostJobState::Queued) {
            return Err(BackendError::Conflict("job_not_dispatched"));
        }
        tracing::info!(stored = stored.as_str(), "repeated or late result ignored");
        return Ok(answer(stored.as_str() == state.as_str(), true));
    }
    let details = json!({
        "host_id": host_id,
        "state": state.as_str(),
        "changes": r.changes.len(),
        "reboot_pending": r.reboot_pending,
        "reason": reason,
    });
    let actor = Actor::Host { id: host_id.to_string() };
    let ev = Event { actor: &actor, action: "job.host_result", target: &format!("job:{job_id}"), source_ip: None, details };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    tracing::info!(changes = r.changes.len(), reboot_pending = r.reboot_pending, "result recorded");
    Ok(answer(true, false))
}

/// Called from the check-in transaction: a host reporting a boot id different from the one
/// it had when its reboot became pending has come back.
pub async fn observe_boot(conn: &mut Conn, host_id: &str, boot_id: &str) -> Result<u64> {
    if boot_id.is_empty() {
        return Ok(0);
    }
    let done = sqlx::query(
        "UPDATE job_hosts SET reboot_state = 'done' \
         WHERE host_id = $1 AND reboot_state = 'pending' AND reboot_boot_id <> $2",
    )
    .bind(host_id)
    .bind(boot_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}
