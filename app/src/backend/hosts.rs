//! Enrolled hosts: check-ins (facts, last seen, boot id, inventory digest) and the fleet list.
//!
//! Check-ins are not audited (one per host per minute would drown the log); they are
//! authenticated by the host's certificate before they reach this module.

use sqlx::Row;

use agent::proto::{CheckIn, CheckInResponse, HostFacts};

use super::access::Scope;
use super::certs;
use super::groups;
use super::db::Db;
use super::error::{BackendError, Result};
use super::inventory;
use super::jobs;
use crate::api::dto::{HostDetail, HostQuery, HostSummary, Page, StatusFilter};

/// Facts are free text from the host: stored clipped to this many characters.
const MAX_FACT_CHARS: usize = 255;
pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 200;

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_FACT_CHARS).collect()
}

/// `(page, per_page)` with page >= 1 and per_page in 1..=200 (0 means the default, 50).
pub(crate) fn clamp_page(page: u32, per_page: u32) -> (u32, u32) {
    let per_page = if per_page == 0 { DEFAULT_PER_PAGE } else { per_page.min(MAX_PER_PAGE) };
    (page.max(1), per_page)
}

pub(crate) fn offset(page: u32, per_page: u32) -> i64 {
    (i64::from(page) - 1) * i64::from(per_page)
}

