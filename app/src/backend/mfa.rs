//! TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, ±1 step accepted).
//!
//! Rules:
//! - Codes are checked against `now` (never the system clock): steps `now/30 - 1 ..= now/30 + 1`,
//!   compared in constant time.
//! - A step is usable once: the highest accepted step is stored (`user_totp.last_step`) and
//!   codes for steps `<= last_step` are replays. The enrolment code counts, so it cannot be
//!   reused to log in.
//! - Failures are counted per account (`users.failed_totp`), not per session: 5 consecutive
//!   failures lock TOTP for 15 minutes. Every attempt first takes the user row's write lock
//!   (`UPDATE ... RETURNING`), so parallel guesses on PostgreSQL queue behind each other and
//!   cannot overrun the limit.
//! - Secrets are stored base32 in the database for now; encryption at rest comes later.

use rand::RngCore;
use serde_json::json;
use sqlx::Row;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

use super::audit::{self, Actor, Event};
use super::db::Conn;
use super::error::{BackendError, Result};
use super::state::AppState;
use super::users::User;
use crate::api::dto::TotpEnrolment;

pub const ISSUER: &str = "Patch Manager";
pub const STEP_SECS: i64 = 30;
pub const DIGITS: usize = 6;
pub const MAX_FAILURES: i64 = 5;
pub const LOCKOUT_SECS: i64 = 15 * 60;

fn totp_for(secret: Vec<u8>, account: &str) -> Result<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECS as u64, secret, Some(ISSUER.to_string()), account.to_string())
        .map_err(|e| BackendError::Crypto(format!("totp: {e}")))
}

fn decode_secret(b32: &str) -> Result<Vec<u8>> {
    totp_rs::Secret::Encoded(b32.to_string())
        .to_bytes()
        .map_err(|_| BackendError::Internal("stored TOTP secret is not base32".into()))
}

/// The step among `now/30 - 1 ..= now/30 + 1` (and `> last_step`) whose code equals `code`.
/// All candidates are computed and compared in constant time; no early exit.
fn matching_step(totp: &TOTP, code: &str, last_step: i64, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let well_formed = code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit());
    let current = now.div_euclid(STEP_SECS);
    let mut found: Option<i64> = None;
    for step in current - 1..=current + 1 {
        if step < 0 {
            continue;
        }
        let expected = totp.generate((step * STEP_SECS) as u64);
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal && well_formed && step > last_step {
            found = Some(step);
        }
    }
    found
}

/// Starts (or restarts) enrolment: a new pending secret replaces any previous pending one.
/// Refused with `Conflict("totp_already_enrolled")` when a confirmed factor exists.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn begin_totp(state: &AppState, user: &User, now: i64) -> Result<TotpEnrolment> {
    let mut raw = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let totp = totp_for(raw.to_vec(), &user.username)?;
    let secret = totp.get_secret_base32();
    let enrolment = TotpEnrolment {
        secret: secret.clone(),
        otpauth_url: totp.get_url(),
        qr_png_base64: totp.get_qr_base64().map_err(|e| BackendError::Internal(format!("qr: {e}")))?,
    };
    let mut tx = state.db.begin().await?;
    let res = sqlx::query(
        "INSERT INTO user_totp (user_id, secret, confirmed, last_step, created_at) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = 0, created_at = excluded.created_at \
         WHERE user_totp.confirmed = 0",
    )
    .bind(&user.id)
    .bind(&secret)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if res.rows_affected() != 1 {
        return Err(BackendError::Conflict("totp_already_enrolled"));
    }
    audit::append(
        &mut tx,
        Event { actor: &user.actor(), action: "mfa.totp.begin", target: &user.target(), source_ip: None, details: json!({}) },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(enrolment)
}

