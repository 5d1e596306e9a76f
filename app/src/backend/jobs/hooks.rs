//! Pre- and post-commands ("hooks"), defined by Admins only and chosen by id on a job. A job
//! copies the chosen hooks' argv at creation into its signed spec; Operators never type a
//! command. Run by the agent without a shell.

use agent::proto::jobs::HookCommand;
use serde_json::json;
use sqlx::Row;

use crate::api::job_dto::HookInfo;
use crate::backend::audit::{self, Actor, Event};
use crate::backend::db::{self, Db};
use crate::backend::error::{BackendError, Result};

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 1024;
pub const MAX_TIMEOUT_SECS: u64 = 7200;
/// Hooks per phase on one job.
pub const MAX_PER_JOB: usize = 10;

fn target(id: &str) -> String {
    format!("hook:{id}")
}

struct Checked {
    name: String,
    argv: Vec<String>,
    timeout_secs: u64,
}

fn check(name: &str, argv: &[String], timeout_secs: u64) -> Result<Checked> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(BackendError::Invalid(format!(
            "hook name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    if argv.is_empty() || argv.len() > MAX_ARGS {
        return Err(BackendError::Invalid(format!("a hook needs 1 to {MAX_ARGS} arguments (program first)")));
    }
    if argv.iter().any(|a| a.len() > MAX_ARG_BYTES || a.chars().any(char::is_control)) {
        return Err(BackendError::Invalid(format!(
            "hook arguments must be at most {MAX_ARG_BYTES} bytes without control characters"
        )));
    }
    let program = &argv[0];
    if !program.starts_with('/') || program.ends_with('/') || program.contains("/../") || program.contains("/./") {
        return Err(BackendError::Invalid(
            "the hook's program must be an absolute path such as /usr/local/sbin/drain (no shell, no PATH lookup)".into(),
        ));
    }
    if !(1..=MAX_TIMEOUT_SECS).contains(&timeout_secs) {
        return Err(BackendError::Invalid(format!("hook timeout must be 1 to {MAX_TIMEOUT_SECS} seconds")));
    }
    Ok(Checked { name: name.to_string(), argv: argv.to_vec(), timeout_secs })
}

fn info(r: &sqlx::any::AnyRow) -> Result<HookInfo> {
    let argv: String = r.try_get("argv")?;
    Ok(HookInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        argv: serde_json::from_str(&argv).map_err(|_| BackendError::Internal("job_hooks: bad argv".into()))?,
        timeout_secs: u64::try_from(r.try_get::<i64, _>("timeout_secs")?).unwrap_or(0),
        updated_at: r.try_get("updated_at")?,
    })
}

/// Every hook, by name.
pub async fn list(db: &Db) -> Result<Vec<HookInfo>> {
    let rows = sqlx::query("SELECT id, name, argv, timeout_secs, updated_at FROM job_hooks ORDER BY lower(name), id")
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(info).collect()
}

