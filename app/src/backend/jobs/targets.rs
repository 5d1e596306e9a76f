//! Which hosts a job targets: named hosts plus the members of named groups, cut to the
//! caller's scope and resolved to a fixed host list when the job is created.
//!
//! An Operator may name only hosts in their groups and only groups assigned to them; any
//! other id is refused exactly like an id that does not exist, so nothing leaks.

use std::collections::BTreeMap;

use agent::proto::PackageManager;
use sqlx::Row;

use crate::api::job_dto::{TargetHost, TargetOptions};
use crate::backend::access::Scope;
use crate::backend::db::Db;
use crate::backend::error::{BackendError, Result};
use crate::backend::groups;

/// Upper bounds on ids named in one request (bad input, not a real need: use groups).
pub const MAX_HOST_IDS: usize = 10_000;
pub const MAX_GROUP_IDS: usize = 200;
/// Hosts listed in the new-job form.
pub const MAX_OPTION_HOSTS: i64 = 500;
const IN_CHUNK: usize = 400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host_id: String,
    pub hostname: String,
    /// `apt` | `dnf` | `zypper`, or empty before the first inventory.
    pub manager: String,
}

pub fn parse_manager(s: &str) -> Option<PackageManager> {
    match s {
        "apt" => Some(PackageManager::Apt),
        "dnf" => Some(PackageManager::Dnf),
        "zypper" => Some(PackageManager::Zypper),
        _ => None,
    }
}

/// The package managers among `targets`; all three when none has reported one yet (names
/// must then be valid for any of them).
pub fn managers(targets: &[Target]) -> Vec<PackageManager> {
    let mut out: Vec<PackageManager> = Vec::new();
    for m in targets.iter().filter_map(|t| parse_manager(&t.manager)) {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        out = vec![PackageManager::Apt, PackageManager::Dnf, PackageManager::Zypper];
    }
    out
}