/// Confirms a pending enrolment with a code from the authenticator. The code's step is stored
/// as used, so the same code cannot also complete a login. Returns the recovery codes made in
/// the same transaction when the user had none left (a first factor; shown once).
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn confirm_totp(
    state: &AppState,
    user: &User,
    code: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<Option<Vec<String>>> {
    let mut tx = state.db.begin().await?;
    let row = sqlx::query("SELECT secret, confirmed, last_step FROM user_totp WHERE user_id = $1")
        .bind(&user.id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Err(BackendError::Conflict("totp_not_pending")) };
    let confirmed: i64 = row.try_get("confirmed")?;
    if confirmed != 0 {
        return Err(BackendError::Conflict("totp_already_enrolled"));
    }
    let secret: String = row.try_get("secret")?;
    let last_step: i64 = row.try_get("last_step")?;
    let totp = totp_for(decode_secret(&secret)?, &user.username)?;
    let Some(step) = matching_step(&totp, code, last_step, now) else {
        tx.rollback().await?;
        audit::append_alone(
            &state.db,
            Event {
                actor: &user.actor(),
                action: "mfa.totp.enroll_failure",
                target: &user.target(),
                source_ip,
                details: json!({ "reason": "totp" }),
            },
            now,
        )
        .await?;
        return Err(BackendError::Unauthorized("invalid_totp"));
    };
    let res = sqlx::query(
        "UPDATE user_totp SET confirmed = 1, confirmed_at = $1, last_step = $2 \
         WHERE user_id = $3 AND confirmed = 0 AND secret = $4",
    )
    .bind(now)
    .bind(step)
    .bind(&user.id)
    .bind(&secret)
    .execute(&mut *tx)
    .await?;
    if res.rows_affected() != 1 {
        // A concurrent begin/confirm changed the row after we read it.
        return Err(BackendError::Conflict("totp_not_pending"));
    }
    sqlx::query("UPDATE users SET failed_totp = 0, locked_until = NULL WHERE id = $1")
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        Event { actor: &user.actor(), action: "mfa.totp.enroll", target: &user.target(), source_ip, details: json!({}) },
        now,
    )
    .await?;
    let codes = super::recovery::ensure_in(&mut tx, user, source_ip, now).await?;
    tx.commit().await?;
    Ok(codes)
}

