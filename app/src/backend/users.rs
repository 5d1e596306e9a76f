//! User accounts and the password step of login.
//!
//! Usernames are ASCII `[a-zA-Z0-9._-]{1,64}`, unique case-insensitively (the table has a
//! unique index on `lower(username)`), and looked up case-insensitively.

use serde_json::json;
use sqlx::Row;

use super::audit::{self, Actor, Event};
use super::db::{self, Conn, Db};
use super::error::{BackendError, Result};
use super::passwords;
use super::state::AppState;
use crate::api::dto::Role;

/// First-run setup lives with the session code (it shares the token helpers); re-exported here
/// because it creates the first user.
pub use super::sessions::{setup_admin, setup_token_issue};

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_USERNAME_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    /// A confirmed TOTP factor exists (a pending enrolment does not count).
    pub totp_enrolled: bool,
    /// Registered passkeys / security keys.
    pub passkeys: i64,
}

impl User {
    pub fn actor(&self) -> Actor {
        Actor::User { id: self.id.clone(), username: self.username.clone() }
    }

    pub fn target(&self) -> String {
        format!("user:{}", self.id)
    }

    /// At least one second factor (TOTP or a passkey) is enrolled; without one the user
    /// reaches only the enrolment step.
    pub fn has_factor(&self) -> bool {
        self.totp_enrolled || self.passkeys > 0
    }
}

pub fn role_str(role: &Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Operator => "operator",
    }
}

pub fn parse_role(s: &str) -> Result<Role> {
    match s {
        "admin" => Ok(Role::Admin),
        "operator" => Ok(Role::Operator),
        other => Err(BackendError::Internal(format!("unknown role in database: {other:?}"))),
    }
}

pub fn valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME_CHARS
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Policy for new accounts; messages never echo the password.
pub fn validate_new_credentials(username: &str, password: &str) -> Result<()> {
    if !valid_username(username) {
        return Err(BackendError::Invalid(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters of a-z, A-Z, 0-9, '.', '_' or '-'"
        )));
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(BackendError::Invalid(format!("password must be at least {MIN_PASSWORD_CHARS} characters")));
    }
    if password.len() > passwords::MAX_LEN {
        return Err(BackendError::Invalid(format!("password must be at most {} bytes", passwords::MAX_LEN)));
    }
    Ok(())
}

/// Columns `user_from_row` reads (also used by `check_password`).
const USER_SELECT: &str = "SELECT u.id, u.username, u.role, u.disabled, COALESCE(t.confirmed, 0) AS totp_enrolled, \
     (SELECT COUNT(*) FROM user_passkeys p WHERE p.user_id = u.id) AS passkeys";
const USER_FROM: &str = " FROM users u LEFT JOIN user_totp t ON t.user_id = u.id";

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    let disabled: i64 = r.try_get("disabled")?;
    let totp: i64 = r.try_get("totp_enrolled")?;
    let passkeys: i64 = r.try_get("passkeys")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        role: parse_role(&role)?,
        disabled: disabled != 0,
        totp_enrolled: totp != 0,
        passkeys,
    })
}

/// Inserts a user and its `user.create` audit row in the caller's transaction. The one path
/// every account is created through (CLI, setup page, future admin UI).
pub(crate) async fn insert_user(
    conn: &mut Conn,
    actor: &Actor,
    username: &str,
    password_hash: &str,
    role: Role,
    source_ip: Option<&str>,
    now: i64,
) -> Result<User> {
    let id = db::new_id();
    let res = sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, disabled, created_at, failed_totp) \
         VALUES ($1, $2, $3, $4, 0, $5, 0)",
    )
    .bind(&id)
    .bind(username)
    .bind(password_hash)
    .bind(role_str(&role))
    .bind(now)
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return Err(BackendError::Conflict("username_taken")),
        Err(e) => return Err(e.into()),
    }
    let user = User { id, username: username.to_string(), role, disabled: false, totp_enrolled: false, passkeys: 0 };
    audit::append(
        conn,
        Event {
            actor,
            action: "user.create",
            target: &user.target(),
            source_ip,
            details: json!({ "username": user.username, "role": role_str(&user.role) }),
        },
        now,
    )
    .await?;
    Ok(user)
}

