//! Installed packages and pending updates per host, replaced wholesale when the agent sends
//! a new inventory (inside the check-in transaction).
//!
//! Inserts are multi-row `INSERT ... VALUES (...), (...)` in chunks of 200 rows (at most 1,400
//! parameters: far below SQLite's 32,766 and PostgreSQL's 65,535), so a 3,000-package host
//! costs about 15 statements.

use std::collections::BTreeSet;

use sqlx::Row;

use agent::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

use super::db::{Conn, Db};
use super::error::{BackendError, Result};
use super::hosts::{clamp_page, like_pattern, offset};
use crate::api::dto::{PackageRow, Page, UpdateRow};

const CHUNK_ROWS: usize = 200;
const MAX_ITEMS: usize = 100_000;
const MAX_FIELD_BYTES: usize = 512;

/// What a replaced inventory counts (after removing exact duplicates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub installed: i64,
    pub pending: i64,
    pub security: i64,
}

pub fn manager_name(m: PackageManager) -> &'static str {
    match m {
        PackageManager::Apt => "apt",
        PackageManager::Dnf => "dnf",
        PackageManager::Zypper => "zypper",
    }
}

fn check_field(s: &str) -> Result<()> {
    if s.len() > MAX_FIELD_BYTES || s.chars().any(char::is_control) {
        return Err(BackendError::Invalid(format!(
            "inventory fields must be at most {MAX_FIELD_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

fn validate(inv: &Inventory) -> Result<()> {
    if inv.installed.len() > MAX_ITEMS || inv.updates.len() > MAX_ITEMS {
        return Err(BackendError::Invalid(format!("inventory lists must have at most {MAX_ITEMS} entries")));
    }
    for p in &inv.installed {
        for f in [&p.name, &p.version, &p.arch] {
            check_field(f)?;
        }
    }
    for u in &inv.updates {
        for f in [&u.name, &u.arch, &u.current_version, &u.candidate_version, &u.source] {
            check_field(f)?;
        }
    }
    Ok(())
}

fn values_sql(table_cols: &str, cols: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table_cols} VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Replaces the host's packages and updates with `inv` (caller's transaction).
pub async fn replace(conn: &mut Conn, host_id: &str, inv: &Inventory) -> Result<Counts> {
    validate(inv)?;
    // Exact duplicates would violate the primary key; the set also sorts them.
    let installed: BTreeSet<&InstalledPackage> = inv.installed.iter().collect();
    let updates: BTreeSet<&PendingUpdate> = inv.updates.iter().collect();
    let installed: Vec<_> = installed.into_iter().collect();
    let updates: Vec<_> = updates.into_iter().collect();

    sqlx::query("DELETE FROM host_packages WHERE host_id = $1").bind(host_id).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM host_updates WHERE host_id = $1").bind(host_id).execute(&mut *conn).await?;

    for chunk in installed.chunks(CHUNK_ROWS) {
        let sql = values_sql("host_packages (host_id, name, version, arch)", 4, chunk.len());
        let mut q = sqlx::query(&sql);
        for p in chunk {
            q = q.bind(host_id).bind(p.name.as_str()).bind(p.version.as_str()).bind(p.arch.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    for chunk in updates.chunks(CHUNK_ROWS) {
        let sql = values_sql(
            "host_updates (host_id, name, arch, current_version, candidate_version, source, security)",
            7,
            chunk.len(),
        );
        let mut q = sqlx::query(&sql);
        for u in chunk {
            q = q
                .bind(host_id)
                .bind(u.name.as_str())
                .bind(u.arch.as_str())
                .bind(u.current_version.as_str())
                .bind(u.candidate_version.as_str())
                .bind(u.source.as_str())
                .bind(i64::from(u.security));
        }
        q.execute(&mut *conn).await?;
    }
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    Ok(Counts {
        installed: count(installed.len()),
        pending: count(updates.len()),
        security: count(updates.iter().filter(|u| u.security).count()),
    })
}

async fn ensure_host(db: &Db, host_id: &str) -> Result<()> {
    sqlx::query("SELECT id FROM hosts WHERE id = $1")
        .bind(host_id)
        .fetch_optional(&db.pool)
        .await?
        .map(|_| ())
        .ok_or(BackendError::NotFound)
}

/// Installed packages of a host ordered by name, optionally filtered by a case-insensitive
/// substring of the name.
pub async fn installed(db: &Db, host_id: &str, search: &str, page: u32, per_page: u32) -> Result<Page<PackageRow>> {
    ensure_host(db, host_id).await?;
    let (page, per_page) = clamp_page(page, per_page);
    let search = search.trim();
    let (filter, pattern) = if search.is_empty() {
        ("", None)
    } else {
        (" AND LOWER(name) LIKE $2 ESCAPE '\\'", Some(like_pattern(search)))
    };
    let count_sql = format!("SELECT COUNT(*) AS n FROM host_packages WHERE host_id = $1{filter}");
    let mut count = sqlx::query(&count_sql).bind(host_id);
    if let Some(p) = &pattern {
        count = count.bind(p.as_str());
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;

    let (limit_n, offset_n) = if pattern.is_some() { (3, 4) } else { (2, 3) };
    let rows_sql = format!(
        "SELECT name, version, arch FROM host_packages WHERE host_id = $1{filter} \
         ORDER BY name, arch, version LIMIT ${limit_n} OFFSET ${offset_n}"
    );
    let mut rows = sqlx::query(&rows_sql).bind(host_id);
    if let Some(p) = &pattern {
        rows = rows.bind(p.as_str());
    }
    let rows = rows.bind(i64::from(per_page)).bind(offset(page, per_page)).fetch_all(&db.pool).await?;
    let items = rows
        .iter()
        .map(|r| Ok(PackageRow { name: r.try_get("name")?, version: r.try_get("version")?, arch: r.try_get("arch")? }))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page { items, total, page, per_page })
}

/// Pending updates of a host: security updates first, then by name.
pub async fn updates(db: &Db, host_id: &str) -> Result<Vec<UpdateRow>> {
    ensure_host(db, host_id).await?;
    let rows = sqlx::query(
        "SELECT name, arch, current_version, candidate_version, source, security FROM host_updates \
         WHERE host_id = $1 ORDER BY security DESC, name, arch",
    )
    .bind(host_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(UpdateRow {
                name: r.try_get("name")?,
                arch: r.try_get("arch")?,
                current_version: r.try_get("current_version")?,
                candidate_version: r.try_get("candidate_version")?,
                source: r.try_get("source")?,
                security: r.try_get::<i64, _>("security")? != 0,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::backend::hosts::tests::{add_host, inventory};
    use crate::backend::testkit;

    #[tokio::test]
    async fn replace_dedups_and_pages_installed_packages() {
        let t = testkit::test_db().await;
        let db = &t.db;
        add_host(db, "h1", "one").await;
        add_host(db, "h2", "two").await;
        let mut inv = inventory(450, 2);
        inv.installed.push(inv.installed[7].clone());
        inv.installed.push(InstalledPackage { name: "Lib_Foo%".into(), version: "2".into(), arch: "all".into() });
        // Same name and arch, two versions (e.g. kernels): both kept.
        inv.installed.push(InstalledPackage { name: "pkg00007".into(), version: "9".into(), arch: "amd64".into() });
        let mut tx = db.begin().await.unwrap();
        let counts = replace(&mut tx, "h1", &inv).await.unwrap();
        replace(&mut tx, "h2", &inventory(3, 0)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(counts, Counts { installed: 452, pending: 4, security: 2 });

        let p = installed(db, "h1", "", 3, 200).await.unwrap();
        assert_eq!((p.total, p.items.len(), p.page, p.per_page), (452, 52, 3, 200));
        let p = installed(db, "h1", "PKG0000", 1, 0).await.unwrap();
        assert_eq!(p.total, 11);
        assert_eq!(p.items[7], PackageRow { name: "pkg00007".into(), version: "1.7".into(), arch: "amd64".into() });
        assert_eq!(p.items[8].version, "9");
        assert_eq!(installed(db, "h1", "b_f", 1, 10).await.unwrap().total, 1);
        assert_eq!(installed(db, "h1", "o%", 1, 10).await.unwrap().total, 1);
        assert_eq!(installed(db, "h1", "x", 1, 10).await.unwrap().total, 0);

        let ups = updates(db, "h1").await.unwrap();
        assert_eq!(ups.len(), 4);
        assert!(ups[0].security && ups[1].security && !ups[2].security);
        assert_eq!(ups[0].source, "bookworm-security");
        assert!(matches!(installed(db, "nope", "", 1, 10).await, Err(BackendError::NotFound)));

        // Oversized field refused.
        let mut bad = inventory(1, 0);
        bad.installed[0].name = "x".repeat(600);
        let mut tx = db.begin().await.unwrap();
        assert!(matches!(replace(&mut tx, "h1", &bad).await, Err(BackendError::Invalid(_))));
        drop(tx);
        assert_eq!(installed(db, "h2", "", 1, 10).await.unwrap().total, 3);
        t.cleanup().await;
    }

    #[test]
    fn values_sql_numbers_placeholders() {
        assert_eq!(values_sql("t (a, b)", 2, 2), "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
    }
}
