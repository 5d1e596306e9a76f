//! The instant preview on the new-job form: from each target host's stored inventory, the
//! pending updates the job's scope selects minus its exclusions, from which version to which.
//! It is as fresh as the last inventory; a dry-run job gives the agents' exact plan.

use agent::proto::jobs::PatchScope;
use sqlx::Row;

use super::create;
use super::targets::Target;
use crate::api::job_dto::{JobPreview, NewJob, PreviewChange, PreviewHost, ScheduleKind};
use crate::backend::access::Scope;
use crate::backend::db::Db;
use crate::backend::error::Result;

/// Hosts listed in a preview (the totals still count every target).
pub const MAX_PREVIEW_HOSTS: usize = 200;

/// `name` matches a job's package name `wanted` (apt names may carry `:arch`).
fn matches(wanted: &str, name: &str, arch: &str) -> bool {
    wanted == name || wanted.split_once(':').is_some_and(|(n, a)| n == name && a == arch)
}

/// The updates `scope` and `exclude` select from one host's pending updates.
pub fn select(scope: &PatchScope, exclude: &[String], updates: Vec<PreviewChange>) -> Vec<PreviewChange> {
    updates
        .into_iter()
        .filter(|u| match scope {
            PatchScope::All => true,
            PatchScope::Security => u.security,
            PatchScope::Packages { names } => names.iter().any(|n| matches(n, &u.name, &u.arch)),
        })
        .filter(|u| !exclude.iter().any(|n| matches(n, &u.name, &u.arch)))
        .collect()
}

async fn host(db: &Db, t: &Target, scope: &PatchScope, exclude: &[String]) -> Result<PreviewHost> {
    let rows = sqlx::query(
        "SELECT name, arch, current_version, candidate_version, security FROM host_updates \
         WHERE host_id = $1 ORDER BY security DESC, name, arch",
    )
    .bind(&t.host_id)
    .fetch_all(&db.pool)
    .await?;
    let updates = rows
        .iter()
        .map(|r| {
            Ok(PreviewChange {
                name: r.try_get("name")?,
                arch: r.try_get("arch")?,
                from: r.try_get("current_version")?,
                to: r.try_get("candidate_version")?,
                security: r.try_get::<i64, _>("security")? != 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let inventory_at: Option<i64> = sqlx::query("SELECT inventory_at FROM hosts WHERE id = $1")
        .bind(&t.host_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get("inventory_at"))
        .transpose()?
        .flatten();
    Ok(PreviewHost {
        host_id: t.host_id.clone(),
        hostname: t.hostname.clone(),
        package_manager: t.manager.clone(),
        inventory_at,
        changes: select(scope, exclude, updates),
    })
}

/// Validates the request exactly as creating it would, then previews it.
pub async fn preview(db: &Db, scope: &Scope, req: &NewJob, now: i64) -> Result<JobPreview> {
    let v = create::validate(db, scope, req, now).await?;
    let mut hosts = Vec::new();
    for t in v.targets.iter().take(MAX_PREVIEW_HOSTS) {
        hosts.push(host(db, t, &v.scope, &v.exclude).await?);
    }
    let total_changes = hosts.iter().map(|h| h.changes.len() as i64).sum();
    let window_next = match (&v.window, req.schedule) {
        (Some(w), ScheduleKind::Window) => w.current_or_next(now)?.map(|o| (o.start, o.end)),
        _ => None,
    };
    Ok(JobPreview { total_hosts: v.targets.len() as i64, waves: v.wave_sizes(), hosts, total_changes, window_next })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn up(name: &str, arch: &str, security: bool) -> PreviewChange {
        PreviewChange { name: name.into(), arch: arch.into(), from: "1".into(), to: "2".into(), security }
    }

    #[test]
    fn scope_and_exclusions_filter_updates() {
        let all = vec![up("openssl", "amd64", true), up("bash", "amd64", false), up("libc6", "i386", true)];
        let names = |v: Vec<PreviewChange>| v.into_iter().map(|u| u.name).collect::<Vec<_>>();
        assert_eq!(names(select(&PatchScope::All, &[], all.clone())), ["openssl", "bash", "libc6"]);
        assert_eq!(names(select(&PatchScope::Security, &["openssl".into()], all.clone())), ["libc6"]);
        let pk = PatchScope::Packages { names: vec!["bash".into(), "libc6:amd64".into()] };
        assert_eq!(names(select(&pk, &[], all.clone())), ["bash"]);
        let pk = PatchScope::Packages { names: vec!["libc6:i386".into()] };
        assert_eq!(names(select(&pk, &[], all.clone())), ["libc6"]);
        assert!(select(&PatchScope::All, &["openssl".into(), "bash".into(), "libc6:i386".into()], all).is_empty());
    }
}
