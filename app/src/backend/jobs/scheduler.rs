//! The scheduler: one worker per replica calls [`tick`] every second or so. Each tick steps
//! every active job: expire hosts that did not pick up their job in time, settle reboot
//! timeouts, complete / halt / advance the current wave, and dispatch queued hosts of the
//! current wave while fewer than M are in flight and the schedule allows.
//!
//! Concurrency (several replicas, one database): every step of a job runs in ONE
//! transaction whose first statement is a guarded write to the job's row
//! (`UPDATE jobs SET rev = rev + 1 WHERE id = $1 AND state IN (...)`). On PostgreSQL that row
//! lock serialises steps of the same job across replicas: a second step blocks until the
//! first commits, then re-evaluates its guard against the committed row (a job the first
//! halted or completed no longer matches), and, READ COMMITTED taking a fresh snapshot per
//! statement, every later read of the second step (in-flight count, wave state, queued
//! hosts) sees the first step's dispatches. On SQLite that first write takes the database
//! write lock (a single pooled connection per process, the busy timeout across processes)
//! and a transaction that starts by writing never needs a snapshot upgrade. So at most M
//! hosts are ever in flight, and each wave advances exactly once. Every per-host change is
//! itself guarded by the state it expects (`... AND state = 'queued'`), so a step can never
//! overwrite an agent's report either. Cancel and resume take the same row first.
//! Never hold a transaction while acquiring another connection (SQLite has one).

use serde_json::json;
use sqlx::Row;

use super::dispatch;
use super::model::{JobRow, JOB_COLUMNS};
use super::window::Window;
use crate::api::job_dto::{JobStatus, ScheduleKind};
use crate::backend::audit::{self, Actor, Event};
use crate::backend::db::Conn;
use crate::backend::error::{BackendError, Result};
use crate::backend::state::AppState;

/// How often the worker ticks.
pub const TICK_MILLIS: u64 = 1000;
/// How long the server waits for a host to come back from a reboot it asked for.
pub const REBOOT_TIMEOUT_SECS: i64 = 30 * 60;
pub const DEADLINE_REASON: &str = "host did not pick up the job before its deadline";
/// How long a host may stay `received` or `running` without a result before the wave stops
/// waiting for it (the agent's own run limit is 2 h by default, plus lock waits and hooks).
pub const RESULT_TIMEOUT_SECS: i64 = 4 * 3600;
/// The reason of a host given up on; a result that still arrives replaces it (exactly once).
pub const LOST_REASON: &str = "no result from the host within 4 h of its start (agent gone or stuck); a late result still counts";
/// How far a "now" job's `not_before` lies before its creation (agents' clocks differ).
pub const CLOCK_SKEW_SECS: i64 = 300;

/// States of a host still being worked on (counted against M, block the wave).
const IN_FLIGHT: &str = "('dispatched', 'received', 'running')";
const ACTIVE_JOB: &str = "('scheduled', 'running')";

/// What one tick did (tests and logs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub dispatched: Vec<(String, String)>,
    pub halted: Vec<String>,
    pub completed: Vec<String>,
}

