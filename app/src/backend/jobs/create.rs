//! Creating a job: every field of the form validated on the server, targets resolved and cut
//! to the caller's scope, waves assigned, then one transaction writes the job, its hosts and
//! the `job.create` audit row (nothing half-written on any refusal).

use agent::proto::jobs::{HookCommand, PatchScope};
use agent::pkgname;
use serde_json::json;

use super::model::{self, Rollout};
use super::targets::{self, Target};
use super::window::{self, Window};
use super::hooks;
use crate::api::job_dto::{JobMode, NewJob, RebootChoice, ScheduleKind, ScopeKind};
use crate::backend::access::Scope;
use crate::backend::audit::{self, Actor, Event};
use crate::backend::db::{self, Conn, Db};
use crate::backend::error::{BackendError, Result};

pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_PACKAGES: usize = 500;
pub const MAX_CONCURRENT: u32 = 10_000;
pub const MAX_CANARY: u32 = 1_000;
/// Default and bounds of "hosts must start within" (outside windows).
pub const DEFAULT_START_WITHIN_MINS: u32 = 240;
pub const MAX_START_WITHIN_MINS: u32 = 7 * 24 * 60;
/// A start time may be this far in the past (clock skew, slow typing) or in the future.
pub const AT_PAST_SLACK_SECS: i64 = 300;
pub const AT_MAX_FUTURE_SECS: i64 = 366 * 86_400;
const INSERT_CHUNK: usize = 200;

/// A job request that passed every check.
#[derive(Debug, Clone)]
pub struct Validated {
    pub title: String,
    pub mode: JobMode,
    pub scope: PatchScope,
    pub exclude: Vec<String>,
    pub reboot: RebootChoice,
    pub schedule: ScheduleKind,
    pub start_at: i64,
    pub window: Option<Window>,
    pub start_within_secs: i64,
    pub rollout: Rollout,
    pub pre_hooks: Vec<HookCommand>,
    pub post_hooks: Vec<HookCommand>,
    pub targets: Vec<Target>,
}

impl Validated {
    pub fn wave_sizes(&self) -> Vec<i64> {
        self.rollout.wave_sizes(self.targets.len() as i64)
    }
}

fn invalid(msg: impl Into<String>) -> BackendError {
    BackendError::Invalid(msg.into())
}

