//! Login sessions: EdDSA access tokens (15 min) plus rotating refresh tokens.
//!
//! A login starts a session *family* (`sessions.family_id`, which is also the access token's
//! `sid`). Each refresh token is `pmrt_` + 32 random bytes (base64url), stored only as its
//! SHA-256 hex. Refreshing rotates: the presented token is marked `rotated_at` and a successor
//! row is inserted in the same transaction. Limits: 1 h idle (sliding, `last_used_at`), 12 h
//! absolute from login (`expires_at`, copied to successors).
//!
//! Reuse detection: presenting an already rotated token means two parties hold the family's
//! tokens; the whole family is revoked (audited `session.refresh_reuse`), so the successor
//! stops working too.
//!
//! Ordering rule on PostgreSQL (READ COMMITTED): the rotating `UPDATE` takes the old row's lock,
//! so a concurrent refresh with the same token waits and then matches 0 rows (exactly one
//! wins). A family revocation repeats its `UPDATE` until it matches nothing, so a successor
//! committed by a concurrent refresh while we waited (invisible to the first statement's
//! snapshot) is revoked as well.
//!
//! # Layout
//! - `keys`: Ed25519 signing keys in the database (rotation, overlap), access and pending JWTs.
//! - `cookies`: `Set-Cookie` builders and the `Cookie` reader.
//! - `setup`: the first-run setup token and first admin.

mod cookies;
mod keys;
mod setup;
#[cfg(test)]
pub(crate) mod testenv;

pub use cookies::{clear_cookie, read_cookie, set_cookie, ACCESS_COOKIE, PENDING_COOKIE, REFRESH_COOKIE, WEBAUTHN_COOKIE};
pub use keys::{
    issue_pending, rotate_now, verify_access, verify_pending, KeySet, ACCESS_TTL_SECS, ACTIVATION_DELAY_SECS, AUD_ACCESS,
    AUD_PENDING, DEFAULT_ROTATION_DAYS, ISSUER, KEY_REFRESH_SECS, OVERLAP_SECS, PENDING_TTL_SECS, STAGE_ENROL,
    STAGE_ENROLL_TOTP, STAGE_SECOND_FACTOR, STAGE_TOTP,
};
pub use setup::{setup_admin, setup_token_issue, SETUP_TOKEN_KEY, SETUP_TOKEN_TTL_SECS};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::audit::{self, Actor, Event};
use super::db::{self, Conn};
use super::error::{BackendError, Result};
use super::state::AppState;
use super::users::{self, User};
use crate::api::dto::{Me, Role};

pub const REFRESH_PREFIX: &str = "pmrt_";
/// Sliding idle limit of a refresh token (and its cookie's max-age).
pub const REFRESH_IDLE_SECS: i64 = 3600;
/// Absolute session length from login.
pub const SESSION_MAX_SECS: i64 = 12 * 3600;
/// A refresh token rotated less than this long ago by a concurrent request (a browser firing
/// several requests just after its access token expired) is not treated as a replay: see
/// [`Refreshed::Joined`]. Any later presentation revokes the whole family.
pub const RACE_GRACE_SECS: i64 = 5;

/// Outcome of presenting a refresh token.
#[derive(Debug)]
pub enum Refreshed {
    /// This request rotated the token: set both cookies.
    Rotated(Principal, SessionTokens),
    /// A concurrent request rotated this very token under [`RACE_GRACE_SECS`] ago. This request
    /// is authenticated with a fresh access token only (`access`, `access_max_age`); the
    /// winner's response carries the one successor refresh token, so the family never forks.
    Joined { principal: Principal, access: String, access_max_age: i64 },
}

impl Refreshed {
    pub fn principal(&self) -> &Principal {
        match self {
            Refreshed::Rotated(p, _) | Refreshed::Joined { principal: p, .. } => p,
        }
    }

    /// The rotated pair, or None when this request joined a concurrent rotation.
    pub fn into_rotated(self) -> Option<(Principal, SessionTokens)> {
        match self {
            Refreshed::Rotated(p, t) => Some((p, t)),
            Refreshed::Joined { .. } => None,
        }
    }
}

const INVALID_REFRESH: BackendError = BackendError::Unauthorized("invalid_refresh");

/// The authenticated user behind a request (from a verified access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    /// Session family id.
    pub session_id: String,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor::User { id: self.user_id.clone(), username: self.username.clone() }
    }

    pub fn me(&self) -> Me {
        Me { user_id: self.user_id.clone(), username: self.username.clone(), role: self.role.clone() }
    }
}

