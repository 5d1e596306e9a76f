//! Dispatch: the signed spec for one host, and what an agent is owed (delivery is at least
//! once: a dispatched job is re-sent in every check-in response and poll until the agent
//! acknowledges it with `Received`).

use agent::proto::jobs::{JobSpec, SignedJob};
use sqlx::Row;

use super::model::{self, JobRow};
use crate::api::job_dto::{JobMode, RebootChoice};
use crate::backend::db::Db;
use crate::backend::error::Result;
use crate::backend::state::AppState;

/// Longest job id accepted from an agent (ours are UUIDs).
pub const MAX_JOB_ID_LEN: usize = 64;
/// At most this many jobs in one answer (a host rarely has more than one in flight).
const MAX_JOBS_PER_ANSWER: i64 = 20;

/// The instruction for `host_id`, to be started in `[not_before, not_after)`. A dry run
/// never reboots and runs no hooks: it only reports the agent's plan.
pub fn spec_for(job: &JobRow, host_id: &str, now: i64, (not_before, not_after): (i64, i64)) -> JobSpec {
    let dry = job.mode == JobMode::DryRun;
    JobSpec {
        job_id: job.id.clone(),
        host_id: host_id.to_string(),
        issued_at: now,
        not_before,
        not_after,
        mode: model::wire_mode(job.mode),
        scope: job.scope.clone(),
        exclude: job.exclude.clone(),
        reboot: model::wire_reboot(if dry { RebootChoice::Never } else { job.reboot }),
        pre_commands: if dry { Vec::new() } else { job.pre_hooks.clone() },
        post_commands: if dry { Vec::new() } else { job.post_hooks.clone() },
    }
}

/// Jobs dispatched to `host_id`, not yet acknowledged and not past their deadline, oldest
/// first, exactly as they were signed.
pub async fn pending_for_host(db: &Db, host_id: &str, now: i64) -> Result<Vec<SignedJob>> {
    let rows = sqlx::query(
        "SELECT spec_b64, signature_b64, key_id FROM job_hosts \
         WHERE host_id = $1 AND state = 'dispatched' AND not_after > $2 ORDER BY dispatched_at, job_id LIMIT $3",
    )
    .bind(host_id)
    .bind(now)
    .bind(MAX_JOBS_PER_ANSWER)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(SignedJob {
                spec_b64: r.try_get("spec_b64")?,
                signature_b64: r.try_get("signature_b64")?,
                key_id: r.try_get("key_id")?,
            })
        })
        .collect()
}

/// Pokes the long polls of hosts that got a job dispatched at or after `since` by any
/// replica. One query per call, whatever the number of agents.
pub async fn wake_recent(state: &AppState, since: i64) -> Result<usize> {
    if state.job_hub.waiting() == 0 {
        return Ok(0);
    }
    let rows = sqlx::query("SELECT DISTINCT host_id FROM job_hosts WHERE state = 'dispatched' AND dispatched_at >= $1")
        .bind(since)
        .fetch_all(&state.db.pool)
        .await?;
    for r in &rows {
        let host: String = r.try_get("host_id")?;
        state.job_hub.poke(&host);
    }
    Ok(rows.len())
}