/// The commands of hooks `ids`, in that order; `Invalid` for an unknown id.
pub async fn commands(db: &Db, ids: &[String]) -> Result<Vec<HookCommand>> {
    if ids.len() > MAX_PER_JOB {
        return Err(BackendError::Invalid(format!("at most {MAX_PER_JOB} pre- and {MAX_PER_JOB} post-commands")));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = sqlx::query("SELECT id, name, argv, timeout_secs, updated_at FROM job_hooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?
            .ok_or_else(|| BackendError::Invalid("unknown pre/post-command (it may have been deleted)".into()))?;
        let h = info(&row)?;
        out.push(HookCommand { name: h.name, argv: h.argv, timeout_secs: h.timeout_secs });
    }
    Ok(out)
}

fn conflict(e: sqlx::Error) -> BackendError {
    if db::is_unique_violation(&e) {
        BackendError::Conflict("hook_name_taken")
    } else {
        e.into()
    }
}

pub async fn create(db: &Db, actor: &Actor, name: &str, argv: &[String], timeout_secs: u64, now: i64) -> Result<HookInfo> {
    let c = check(name, argv, timeout_secs)?;
    let id = db::new_id();
    let argv_json = serde_json::to_string(&c.argv).map_err(|e| BackendError::Internal(e.to_string()))?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO job_hooks (id, name, argv, timeout_secs, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&id)
    .bind(&c.name)
    .bind(&argv_json)
    .bind(i64::try_from(c.timeout_secs).unwrap_or(i64::MAX))
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(conflict)?;
    let details = json!({ "name": c.name, "argv": c.argv, "timeout_secs": c.timeout_secs });
    audit::append(&mut tx, Event { actor, action: "hook.create", target: &target(&id), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(HookInfo { id, name: c.name, argv: c.argv, timeout_secs: c.timeout_secs, updated_at: now })
}

/// Changes a hook. Jobs created before keep the command they were created with.
pub async fn update(db: &Db, actor: &Actor, id: &str, name: &str, argv: &[String], timeout_secs: u64, now: i64) -> Result<()> {
    let c = check(name, argv, timeout_secs)?;
    let argv_json = serde_json::to_string(&c.argv).map_err(|e| BackendError::Internal(e.to_string()))?;
    let mut tx = db.begin().await?;
    let done = sqlx::query("UPDATE job_hooks SET name = $1, argv = $2, timeout_secs = $3, updated_at = $4 WHERE id = $5")
        .bind(&c.name)
        .bind(&argv_json)
        .bind(i64::try_from(c.timeout_secs).unwrap_or(i64::MAX))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(conflict)?;
    if done.rows_affected() == 0 {
        return Err(BackendError::NotFound);
    }
    let details = json!({ "name": c.name, "argv": c.argv, "timeout_secs": c.timeout_secs });
    audit::append(&mut tx, Event { actor, action: "hook.update", target: &target(id), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn delete(db: &Db, actor: &Actor, id: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let row = sqlx::query("DELETE FROM job_hooks WHERE id = $1 RETURNING name")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(BackendError::NotFound)?;
    let name: String = row.try_get("name")?;
    let ev = Event { actor, action: "hook.delete", target: &target(id), source_ip: None, details: json!({ "name": name }) };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::testkit;

    const NOW: i64 = 1_800_000_000;

    #[tokio::test]
    async fn crud_validates_and_audits() {
        let t = testkit::test_db().await;
        let db = &t.db;
        let argv = vec!["/usr/sbin/service".to_string(), "nginx".into(), "stop".into()];
        let h = create(db, &Actor::Cli, " drain nginx ", &argv, 60, NOW).await.unwrap();
        assert_eq!(h.name, "drain nginx");
        assert_eq!(create(db, &Actor::Cli, "DRAIN NGINX", &argv, 60, NOW).await.unwrap_err().code(), "hook_name_taken");
        for (name, argv, timeout) in [
            ("x", vec![], 60),
            ("x", vec!["service".to_string()], 60),
            ("x", vec!["/bin/sh".to_string(), "-c\nrm".into()], 60),
            ("x", vec!["/bin/true".to_string()], 0),
            ("x", vec!["/bin/true".to_string()], MAX_TIMEOUT_SECS + 1),
            ("", vec!["/bin/true".to_string()], 5),
        ] {
            assert_eq!(create(db, &Actor::Cli, name, &argv, timeout, NOW).await.unwrap_err().code(), "invalid_input");
        }
        update(db, &Actor::Cli, &h.id, "drain", &["/bin/true".to_string()], 5, NOW + 1).await.unwrap();
        assert!(matches!(update(db, &Actor::Cli, "nope", "y", &argv, 5, NOW).await, Err(BackendError::NotFound)));
        let cmds = commands(db, std::slice::from_ref(&h.id)).await.unwrap();
        assert_eq!(cmds, vec![HookCommand { name: "drain".into(), argv: vec!["/bin/true".into()], timeout_secs: 5 }]);
        assert_eq!(commands(db, &["nope".to_string()]).await.unwrap_err().code(), "invalid_input");
        delete(db, &Actor::Cli, &h.id, NOW).await.unwrap();
        assert!(list(db).await.unwrap().is_empty());
        for action in ["hook.create", "hook.update", "hook.delete"] {
            assert_eq!(audit::list_by_action(db, action).await.unwrap().len(), 1, "{action}");
        }
        t.cleanup().await;
    }
}
