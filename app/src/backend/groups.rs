//! Host groups: the unit of an Operator's scope. A host belongs to any number of groups;
//! an Operator is assigned groups and sees the hosts in them (see `access`).
//!
//! Names are 1 to 64 printable characters, trimmed, unique case-insensitively (index
//! `host_groups_name_ci`). Every change is audited in its own transaction.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Actor, Event};
use super::db::{self, Conn, Db};
use super::error::{BackendError, Result};
use crate::api::dto::{GroupInfo, GroupRef};

pub const MAX_NAME_CHARS: usize = 64;
/// Upper bound on the groups named in one assignment (bad input, not a real need).
pub const MAX_GROUPS_PER_CALL: usize = 200;

fn valid_name(name: &str) -> Result<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(BackendError::Invalid(format!(
            "group name must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(name.to_string())
}

fn target(id: &str) -> String {
    format!("group:{id}")
}

/// Every group with its host count, by name.
pub async fn list(db: &Db) -> Result<Vec<GroupInfo>> {
    let rows = sqlx::query(
        "SELECT g.id, g.name, g.created_at, (SELECT COUNT(*) FROM host_group_members m WHERE m.group_id = g.id) AS hosts \
         FROM host_groups g ORDER BY lower(g.name), g.id",
    )
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(GroupInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                host_count: r.try_get("hosts")?,
            })
        })
        .collect()
}

/// Case-insensitive lookup by name (CLI).
pub async fn id_by_name(db: &Db, name: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT id FROM host_groups WHERE lower(name) = lower($1)")
        .bind(name.trim())
        .fetch_optional(&db.pool)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("id")?),
        None => None,
    })
}

fn refs(rows: &[sqlx::any::AnyRow]) -> Result<Vec<GroupRef>> {
    rows.iter().map(|r| Ok(GroupRef { id: r.try_get("id")?, name: r.try_get("name")? })).collect()
}

/// Groups a host belongs to, by name.
pub async fn of_host(conn: &mut Conn, host_id: &str) -> Result<Vec<GroupRef>> {
    let rows = sqlx::query(
        "SELECT g.id, g.name FROM host_groups g JOIN host_group_members m ON m.group_id = g.id \
         WHERE m.host_id = $1 ORDER BY lower(g.name), g.id",
    )
    .bind(host_id)
    .fetch_all(&mut *conn)
    .await?;
    refs(&rows)
}