/// Tokens to put in cookies. `Debug` redacts them.
#[derive(Clone)]
pub struct SessionTokens {
    pub access: String,
    pub access_max_age: i64,
    pub refresh: String,
    pub refresh_max_age: i64,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("access", &"<redacted>")
            .field("access_max_age", &self.access_max_age)
            .field("refresh", &"<redacted>")
            .field("refresh_max_age", &self.refresh_max_age)
            .finish()
    }
}

/// `prefix` + 32 random bytes, base64url.
pub(crate) fn random_token(prefix: &str) -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("{prefix}{}", B64.encode(raw))
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn tokens(state: &AppState, principal: &Principal, refresh: String, expires_at: i64, now: i64) -> Result<SessionTokens> {
    Ok(SessionTokens {
        access: keys::issue_access(&state.keys, principal, now)?,
        access_max_age: ACCESS_TTL_SECS,
        refresh,
        refresh_max_age: REFRESH_IDLE_SECS.min(expires_at - now).max(0),
    })
}

async fn insert_session(
    conn: &mut Conn,
    user_id: &str,
    family_id: &str,
    refresh_hash: &str,
    expires_at: i64,
    source_ip: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, user_id, family_id, refresh_hash, created_at, last_used_at, expires_at, ip) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
    )
    .bind(db::new_id())
    .bind(user_id)
    .bind(family_id)
    .bind(refresh_hash)
    .bind(now)
    .bind(expires_at)
    .bind(source_ip)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Revokes every live token of a family; see the module docs for why it loops.
async fn revoke_family(conn: &mut Conn, family_id: &str, now: i64) -> Result<u64> {
    let mut total = 0;
    loop {
        let n = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(family_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Revokes every live session of a user (password change, MFA reset, role change, disabling),
/// in the caller's transaction; the access tokens die with them (`access::resolve`).
pub async fn revoke_user(conn: &mut Conn, user_id: &str, now: i64) -> Result<u64> {
    let n = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(n)
}

/// How a user proved who they are; recorded in `login.success` (and in failures' `stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    PasswordTotp,
    PasswordPasskey,
    /// Passwordless: a discoverable passkey with user verification.
    Passkey,
    PasswordRecoveryCode,
}

impl LoginMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::PasswordTotp => "password+totp",
            LoginMethod::PasswordPasskey => "password+passkey",
            LoginMethod::Passkey => "passkey",
            LoginMethod::PasswordRecoveryCode => "password+recovery_code",
        }
    }
}

/// Starts a session for a user who passed every factor. Audited `login.success` (without a
/// method: callers that know it use [`start_login`]).
pub async fn start(state: &AppState, user: &User, source_ip: Option<&str>, now: i64) -> Result<SessionTokens> {
    start_session(state, user, None, source_ip, now).await
}

/// [`start`] for a completed login: the audit row names how the user signed in.
pub async fn start_login(
    state: &AppState,
    user: &User,
    method: LoginMethod,
    source_ip: Option<&str>,
    now: i64,
) -> Result<SessionTokens> {
    start_session(state, user, Some(method), source_ip, now).await
}

#[tracing::instrument(skip_all, fields(user_id = %user.id, source_ip = source_ip.unwrap_or("-")))]
async fn start_session(
    state: &AppState,
    user: &User,
    method: Option<LoginMethod>,
    source_ip: Option<&str>,
    now: i64,
) -> Result<SessionTokens> {
    if user.disabled {
        return Err(BackendError::Unauthorized("invalid_credentials"));
    }
    let family_id = db::new_id();
    let refresh = random_token(REFRESH_PREFIX);
    let expires_at = now + SESSION_MAX_SECS;
    let mut tx = state.db.begin().await?;
    insert_session(&mut tx, &user.id, &family_id, &sha256_hex(&refresh), expires_at, source_ip, now).await?;
    audit::append(
        &mut tx,
        Event {
            actor: &user.actor(),
            action: "login.success",
            target: &user.target(),
            source_ip,
            details: match method {
                Some(m) => json!({ "session": family_id, "method": m.as_str() }),
                None => json!({ "session": family_id }),
            },
        },
        now,
    )
    .await?;
    tx.commit().await?;
    let principal = Principal { user_id: user.id.clone(), username: user.username.clone(), role: user.role.clone(), session_id: family_id };
    tokens(state, &principal, refresh, expires_at, now)
}