/// Trimmed, deduplicated package names, each valid for every manager among the targets.
fn names(list: &[String], managers: &[agent::proto::PackageManager], what: &str) -> Result<Vec<String>> {
    if list.len() > MAX_PACKAGES {
        return Err(invalid(format!("at most {MAX_PACKAGES} {what}")));
    }
    let mut out: Vec<String> = Vec::new();
    for raw in list {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        pkgname::validate_all(managers, name).map_err(|e| {
            let shown: String = name.chars().take(64).collect();
            let shown: String = shown.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
            invalid(format!("{what}: '{shown}': {e}"))
        })?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Checks a job request and resolves its targets (reads only; nothing is written).
pub async fn validate(db: &Db, scope: &Scope, req: &NewJob, now: i64) -> Result<Validated> {
    let title = req.title.trim();
    if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
        return Err(invalid(format!("title must be at most {MAX_TITLE_CHARS} characters without control characters")));
    }
    if req.max_concurrent < 1 || req.max_concurrent > MAX_CONCURRENT {
        return Err(invalid(format!("at most M hosts at once: M must be 1 to {MAX_CONCURRENT}")));
    }
    if req.batch_percent && !(1..=100).contains(&req.batch_size) {
        return Err(invalid("batch size in percent must be 1 to 100"));
    }
    if !req.batch_percent && !(1..=MAX_CONCURRENT).contains(&req.batch_size) {
        return Err(invalid(format!("batch size must be 1 to {MAX_CONCURRENT} hosts")));
    }
    if req.canary > MAX_CANARY {
        return Err(invalid(format!("the canary wave may have at most {MAX_CANARY} hosts")));
    }
    if req.failure_threshold > 100 {
        return Err(invalid("failure threshold must be 0 to 100 percent"));
    }
    let start_within = if req.start_within_mins == 0 { DEFAULT_START_WITHIN_MINS } else { req.start_within_mins };
    if start_within > MAX_START_WITHIN_MINS {
        return Err(invalid(format!("hosts must start within at most {MAX_START_WITHIN_MINS} minutes")));
    }
    let (start_at, window) = match req.schedule {
        ScheduleKind::Now => (now, None),
        ScheduleKind::At => {
            let at = window::parse_at(&req.at)?;
            if at < now - AT_PAST_SLACK_SECS {
                return Err(invalid("start time is in the past"));
            }
            if at > now + AT_MAX_FUTURE_SECS {
                return Err(invalid("start time is more than a year away"));
            }
            (at.max(now), None)
        }
        ScheduleKind::Window => (now, Some(Window::parse(&req.window)?)),
    };

    let targets = targets::resolve(db, scope, &req.host_ids, &req.group_ids).await?;
    if targets.is_empty() {
        return Err(invalid("no target hosts: choose hosts or groups that contain hosts"));
    }
    let managers = targets::managers(&targets);
    let packages = names(&req.packages, &managers, "package")?;
    let exclude = names(&req.exclude, &managers, "excluded package")?;
    let patch_scope = match req.scope {
        ScopeKind::All => PatchScope::All,
        ScopeKind::Security => PatchScope::Security,
        ScopeKind::Packages if packages.is_empty() => {
            return Err(invalid("name at least one package for a 'named packages' job"));
        }
        ScopeKind::Packages => {
            if packages.iter().all(|p| exclude.contains(p)) {
                return Err(invalid("every named package is also excluded: nothing would be updated"));
            }
            PatchScope::Packages { names: packages }
        }
    };
    let pre_hooks = hooks::commands(db, &req.pre_hook_ids).await?;
    let post_hooks = hooks::commands(db, &req.post_hook_ids).await?;
    Ok(Validated {
        title: title.to_string(),
        mode: req.mode,
        scope: patch_scope,
        exclude,
        reboot: req.reboot,
        schedule: req.schedule,
        start_at,
        window,
        start_within_secs: i64::from(start_within) * 60,
        rollout: Rollout {
            canary: i64::from(req.canary),
            batch_size: i64::from(req.batch_size),
            batch_percent: req.batch_percent,
            max_concurrent: i64::from(req.max_concurrent),
            failure_threshold: i64::from(req.failure_threshold),
        },
        pre_hooks,
        post_hooks,
        targets,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| BackendError::Internal(format!("job json: {e}")))
}

/// Writes a validated job (one transaction with its audit row); returns the job id.
pub async fn insert(db: &Db, actor: &Actor, v: &Validated, source_job_id: Option<&str>, now: i64) -> Result<String> {
    let id = db::new_id();
    let sizes = v.wave_sizes();
    let mut tx = db.begin().await?;
    insert_job(&mut tx, &id, actor, v, sizes.len() as i64, source_job_id, now).await?;
    insert_hosts(&mut tx, &id, &v.targets, &sizes).await?;
    let (scope_kind, packages) = model::scope_kind(&v.scope);
    let details = json!({
        "title": v.title,
        "mode": model::mode_str(v.mode),
        "scope": format!("{scope_kind:?}"),
        "packages": packages,
        "exclude": v.exclude,
        "reboot": model::reboot_str(v.reboot),
        "schedule": model::schedule_str(v.schedule),
        "window": v.window.as_ref().map(|w| w.spec().to_string()),
        "hosts": v.targets.len(),
        "waves": sizes,
        "pre_hooks": v.pre_hooks.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
        "post_hooks": v.post_hooks.iter().map(|h| h.name.clone()).collect::<Vec<_>>(),
        "source_job_id": source_job_id,
    });
    let ev = Event { actor, action: "job.create", target: &format!("job:{id}"), source_ip: None, details };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    tracing::info!(job_id = %id, hosts = v.targets.len(), waves = sizes.len(), "job created");
    Ok(id)
}

async fn insert_job(
    conn: &mut Conn,
    id: &str,
    actor: &Actor,
    v: &Validated,
    wave_count: i64,
    source_job_id: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, title, created_by, created_at, mode, scope, exclude, reboot, pre_hooks, post_hooks, \
         schedule_kind, start_at, window_spec, start_within_secs, canary, batch_size, batch_percent, max_concurrent, \
         failure_threshold, state, current_wave, wave_count, source_job_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 'scheduled', 0, $20, $21)",
    )
    .bind(id)
    .bind(&v.title)
    .bind(actor.label())
    .bind(now)
    .bind(model::mode_str(v.mode))
    .bind(to_json(&v.scope)?)
    .bind(to_json(&v.exclude)?)
    .bind(model::reboot_str(v.reboot))
    .bind(to_json(&v.pre_hooks)?)
    .bind(to_json(&v.post_hooks)?)
    .bind(model::schedule_str(v.schedule))
    .bind(v.start_at)
    .bind(v.window.as_ref().map(|w| w.spec().to_string()).unwrap_or_default())
    .bind(v.start_within_secs)
    .bind(v.rollout.canary)
    .bind(v.rollout.batch_size)
    .bind(i64::from(v.rollout.batch_percent))
    .bind(v.rollout.max_concurrent)
    .bind(v.rollout.failure_threshold)
    .bind(wave_count)
    .bind(source_job_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Hosts in target order, wave by wave.
async fn insert_hosts(conn: &mut Conn, job_id: &str, targets: &[Target], sizes: &[i64]) -> Result<()> {
    let mut waves: Vec<i64> = Vec::with_capacity(targets.len());
    for (w, n) in sizes.iter().enumerate() {
        waves.extend(std::iter::repeat_n(w as i64, usize::try_from(*n).unwrap_or(0)));
    }
    let rows: Vec<(&Target, i64)> = targets.iter().zip(waves).collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut sql = String::from("INSERT INTO job_hosts (job_id, host_id, hostname, wave, state) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            let b = i * 4;
            sql.push_str(&format!("(${}, ${}, ${}, ${}, 'queued')", b + 1, b + 2, b + 3, b + 4));
        }
        let mut q = sqlx::query(&sql);
        for (t, wave) in chunk {
            q = q.bind(job_id).bind(t.host_id.as_str()).bind(t.hostname.as_str()).bind(*wave);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Validates and creates a job for `actor` with targets cut to `scope`.
pub async fn create(db: &Db, actor: &Actor, scope: &Scope, req: &NewJob, now: i64) -> Result<String> {
    let v = validate(db, scope, req, now).await?;
    insert(db, actor, &v, None, now).await
}
