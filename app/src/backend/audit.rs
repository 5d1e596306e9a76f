//! Tamper-evident audit log: every row carries `prev_hash` and
//! `row_hash = SHA-256(canonical JSON of [seq, at, actor, action, target, source_ip, details, prev_hash])`.
//!
//! Ordering rule: `append` first bumps the single `audit_head` row (`UPDATE ... RETURNING`),
//! which takes that row's write lock for the rest of the transaction. Concurrent appends on
//! PostgreSQL therefore queue behind each other and each sees the latest hash; SQLite
//! serialises writers anyway. Call `append` inside the same transaction as the mutation it
//! records.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::db::{Conn, Db};
use super::error::{BackendError, Result};

/// Who did something. Passed into every mutation; used for authorization and audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    User { id: String, username: String },
    Host { id: String },
    /// Someone on the server's shell (the `patch-manager` CLI).
    Cli,
    /// The server itself (workers, start-up).
    System,
    /// Not (yet) authenticated: failed logins, enrollment attempts.
    Anonymous,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::User { username, .. } => format!("user:{username}"),
            Actor::Host { id } => format!("host:{id}"),
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

tokio::task_local! {
    /// Peer address of the request being served, set by the listeners for the whole request.
    static REQUEST_IP: Option<String>;
}

/// Runs `fut` (one request) with `ip` as the source address of every audit row it appends
/// without naming one itself, so a mutation made on behalf of a user or host always records
/// where the request came from.
pub async fn with_request_ip<F: std::future::Future>(ip: Option<String>, fut: F) -> F::Output {
    REQUEST_IP.scope(ip, fut).await
}

fn request_ip() -> Option<String> {
    REQUEST_IP.try_with(Clone::clone).ok().flatten()
}

pub struct Event<'a> {
    pub actor: &'a Actor,
    /// Dotted verb, e.g. `login.success`, `enroll_token.create`, `cert.issue`.
    pub action: &'a str,
    /// What it was done to, e.g. `user:<id>`, `host:<id>`, `cert:<serial>`.
    pub target: &'a str,
    /// `None`: the address of the request being served, if any (see [`with_request_ip`]).
    pub source_ip: Option<&'a str>,
    /// Extra facts; never secrets.
    pub details: serde_json::Value,
}

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source_ip: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub row_hash: String,
}

#[allow(clippy::too_many_arguments)] // the canonical field list, in order
fn row_hash(seq: i64, at: i64, actor: &str, action: &str, target: &str, ip: Option<&str>, details: &str, prev: &str) -> String {
    let canonical = serde_json::json!([seq, at, actor, action, target, ip, details, prev]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// Appends one row in the caller's transaction.
pub async fn append(conn: &mut Conn, ev: Event<'_>, now: i64) -> Result<i64> {
    let head = sqlx::query("UPDATE audit_head SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq, last_hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("last_seq")?;
    let prev: String = head.try_get("last_hash")?;
    let actor = ev.actor.label();
    let source_ip = ev.source_ip.map(str::to_owned).or_else(request_ip);
    // serde_json's map is ordered by key, so this is canonical.
    let details = ev.details.to_string();
    let hash = row_hash(seq, now, &actor, ev.action, ev.target, source_ip.as_deref(), &details, &prev);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, source_ip, details, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(now)
    .bind(&actor)
    .bind(ev.action)
    .bind(ev.target)
    .bind(source_ip.as_deref())
    .bind(&details)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET last_hash = $1 WHERE id = 1").bind(&hash).execute(&mut *conn).await?;
    tracing::info!(target: "security", seq, actor = %actor, action = ev.action, target_obj = ev.target, "audit");
    Ok(seq)
}

/// Appends one row in its own transaction (for events that change nothing else, such as a
/// failed login).
pub async fn append_alone(db: &Db, ev: Event<'_>, now: i64) -> Result<i64> {
    let mut tx = db.begin().await?;
    let seq = append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(seq)
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        source_ip: r.try_get("source_ip")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        row_hash: r.try_get("row_hash")?,
    })
}

/// Newest first.
pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<AuditRow>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, target, source_ip, details, prev_hash, row_hash FROM audit_log \
         ORDER BY seq DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn list_by_action(db: &Db, action: &str) -> Result<Vec<AuditRow>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, target, source_ip, details, prev_hash, row_hash FROM audit_log \
         WHERE action = $1 ORDER BY seq",
    )
    .bind(action)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows: i64,
    /// First row whose hash or link does not match, if any.
    pub first_bad_seq: Option<i64>,
}

/// Recomputes every row's hash and link, and checks the head matches the last row.
pub async fn verify(db: &Db) -> Result<Verification> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, action, target, source_ip, details, prev_hash, row_hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut prev = GENESIS_HASH.to_string();
    let mut expect_seq = 1;
    let mut count = 0;
    for r in &rows {
        let a = from_row(r)?;
        count += 1;
        let h = row_hash(a.seq, a.at, &a.actor, &a.action, &a.target, a.source_ip.as_deref(), &a.details, &a.prev_hash);
        if a.seq != expect_seq || a.prev_hash != prev || a.row_hash != h {
            return Ok(Verification { rows: count, first_bad_seq: Some(a.seq) });
        }
        prev = a.row_hash;
        expect_seq += 1;
    }
    let head = sqlx::query("SELECT last_seq, last_hash FROM audit_head WHERE id = 1").fetch_one(&db.pool).await?;
    let last_seq: i64 = head.try_get("last_seq")?;
    let last_hash: String = head.try_get("last_hash")?;
    if last_seq != expect_seq - 1 || last_hash != prev {
        return Ok(Verification { rows: count, first_bad_seq: Some(expect_seq) });
    }
    Ok(Verification { rows: count, first_bad_seq: None })
}

impl From<Verification> for Result<()> {
    fn from(v: Verification) -> Self {
        match v.first_bad_seq {
            None => Ok(()),
            Some(seq) => Err(BackendError::Internal(format!("audit chain broken at seq {seq}"))),
        }
    }
}
