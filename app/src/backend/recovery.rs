//! One-time recovery codes for a lost second factor.
//!
//! A set is [`CODE_COUNT`] random codes of 16 base32 characters (80 bits), shown once as
//! `xxxx-xxxx-xxxx-xxxx`. Only their SHA-256 is stored (high-entropy secrets need no slow
//! hash, like refresh tokens); a use sets `used_at` with one guarded `UPDATE`, so a code works
//! once even against concurrent requests. A fresh set replaces the previous one entirely.
//! A set is made when a factor is enrolled while the user has no unused code left, and on
//! demand from the account page.

use rand::Rng;
use serde_json::json;
use sqlx::Row;

use super::audit::{self, Actor, Event};
use super::db::{self, Conn, Db};
use super::error::{BackendError, Result};
use super::sessions::sha256_hex;
use super::state::AppState;
use super::users::User;

pub const CODE_COUNT: usize = 10;
const CODE_CHARS: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
const INVALID: BackendError = BackendError::Unauthorized("invalid_recovery_code");

fn new_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let raw: String = (0..CODE_CHARS).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    raw.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// The canonical form of a typed code (case, spaces and dashes ignored), if it can be one.
fn normalize(input: &str) -> Option<String> {
    let s: String = input.chars().filter(|c| !matches!(c, ' ' | '-' | '\t')).collect::<String>().to_ascii_lowercase();
    (s.len() == CODE_CHARS && s.bytes().all(|b| ALPHABET.contains(&b))).then_some(s)
}

fn hash(normalized: &str) -> String {
    sha256_hex(normalized)
}

/// Replaces the user's codes with a fresh set (audited `mfa.recovery.generate`) in the
/// caller's transaction; returns the plaintext codes, which are never stored.
pub async fn regenerate_in(conn: &mut Conn, actor: &Actor, user: &User, source_ip: Option<&str>, now: i64) -> Result<Vec<String>> {
    let replaced = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(&user.id).execute(&mut *conn).await?.rows_affected();
    let codes: Vec<String> = (0..CODE_COUNT).map(|_| new_code()).collect();
    for code in &codes {
        let normalized = normalize(code).ok_or_else(|| BackendError::Internal("recovery code format".into()))?;
        sqlx::query("INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)")
            .bind(db::new_id())
            .bind(&user.id)
            .bind(hash(&normalized))
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    audit::append(
        conn,
        Event {
            actor,
            action: "mfa.recovery.generate",
            target: &user.target(),
            source_ip,
            details: json!({ "count": CODE_COUNT, "replaced": replaced }),
        },
        now,
    )
    .await?;
    Ok(codes)
}

/// The account page's "new recovery codes".
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn regenerate(state: &AppState, user: &User, source_ip: Option<&str>, now: i64) -> Result<Vec<String>> {
    let mut tx = state.db.begin().await?;
    let codes = regenerate_in(&mut tx, &user.actor(), user, source_ip, now).await?;
    tx.commit().await?;
    Ok(codes)
}

async fn remaining_in(conn: &mut Conn, user_id: &str) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("n")?)
}

/// Unused codes left.
pub async fn remaining(db: &Db, user_id: &str) -> Result<i64> {
    let mut conn = db.pool.acquire().await?;
    remaining_in(&mut conn, user_id).await
}

/// After a factor was enrolled (in the caller's transaction): a fresh set when the user has no
/// unused code, else `None` (their existing codes stay valid).
pub async fn ensure_in(conn: &mut Conn, user: &User, source_ip: Option<&str>, now: i64) -> Result<Option<Vec<String>>> {
    if remaining_in(conn, &user.id).await? > 0 {
        return Ok(None);
    }
    regenerate_in(conn, &user.actor(), user, source_ip, now).await.map(Some)
}