async fn audit_failure(conn: &mut Conn, user: &User, reason: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    audit::append(
        conn,
        Event {
            actor: &Actor::Anonymous,
            action: "login.failure",
            target: &user.target(),
            source_ip,
            details: json!({ "stage": "totp", "reason": reason, "username": user.username }),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Second step of login. `Ok(())`, `Unauthorized("invalid_totp")` (wrong, malformed or replayed
/// code), or `RateLimited` while the account's TOTP is locked (including the attempt that
/// locks it).
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn verify_totp(state: &AppState, user: &User, code: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    let mut tx = state.db.begin().await?;
    // No-op write: takes the user row's lock first (see module docs).
    let urow = sqlx::query("UPDATE users SET failed_totp = failed_totp WHERE id = $1 RETURNING locked_until, disabled")
        .bind(&user.id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(urow) = urow else { return Err(BackendError::Unauthorized("invalid_totp")) };
    let locked_until: Option<i64> = urow.try_get("locked_until")?;
    let disabled: i64 = urow.try_get("disabled")?;
    if disabled != 0 {
        audit_failure(&mut tx, user, "disabled", source_ip, now).await?;
        tx.commit().await?;
        return Err(BackendError::Unauthorized("invalid_totp"));
    }
    if locked_until.is_some_and(|t| t > now) {
        audit_failure(&mut tx, user, "totp_locked", source_ip, now).await?;
        tx.commit().await?;
        return Err(BackendError::RateLimited);
    }
    let trow = sqlx::query("SELECT secret, last_step FROM user_totp WHERE user_id = $1 AND confirmed = 1")
        .bind(&user.id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(trow) = trow else { return Err(BackendError::Unauthorized("totp_not_enrolled")) };
    let secret: String = trow.try_get("secret")?;
    let last_step: i64 = trow.try_get("last_step")?;
    let totp = totp_for(decode_secret(&secret)?, &user.username)?;

    if let Some(step) = matching_step(&totp, code, last_step, now) {
        sqlx::query("UPDATE user_totp SET last_step = $1 WHERE user_id = $2")
            .bind(step)
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET failed_totp = 0, locked_until = NULL WHERE id = $1")
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(());
    }

    let row = sqlx::query("UPDATE users SET failed_totp = failed_totp + 1 WHERE id = $1 RETURNING failed_totp")
        .bind(&user.id)
        .fetch_one(&mut *tx)
        .await?;
    let failures: i64 = row.try_get("failed_totp")?;
    audit_failure(&mut tx, user, "totp", source_ip, now).await?;
    if failures >= MAX_FAILURES {
        let until = now + LOCKOUT_SECS;
        sqlx::query("UPDATE users SET failed_totp = 0, locked_until = $1 WHERE id = $2")
            .bind(until)
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            Event {
                actor: &Actor::System,
                action: "mfa.totp.lockout",
                target: &user.target(),
                source_ip,
                details: json!({ "failures": failures, "locked_until": until }),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(target: "security", user_id = %user.id, "TOTP locked after repeated failures");
        return Err(BackendError::RateLimited);
    }
    tx.commit().await?;
    Err(BackendError::Unauthorized("invalid_totp"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::sessions::testenv::TestEnv;
    use crate::backend::users;

    // A multiple of 30 plus 10: inside a step, so ±30 s stays in the neighbouring steps.
    const NOW: i64 = 1_700_000_010;

    async fn enrolled(env: &TestEnv, name: &str) -> (User, TOTP) {
        let st = &env.state;
        let u = users::create_admin(st, &Actor::Cli, name, "a-long-enough-password", NOW - 3600).await.unwrap();
        let e = begin_totp(st, &u, NOW - 3600).await.unwrap();
        assert!(!e.qr_png_base64.is_empty());
        assert!(e.otpauth_url.starts_with("otpauth://totp/Patch%20Manager:"), "{}", e.otpauth_url);
        let totp = totp_for(decode_secret(&e.secret).unwrap(), name).unwrap();
        let code = totp.generate((NOW - 3600) as u64);
        confirm_totp(st, &u, &code, Some("192.0.2.9"), NOW - 3600).await.unwrap();
        let u = users::user_by_id(&st.db, &u.id).await.unwrap();
        assert!(u.totp_enrolled);
        (u, totp)
    }

    fn code_at(totp: &TOTP, t: i64) -> String {
        totp.generate(t as u64)
    }

    #[tokio::test]
    async fn window_and_replay() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let (u, totp) = enrolled(&env, "dave").await;

        // ±2 steps refused.
        for off in [-60, 60] {
            let e = verify_totp(st, &u, &code_at(&totp, NOW + off), None, NOW).await.unwrap_err();
            assert_eq!(e.code(), "invalid_totp", "offset {off}");
        }
        // -1 step accepted.
        verify_totp(st, &u, &code_at(&totp, NOW - 30), None, NOW).await.unwrap();
        // Current accepted (later step than the previous one).
        let cur = code_at(&totp, NOW);
        verify_totp(st, &u, &cur, Some("192.0.2.1"), NOW).await.unwrap();
        // Same code again: replay.
        assert_eq!(verify_totp(st, &u, &cur, None, NOW).await.unwrap_err().code(), "invalid_totp");
        // The previous step is now also too old.
        assert_eq!(verify_totp(st, &u, &code_at(&totp, NOW - 30), None, NOW).await.unwrap_err().code(), "invalid_totp");
        // +1 step accepted (spaces tolerated).
        let next = code_at(&totp, NOW + 30);
        let spaced = format!("{} {}", &next[..3], &next[3..]);
        verify_totp(st, &u, &spaced, None, NOW).await.unwrap();
        // Garbage.
        assert_eq!(verify_totp(st, &u, "abcdef", None, NOW + 90).await.unwrap_err().code(), "invalid_totp");

        assert_eq!(audit::list_by_action(&st.db, "mfa.totp.enroll").await.unwrap().len(), 1);
        let fails = audit::list_by_action(&st.db, "login.failure").await.unwrap();
        assert_eq!(fails.len(), 5);
        assert!(fails.iter().all(|f| f.details.contains("\"totp\"")));
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn enrolment_code_not_reusable_and_restart() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let u = users::create_admin(st, &Actor::Cli, "erin", "a-long-enough-password", NOW).await.unwrap();
        // Verify without a confirmed factor.
        assert_eq!(verify_totp(st, &u, "123456", None, NOW).await.unwrap_err().code(), "totp_not_enrolled");
        // A second begin replaces the pending secret: the first secret's codes no longer confirm.
        let first = begin_totp(st, &u, NOW).await.unwrap();
        let second = begin_totp(st, &u, NOW).await.unwrap();
        assert_ne!(first.secret, second.secret);
        let t1 = totp_for(decode_secret(&first.secret).unwrap(), "erin").unwrap();
        let t2 = totp_for(decode_secret(&second.secret).unwrap(), "erin").unwrap();
        assert_eq!(confirm_totp(st, &u, &code_at(&t1, NOW), None, NOW).await.unwrap_err().code(), "invalid_totp");
        let code = code_at(&t2, NOW);
        confirm_totp(st, &u, &code, None, NOW).await.unwrap();
        // Same code for login in the same step: refused as replay.
        assert_eq!(verify_totp(st, &u, &code, None, NOW).await.unwrap_err().code(), "invalid_totp");
        // Next step works.
        verify_totp(st, &u, &code_at(&t2, NOW + 30), None, NOW + 30).await.unwrap();
        // Once confirmed, a new enrolment is refused.
        assert_eq!(begin_totp(st, &u, NOW).await.unwrap_err().code(), "totp_already_enrolled");
        assert_eq!(confirm_totp(st, &u, &code, None, NOW).await.unwrap_err().code(), "totp_already_enrolled");
        assert_eq!(audit::list_by_action(&st.db, "mfa.totp.enroll_failure").await.unwrap().len(), 1);
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn lockout_after_five_failures() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let (u, totp) = enrolled(&env, "frank").await;
        let wrong = if code_at(&totp, NOW) == "000000" { "111111" } else { "000000" };
        // Ensure "wrong" matches none of the window.
        assert!((-1..=1).all(|k| code_at(&totp, NOW + 30 * k) != wrong));

        // Failures are per account: separate calls (as from separate sessions) add up; a
        // success in between resets the count.
        for _ in 0..4 {
            assert_eq!(verify_totp(st, &u, wrong, None, NOW).await.unwrap_err().code(), "invalid_totp");
        }
        verify_totp(st, &u, &code_at(&totp, NOW - 30), None, NOW).await.unwrap();
        for _ in 0..4 {
            assert_eq!(verify_totp(st, &u, wrong, None, NOW).await.unwrap_err().code(), "invalid_totp");
        }
        // Fifth consecutive failure locks.
        assert!(matches!(verify_totp(st, &u, wrong, None, NOW).await.unwrap_err(), BackendError::RateLimited));
        // Even the right code is refused while locked.
        assert!(matches!(
            verify_totp(st, &u, &code_at(&totp, NOW), None, NOW + 10).await.unwrap_err(),
            BackendError::RateLimited
        ));
        assert!(matches!(
            verify_totp(st, &u, &code_at(&totp, NOW + 899), None, NOW + 899).await.unwrap_err(),
            BackendError::RateLimited
        ));
        // After 15 minutes it works again.
        let later = NOW + LOCKOUT_SECS;
        verify_totp(st, &u, &code_at(&totp, later), None, later).await.unwrap();

        assert_eq!(audit::list_by_action(&st.db, "mfa.totp.lockout").await.unwrap().len(), 1);
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn parallel_guesses_cannot_exceed_the_limit() {
        let env = TestEnv::new().await;
        let st = env.state.clone();
        let (u, totp) = enrolled(&env, "gina").await;
        let wrong = if code_at(&totp, NOW) == "000000" { "111111" } else { "000000" };
        assert!((-1..=1).all(|k| code_at(&totp, NOW + 30 * k) != wrong));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (st, u) = (st.clone(), u.clone());
            tasks.push(tokio::spawn(async move { verify_totp(&st, &u, wrong, None, NOW).await }));
        }
        let mut invalid = 0;
        let mut limited = 0;
        for t in tasks {
            match t.await.unwrap() {
                Err(BackendError::Unauthorized(_)) => invalid += 1,
                Err(BackendError::RateLimited) => limited += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(invalid, 4);
        assert_eq!(limited, 8);
        env.finish().await;
    }
}