/// Steps every active job once. Errors of one job are logged and do not stop the others.
pub async fn tick(state: &AppState, now: i64) -> Result<TickReport> {
    let rows = sqlx::query(&format!("SELECT id FROM jobs WHERE state IN {ACTIVE_JOB} ORDER BY created_at, id"))
        .fetch_all(&state.db.pool)
        .await?;
    let mut report = TickReport::default();
    for r in &rows {
        let id: String = r.try_get("id")?;
        match step(state, &id, now).await {
            Ok(step) => {
                for host in &step.dispatched {
                    state.job_hub.poke(host);
                }
                report.dispatched.extend(step.dispatched.into_iter().map(|h| (id.clone(), h)));
                if step.halted {
                    report.halted.push(id.clone());
                }
                if step.completed {
                    report.completed.push(id.clone());
                }
            }
            Err(e) => tracing::warn!(job_id = %id, error = %e, "scheduler step failed"),
        }
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct Step {
    dispatched: Vec<String>,
    halted: bool,
    completed: bool,
}

/// Locks the job's row for this transaction (see the module doc); false when the job is not
/// in one of `states`.
pub(crate) async fn claim(conn: &mut Conn, job_id: &str, states: &str) -> Result<bool> {
    let done = sqlx::query(&format!("UPDATE jobs SET rev = rev + 1 WHERE id = $1 AND state IN {states}"))
        .bind(job_id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn load(conn: &mut Conn, job_id: &str) -> Result<JobRow> {
    let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = $1"))
        .bind(job_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(BackendError::NotFound)?;
    JobRow::from_row(&row)
}

/// Per-state counts of one wave.
struct WaveState {
    size: i64,
    unsettled: i64,
    failures: i64,
}

async fn wave_state(conn: &mut Conn, job_id: &str, wave: i64) -> Result<WaveState> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS size, \
         COALESCE(SUM(CASE WHEN state IN ('queued', 'dispatched', 'received', 'running') OR reboot_state = 'pending' \
         THEN 1 ELSE 0 END), 0) AS unsettled, \
         COALESCE(SUM(CASE WHEN state IN ('failed', 'interrupted') THEN 1 ELSE 0 END), 0) AS failures \
         FROM job_hosts WHERE job_id = $1 AND wave = $2",
    )
    .bind(job_id)
    .bind(wave)
    .fetch_one(&mut *conn)
    .await?;
    Ok(WaveState { size: row.try_get("size")?, unsettled: row.try_get("unsettled")?, failures: row.try_get("failures")? })
}

/// `[not_before, not_after)` of a spec dispatched now, or None when the schedule does not
/// allow a dispatch now. In a window: the open occurrence (the agent refuses to start outside
/// it). At a time: from that time. Now: from a little before now, so an agent whose clock is
/// slightly behind does not refuse a job meant to run at once.
fn dispatch_bounds(job: &JobRow, now: i64) -> Result<Option<(i64, i64)>> {
    let not_after = now + job.start_within_secs;
    match job.schedule {
        ScheduleKind::Now => Ok((now >= job.start_at).then_some((job.start_at - CLOCK_SKEW_SECS, not_after))),
        ScheduleKind::At => Ok((now >= job.start_at).then_some((job.start_at, not_after))),
        ScheduleKind::Window => {
            let w = Window::parse(&job.window_spec)?;
            Ok(w.open_at(now)?.map(|o| (o.start, o.end)))
        }
    }
}

async fn finish(conn: &mut Conn, job: &JobRow, state: JobStatus, action: &str, reason: &str, details: serde_json::Value, now: i64) -> Result<()> {
    sqlx::query("UPDATE jobs SET state = $1, halt_reason = $2, finished_at = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(reason)
        .bind((state != JobStatus::Halted).then_some(now))
        .bind(&job.id)
        .execute(&mut *conn)
        .await?;
    let ev = Event { actor: &Actor::System, action, target: &format!("job:{}", job.id), source_ip: None, details };
    audit::append(conn, ev, now).await?;
    Ok(())
}

async fn step(state: &AppState, job_id: &str, now: i64) -> Result<Step> {
    let mut out = Step::default();
    let mut tx = state.db.begin().await?;
    if !claim(&mut tx, job_id, ACTIVE_JOB).await? {
        return Ok(out);
    }
    let mut job = load(&mut tx, job_id).await?;

    // Hosts that never picked up their job: the agent would refuse it now anyway.
    sqlx::query(
        "UPDATE job_hosts SET state = 'skipped', reason = $1, finished_at = $2 \
         WHERE job_id = $3 AND state = 'dispatched' AND not_after <= $2",
    )
    .bind(DEADLINE_REASON)
    .bind(now)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    // Hosts that took the job and went silent (destroyed, agent stuck): the wave must not
    // wait forever. Failed, with a reason a late result may still replace.
    let lost = sqlx::query(
        "UPDATE job_hosts SET state = 'failed', reason = $1, finished_at = $2 \
         WHERE job_id = $3 AND state IN ('received', 'running') \
         AND COALESCE(started_at, received_at, dispatched_at, 0) <= $4",
    )
    .bind(LOST_REASON)
    .bind(now)
    .bind(job_id)
    .bind(now - RESULT_TIMEOUT_SECS)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if lost > 0 {
        let target = format!("job:{job_id}");
        let details = json!({ "hosts": lost, "reason": LOST_REASON });
        let ev = Event { actor: &Actor::System, action: "job.hosts_lost", target: &target, source_ip: None, details };
        audit::append(&mut tx, ev, now).await?;
    }
    sqlx::query(
        "UPDATE job_hosts SET reboot_state = 'timeout' \
         WHERE job_id = $1 AND reboot_state = 'pending' AND reboot_deadline <= $2",
    )
    .bind(job_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;

    // Settled waves: halt, finish, or move on (possibly over several empty waves).
    loop {
        let wave = wave_state(&mut tx, job_id, job.current_wave).await?;
        if wave.unsettled > 0 {
            break;
        }
        if job.rollout.over_threshold(wave.failures, wave.size) {
            let reason = format!(
                "wave {} of {}: {} of {} hosts failed (threshold {}%)",
                job.current_wave + 1,
                job.wave_count,
                wave.failures,
                wave.size,
                job.rollout.failure_threshold
            );
            let details = json!({ "wave": job.current_wave, "failures": wave.failures, "size": wave.size,
                                  "threshold": job.rollout.failure_threshold });
            finish(&mut tx, &job, JobStatus::Halted, "job.halt", &reason, details, now).await?;
            tx.commit().await?;
            tracing::warn!(job_id, %reason, "job halted");
            out.halted = true;
            return Ok(out);
        }
        if job.current_wave + 1 >= job.wave_count {
            let details = json!({ "waves": job.wave_count });
            finish(&mut tx, &job, JobStatus::Completed, "job.complete", "", details, now).await?;
            tx.commit().await?;
            tracing::info!(job_id, "job completed");
            out.completed = true;
            return Ok(out);
        }
        job.current_wave += 1;
        sqlx::query("UPDATE jobs SET current_wave = $1 WHERE id = $2").bind(job.current_wave).bind(job_id).execute(&mut *tx).await?;
        tracing::info!(job_id, wave = job.current_wave, "next wave");
    }

    let Some(bounds) = dispatch_bounds(&job, now)? else {
        tx.commit().await?;
        return Ok(out);
    };
    let in_flight: i64 = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM job_hosts WHERE job_id = $1 AND (state IN {IN_FLIGHT} OR reboot_state = 'pending')"
    ))
    .bind(job_id)
    .fetch_one(&mut *tx)
    .await?
    .try_get("n")?;
    let free = job.rollout.max_concurrent - in_flight;
    if free > 0 {
        let rows = sqlx::query(
            "SELECT host_id FROM job_hosts WHERE job_id = $1 AND wave = $2 AND state = 'queued' \
             ORDER BY hostname, host_id LIMIT $3",
        )
        .bind(job_id)
        .bind(job.current_wave)
        .bind(free)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let host_id: String = r.try_get("host_id")?;
            let signed = state.job_signer.sign(&dispatch::spec_for(&job, &host_id, now, bounds))?;
            let done = sqlx::query(
                "UPDATE job_hosts SET state = 'dispatched', spec_b64 = $1, signature_b64 = $2, key_id = $3, \
                 not_after = $4, dispatched_at = $5 WHERE job_id = $6 AND host_id = $7 AND state = 'queued'",
            )
            .bind(&signed.spec_b64)
            .bind(&signed.signature_b64)
            .bind(&signed.key_id)
            .bind(bounds.1)
            .bind(now)
            .bind(job_id)
            .bind(&host_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                out.dispatched.push(host_id);
            }
        }
    }
    if !out.dispatched.is_empty() && job.status == JobStatus::Scheduled {
        sqlx::query("UPDATE jobs SET state = 'running', started_at = $1 WHERE id = $2 AND state = 'scheduled'")
            .bind(now)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if !out.dispatched.is_empty() {
        tracing::info!(job_id, hosts = out.dispatched.len(), wave = job.current_wave, "dispatched");
    }
    Ok(out)
}