/// `%term%` for `LOWER(col) LIKE $n ESCAPE '\'`, with `\`, `%` and `_` in the term escaped.
/// Lowercased in Rust; note SQLite's LOWER folds ASCII only.
pub(crate) fn like_pattern(term: &str) -> String {
    let mut p = String::with_capacity(term.len() + 2);
    p.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Records a check-in: facts and `last_seen` every time; the inventory (digest recomputed
/// here, the agent's is not trusted) when the agent sent one. `send_inventory` asks for the
/// full inventory when the stored digest differs from the one the agent reported; `jobs`
/// carries the jobs dispatched to the host and not yet acknowledged. A new boot id settles a
/// reboot a job was waiting for.
#[tracing::instrument(skip_all, fields(host_id = %host_id))]
pub async fn record_checkin(
    db: &Db,
    host_id: &str,
    checkin: &CheckIn,
    checkin_interval_secs: u64,
    now: i64,
) -> Result<CheckInResponse> {
    let f: &HostFacts = &checkin.facts;
    let hostname = clip(f.hostname.trim());
    let mut tx = db.begin().await?;
    let row = sqlx::query(
        "UPDATE hosts SET last_seen = $1, \
         hostname = CASE WHEN $2 = '' THEN hostname ELSE $2 END, \
         os_id = $3, os_version_id = $4, os_pretty_name = $5, kernel = $6, arch = $7, \
         uptime_seconds = $8, reboot_required = $9, agent_version = $10, boot_id = $12 \
         WHERE id = $11 RETURNING inventory_digest",
    )
    .bind(now)
    .bind(&hostname)
    .bind(clip(&f.os_id))
    .bind(clip(&f.os_version_id))
    .bind(clip(&f.os_pretty_name))
    .bind(clip(&f.kernel))
    .bind(clip(&f.arch))
    .bind(i64::try_from(f.uptime_seconds).unwrap_or(i64::MAX))
    .bind(i64::from(f.reboot_required))
    .bind(clip(&f.agent_version))
    .bind(host_id)
    .bind(clip(&f.boot_id))
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(BackendError::NotFound)?;
    let mut stored_digest: String = row.try_get("inventory_digest")?;
    // A reboot a job asked for is over once the host reports a new boot id.
    let rebooted = jobs::results::observe_boot(&mut tx, host_id, &clip(&f.boot_id)).await?;
    if rebooted > 0 {
        tracing::info!(jobs = rebooted, "host is back from a job's reboot");
    }

    if let Some(inv) = &checkin.inventory {
        let counts = inventory::replace(&mut tx, host_id, inv).await?;
        let digest = inv.digest();
        sqlx::query(
            "UPDATE hosts SET inventory_digest = $1, inventory_at = $2, package_manager = $3, \
             installed_count = $4, pending_updates = $5, security_updates = $6 WHERE id = $7",
        )
        .bind(&digest)
        .bind(now)
        .bind(inventory::manager_name(inv.manager))
        .bind(counts.installed)
        .bind(counts.pending)
        .bind(counts.security)
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        if digest != stored_digest {
            tracing::info!(
                installed = counts.installed,
                pending = counts.pending,
                security = counts.security,
                "inventory changed"
            );
        }
        stored_digest = digest;
    }
    tx.commit().await?;
    Ok(CheckInResponse {
        send_inventory: stored_digest != checkin.inventory_digest,
        next_checkin_seconds: checkin_interval_secs,
        // Dispatched and not yet acknowledged: re-sent until the agent says `Received`.
        jobs: jobs::dispatch::pending_for_host(db, host_id, now).await?,
    })
}

const SUMMARY_COLUMNS: &str =
    "id, hostname, os_pretty_name, kernel, arch, last_seen, pending_updates, security_updates, reboot_required";

fn summary(r: &sqlx::any::AnyRow, offline_after_secs: i64, now: i64) -> Result<HostSummary> {
    let last_seen: Option<i64> = r.try_get("last_seen")?;
    Ok(HostSummary {
        id: r.try_get("id")?,
        hostname: r.try_get("hostname")?,
        os_pretty_name: r.try_get("os_pretty_name")?,
        kernel: r.try_get("kernel")?,
        arch: r.try_get("arch")?,
        last_seen,
        online: last_seen.is_some_and(|t| t >= now - offline_after_secs),
        pending_updates: r.try_get("pending_updates")?,
        security_updates: r.try_get("security_updates")?,
        reboot_required: r.try_get::<i64, _>("reboot_required")? != 0,
    })
}

enum Arg {
    Int(i64),
    Text(String),
}

/// One page of hosts, filtered and ordered by hostname, with the total count of matches.
/// Cut to `scope`: the count, the page and the search only ever see hosts in scope.
pub async fn list(db: &Db, scope: &Scope, q: &HostQuery, offline_after_secs: i64, now: i64) -> Result<Page<HostSummary>> {
    let (page, per_page) = clamp_page(q.page, q.per_page);
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    if let Some((cond, user)) = scope.host_condition("hosts.id", args.len() + 1) {
        args.push(Arg::Text(user));
        conds.push(cond);
    }
    let search = q.search.trim();
    if !search.is_empty() {
        args.push(Arg::Text(like_pattern(search)));
        let n = args.len();
        conds.push(format!(
            "(LOWER(hostname) LIKE ${n} ESCAPE '\\' OR LOWER(os_pretty_name) LIKE ${n} ESCAPE '\\' \
             OR LOWER(kernel) LIKE ${n} ESCAPE '\\')"
        ));
    }
    match q.status {
        StatusFilter::All => {}
        StatusFilter::Online => {
            args.push(Arg::Int(now - offline_after_secs));
            conds.push(format!("(last_seen IS NOT NULL AND last_seen >= ${})", args.len()));
        }
        StatusFilter::Offline => {
            args.push(Arg::Int(now - offline_after_secs));
            conds.push(format!("(last_seen IS NULL OR last_seen < ${})", args.len()));
        }
    }
    if q.security_only {
        conds.push("security_updates > 0".into());
    }
    if q.reboot_only {
        conds.push("reboot_required <> 0".into());
    }
    let where_sql = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };

    let count_sql = format!("SELECT COUNT(*) AS n FROM hosts{where_sql}");
    let mut count = sqlx::query(&count_sql);
    for a in &args {
        count = match a {
            Arg::Int(i) => count.bind(*i),
            Arg::Text(s) => count.bind(s.as_str()),
        };
    }
    let total: i64 = count.fetch_one(&db.pool).await?.try_get("n")?;

    let n = args.len();
    let rows_sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM hosts{where_sql} ORDER BY LOWER(hostname), hostname, id LIMIT ${} OFFSET ${}",
        n + 1,
        n + 2
    );
    let mut rows = sqlx::query(&rows_sql);
    for a in &args {
        rows = match a {
            Arg::Int(i) => rows.bind(*i),
            Arg::Text(s) => rows.bind(s.as_str()),
        };
    }
    let rows = rows.bind(i64::from(per_page)).bind(offset(page, per_page)).fetch_all(&db.pool).await?;
    let items = rows.iter().map(|r| summary(r, offline_after_secs, now)).collect::<Result<Vec<_>>>()?;
    Ok(Page { items, total, page, per_page })
}