/// Creates an administrator (CLI `user create-admin`, and the first-run setup page through
/// `sessions::setup_admin`).
#[tracing::instrument(skip_all, fields(username = %username))]
pub async fn create_admin(state: &AppState, actor: &Actor, username: &str, password: &str, now: i64) -> Result<User> {
    validate_new_credentials(username, password)?;
    let phc = passwords::hash(&state.password_limiter, password).await?;
    let mut tx = state.db.begin().await?;
    let user = insert_user(&mut tx, actor, username, &phc, Role::Admin, None, now).await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn count(db: &Db) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&db.pool).await?;
    Ok(row.try_get("n")?)
}

/// Same as `count`, inside a transaction.
pub(crate) async fn count_in(conn: &mut Conn) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&mut *conn).await?;
    Ok(row.try_get("n")?)
}

pub async fn user_by_id(db: &Db, id: &str) -> Result<User> {
    let row = sqlx::query(&format!("{USER_SELECT}{USER_FROM} WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(BackendError::NotFound)?;
    user_from_row(&row)
}

/// Case-insensitive lookup.
pub async fn user_by_name(db: &Db, username: &str) -> Result<User> {
    let row = sqlx::query(&format!("{USER_SELECT}{USER_FROM} WHERE lower(u.username) = lower($1)"))
        .bind(username)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(BackendError::NotFound)?;
    user_from_row(&row)
}

const INVALID: BackendError = BackendError::Unauthorized("invalid_credentials");

/// Password step of login: `Ok(user)` or `Unauthorized("invalid_credentials")` for an unknown
/// user, a wrong password or a disabled account alike (same error, same Argon2 cost). Failures
/// are audited (`login.failure`, with the reason, never the password); success is audited by
/// `sessions::start`. A hash with outdated parameters is upgraded on success.
#[tracing::instrument(skip_all, fields(source_ip = source_ip.unwrap_or("-")))]
pub async fn check_password(state: &AppState, username: &str, password: &str, source_ip: Option<&str>, now: i64) -> Result<User> {
    // A syntactically impossible username is looked up as nobody (and the dummy hash still runs).
    let row = if valid_username(username) {
        sqlx::query(&format!("{USER_SELECT}, u.password_hash{USER_FROM} WHERE lower(u.username) = lower($1)"))
        .bind(username)
        .fetch_optional(&state.db.pool)
        .await?
    } else {
        None
    };
    let found = match &row {
        Some(r) => Some((user_from_row(r)?, r.try_get::<String, _>("password_hash")?)),
        None => None,
    };
    // Over-long input is checked against the dummy hash: same cost, always false.
    let phc = found.as_ref().map(|(_, h)| h.as_str()).filter(|_| password.len() <= passwords::MAX_LEN);
    let ok = passwords::verify(&state.password_limiter, phc, password).await?;

    let reason = match &found {
        None => Some("unknown_user"),
        Some(_) if !ok => Some("bad_password"),
        Some((u, _)) if u.disabled => Some("disabled"),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        // The attempted name is recorded only when it is a possible username: people do
        // type passwords into the username field.
        let shown = if valid_username(username) { username } else { "<invalid>" };
        let target = match &found {
            Some((u, _)) => u.target(),
            None => format!("username:{shown}"),
        };
        audit::append_alone(
            &state.db,
            Event {
                actor: &Actor::Anonymous,
                action: "login.failure",
                target: &target,
                source_ip,
                details: json!({ "stage": "password", "reason": reason, "username": shown }),
            },
            now,
        )
        .await?;
        return Err(INVALID);
    }
    let Some((user, old_phc)) = found else { return Err(INVALID) };
    if passwords::needs_rehash(&state.password_limiter, &old_phc) {
        upgrade_hash(state, &user, &old_phc, password, now).await?;
    }
    Ok(user)
}

async fn upgrade_hash(state: &AppState, user: &User, old_phc: &str, password: &str, now: i64) -> Result<()> {
    let new_phc = passwords::hash(&state.password_limiter, password).await?;
    let mut tx = state.db.begin().await?;
    // Only replaces the hash that was verified (a concurrent password change wins).
    let res = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3")
        .bind(&new_phc)
        .bind(&user.id)
        .bind(old_phc)
        .execute(&mut *tx)
        .await?;
    if res.rows_affected() == 1 {
        audit::append(
            &mut tx,
            Event {
                actor: &Actor::System,
                action: "user.password_rehash",
                target: &user.target(),
                source_ip: None,
                details: json!({ "params": format!("m={},t={},p={}", passwords::M_COST_KIB, passwords::T_COST, passwords::P_COST) }),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::backend::sessions::testenv::TestEnv;

    const PW: &str = "a-long-enough-password";

    #[tokio::test]
    async fn create_and_check_password() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let now = 1_700_000_000;
        assert_eq!(count(&st.db).await.unwrap(), 0);
        let u = create_admin(st, &Actor::Cli, "Alice", PW, now).await.unwrap();
        assert_eq!(u.role, Role::Admin);
        assert_eq!(count(&st.db).await.unwrap(), 1);
        assert_eq!(user_by_id(&st.db, &u.id).await.unwrap(), u);
        assert_eq!(user_by_name(&st.db, "alice").await.unwrap().id, u.id);

        // Duplicate (case-insensitive) -> Conflict.
        let e = create_admin(st, &Actor::Cli, "ALICE", PW, now).await.unwrap_err();
        assert_eq!(e.code(), "username_taken");
        // Policy.
        assert_eq!(create_admin(st, &Actor::Cli, "bob", "short", now).await.unwrap_err().code(), "invalid_input");
        assert_eq!(create_admin(st, &Actor::Cli, "bad name", PW, now).await.unwrap_err().code(), "invalid_input");
        assert_eq!(create_admin(st, &Actor::Cli, "", PW, now).await.unwrap_err().code(), "invalid_input");
        let long = "x".repeat(1025);
        assert_eq!(create_admin(st, &Actor::Cli, "bob", &long, now).await.unwrap_err().code(), "invalid_input");

        let ok = check_password(st, "alice", PW, Some("192.0.2.1"), now).await.unwrap();
        assert_eq!(ok.id, u.id);
        let wrong = check_password(st, "alice", "a-long-enough-passworD", Some("192.0.2.1"), now).await.unwrap_err();
        assert_eq!(wrong.code(), "invalid_credentials");
        let unknown = check_password(st, "nobody", PW, Some("192.0.2.2"), now).await.unwrap_err();
        assert_eq!(unknown.code(), "invalid_credentials");
        let garbage = check_password(st, "my secret pw!", PW, None, now).await.unwrap_err();
        assert_eq!(garbage.code(), "invalid_credentials");

        // Disabled: refused with the same error even with the right password.
        sqlx::query("UPDATE users SET disabled = 1 WHERE id = $1").bind(&u.id).execute(&st.db.pool).await.unwrap();
        let dis = check_password(st, "alice", PW, None, now).await.unwrap_err();
        assert_eq!(dis.code(), "invalid_credentials");

        let fails = audit::list_by_action(&st.db, "login.failure").await.unwrap();
        assert_eq!(fails.len(), 4);
        assert_eq!(fails[0].source_ip.as_deref(), Some("192.0.2.1"));
        assert!(fails[0].details.contains("bad_password"));
        assert!(fails[1].details.contains("unknown_user") && fails[1].target == "username:nobody");
        assert!(fails[2].details.contains("<invalid>") && !fails[2].details.contains("secret"));
        assert!(fails[3].details.contains("disabled"));
        for f in &fails {
            assert!(!f.details.contains(PW));
        }
        assert_eq!(audit::list_by_action(&st.db, "user.create").await.unwrap().len(), 1);
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }

    #[tokio::test]
    async fn weak_hash_is_upgraded_on_login() {
        let env = TestEnv::new().await;
        let st = &env.state;
        let now = 1_700_000_000;
        let weak = passwords::hash_with_params_blocking(PW, 8192, 1, 1).unwrap();
        let mut tx = st.db.begin().await.unwrap();
        let u = insert_user(&mut tx, &Actor::Cli, "carol", &weak, Role::Operator, None, now).await.unwrap();
        tx.commit().await.unwrap();

        check_password(st, "carol", PW, None, now).await.unwrap();
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1").bind(&u.id).fetch_one(&st.db.pool).await.unwrap();
        let stored: String = row.try_get("password_hash").unwrap();
        assert_ne!(stored, weak);
        assert!(!passwords::needs_rehash(&st.password_limiter, &stored));
        assert!(stored.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"));
        // Still logs in with the upgraded hash.
        check_password(st, "carol", PW, None, now).await.unwrap();
        assert_eq!(audit::list_by_action(&st.db, "user.password_rehash").await.unwrap().len(), 1);
        assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
        env.finish().await;
    }
}
