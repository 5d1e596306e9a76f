//! Server-side state of a WebAuthn ceremony between its start and its finish.
//!
//! A row is keyed by `(kind, binding)`: the binding names who started the ceremony (a session
//! family, the hash of a pending-login token, or the hash of a browser's ceremony cookie), so
//! the finish must come from the same party. Starting again replaces the earlier row (its
//! challenge dies). [`take`] consumes the row with one `DELETE ... RETURNING` in its own
//! committed transaction *before* the response is verified: a challenge is spent even when
//! its verification fails, and of two concurrent finishes exactly one gets the state.

use sqlx::Row;

use crate::backend::db::{self, Conn, Db};
use crate::backend::error::{BackendError, Result};

/// How long a started ceremony may be finished (webauthn-rs' authenticator timeout).
pub const TTL_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Adding a passkey to a known user.
    Register,
    /// Second factor of a known user (allow-list of their credentials).
    Authenticate,
    /// Passwordless login: the user is named by the credential.
    Discover,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Register => "register",
            Kind::Authenticate => "authenticate",
            Kind::Discover => "discover",
        }
    }
}

/// A consumed ceremony.
#[derive(Debug)]
pub struct Taken {
    pub user_id: Option<String>,
    pub state: String,
}

/// Stores a new ceremony for `(kind, binding)`, replacing an earlier one; removes expired rows.
pub async fn put(conn: &mut Conn, kind: Kind, binding: &str, user_id: Option<&str>, state: &str, now: i64) -> Result<()> {
    sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1").bind(now).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM webauthn_ceremonies WHERE kind = $1 AND binding = $2")
        .bind(kind.as_str())
        .bind(binding)
        .execute(&mut *conn)
        .await?;
    let res = sqlx::query(
        "INSERT INTO webauthn_ceremonies (id, kind, binding, user_id, state, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(db::new_id())
    .bind(kind.as_str())
    .bind(binding)
    .bind(user_id)
    .bind(state)
    .bind(now)
    .bind(now + TTL_SECS)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(()),
        // A concurrent start for the same binding won the insert.
        Err(e) if db::is_unique_violation(&e) => Err(BackendError::Conflict("ceremony_in_progress")),
        Err(e) => Err(e.into()),
    }
}

/// Consumes the ceremony of `(kind, binding)`: `None` when there is none or it expired.
pub async fn take(db: &Db, kind: Kind, binding: &str, now: i64) -> Result<Option<Taken>> {
    let mut tx = db.begin().await?;
    let row = sqlx::query(
        "DELETE FROM webauthn_ceremonies WHERE kind = $1 AND binding = $2 RETURNING user_id, state, expires_at",
    )
    .bind(kind.as_str())
    .bind(binding)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(row) = row else { return Ok(None) };
    let expires_at: i64 = row.try_get("expires_at")?;
    if expires_at <= now {
        return Ok(None);
    }
    Ok(Some(Taken { user_id: row.try_get("user_id")?, state: row.try_get("state")? }))
}

/// Drops every open ceremony of a user (MFA reset).
pub async fn clear_user(conn: &mut Conn, user_id: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM webauthn_ceremonies WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?.rows_affected())
}
