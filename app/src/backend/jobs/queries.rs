//! Reading jobs, cut to the caller's scope: a job is visible to an Operator when at least
//! one of its hosts is in their groups, and then they see only those hosts (lists, counts
//! and results alike). Anything not visible is "not found".

use std::collections::HashMap;

use agent::proto::jobs::PackageChange;
use sqlx::Row;

use super::model::{self, JobRow, JOB_COLUMNS};
use super::window::Window;
use crate::api::dto::Page;
use crate::api::job_dto::{
    ChangeRow, HookRef, HostJobRow, HostJobState, JobDetail, JobHostResult, JobHostRow, JobMode, JobStatus,
    JobSummary, ScheduleKind, StateCounts,
};
use crate::backend::access::{Caller, Scope};
use crate::backend::db::Db;
use crate::backend::error::{BackendError, Result};
use crate::backend::hosts::{clamp_page, offset};

/// `(" AND <cond on col>", bind)` for a scope, placeholder `$n`.
fn scope_clause(scope: &Scope, col: &str, n: usize) -> (String, Option<String>) {
    match scope.host_condition(col, n) {
        Some((c, b)) => (format!(" AND {c}"), Some(b)),
        None => (String::new(), None),
    }
}

fn bad_state() -> BackendError {
    BackendError::Internal("job_hosts: bad state".into())
}

/// The job, when `scope` sees at least one of its hosts; `NotFound` otherwise.
pub async fn visible(db: &Db, scope: &Scope, job_id: &str) -> Result<JobRow> {
    let (cond, bind) = scope_clause(scope, "jh.host_id", 2);
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = $1 \
         AND EXISTS (SELECT 1 FROM job_hosts jh WHERE jh.job_id = j.id{cond})"
    );
    let mut q = sqlx::query(&sql).bind(job_id);
    if let Some(b) = bind {
        q = q.bind(b);
    }
    let row = q.fetch_optional(&db.pool).await?.ok_or(BackendError::NotFound)?;
    JobRow::from_row(&row)
}

/// True when every host of the job is in `scope`.
pub async fn fully_in_scope(db: &Db, scope: &Scope, job_id: &str) -> Result<bool> {
    let Some((cond, user)) = scope.host_condition("jh.host_id", 2) else { return Ok(true) };
    let sql = format!("SELECT COUNT(*) AS n FROM job_hosts jh WHERE jh.job_id = $1 AND NOT {cond}");
    let row = sqlx::query(&sql)
        .bind(job_id)
        .bind(user)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get::<i64, _>("n")? == 0)
}

pub async fn host_ids(db: &Db, job_id: &str) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT host_id FROM job_hosts WHERE job_id = $1").bind(job_id).fetch_all(&db.pool).await?;
    rows.iter().map(|r| Ok(r.try_get("host_id")?)).collect()
}

/// Counts per job of the hosts `scope` sees.
async fn counts(db: &Db, scope: &Scope, job_ids: &[String]) -> Result<HashMap<String, StateCounts>> {
    let mut out: HashMap<String, StateCounts> = HashMap::new();
    for id in job_ids {
        let (cond, bind) = scope_clause(scope, "jh.host_id", 2);
        let sql = format!(
            "SELECT jh.state, jh.reboot_state, COUNT(*) AS n FROM job_hosts jh WHERE jh.job_id = $1{cond} \
             GROUP BY jh.state, jh.reboot_state"
        );
        let mut q = sqlx::query(&sql).bind(id.as_str());
        if let Some(b) = bind {
            q = q.bind(b);
        }
        let c = out.entry(id.clone()).or_default();
        for r in &q.fetch_all(&db.pool).await? {
            let state = HostJobState::parse(&r.try_get::<String, _>("state")?).ok_or_else(bad_state)?;
            let n: i64 = r.try_get("n")?;
            c.add(state, n);
            if state.is_terminal() && r.try_get::<String, _>("reboot_state")? == "pending" {
                c.rebooting += n;
            }
        }
    }
    Ok(out)
}

