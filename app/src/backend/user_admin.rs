//! What an Admin does to accounts: invite, change role and groups, disable, delete, reset MFA.
//! Plus the invited user's side: accepting the invitation by setting a password.
//!
//! Rules:
//! - An invited account has no usable password (`password_hash = '!'`) until the invitation
//!   (`pminv_` + 32 random bytes, SHA-256 at rest, single use, 72 h) is accepted; it then
//!   logs in as usual and must enrol a second factor before anything else.
//! - Role change, disabling and MFA reset revoke every session of the user in the same
//!   transaction (`sessions::revoke_user`), so an access token in flight dies with them.
//! - There is always at least one enabled Admin: demoting, disabling or deleting the last one
//!   is refused (`last_admin`), and nobody disables, demotes or deletes themselves.
//! - Every change is audited with the acting admin.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Actor, Event};
use super::db::{self, Conn};
use super::error::{BackendError, Result};
use super::groups;
use super::passwords;
use super::sessions::{self, random_token, sha256_hex};
use super::state::AppState;
use super::users::{self, role_str};
use crate::api::dto::{NewInvitation, Role, UserInfo};

pub const INVITE_PREFIX: &str = "pminv_";
pub const INVITE_TTL_SECS: i64 = 72 * 3600;
/// Stored instead of a PHC string while an invitation is open: never verifies.
pub const NO_PASSWORD: &str = "!";

fn target(user_id: &str) -> String {
    format!("user:{user_id}")
}

async fn user_info(conn: &mut Conn, row: &sqlx::any::AnyRow) -> Result<UserInfo> {
    let id: String = row.try_get("id")?;
    let role: String = row.try_get("role")?;
    let disabled: i64 = row.try_get("disabled")?;
    let totp: i64 = row.try_get("totp_enrolled")?;
    let hash: String = row.try_get("password_hash")?;
    let passkeys: i64 = row.try_get("passkeys")?;
    let groups = groups::of_user(conn, &id).await?;
    Ok(UserInfo {
        username: row.try_get("username")?,
        role: users::parse_role(&role)?,
        disabled: disabled != 0,
        totp_enrolled: totp != 0,
        passkeys,
        invited: hash == NO_PASSWORD,
        created_at: row.try_get("created_at")?,
        groups,
        id,
    })
}

const INFO_COLUMNS: &str = "SELECT u.id, u.username, u.role, u.disabled, u.created_at, u.password_hash, \
     COALESCE(t.confirmed, 0) AS totp_enrolled, (SELECT COUNT(*) FROM user_passkeys p WHERE p.user_id = u.id) AS passkeys \
     FROM users u LEFT JOIN user_totp t ON t.user_id = u.id";

pub async fn list(state: &AppState) -> Result<Vec<UserInfo>> {
    let mut conn = state.db.pool.acquire().await?;
    let rows = sqlx::query(&format!("{INFO_COLUMNS} ORDER BY lower(u.username), u.id")).fetch_all(&mut *conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(user_info(&mut conn, r).await?);
    }
    Ok(out)
}

async fn info_in(conn: &mut Conn, user_id: &str) -> Result<UserInfo> {
    let row = sqlx::query(&format!("{INFO_COLUMNS} WHERE u.id = $1"))
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(BackendError::NotFound)?;
    user_info(conn, &row).await
}