/// One host, or `NotFound` when it does not exist or is outside `scope`.
pub async fn get(db: &Db, scope: &Scope, host_id: &str, offline_after_secs: i64, now: i64) -> Result<HostDetail> {
    let mut conn = db.pool.acquire().await?;
    scope.check_host(&mut conn, host_id).await?;
    let groups = groups::of_host(&mut conn, host_id).await?;
    drop(conn);
    let r = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS}, os_id, os_version_id, uptime_seconds, agent_version, package_manager, \
         enrolled_at, installed_count FROM hosts WHERE id = $1"
    ))
    .bind(host_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(BackendError::NotFound)?;
    let (cert_serial, cert_not_after) = certs::current_for_host(db, host_id).await?.unwrap_or_default();
    Ok(HostDetail {
        summary: summary(&r, offline_after_secs, now)?,
        os_id: r.try_get("os_id")?,
        os_version_id: r.try_get("os_version_id")?,
        uptime_seconds: r.try_get("uptime_seconds")?,
        agent_version: r.try_get("agent_version")?,
        package_manager: r.try_get("package_manager")?,
        enrolled_at: r.try_get("enrolled_at")?,
        installed_count: r.try_get("installed_count")?,
        cert_serial,
        cert_not_after,
        groups,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::testkit;
    use agent::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

    const NOW: i64 = 1_800_000_000;

    pub(crate) async fn add_host(db: &Db, id: &str, hostname: &str) {
        sqlx::query("INSERT INTO hosts (id, hostname, enrolled_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(hostname)
            .bind(NOW - 1000)
            .execute(&db.pool)
            .await
            .unwrap();
    }

    pub(crate) fn facts(hostname: &str, reboot: bool) -> HostFacts {
        HostFacts {
            hostname: hostname.into(),
            os_id: "debian".into(),
            os_version_id: "12".into(),
            os_pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-18-amd64".into(),
            arch: "x86_64".into(),
            uptime_seconds: 3600,
            reboot_required: reboot,
            agent_version: "0.1.0".into(),
            boot_id: String::new(),
        }
    }

    pub(crate) fn inventory(n: usize, security: usize) -> Inventory {
        Inventory {
            manager: PackageManager::Apt,
            installed: (0..n)
                .map(|i| InstalledPackage {
                    name: format!("pkg{i:05}"),
                    version: format!("1.{i}"),
                    arch: "amd64".into(),
                })
                .collect(),
            updates: (0..security + 2)
                .map(|i| PendingUpdate {
                    name: format!("pkg{i:05}"),
                    arch: "amd64".into(),
                    current_version: format!("1.{i}"),
                    candidate_version: format!("1.{i}+1"),
                    source: if i < security { "bookworm-security".into() } else { "bookworm-updates".into() },
                    security: i < security,
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn checkin_inventory_digest_and_detail() {
        let t = testkit::test_db().await;
        let db = &t.db;
        add_host(db, "h1", "enrolled-name").await;
        let inv = inventory(3000, 3);

        // First check-in without inventory: the server has none, so it asks for it.
        let c = CheckIn { facts: facts("web-01", false), inventory_digest: inv.digest(), inventory: None };
        let r = record_checkin(db, "h1", &c, 60, NOW).await.unwrap();
        assert!(r.send_inventory);
        assert_eq!(r.next_checkin_seconds, 60);

        // With inventory (and a lying digest in the body): the stored digest is recomputed.
        let c = CheckIn { facts: facts("web-01", true), inventory_digest: inv.digest(), inventory: Some(inv.clone()) };
        let started = std::time::Instant::now();
        let r = record_checkin(db, "h1", &c, 90, NOW + 60).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "3000 packages took {:?}", started.elapsed());
        assert!(!r.send_inventory);
        assert_eq!(r.next_checkin_seconds, 90);
        let lying =
            CheckIn { facts: facts("web-01", true), inventory_digest: "abc".into(), inventory: Some(inv.clone()) };
        assert!(record_checkin(db, "h1", &lying, 60, NOW + 61).await.unwrap().send_inventory);

        // Digest only, matching: nothing asked.
        let c = CheckIn { facts: facts("web-01", true), inventory_digest: inv.digest(), inventory: None };
        assert!(!record_checkin(db, "h1", &c, 60, NOW + 120).await.unwrap().send_inventory);
        // Digest changed on the agent: ask for it.
        let c = CheckIn { facts: facts("web-01", true), inventory_digest: "other".into(), inventory: None };
        assert!(record_checkin(db, "h1", &c, 60, NOW + 180).await.unwrap().send_inventory);

        let d = get(db, &Scope::All, "h1", 300, NOW + 200).await.unwrap();
        assert_eq!(d.summary.hostname, "web-01");
        assert_eq!(d.summary.last_seen, Some(NOW + 180));
        assert!(d.summary.online);
        assert!(d.summary.reboot_required);
        assert_eq!(d.summary.pending_updates, 5);
        assert_eq!(d.summary.security_updates, 3);
        assert_eq!(d.installed_count, 3000);
        assert_eq!(d.package_manager, "apt");
        assert_eq!(d.os_id, "debian");
        assert_eq!(d.uptime_seconds, 3600);
        assert_eq!(d.cert_serial, "");
        assert!(!get(db, &Scope::All, "h1", 300, NOW + 1000).await.unwrap().summary.online);

        // Inventory replaced, not appended.
        let smaller = inventory(10, 0);
        let c = CheckIn {
            facts: facts("web-01", false),
            inventory_digest: smaller.digest(),
            inventory: Some(smaller.clone()),
        };
        assert!(!record_checkin(db, "h1", &c, 60, NOW + 240).await.unwrap().send_inventory);
        let d = get(db, &Scope::All, "h1", 300, NOW + 240).await.unwrap();
        assert_eq!((d.installed_count, d.summary.pending_updates, d.summary.security_updates), (10, 2, 0));
        assert_eq!(inventory::installed(db, "h1", "", 1, 200).await.unwrap().total, 10);
        assert_eq!(inventory::updates(db, "h1").await.unwrap().len(), 2);

        assert!(matches!(record_checkin(db, "nope", &c, 60, NOW).await, Err(BackendError::NotFound)));
        assert!(matches!(get(db, &Scope::All, "nope", 300, NOW).await, Err(BackendError::NotFound)));
        t.cleanup().await;
    }

    #[tokio::test]
    async fn list_filters_and_pagination() {
        let t = testkit::test_db().await;
        let db = &t.db;
        // 12 hosts: odd ones online, every third needs a reboot, every fourth has security updates.
        for i in 0..12 {
            let id = format!("h{i:02}");
            add_host(db, &id, &format!("node-{i:02}")).await;
            let inv = inventory(5, if i % 4 == 0 { 1 } else { 0 });
            let c = CheckIn {
                facts: facts(&format!("Node-{i:02}"), i % 3 == 0),
                inventory_digest: String::new(),
                inventory: Some(inv),
            };
            let at = if i % 2 == 1 { NOW } else { NOW - 10_000 };
            record_checkin(db, &id, &c, 60, at).await.unwrap();
        }
        add_host(db, "never", "zz_never%seen").await;
        let q = |f: fn(&mut HostQuery)| {
            let mut q = HostQuery::default();
            f(&mut q);
            q
        };

        let all = list(db, &Scope::All, &HostQuery::default(), 300, NOW).await.unwrap();
        assert_eq!(all.total, 13);
        assert_eq!((all.page, all.per_page), (1, 50));
        assert_eq!(all.items.len(), 13);
        assert_eq!(all.items[0].hostname, "Node-00");
        assert_eq!(all.items[12].hostname, "zz_never%seen");

        let p = list(
            db, &Scope::All,
            &q(|q| {
                q.page = 3;
                q.per_page = 5
            }),
            300,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!((p.total, p.items.len(), p.page), (13, 3, 3));
        assert_eq!(p.items[0].hostname, "Node-10");
        let p = list(
            db, &Scope::All,
            &q(|q| {
                q.page = 9;
                q.per_page = 5000
            }),
            300,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!((p.per_page, p.items.len(), p.total), (200, 0, 13));

        let online = list(db, &Scope::All, &q(|q| q.status = StatusFilter::Online), 300, NOW).await.unwrap();
        assert_eq!(online.total, 6);
        assert!(online.items.iter().all(|h| h.online));
        let offline = list(db, &Scope::All, &q(|q| q.status = StatusFilter::Offline), 300, NOW).await.unwrap();
        assert_eq!(offline.total, 7);
        assert!(offline.items.iter().all(|h| !h.online));

        let sec = list(db, &Scope::All, &q(|q| q.security_only = true), 300, NOW).await.unwrap();
        assert_eq!(sec.total, 3);
        let reboot = list(db, &Scope::All, &q(|q| q.reboot_only = true), 300, NOW).await.unwrap();
        assert_eq!(reboot.total, 4);
        let both = list(
            db, &Scope::All,
            &q(|q| {
                q.reboot_only = true;
                q.security_only = true;
                q.status = StatusFilter::Offline
            }),
            300,
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(both.items.iter().map(|h| h.hostname.as_str()).collect::<Vec<_>>(), vec!["Node-00"]);

        // Case-insensitive search over hostname, OS and kernel; LIKE wildcards are literal.
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "NODE-1".into()), 300, NOW).await.unwrap().total, 2);
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "bookworm".into()), 300, NOW).await.unwrap().total, 12);
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "6.1.0-18".into()), 300, NOW).await.unwrap().total, 12);
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "%".into()), 300, NOW).await.unwrap().total, 1);
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "_".into()), 300, NOW).await.unwrap().total, 1);
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "e-0_".into()), 300, NOW).await.unwrap().total, 0);
        assert_eq!(list(db, &Scope::All, &q(|q| q.search = "it's".into()), 300, NOW).await.unwrap().total, 0);
        t.cleanup().await;
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("A_b%c\\"), "%a\\_b\\%c\\\\%");
        assert_eq!(clamp_page(0, 0), (1, 50));
        assert_eq!(clamp_page(2, 999), (2, 200));
        assert_eq!(offset(3, 5), 10);
    }
}