fn dedup(ids: &[String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    v.sort();
    v.dedup();
    v
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Resolves named hosts and groups to the target list, sorted by hostname.
pub async fn resolve(db: &Db, scope: &Scope, host_ids: &[String], group_ids: &[String]) -> Result<Vec<Target>> {
    let host_ids = dedup(host_ids);
    let group_ids = dedup(group_ids);
    if host_ids.len() > MAX_HOST_IDS {
        return Err(BackendError::Invalid(format!("at most {MAX_HOST_IDS} hosts by id (use groups)")));
    }
    if group_ids.len() > MAX_GROUP_IDS {
        return Err(BackendError::Invalid(format!("at most {MAX_GROUP_IDS} groups")));
    }
    let mut found: BTreeMap<String, Target> = BTreeMap::new();
    let target = |r: &sqlx::any::AnyRow| -> Result<Target> {
        Ok(Target { host_id: r.try_get("id")?, hostname: r.try_get("hostname")?, manager: r.try_get("package_manager")? })
    };

    for chunk in host_ids.chunks(IN_CHUNK) {
        let mut sql = format!("SELECT id, hostname, package_manager FROM hosts WHERE id IN ({})", placeholders(1, chunk.len()));
        let scope_cond = scope.host_condition("hosts.id", chunk.len() + 1);
        if let Some((cond, _)) = &scope_cond {
            sql.push_str(" AND ");
            sql.push_str(cond);
        }
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        if let Some((_, user)) = scope_cond {
            q = q.bind(user);
        }
        let rows = q.fetch_all(&db.pool).await?;
        if rows.len() != chunk.len() {
            return Err(BackendError::Invalid("a target host does not exist or is outside your host groups".into()));
        }
        for r in &rows {
            let t = target(r)?;
            found.insert(t.host_id.clone(), t);
        }
    }

    if !group_ids.is_empty() {
        let allowed: Vec<String> = match scope {
            Scope::All => groups::list(db).await?.into_iter().map(|g| g.id).collect(),
            Scope::GroupsOf(user) => {
                let mut conn = db.pool.acquire().await?;
                groups::of_user(&mut conn, user).await?.into_iter().map(|g| g.id).collect()
            }
        };
        for g in &group_ids {
            if !allowed.contains(g) {
                return Err(BackendError::Invalid("a target group does not exist or is not assigned to you".into()));
            }
            let rows = sqlx::query(
                "SELECT h.id, h.hostname, h.package_manager FROM hosts h \
                 JOIN host_group_members m ON m.host_id = h.id WHERE m.group_id = $1",
            )
            .bind(g)
            .fetch_all(&db.pool)
            .await?;
            for r in &rows {
                let t = target(r)?;
                found.insert(t.host_id.clone(), t);
            }
        }
    }

    let mut out: Vec<Target> = found.into_values().collect();
    out.sort_by(|a, b| a.hostname.to_lowercase().cmp(&b.hostname.to_lowercase()).then(a.host_id.cmp(&b.host_id)));
    Ok(out)
}

/// The hosts among `host_ids` that still exist and are in `scope` (silently cut: used when
/// a finished dry run is started for real), sorted by hostname.
pub async fn resolve_in_scope(db: &Db, scope: &Scope, host_ids: &[String]) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for chunk in dedup(host_ids).chunks(IN_CHUNK) {
        let mut sql = format!("SELECT id, hostname, package_manager FROM hosts WHERE id IN ({})", placeholders(1, chunk.len()));
        let scope_cond = scope.host_condition("hosts.id", chunk.len() + 1);
        if let Some((cond, _)) = &scope_cond {
            sql.push_str(" AND ");
            sql.push_str(cond);
        }
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        if let Some((_, user)) = scope_cond {
            q = q.bind(user);
        }
        for r in &q.fetch_all(&db.pool).await? {
            out.push(Target {
                host_id: r.try_get("id")?,
                hostname: r.try_get("hostname")?,
                manager: r.try_get("package_manager")?,
            });
        }
    }
    out.sort_by(|a, b| a.hostname.to_lowercase().cmp(&b.hostname.to_lowercase()).then(a.host_id.cmp(&b.host_id)));
    Ok(out)
}

/// What the new-job form offers: hosts (up to [`MAX_OPTION_HOSTS`]) and groups in scope,
/// and every hook (hooks are chosen by id; their argv is not secret).
pub async fn options(db: &Db, scope: &Scope) -> Result<TargetOptions> {
    let (cond, bind) = match scope.host_condition("hosts.id", 2) {
        Some((c, b)) => (format!(" WHERE {c}"), Some(b)),
        None => (String::new(), None),
    };
    let sql = format!(
        "SELECT id, hostname, package_manager, pending_updates, security_updates FROM hosts{cond} \
         ORDER BY LOWER(hostname), hostname, id LIMIT $1"
    );
    let mut q = sqlx::query(&sql).bind(MAX_OPTION_HOSTS + 1);
    if let Some(b) = bind {
        q = q.bind(b);
    }
    let rows = q.fetch_all(&db.pool).await?;
    let truncated = rows.len() as i64 > MAX_OPTION_HOSTS;
    let hosts = rows
        .iter()
        .take(MAX_OPTION_HOSTS as usize)
        .map(|r| {
            Ok(TargetHost {
                id: r.try_get("id")?,
                hostname: r.try_get("hostname")?,
                package_manager: r.try_get("package_manager")?,
                pending_updates: r.try_get("pending_updates")?,
                security_updates: r.try_get("security_updates")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let groups = match scope {
        Scope::All => groups::list(db)
            .await?
            .into_iter()
            .map(|g| crate::api::dto::GroupRef { id: g.id, name: g.name })
            .collect(),
        Scope::GroupsOf(user) => {
            let mut conn = db.pool.acquire().await?;
            groups::of_user(&mut conn, user).await?
        }
    };
    let hooks = super::hooks::list(db).await?;
    Ok(TargetOptions { hosts, truncated, groups, hooks })
}