/// Second step of a login with a recovery code instead of a factor. Spends the code
/// (audited `mfa.recovery.use` with the number left) or fails with `invalid_recovery_code`
/// (audited `login.failure`, stage `recovery_code`).
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn use_code(state: &AppState, user: &User, code: &str, source_ip: Option<&str>, now: i64) -> Result<i64> {
    let mut tx = state.db.begin().await?;
    let used = match normalize(code) {
        Some(n) => sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&user.id)
        .bind(hash(&n))
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        None => 0,
    };
    if used != 1 {
        audit::append(
            &mut tx,
            Event {
                actor: &Actor::Anonymous,
                action: "login.failure",
                target: &user.target(),
                source_ip,
                details: json!({ "stage": "recovery_code", "reason": "invalid", "username": user.username }),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        return Err(INVALID);
    }
    let left = remaining_in(&mut tx, &user.id).await?;
    audit::append(
        &mut tx,
        Event {
            actor: &user.actor(),
            action: "mfa.recovery.use",
            target: &user.target(),
            source_ip,
            details: json!({ "remaining": left }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(target: "security", user_id = %user.id, remaining = left, "recovery code used");
    Ok(left)
}

/// Removes every code of a user (MFA reset), in the caller's transaction.
pub async fn clear_in(conn: &mut Conn, user_id: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?.rows_affected())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::sessions::testenv::TestEnv;
    use crate::backend::users;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn format_and_normalisation() {
        let c = new_code();
        assert_eq!(c.len(), 19);
        assert_eq!(c.matches('-').count(), 3);
        let n = normalize(&c).unwrap();
        assert_eq!(normalize(&c.to_uppercase().replace('-', " ")).as_deref(), Some(n.as_str()));
        assert_eq!(normalize("abcd-efgh-ijkl-mno"), None);
        assert_eq!(normalize("abcd-efgh-ijkl-mno1"), None, "1 is not in the alphabet");
        assert_ne!(new_code(), c);
    }

    #[tokio::test]
    async fn codes_are_single_use_hashed_and_replaced_by_a_new_set() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let u = users::create_admin(st, &Actor::Cli, "rita", "a-long-enough-password", NOW).await.unwrap();
        let mut tx = st.db.begin().await.unwrap();
        let codes = ensure_in(&mut tx, &u, Some("192.0.2.4"), NOW).await.unwrap().unwrap();
        // Unused codes exist: a later enrolment makes no new set.
        assert!(ensure_in(&mut tx, &u, None, NOW).await.unwrap().is_none());
        tx.commit().await.unwrap();
        assert_eq!(codes.len(), CODE_COUNT);
        assert_eq!(remaining(&st.db, &u.id).await.unwrap(), 10);
        // Stored hashed only.
        let plain = normalize(&codes[0]).unwrap();
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM recovery_codes WHERE code_hash = $1 OR code_hash = $2")
            .bind(&plain)
            .bind(&codes[0])
            .fetch_one(&st.db.pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 0);

        assert_eq!(use_code(st, &u, &codes[0].to_uppercase(), Some("192.0.2.4"), NOW).await.unwrap(), 9);
        assert_eq!(use_code(st, &u, &codes[0], None, NOW).await.unwrap_err().code(), "invalid_recovery_code");
        assert_eq!(use_code(st, &u, "nope", None, NOW).await.unwrap_err().code(), "invalid_recovery_code");
        // Another user's code does not work for this one.
        let v = users::create_admin(st, &Actor::Cli, "vic", "a-long-enough-password", NOW).await.unwrap();
        let theirs = regenerate(st, &v, None, NOW).await.unwrap();
        assert_eq!(use_code(st, &u, &theirs[0], None, NOW).await.unwrap_err().code(), "invalid_recovery_code");

        // A new set replaces the old one.
        let fresh = regenerate(st, &u, None, NOW + 1).await.unwrap();
        assert_eq!(use_code(st, &u, &codes[1], None, NOW + 2).await.unwrap_err().code(), "invalid_recovery_code");
        assert_eq!(use_code(st, &u, &fresh[1], None, NOW + 2).await.unwrap(), 9);

        assert_eq!(audit::list_by_action(&st.db, "mfa.recovery.generate").await.unwrap().len(), 3);
        let used = audit::list_by_action(&st.db, "mfa.recovery.use").await.unwrap();
        assert_eq!(used.len(), 2);
        assert_eq!(used[0].source_ip.as_deref(), Some("192.0.2.4"));
        let fails = audit::list_by_action(&st.db, "login.failure").await.unwrap();
        assert_eq!(fails.len(), 4);
        assert!(fails.iter().all(|f| f.details.contains("recovery_code")));
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn concurrent_use_of_one_code_succeeds_once() {
        let env = TestEnv::new().await;
        let st = env.state.clone();
        let u = users::create_admin(&st, &Actor::Cli, "sam", "a-long-enough-password", NOW).await.unwrap();
        let codes = regenerate(&st, &u, None, NOW).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (st, u, c) = (st.clone(), u.clone(), codes[3].clone());
            tasks.push(tokio::spawn(async move { use_code(&st, &u, &c, None, NOW).await }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 1);
        env.finish().await;
    }
}
