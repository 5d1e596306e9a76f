//! First-run setup: while no user exists, every server start issues a fresh one-time token
//! (printed as `https://<public>/setup?token=...`); the setup page trades it for the first
//! administrator. Only the token's SHA-256 is stored (settings key `setup_token_hash`, issue time
//! in `updated_at`, valid 1 h); it is consumed by a single conditional `DELETE`, so of two
//! concurrent uses exactly one succeeds.

use serde_json::json;
use sqlx::Row;

use super::{random_token, sha256_hex};
use crate::api::dto::Role;
use crate::backend::audit::{self, Actor, Event};
use crate::backend::error::{BackendError, Result};
use crate::backend::passwords;
use crate::backend::state::AppState;
use crate::backend::users::{self, User};

pub const SETUP_TOKEN_KEY: &str = "setup_token_hash";
pub const SETUP_TOKEN_TTL_SECS: i64 = 3600;
const SETUP_PREFIX: &str = "pmst_";
const INVALID: BackendError = BackendError::Unauthorized("invalid_setup_token");

/// A new setup token (replacing any previous one), or `None` once a user exists (any stale
/// token is then deleted).
#[tracing::instrument(skip_all)]
pub async fn setup_token_issue(state: &AppState, now: i64) -> Result<Option<String>> {
    let mut tx = state.db.begin().await?;
    if users::count_in(&mut tx).await? > 0 {
        sqlx::query("DELETE FROM settings WHERE key = $1").bind(SETUP_TOKEN_KEY).execute(&mut *tx).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let token = random_token(SETUP_PREFIX);
    sqlx::query(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(SETUP_TOKEN_KEY)
    .bind(sha256_hex(&token))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        Event {
            actor: &Actor::System,
            action: "setup.token_issue",
            target: "setup",
            source_ip: None,
            details: json!({ "expires_at": now + SETUP_TOKEN_TTL_SECS }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(token))
}

async fn audit_failure(state: &AppState, reason: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    audit::append_alone(
        &state.db,
        Event { actor: &Actor::Anonymous, action: "setup.failure", target: "setup", source_ip, details: json!({ "reason": reason }) },
        now,
    )
    .await?;
    Ok(())
}

/// Creates the first administrator with a valid setup token (consumed atomically). Same
/// creation path as `users::create_admin`; audited `user.create` and `setup.admin_created`.
#[tracing::instrument(skip_all, fields(source_ip = source_ip.unwrap_or("-")))]
pub async fn setup_admin(
    state: &AppState,
    setup_token: &str,
    username: &str,
    password: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<User> {
    if !setup_token.starts_with(SETUP_PREFIX) || setup_token.len() > 128 {
        audit_failure(state, "invalid_token", source_ip, now).await?;
        return Err(INVALID);
    }
    let hash = sha256_hex(setup_token);
    let not_before = now - SETUP_TOKEN_TTL_SECS;
    // Cheap check before the expensive hash, so a caller without the token cannot make us run
    // Argon2; the consuming DELETE below is what decides.
    let known = sqlx::query("SELECT updated_at FROM settings WHERE key = $1 AND value = $2")
        .bind(SETUP_TOKEN_KEY)
        .bind(&hash)
        .fetch_optional(&state.db.pool)
        .await?;
    let issued: Option<i64> = match known {
        Some(r) => Some(r.try_get("updated_at")?),
        None => None,
    };
    if issued.is_none_or(|t| t <= not_before) {
        audit_failure(state, if issued.is_some() { "expired_token" } else { "invalid_token" }, source_ip, now).await?;
        return Err(INVALID);
    }
    users::validate_new_credentials(username, password)?;
    let phc = passwords::hash(&state.password_limiter, password).await?;

    let mut tx = state.db.begin().await?;
    let consumed = sqlx::query("DELETE FROM settings WHERE key = $1 AND value = $2 AND updated_at > $3")
        .bind(SETUP_TOKEN_KEY)
        .bind(&hash)
        .bind(not_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if consumed != 1 {
        tx.rollback().await?;
        audit_failure(state, "invalid_token", source_ip, now).await?;
        return Err(INVALID);
    }
    if users::count_in(&mut tx).await? > 0 {
        return Err(BackendError::Conflict("already_set_up"));
    }
    let actor = Actor::Anonymous;
    let user = users::insert_user(&mut tx, &actor, username, &phc, Role::Admin, source_ip, now).await?;
    audit::append(
        &mut tx,
        Event {
            actor: &actor,
            action: "setup.admin_created",
            target: &user.target(),
            source_ip,
            details: json!({ "username": user.username }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::sessions::testenv::TestEnv;

    const NOW: i64 = 1_700_000_000;
    const PW: &str = "a-long-enough-password";

    #[tokio::test]
    async fn setup_token_single_use() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let t1 = setup_token_issue(st, NOW).await.unwrap().unwrap();
        assert!(t1.starts_with("pmst_"));
        // A restart re-issues: the old token no longer works.
        let t2 = setup_token_issue(st, NOW + 10).await.unwrap().unwrap();
        assert_ne!(t1, t2);
        assert_eq!(setup_admin(st, &t1, "root", PW, Some("192.0.2.5"), NOW + 20).await.unwrap_err().code(), "invalid_setup_token");
        // Bad input does not consume the token.
        assert_eq!(setup_admin(st, &t2, "root", "short", None, NOW + 20).await.unwrap_err().code(), "invalid_input");
        let admin = setup_admin(st, &t2, "root", PW, Some("192.0.2.5"), NOW + 20).await.unwrap();
        assert_eq!(admin.role, Role::Admin);
        // Single use.
        assert_eq!(setup_admin(st, &t2, "root2", PW, None, NOW + 30).await.unwrap_err().code(), "invalid_setup_token");
        // Users exist: no more tokens.
        assert_eq!(setup_token_issue(st, NOW + 40).await.unwrap(), None);
        users::check_password(st, "root", PW, None, NOW + 50).await.unwrap();

        let created = audit::list_by_action(&st.db, "setup.admin_created").await.unwrap();
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].source_ip.as_deref(), Some("192.0.2.5"));
        assert_eq!(audit::list_by_action(&st.db, "user.create").await.unwrap().len(), 1);
        assert_eq!(audit::list_by_action(&st.db, "setup.failure").await.unwrap().len(), 2);
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn setup_token_expires() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let t = setup_token_issue(st, NOW).await.unwrap().unwrap();
        let e = setup_admin(st, &t, "root", PW, None, NOW + SETUP_TOKEN_TTL_SECS).await.unwrap_err();
        assert_eq!(e.code(), "invalid_setup_token");
        assert_eq!(users::count(&st.db).await.unwrap(), 0);
        env.finish().await;
    }

    #[tokio::test]
    async fn concurrent_setup_one_wins() {
        let env = TestEnv::new().await;
        let st = env.state.clone();
        let t = setup_token_issue(&st, NOW).await.unwrap().unwrap();
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (st, t) = (st.clone(), t.clone());
            tasks.push(tokio::spawn(async move { setup_admin(&st, &t, &format!("admin{i}"), PW, None, NOW + 1).await }));
        }
        let mut ok = 0;
        for task in tasks {
            if task.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 1);
        assert_eq!(users::count(&st.db).await.unwrap(), 1);
        env.finish().await;
    }
}