/// Rotates a refresh token: the new tokens and who they belong to, or
/// `Unauthorized("invalid_refresh")` (unknown, expired, idle, revoked, reused, disabled user).
#[tracing::instrument(skip_all, fields(source_ip = source_ip.unwrap_or("-")))]
pub async fn refresh(state: &AppState, refresh_token: &str, source_ip: Option<&str>, now: i64) -> Result<Refreshed> {
    if !refresh_token.starts_with(REFRESH_PREFIX) || refresh_token.len() > 128 {
        return Err(INVALID_REFRESH);
    }
    let hash = sha256_hex(refresh_token);
    let mut tx = state.db.begin().await?;
    let rotated = sqlx::query(
        "UPDATE sessions SET rotated_at = $1 WHERE refresh_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL \
         AND expires_at > $1 AND last_used_at > $3",
    )
    .bind(now)
    .bind(&hash)
    .bind(now - REFRESH_IDLE_SECS)
    .execute(&mut *tx)
    .await?
    .rows_affected();

    if rotated != 1 {
        let row = sqlx::query(
            "SELECT s.family_id, s.user_id, s.rotated_at, s.revoked_at, s.expires_at, u.username, u.role, u.disabled \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.refresh_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = row {
            let rotated_at: Option<i64> = row.try_get("rotated_at")?;
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            let expires_at: i64 = row.try_get("expires_at")?;
            let disabled: i64 = row.try_get("disabled")?;
            let raced = rotated_at.is_some_and(|r| now - r < RACE_GRACE_SECS);
            if raced && revoked_at.is_none() && expires_at > now && disabled == 0 {
                tx.rollback().await?;
                let role: String = row.try_get("role")?;
                let principal = Principal {
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    role: users::parse_role(&role)?,
                    session_id: row.try_get("family_id")?,
                };
                let access = keys::issue_access(&state.keys, &principal, now)?;
                return Ok(Refreshed::Joined { principal, access, access_max_age: ACCESS_TTL_SECS });
            }
            if rotated_at.is_some() {
                let family_id: String = row.try_get("family_id")?;
                let user_id: String = row.try_get("user_id")?;
                let revoked = revoke_family(&mut tx, &family_id, now).await?;
                audit::append(
                    &mut tx,
                    Event {
                        actor: &Actor::Anonymous,
                        action: "session.refresh_reuse",
                        target: &format!("user:{user_id}"),
                        source_ip,
                        details: json!({ "session": family_id, "revoked": revoked }),
                    },
                    now,
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(target: "security", %user_id, session = %family_id, "refresh token reused; session family revoked");
                return Err(INVALID_REFRESH);
            }
        }
        tx.rollback().await?;
        return Err(INVALID_REFRESH);
    }

    let row = sqlx::query(
        "SELECT s.user_id, s.family_id, s.expires_at, u.username, u.role, u.disabled \
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.refresh_hash = $1",
    )
    .bind(&hash)
    .fetch_one(&mut *tx)
    .await?;
    let disabled: i64 = row.try_get("disabled")?;
    if disabled != 0 {
        tx.rollback().await?;
        return Err(INVALID_REFRESH);
    }
    let role: String = row.try_get("role")?;
    let principal = Principal {
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        role: users::parse_role(&role)?,
        session_id: row.try_get("family_id")?,
    };
    let expires_at: i64 = row.try_get("expires_at")?;
    let successor = random_token(REFRESH_PREFIX);
    insert_session(&mut tx, &principal.user_id, &principal.session_id, &sha256_hex(&successor), expires_at, source_ip, now).await?;
    tx.commit().await?;
    let t = tokens(state, &principal, successor, expires_at, now)?;
    Ok(Refreshed::Rotated(principal, t))
}

/// Logout: revokes the session family. Audited `logout`.
#[tracing::instrument(skip_all, fields(user_id = %principal.user_id))]
pub async fn end(state: &AppState, principal: &Principal, now: i64) -> Result<()> {
    let mut tx = state.db.begin().await?;
    // Only the principal's own sessions.
    let owned = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE family_id = $1 AND user_id = $2")
        .bind(&principal.session_id)
        .bind(&principal.user_id)
        .fetch_one(&mut *tx)
        .await?;
    let n: i64 = owned.try_get("n")?;
    let revoked = if n > 0 { revoke_family(&mut tx, &principal.session_id, now).await? } else { 0 };
    audit::append(
        &mut tx,
        Event {
            actor: &principal.actor(),
            action: "logout",
            target: &format!("user:{}", principal.user_id),
            source_ip: None,
            details: json!({ "session": principal.session_id, "revoked": revoked }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