/// Groups assigned to a user, by name.
pub async fn of_user(conn: &mut Conn, user_id: &str) -> Result<Vec<GroupRef>> {
    let rows = sqlx::query(
        "SELECT g.id, g.name FROM host_groups g JOIN user_groups ug ON ug.group_id = g.id \
         WHERE ug.user_id = $1 ORDER BY lower(g.name), g.id",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    refs(&rows)
}

pub async fn create(db: &Db, actor: &Actor, name: &str, now: i64) -> Result<GroupInfo> {
    let name = valid_name(name)?;
    let id = db::new_id();
    let mut tx = db.begin().await?;
    let res = sqlx::query("INSERT INTO host_groups (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await;
    match res {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return Err(BackendError::Conflict("group_name_taken")),
        Err(e) => return Err(e.into()),
    }
    let ev = Event { actor, action: "group.create", target: &target(&id), source_ip: None, details: json!({ "name": name }) };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(GroupInfo { id, name, created_at: now, host_count: 0 })
}

pub async fn rename(db: &Db, actor: &Actor, id: &str, name: &str, now: i64) -> Result<()> {
    let name = valid_name(name)?;
    let mut tx = db.begin().await?;
    let old = sqlx::query("SELECT name FROM host_groups WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(BackendError::NotFound)?;
    let old: String = old.try_get("name")?;
    let res = sqlx::query("UPDATE host_groups SET name = $1 WHERE id = $2").bind(&name).bind(id).execute(&mut *tx).await;
    match res {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return Err(BackendError::Conflict("group_name_taken")),
        Err(e) => return Err(e.into()),
    }
    let details = json!({ "from": old, "to": name });
    audit::append(&mut tx, Event { actor, action: "group.rename", target: &target(id), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes a group; its hosts stay, they only leave the group (Operators scoped to it lose
/// sight of them).
pub async fn delete(db: &Db, actor: &Actor, id: &str, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let row = sqlx::query("DELETE FROM host_groups WHERE id = $1 RETURNING name")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(BackendError::NotFound)?;
    let name: String = row.try_get("name")?;
    let ev = Event { actor, action: "group.delete", target: &target(id), source_ip: None, details: json!({ "name": name }) };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Deduplicated ids, all of existing groups, or `Invalid`.
async fn checked_ids(conn: &mut Conn, ids: &[String]) -> Result<Vec<String>> {
    if ids.len() > MAX_GROUPS_PER_CALL {
        return Err(BackendError::Invalid(format!("at most {MAX_GROUPS_PER_CALL} groups at once")));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if out.contains(id) {
            continue;
        }
        let exists = sqlx::query("SELECT 1 AS ok FROM host_groups WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
        if exists.is_none() {
            return Err(BackendError::Invalid("unknown group".into()));
        }
        out.push(id.clone());
    }
    out.sort();
    Ok(out)
}

/// Replaces a host's group memberships (audited `host.groups_set` with the new list).
pub async fn set_host_groups(db: &Db, actor: &Actor, host_id: &str, group_ids: &[String], now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let exists = sqlx::query("SELECT 1 AS ok FROM hosts WHERE id = $1").bind(host_id).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        return Err(BackendError::NotFound);
    }
    let ids = checked_ids(&mut tx, group_ids).await?;
    sqlx::query("DELETE FROM host_group_members WHERE host_id = $1").bind(host_id).execute(&mut *tx).await?;
    for g in &ids {
        add_host(&mut tx, g, host_id).await?;
    }
    let ev = Event {
        actor,
        action: "host.groups_set",
        target: &format!("host:{host_id}"),
        source_ip: None,
        details: json!({ "groups": ids }),
    };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Puts a host into a group inside the caller's transaction (enrollment with a group token).
pub(crate) async fn add_host(conn: &mut Conn, group_id: &str, host_id: &str) -> Result<()> {
    sqlx::query("INSERT INTO host_group_members (group_id, host_id) VALUES ($1, $2)")
        .bind(group_id)
        .bind(host_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Replaces the groups assigned to a user, in the caller's transaction (audited
/// `user.groups_set`).
pub async fn set_user_groups(conn: &mut Conn, actor: &Actor, user_id: &str, group_ids: &[String], now: i64) -> Result<()> {
    let ids = checked_ids(conn, group_ids).await?;
    sqlx::query("DELETE FROM user_groups WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
    for g in &ids {
        sqlx::query("INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2)")
            .bind(user_id)
            .bind(g)
            .execute(&mut *conn)
            .await?;
    }
    let ev = Event {
        actor,
        action: "user.groups_set",
        target: &format!("user:{user_id}"),
        source_ip: None,
        details: json!({ "groups": ids }),
    };
    audit::append(conn, ev, now).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::hosts::tests::add_host as add_test_host;
    use crate::backend::testkit;

    const NOW: i64 = 1_700_000_000;

    #[tokio::test]
    async fn create_rename_delete_and_membership() {
        let t = testkit::test_db().await;
        let db = &t.db;
        let a = create(db, &Actor::Cli, "  Web servers ", NOW).await.unwrap();
        assert_eq!(a.name, "Web servers");
        assert_eq!(create(db, &Actor::Cli, "web SERVERS", NOW).await.unwrap_err().code(), "group_name_taken");
        assert_eq!(create(db, &Actor::Cli, "   ", NOW).await.unwrap_err().code(), "invalid_input");
        assert_eq!(create(db, &Actor::Cli, &"x".repeat(65), NOW).await.unwrap_err().code(), "invalid_input");
        let b = create(db, &Actor::Cli, "Databases", NOW).await.unwrap();
        assert_eq!(rename(db, &Actor::Cli, &b.id, "web servers", NOW).await.unwrap_err().code(), "group_name_taken");
        rename(db, &Actor::Cli, &b.id, "DB", NOW).await.unwrap();
        assert!(matches!(rename(db, &Actor::Cli, "nope", "x", NOW).await, Err(BackendError::NotFound)));

        add_test_host(db, "h1", "one").await;
        set_host_groups(db, &Actor::Cli, "h1", &[a.id.clone(), b.id.clone(), a.id.clone()], NOW).await.unwrap();
        let err = set_host_groups(db, &Actor::Cli, "h1", &["missing".to_string()], NOW).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        // The refused call changed nothing.
        let mut conn = db.pool.acquire().await.unwrap();
        let names: Vec<String> = of_host(&mut conn, "h1").await.unwrap().into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["DB", "Web servers"]);
        drop(conn);
        assert!(matches!(set_host_groups(db, &Actor::Cli, "nohost", &[], NOW).await, Err(BackendError::NotFound)));

        let listed = list(db).await.unwrap();
        assert_eq!(listed.iter().map(|g| (g.name.as_str(), g.host_count)).collect::<Vec<_>>(), [("DB", 1), ("Web servers", 1)]);
        delete(db, &Actor::Cli, &b.id, NOW).await.unwrap();
        assert!(matches!(delete(db, &Actor::Cli, &b.id, NOW).await, Err(BackendError::NotFound)));
        let mut conn = db.pool.acquire().await.unwrap();
        assert_eq!(of_host(&mut conn, "h1").await.unwrap().len(), 1);
        drop(conn);
        for action in ["group.create", "group.rename", "group.delete", "host.groups_set"] {
            assert!(!audit::list_by_action(db, action).await.unwrap().is_empty(), "{action}");
        }
        assert_eq!(audit::verify(db).await.unwrap().first_bad_seq, None);
        t.cleanup().await;
    }
}