/// Creates an account with `role` and `group_ids` and a one-time invitation link.
#[tracing::instrument(skip_all, fields(actor = %actor.label(), username = %username))]
pub async fn invite(
    state: &AppState,
    actor: &Actor,
    username: &str,
    role: Role,
    group_ids: &[String],
    now: i64,
) -> Result<NewInvitation> {
    let username = username.trim();
    if !users::valid_username(username) {
        return Err(BackendError::Invalid(format!(
            "username must be 1 to {} characters of a-z, A-Z, 0-9, '.', '_' or '-'",
            users::MAX_USERNAME_CHARS
        )));
    }
    let token = random_token(INVITE_PREFIX);
    let expires_at = now + INVITE_TTL_SECS;
    let mut tx = state.db.begin().await?;
    let user = users::insert_user(&mut tx, actor, username, NO_PASSWORD, role, None, now).await?;
    groups::set_user_groups(&mut tx, actor, &user.id, group_ids, now).await?;
    sqlx::query(
        "INSERT INTO invitations (id, user_id, token_hash, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(db::new_id())
    .bind(&user.id)
    .bind(sha256_hex(&token))
    .bind(actor.label())
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    let ev = Event {
        actor,
        action: "user.invite",
        target: &user.target(),
        source_ip: None,
        details: json!({ "expires_at": expires_at }),
    };
    audit::append(&mut tx, ev, now).await?;
    let info = info_in(&mut tx, &user.id).await?;
    tx.commit().await?;
    let link = format!("{}/invite?token={token}", state.settings.public_url.trim_end_matches('/'));
    Ok(NewInvitation { user: info, link, expires_at })
}

/// The invited user sets their password. `token_invalid` for unknown, used or expired links
/// (audited `invitation.failure`).
#[tracing::instrument(skip_all, fields(source_ip = source_ip.unwrap_or("-")))]
pub async fn accept_invitation(state: &AppState, token: &str, password: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    let token = token.trim();
    let well_formed = token.starts_with(INVITE_PREFIX) && token.len() <= 128;
    // The policy check comes first: a weak password must not spend the link.
    let row = if well_formed {
        sqlx::query(
            "SELECT i.id, i.user_id, u.username FROM invitations i JOIN users u ON u.id = i.user_id \
             WHERE i.token_hash = $1 AND i.used_at IS NULL AND i.expires_at > $2",
        )
        .bind(sha256_hex(token))
        .bind(now)
        .fetch_optional(&state.db.pool)
        .await?
    } else {
        None
    };
    let Some(row) = row else {
        let ev = Event {
            actor: &Actor::Anonymous,
            action: "invitation.failure",
            target: "invitation",
            source_ip,
            details: json!({ "reason": "unknown_used_or_expired" }),
        };
        audit::append_alone(&state.db, ev, now).await?;
        return Err(BackendError::Unauthorized("token_invalid"));
    };
    let username: String = row.try_get("username")?;
    users::validate_new_credentials(&username, password)?;
    let invitation_id: String = row.try_get("id")?;
    let user_id: String = row.try_get("user_id")?;
    let phc = passwords::hash(&state.password_limiter, password).await?;
    let mut tx = state.db.begin().await?;
    // Single use, also against a concurrent acceptance: only one UPDATE matches.
    let used = sqlx::query("UPDATE invitations SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1")
        .bind(now)
        .bind(&invitation_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if used != 1 {
        tx.rollback().await?;
        return Err(BackendError::Unauthorized("token_invalid"));
    }
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(&phc).bind(&user_id).execute(&mut *tx).await?;
    let actor = Actor::User { id: user_id.clone(), username };
    let ev = Event { actor: &actor, action: "user.invitation_accept", target: &target(&user_id), source_ip, details: json!({}) };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Number of enabled admins other than `except`.
async fn other_enabled_admins(conn: &mut Conn, except: &str) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0 AND id <> $1")
        .bind(except)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get("n")?)
}

fn not_self(actor: &Actor, user_id: &str) -> Result<()> {
    match actor {
        Actor::User { id, .. } if id == user_id => Err(BackendError::Conflict("not_on_yourself")),
        _ => Ok(()),
    }
}

async fn current_role(conn: &mut Conn, user_id: &str) -> Result<(Role, bool)> {
    let row = sqlx::query("SELECT role, disabled FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(BackendError::NotFound)?;
    let role: String = row.try_get("role")?;
    let disabled: i64 = row.try_get("disabled")?;
    Ok((users::parse_role(&role)?, disabled != 0))
}

/// Role change; revokes the user's sessions (audited `user.role_change`).
pub async fn set_role(state: &AppState, actor: &Actor, user_id: &str, role: Role, now: i64) -> Result<()> {
    not_self(actor, user_id)?;
    let mut tx = state.db.begin().await?;
    let (old, _) = current_role(&mut tx, user_id).await?;
    if old == role {
        return Ok(());
    }
    if old == Role::Admin && other_enabled_admins(&mut tx, user_id).await? == 0 {
        return Err(BackendError::Conflict("last_admin"));
    }
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2").bind(role_str(&role)).bind(user_id).execute(&mut *tx).await?;
    let revoked = sessions::revoke_user(&mut tx, user_id, now).await?;
    let details = json!({ "from": role_str(&old), "to": role_str(&role), "sessions_revoked": revoked });
    audit::append(&mut tx, Event { actor, action: "user.role_change", target: &target(user_id), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the host groups an Operator may act on (audited `user.groups_set`).
pub async fn set_groups(state: &AppState, actor: &Actor, user_id: &str, group_ids: &[String], now: i64) -> Result<()> {
    let mut tx = state.db.begin().await?;
    current_role(&mut tx, user_id).await?;
    groups::set_user_groups(&mut tx, actor, user_id, group_ids, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Disables (revoking every session) or re-enables an account.
pub async fn set_disabled(state: &AppState, actor: &Actor, user_id: &str, disabled: bool, now: i64) -> Result<()> {
    not_self(actor, user_id)?;
    let mut tx = state.db.begin().await?;
    let (role, was) = current_role(&mut tx, user_id).await?;
    if was == disabled {
        return Ok(());
    }
    if disabled && role == Role::Admin && other_enabled_admins(&mut tx, user_id).await? == 0 {
        return Err(BackendError::Conflict("last_admin"));
    }
    sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
        .bind(i64::from(disabled))
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let revoked = if disabled { sessions::revoke_user(&mut tx, user_id, now).await? } else { 0 };
    let action = if disabled { "user.disable" } else { "user.enable" };
    let details = json!({ "sessions_revoked": revoked });
    audit::append(&mut tx, Event { actor, action, target: &target(user_id), source_ip: None, details }, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes an account (sessions, factors and invitations go with it).
pub async fn delete(state: &AppState, actor: &Actor, user_id: &str, now: i64) -> Result<()> {
    not_self(actor, user_id)?;
    let mut tx = state.db.begin().await?;
    let (role, _) = current_role(&mut tx, user_id).await?;
    if role == Role::Admin && other_enabled_admins(&mut tx, user_id).await? == 0 {
        return Err(BackendError::Conflict("last_admin"));
    }
    let row = sqlx::query("DELETE FROM users WHERE id = $1 RETURNING username").bind(user_id).fetch_one(&mut *tx).await?;
    let username: String = row.try_get("username")?;
    let details = json!({ "username": username });
    audit::append(&mut tx, Event { actor, action: "user.delete", target: &target(user_id), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes every second factor of a user (TOTP, passkeys, recovery codes, open WebAuthn
/// ceremonies) and revokes their sessions: at the next login they must enrol a factor again
/// before anything else (audited `user.mfa_reset`).
pub async fn reset_mfa(state: &AppState, actor: &Actor, user_id: &str, now: i64) -> Result<()> {
    let mut tx = state.db.begin().await?;
    current_role(&mut tx, user_id).await?;
    let removed = sqlx::query("DELETE FROM user_totp WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?.rows_affected();
    let passkeys = super::passkeys::clear_in(&mut tx, user_id).await?;
    let codes = super::recovery::clear_in(&mut tx, user_id).await?;
    sqlx::query("UPDATE users SET failed_totp = 0, locked_until = NULL WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
    let revoked = sessions::revoke_user(&mut tx, user_id, now).await?;
    let details = json!({ "totp_removed": removed, "passkeys_removed": passkeys, "recovery_codes_removed": codes, "sessions_revoked": revoked });
    audit::append(&mut tx, Event { actor, action: "user.mfa_reset", target: &target(user_id), source_ip: None, details }, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A user changes their own password (the current one is required); every session of theirs
/// is revoked, including the one making the change (audited `user.password_change`).
pub async fn change_password(
    state: &AppState,
    actor_user: &users::User,
    current: &str,
    new: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<()> {
    users::check_password(state, &actor_user.username, current, source_ip, now).await?;
    users::validate_new_credentials(&actor_user.username, new)?;
    let phc = passwords::hash(&state.password_limiter, new).await?;
    let mut tx = state.db.begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(&phc).bind(&actor_user.id).execute(&mut *tx).await?;
    let revoked = sessions::revoke_user(&mut tx, &actor_user.id, now).await?;
    let ev = Event {
        actor: &actor_user.actor(),
        action: "user.password_change",
        target: &actor_user.target(),
        source_ip,
        details: json!({ "sessions_revoked": revoked }),
    };
    audit::append(&mut tx, ev, now).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::sessions::testenv::TestEnv;

    const NOW: i64 = 1_700_000_000;
    const PW: &str = "a-long-enough-password";

    fn token_of(link: &str) -> String {
        link.split("token=").nth(1).unwrap().to_string()
    }

    #[tokio::test]
    async fn invitation_is_single_use_and_sets_the_password() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let admin = users::create_admin(st, &Actor::Cli, "root", PW, NOW).await.unwrap();
        let g = groups::create(&st.db, &admin.actor(), "web", NOW).await.unwrap();
        let inv = invite(st, &admin.actor(), "olga", Role::Operator, std::slice::from_ref(&g.id), NOW).await.unwrap();
        assert!(inv.user.invited && !inv.user.totp_enrolled);
        assert_eq!(inv.user.groups.len(), 1);
        assert!(inv.link.starts_with("https://localhost:8443/invite?token=pminv_"));
        let token = token_of(&inv.link);
        // No password yet: nothing logs in.
        assert!(users::check_password(st, "olga", NO_PASSWORD, None, NOW).await.is_err());
        // Weak password: refused, link still usable.
        assert_eq!(accept_invitation(st, &token, "short", None, NOW).await.unwrap_err().code(), "invalid_input");
        accept_invitation(st, &token, PW, Some("192.0.2.7"), NOW).await.unwrap();
        assert_eq!(accept_invitation(st, &token, PW, None, NOW).await.unwrap_err().code(), "token_invalid");
        assert_eq!(accept_invitation(st, "pminv_bogus", PW, None, NOW).await.unwrap_err().code(), "token_invalid");
        let u = users::check_password(st, "olga", PW, None, NOW).await.unwrap();
        assert_eq!(u.role, Role::Operator);
        assert!(!u.totp_enrolled, "a second factor is still to be enrolled");
        // Expired link.
        let inv2 = invite(st, &admin.actor(), "late", Role::Operator, &[], NOW).await.unwrap();
        let e = accept_invitation(st, &token_of(&inv2.link), PW, None, NOW + INVITE_TTL_SECS).await.unwrap_err();
        assert_eq!(e.code(), "token_invalid");
        // Duplicate name, bad group: nothing half-written.
        assert_eq!(invite(st, &admin.actor(), "OLGA", Role::Operator, &[], NOW).await.unwrap_err().code(), "username_taken");
        let e = invite(st, &admin.actor(), "ghost", Role::Operator, &["nope".into()], NOW).await.unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(list(st).await.unwrap().iter().all(|u| u.username != "ghost"));
        assert_eq!(audit::list_by_action(&st.db, "invitation.failure").await.unwrap().len(), 3);
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn role_disable_and_mfa_reset_revoke_sessions_and_keep_an_admin() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let root = users::create_admin(st, &Actor::Cli, "root", PW, NOW).await.unwrap();
        let actor = root.actor();
        let second = users::create_admin(st, &Actor::Cli, "second", PW, NOW).await.unwrap();
        let pool = env.state.db.pool.clone();
        let live = |uid: String| {
            let pool = pool.clone();
            async move {
            let row = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL")
                .bind(uid)
                .fetch_one(&pool)
                .await
                .unwrap();
            row.try_get::<i64, _>("n").unwrap()
            }
        };

        sessions::start(st, &second, None, NOW).await.unwrap();
        assert_eq!(live(second.id.clone()).await, 1);
        set_role(st, &actor, &second.id, Role::Operator, NOW).await.unwrap();
        assert_eq!(live(second.id.clone()).await, 0);
        // root is now the last admin: cannot demote or disable themselves, nor can anyone.
        assert_eq!(set_role(st, &actor, &root.id, Role::Operator, NOW).await.unwrap_err().code(), "not_on_yourself");
        assert_eq!(set_role(st, &second.actor(), &root.id, Role::Operator, NOW).await.unwrap_err().code(), "last_admin");
        assert_eq!(set_disabled(st, &Actor::Cli, &root.id, true, NOW).await.unwrap_err().code(), "last_admin");
        assert_eq!(delete(st, &Actor::Cli, &root.id, NOW).await.unwrap_err().code(), "last_admin");

        sessions::start(st, &second, None, NOW).await.unwrap();
        set_disabled(st, &actor, &second.id, true, NOW).await.unwrap();
        assert_eq!(live(second.id.clone()).await, 0);
        assert!(users::check_password(st, "second", PW, None, NOW).await.is_err());
        set_disabled(st, &actor, &second.id, false, NOW).await.unwrap();
        users::check_password(st, "second", PW, None, NOW).await.unwrap();

        // MFA reset: the factor is gone and so are the sessions.
        let enrol = crate::backend::mfa::begin_totp(st, &second, NOW).await.unwrap();
        let code = totp_rs::TOTP::new(
            totp_rs::Algorithm::SHA1,
            6,
            1,
            30,
            totp_rs::Secret::Encoded(enrol.secret.clone()).to_bytes().unwrap(),
            None,
            String::new(),
        )
        .unwrap()
        .generate(NOW as u64);
        crate::backend::mfa::confirm_totp(st, &second, &code, None, NOW).await.unwrap();
        assert!(users::user_by_id(&st.db, &second.id).await.unwrap().totp_enrolled);
        sessions::start(st, &second, None, NOW).await.unwrap();
        reset_mfa(st, &actor, &second.id, NOW).await.unwrap();
        assert!(!users::user_by_id(&st.db, &second.id).await.unwrap().totp_enrolled);
        assert_eq!(live(second.id.clone()).await, 0);

        // Password change: old password out, new in, sessions revoked.
        let second = users::user_by_id(&st.db, &second.id).await.unwrap();
        sessions::start(st, &second, None, NOW).await.unwrap();
        let new_pw = "another-long-password";
        assert!(change_password(st, &second, "wrong-password-here", new_pw, None, NOW).await.is_err());
        change_password(st, &second, PW, new_pw, None, NOW).await.unwrap();
        assert_eq!(live(second.id.clone()).await, 0);
        assert!(users::check_password(st, "second", PW, None, NOW).await.is_err());
        users::check_password(st, "second", new_pw, None, NOW).await.unwrap();

        delete(st, &actor, &second.id, NOW).await.unwrap();
        assert!(matches!(users::user_by_id(&st.db, &second.id).await, Err(BackendError::NotFound)));
        for action in ["user.role_change", "user.disable", "user.enable", "user.mfa_reset", "user.password_change", "user.delete"] {
            let rows = audit::list_by_action(&st.db, action).await.unwrap();
            assert_eq!(rows.len(), 1, "{action}");
        }
        assert_eq!(audit::list_by_action(&st.db, "user.role_change").await.unwrap()[0].actor, "user:root");
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }
}