fn summary(job: &JobRow, counts: StateCounts) -> JobSummary {
    JobSummary {
        id: job.id.clone(),
        title: job.title.clone(),
        mode: job.mode,
        status: job.status,
        created_by: job.created_by.clone(),
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        counts,
        current_wave: job.current_wave,
        wave_count: job.wave_count,
    }
}

/// Jobs visible to `scope`, newest first.
pub async fn list(db: &Db, scope: &Scope, page: u32, per_page: u32) -> Result<Page<JobSummary>> {
    let (page, per_page) = clamp_page(page, per_page);
    let (cond, bind) = scope_clause(scope, "jh.host_id", 1);
    let visible = format!("EXISTS (SELECT 1 FROM job_hosts jh WHERE jh.job_id = j.id{cond})");
    let count_sql = format!("SELECT COUNT(*) AS n FROM jobs j WHERE {visible}");
    let mut count = sqlx::query(&count_sql);
    if let Some(b) = &bind {
        count = count.bind(b.as_str());
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;
    let n = if bind.is_some() { 1 } else { 0 };
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j WHERE {visible} ORDER BY j.created_at DESC, j.id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut q = sqlx::query(&sql);
    if let Some(b) = &bind {
        q = q.bind(b.as_str());
    }
    let rows = q.bind(i64::from(per_page)).bind(offset(page, per_page)).fetch_all(&db.pool).await?;
    let jobs = rows.iter().map(JobRow::from_row).collect::<Result<Vec<_>>>()?;
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut counts = counts(db, scope, &ids).await?;
    let items = jobs.iter().map(|j| summary(j, counts.remove(&j.id).unwrap_or_default())).collect();
    Ok(Page { items, total, page, per_page })
}

fn host_row(r: &sqlx::any::AnyRow) -> Result<JobHostRow> {
    Ok(JobHostRow {
        host_id: r.try_get("host_id")?,
        hostname: r.try_get("hostname")?,
        wave: r.try_get("wave")?,
        state: HostJobState::parse(&r.try_get::<String, _>("state")?).ok_or_else(bad_state)?,
        reason: r.try_get("reason")?,
        change_count: r.try_get("change_count")?,
        reboot_state: r.try_get("reboot_state")?,
        dispatched_at: r.try_get("dispatched_at")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn hook_refs(hooks: &[agent::proto::jobs::HookCommand]) -> Vec<HookRef> {
    hooks.iter().map(|h| HookRef { name: h.name.clone(), argv: h.argv.clone(), timeout_secs: h.timeout_secs }).collect()
}

/// One job with the hosts `caller` sees and what the caller may do with it.
pub async fn get(db: &Db, caller: &Caller, job_id: &str, now: i64) -> Result<JobDetail> {
    let scope = caller.scope();
    let job = visible(db, &scope, job_id).await?;
    let (cond, bind) = scope_clause(&scope, "jh.host_id", 2);
    let sql = format!(
        "SELECT jh.host_id, jh.hostname, jh.wave, jh.state, jh.reason, jh.change_count, jh.reboot_state, \
         jh.dispatched_at, jh.started_at, jh.finished_at FROM job_hosts jh WHERE jh.job_id = $1{cond} \
         ORDER BY jh.wave, jh.hostname, jh.host_id"
    );
    let mut q = sqlx::query(&sql).bind(job_id);
    if let Some(b) = bind {
        q = q.bind(b);
    }
    let hosts = q.fetch_all(&db.pool).await?.iter().map(host_row).collect::<Result<Vec<_>>>()?;
    let mut c = StateCounts::default();
    for h in &hosts {
        c.add(h.state, 1);
        if h.state.is_terminal() && h.reboot_state == "pending" {
            c.rebooting += 1;
        }
    }
    let owned = fully_in_scope(db, &scope, job_id).await?;
    let active = matches!(job.status, JobStatus::Scheduled | JobStatus::Running | JobStatus::Halted);
    let window_next = match job.schedule {
        ScheduleKind::Window if active => {
            Window::parse(&job.window_spec)?.current_or_next(now)?.map(|o| (o.start, o.end))
        }
        _ => None,
    };
    let (scope_kind, packages) = model::scope_kind(&job.scope);
    Ok(JobDetail {
        summary: summary(&job, c),
        scope: scope_kind,
        packages,
        exclude: job.exclude.clone(),
        reboot: job.reboot,
        schedule: job.schedule,
        start_at: job.start_at,
        window: job.window_spec.clone(),
        window_next,
        start_within_mins: job.start_within_secs / 60,
        canary: job.rollout.canary,
        batch_size: job.rollout.batch_size,
        batch_percent: job.rollout.batch_percent,
        max_concurrent: job.rollout.max_concurrent,
        failure_threshold: job.rollout.failure_threshold,
        pre_hooks: hook_refs(&job.pre_hooks),
        post_hooks: hook_refs(&job.post_hooks),
        halt_reason: job.halt_reason.clone(),
        source_job_id: job.source_job_id.clone(),
        hosts,
        can_cancel: owned && active,
        can_resume: owned && job.status == JobStatus::Halted,
        can_run_for_real: job.mode == JobMode::DryRun && job.status == JobStatus::Completed,
        now,
    })
}

/// One host's full result (changes and output), when the caller sees that host.
pub async fn host_result(db: &Db, scope: &Scope, job_id: &str, host_id: &str) -> Result<JobHostResult> {
    let mut conn = db.pool.acquire().await?;
    scope.check_host(&mut conn, host_id).await?;
    drop(conn);
    let row = sqlx::query(
        "SELECT host_id, hostname, state, reason, changes, output FROM job_hosts WHERE job_id = $1 AND host_id = $2",
    )
    .bind(job_id)
    .bind(host_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(BackendError::NotFound)?;
    let changes: Vec<PackageChange> = serde_json::from_str(&row.try_get::<String, _>("changes")?)
        .map_err(|_| BackendError::Internal("job_hosts: bad changes".into()))?;
    Ok(JobHostResult {
        host_id: row.try_get("host_id")?,
        hostname: row.try_get("hostname")?,
        state: HostJobState::parse(&row.try_get::<String, _>("state")?).ok_or_else(bad_state)?,
        reason: row.try_get("reason")?,
        changes: changes
            .into_iter()
            .map(|c| ChangeRow { name: c.name, arch: c.arch, before: c.before, after: c.after })
            .collect(),
        output: row.try_get("output")?,
    })
}

/// A host's job history, newest first (at most `limit` rows).
pub async fn host_history(db: &Db, scope: &Scope, host_id: &str, limit: i64) -> Result<Vec<HostJobRow>> {
    let mut conn = db.pool.acquire().await?;
    scope.check_host(&mut conn, host_id).await?;
    drop(conn);
    let rows = sqlx::query(
        "SELECT j.id, j.title, j.mode, j.state AS job_state, j.created_at, jh.state, jh.reboot_state, jh.reason, \
         jh.change_count, jh.finished_at FROM job_hosts jh JOIN jobs j ON j.id = jh.job_id \
         WHERE jh.host_id = $1 ORDER BY j.created_at DESC, j.id LIMIT $2",
    )
    .bind(host_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HostJobRow {
                job_id: r.try_get("id")?,
                title: r.try_get("title")?,
                mode: model::parse_mode(&r.try_get::<String, _>("mode")?)?,
                status: JobStatus::parse(&r.try_get::<String, _>("job_state")?).ok_or_else(bad_state)?,
                state: HostJobState::parse(&r.try_get::<String, _>("state")?).ok_or_else(bad_state)?,
                reboot_state: r.try_get("reboot_state")?,
                reason: r.try_get("reason")?,
                change_count: r.try_get("change_count")?,
                created_at: r.try_get("created_at")?,
                finished_at: r.try_get("finished_at")?,
            })
        })
        .collect()
}
