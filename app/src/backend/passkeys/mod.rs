//! WebAuthn passkeys and security keys (webauthn-rs): several per user, named, renamed and
//! removed by their owner; used as the second factor after a password, and for passwordless
//! login (discoverable credential, user verification required).
//!
//! Relying party: RP ID = the host of `public_url`, origin = `public_url` exactly (scheme, host
//! and port). An assertion or attestation made for another origin or RP ID is refused by
//! webauthn-rs; user verification is required in every ceremony.
//!
//! Ceremony state lives in the database (`ceremony`), single use and bound to whoever started
//! it, so any replica may finish a ceremony another one started.
//!
//! Counter rule: when the stored or the presented signature counter is non-zero, the presented
//! one must be greater. webauthn-rs checks it against the counter *in the ceremony state*,
//! which for a second-factor ceremony is a snapshot taken at its start; the guarded `UPDATE` in
//! [`record_use`] checks it again against the row as it is now (also across concurrent finishes
//! on several replicas). A regression is refused and audited (`login.failure`, reason
//! `counter_regression`): it means a cloned authenticator or a replayed response.
//!
//! # Layout
//! - `ceremony`: storing and consuming ceremony state.
//! - `tests`: every refusal, with webauthn-authenticator-rs soft passkeys.

pub mod ceremony;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use self::ceremony::Kind;
use super::audit::{self, Actor, Event};
use super::db::{self, Conn, Db};
use super::error::{BackendError, Result};
use super::recovery;
use super::state::AppState;
use super::users::{self, User};
use crate::api::dto::PasskeyInfo;

pub const MAX_NAME_CHARS: usize = 64;
/// Upper bound of a credential JSON from the browser (attestation objects are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const INVALID: BackendError = BackendError::Unauthorized("passkey_invalid");
const UNAVAILABLE: BackendError = BackendError::Conflict("passkeys_unavailable");

/// The relying party of this server.
pub struct RelyingParty {
    webauthn: Webauthn,
    pub rp_id: String,
    pub origin: Url,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty").field("rp_id", &self.rp_id).field("origin", &self.origin.as_str()).finish()
    }
}

impl RelyingParty {
    /// RP ID = host of `public_url` (a DNS name: WebAuthn has no RP IDs for IP addresses),
    /// origin = `public_url`.
    pub fn new(public_url: &str) -> Result<RelyingParty> {
        let origin = Url::parse(public_url).map_err(|e| BackendError::Invalid(format!("public_url: {e}")))?;
        let rp_id = origin
            .domain()
            .ok_or_else(|| BackendError::Invalid("public_url must name a host by DNS name for passkeys".into()))?
            .to_string();
        let webauthn = WebauthnBuilder::new(&rp_id, &origin)
            .and_then(|b| b.rp_name("Patch Manager").build())
            .map_err(|e| BackendError::Invalid(format!("WebAuthn relying party: {e}")))?;
        Ok(RelyingParty { webauthn, rp_id, origin })
    }
}

fn rp(state: &AppState) -> Result<&RelyingParty> {
    state.webauthn.as_deref().ok_or(UNAVAILABLE)
}

/// The user handle WebAuthn stores with a credential: the user's id (a UUID).
fn user_handle(user: &User) -> Result<Uuid> {
    Uuid::parse_str(&user.id).map_err(|_| BackendError::Internal("user id is not a UUID".into()))
}

fn internal(what: &str) -> impl Fn(serde_json::Error) -> BackendError + '_ {
    move |e| BackendError::Internal(format!("{what}: {e}"))
}

/// A short, stable name of a webauthn-rs refusal for the audit log (never key material).
fn reason(e: &WebauthnError) -> String {
    if matches!(e, WebauthnError::CredentialPossibleCompromise) {
        return "counter_regression".into();
    }
    let mut s = format!("{e:?}");
    s.truncate(80);
    s
}

pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(BackendError::Invalid(format!("the name must be 1 to {MAX_NAME_CHARS} printable characters")));
    }
    Ok(name.to_string())
}

fn parse<T: for<'de> Deserialize<'de>>(json_text: &str) -> Result<T> {
    if json_text.len() > MAX_RESPONSE_BYTES {
        return Err(BackendError::Invalid("the authenticator response is too large".into()));
    }
    serde_json::from_str(json_text).map_err(|_| BackendError::Invalid("malformed authenticator response".into()))
}

/// Signature counter of a stored credential (webauthn-rs keeps it inside the serialized key).
fn counter_of(passkey: &Passkey) -> Result<i64> {
    let v = serde_json::to_value(passkey).map_err(internal("passkey"))?;
    Ok(v.pointer("/cred/counter").and_then(serde_json::Value::as_i64).unwrap_or(0))
}

#[derive(Serialize, Deserialize)]
struct RegisterState {
    name: String,
    reg: PasskeyRegistration,
}

struct StoredKey {
    id: String,
    user_id: String,
    passkey: Passkey,
}

fn stored_from_row(r: &sqlx::any::AnyRow) -> Result<StoredKey> {
    let credential: String = r.try_get("credential")?;
    Ok(StoredKey {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        passkey: serde_json::from_str(&credential).map_err(internal("stored passkey"))?,
    })
}

async fn keys_of(conn: &mut Conn, user_id: &str) -> Result<Vec<StoredKey>> {
    let rows = sqlx::query("SELECT id, user_id, credential FROM user_passkeys WHERE user_id = $1 ORDER BY created_at, id")
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(stored_from_row).collect()
}

async fn key_by_credential_id(conn: &mut Conn, credential_id: &[u8]) -> Result<Option<StoredKey>> {
    let row = sqlx::query("SELECT id, user_id, credential FROM user_passkeys WHERE credential_id = $1")
        .bind(B64.encode(credential_id))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(stored_from_row).transpose()
}

/// The user's passkeys, oldest first.
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<PasskeyInfo>> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, last_used_at FROM user_passkeys WHERE user_id = $1 ORDER BY created_at, name, id",
    )
    .bind(user_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PasskeyInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        })
        .collect()
}

async fn login_failure(db: &Db, target: &str, reason: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    audit::append_alone(
        db,
        Event {
            actor: &Actor::Anonymous,
            action: "login.failure",
            target,
            source_ip,
            details: json!({ "stage": "passkey", "reason": reason }),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Starts adding a passkey called `name` for `user`; `binding` names the session (or pending
/// login) that must finish it. Returns the `navigator.credentials.create` options as JSON.
/// Credentials the user already has are excluded (one authenticator, one registration).
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn begin_registration(state: &AppState, user: &User, binding: &str, name: &str, now: i64) -> Result<String> {
    let rp = rp(state)?;
    let name = validate_name(name)?;
    let mut tx = state.db.begin().await?;
    let existing = keys_of(&mut tx, &user.id).await?;
    let exclude = existing.iter().map(|k| k.passkey.cred_id().clone()).collect::<Vec<_>>();
    let (ccr, reg) = rp
        .webauthn
        .start_passkey_registration(user_handle(user)?, &user.username, &user.username, Some(exclude))
        .map_err(|e| BackendError::Internal(format!("start registration: {e}")))?;
    let st = serde_json::to_string(&RegisterState { name, reg }).map_err(internal("registration state"))?;
    ceremony::put(&mut tx, Kind::Register, binding, Some(&user.id), &st, now).await?;
    tx.commit().await?;
    // A discoverable credential when the authenticator can make one, so that the same passkey
    // also serves passwordless login; security keys without storage still register.
    let mut options = serde_json::to_value(&ccr).map_err(internal("creation options"))?;
    if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection").and_then(serde_json::Value::as_object_mut) {
        sel.insert("residentKey".into(), json!("preferred"));
        sel.insert("requireResidentKey".into(), json!(false));
    }
    Ok(options.to_string())
}

/// Finishes [`begin_registration`] with the browser's response. Audited `mfa.passkey.add`.
/// When the user had no unused recovery code (a first factor), a fresh set is made in the same
/// transaction and returned (shown once).
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn finish_registration(
    state: &AppState,
    user: &User,
    binding: &str,
    response_json: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<(PasskeyInfo, Option<Vec<String>>)> {
    let rp = rp(state)?;
    let response: RegisterPublicKeyCredential = parse(response_json)?;
    let taken = ceremony::take(&state.db, Kind::Register, binding, now).await?;
    let Some(taken) = taken.filter(|t| t.user_id.as_deref() == Some(user.id.as_str())) else {
        audit_add_failure(state, user, "no_ceremony", source_ip, now).await?;
        return Err(INVALID);
    };
    let st: RegisterState = serde_json::from_str(&taken.state).map_err(internal("registration state"))?;
    let passkey = match rp.webauthn.finish_passkey_registration(&response, &st.reg) {
        Ok(p) => p,
        Err(e) => {
            audit_add_failure(state, user, &reason(&e), source_ip, now).await?;
            return Err(INVALID);
        }
    };
    let credential = serde_json::to_string(&passkey).map_err(internal("passkey"))?;
    let info = PasskeyInfo { id: db::new_id(), name: st.name, created_at: now, last_used_at: None };
    let mut tx = state.db.begin().await?;
    let res = sqlx::query(
        "INSERT INTO user_passkeys (id, user_id, name, credential_id, credential, sign_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&info.id)
    .bind(&user.id)
    .bind(&info.name)
    .bind(B64.encode(passkey.cred_id()))
    .bind(&credential)
    .bind(counter_of(&passkey)?)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => return Err(BackendError::Conflict("passkey_already_registered")),
        Err(e) => return Err(e.into()),
    }
    audit::append(
        &mut tx,
        Event {
            actor: &user.actor(),
            action: "mfa.passkey.add",
            target: &user.target(),
            source_ip,
            details: json!({ "passkey": info.id, "name": info.name }),
        },
        now,
    )
    .await?;
    let codes = recovery::ensure_in(&mut tx, user, source_ip, now).await?;
    tx.commit().await?;
    Ok((info, codes))
}

async fn audit_add_failure(state: &AppState, user: &User, reason: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    audit::append_alone(
        &state.db,
        Event {
            actor: &user.actor(),
            action: "mfa.passkey.add_failure",
            target: &user.target(),
            source_ip,
            details: json!({ "reason": reason }),
        },
        now,
    )
    .await?;
    Ok(())
}

/// Starts the passkey step of a login for `user` (password already checked): the
/// `navigator.credentials.get` options (JSON) listing the user's credentials.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn begin_authentication(state: &AppState, user: &User, binding: &str, now: i64) -> Result<String> {
    let rp = rp(state)?;
    let mut tx = state.db.begin().await?;
    let keys: Vec<Passkey> = keys_of(&mut tx, &user.id).await?.into_iter().map(|k| k.passkey).collect();
    if keys.is_empty() {
        return Err(BackendError::Conflict("no_passkeys"));
    }
    let (rcr, auth) =
        rp.webauthn.start_passkey_authentication(&keys).map_err(|e| BackendError::Internal(format!("start authentication: {e}")))?;
    let st = serde_json::to_string(&auth).map_err(internal("authentication state"))?;
    ceremony::put(&mut tx, Kind::Authenticate, binding, Some(&user.id), &st, now).await?;
    tx.commit().await?;
    serde_json::to_string(&rcr).map_err(internal("request options"))
}

/// Finishes [`begin_authentication`]: `Ok` when the assertion is valid for this user, this
/// server, the challenge of this binding's ceremony, with user verification and a rising
/// counter. Every refusal is `passkey_invalid`, audited `login.failure` with the reason.
#[tracing::instrument(skip_all, fields(user_id = %user.id))]
pub async fn finish_authentication(
    state: &AppState,
    user: &User,
    binding: &str,
    response_json: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<()> {
    let rp = rp(state)?;
    let response: PublicKeyCredential = parse(response_json)?;
    let target = user.target();
    let taken = ceremony::take(&state.db, Kind::Authenticate, binding, now).await?;
    let Some(taken) = taken.filter(|t| t.user_id.as_deref() == Some(user.id.as_str())) else {
        login_failure(&state.db, &target, "no_ceremony", source_ip, now).await?;
        return Err(INVALID);
    };
    let auth: PasskeyAuthentication = serde_json::from_str(&taken.state).map_err(internal("authentication state"))?;
    let result = match rp.webauthn.finish_passkey_authentication(&response, &auth) {
        Ok(r) => r,
        Err(e) => {
            login_failure(&state.db, &target, &reason(&e), source_ip, now).await?;
            return Err(INVALID);
        }
    };
    let mut conn = state.db.pool.acquire().await?;
    let key = key_by_credential_id(&mut conn, result.cred_id()).await?;
    drop(conn);
    let Some(key) = key.filter(|k| k.user_id == user.id) else {
        // Removed between start and finish.
        login_failure(&state.db, &target, "unknown_credential", source_ip, now).await?;
        return Err(INVALID);
    };
    record_use(state, key, &result, &target, source_ip, now).await
}

/// Starts a passwordless login: options (JSON) without an allow-list, so the authenticator
/// offers its discoverable credentials for this RP. Modal, not conditional mediation: the
/// page asks on a button press.
#[tracing::instrument(skip_all)]
pub async fn begin_discoverable(state: &AppState, binding: &str, now: i64) -> Result<String> {
    let rp = rp(state)?;
    let (mut rcr, auth) = rp
        .webauthn
        .start_discoverable_authentication()
        .map_err(|e| BackendError::Internal(format!("start discoverable authentication: {e}")))?;
    rcr.mediation = None;
    let st = serde_json::to_string(&auth).map_err(internal("authentication state"))?;
    let mut tx = state.db.begin().await?;
    ceremony::put(&mut tx, Kind::Discover, binding, None, &st, now).await?;
    tx.commit().await?;
    serde_json::to_string(&rcr).map_err(internal("request options"))
}

/// Finishes [`begin_discoverable`]: the user the credential belongs to, or `passkey_invalid`
/// (audited `login.failure`). The caller starts the session.
#[tracing::instrument(skip_all)]
pub async fn finish_discoverable(
    state: &AppState,
    binding: &str,
    response_json: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<User> {
    let rp = rp(state)?;
    let response: PublicKeyCredential = parse(response_json)?;
    let Some(taken) = ceremony::take(&state.db, Kind::Discover, binding, now).await? else {
        login_failure(&state.db, "passkey", "no_ceremony", source_ip, now).await?;
        return Err(INVALID);
    };
    let auth: DiscoverableAuthentication = serde_json::from_str(&taken.state).map_err(internal("authentication state"))?;
    let (handle, credential_id) = match rp.webauthn.identify_discoverable_authentication(&response) {
        Ok((h, c)) => (h, c.to_vec()),
        Err(e) => {
            login_failure(&state.db, "passkey", &reason(&e), source_ip, now).await?;
            return Err(INVALID);
        }
    };
    let mut conn = state.db.pool.acquire().await?;
    let key = key_by_credential_id(&mut conn, &credential_id).await?;
    drop(conn);
    // The user handle the authenticator returned must name the credential's owner.
    let Some(key) = key.filter(|k| Uuid::parse_str(&k.user_id).ok() == Some(handle)) else {
        login_failure(&state.db, "passkey", "unknown_credential", source_ip, now).await?;
        return Err(INVALID);
    };
    let target = format!("user:{}", key.user_id);
    let result = match rp.webauthn.finish_discoverable_authentication_v2(&response, auth, &key.passkey) {
        Ok(r) => r,
        Err(e) => {
            login_failure(&state.db, &target, &reason(&e), source_ip, now).await?;
            return Err(INVALID);
        }
    };
    let user = users::user_by_id(&state.db, &key.user_id).await?;
    if user.disabled {
        login_failure(&state.db, &target, "disabled", source_ip, now).await?;
        return Err(INVALID);
    }
    record_use(state, key, &result, &target, source_ip, now).await?;
    Ok(user)
}

/// Stores the new counter and `last_used_at`, unless the counter did not rise (see the module
/// docs): then the assertion is refused and audited `counter_regression`.
async fn record_use(
    state: &AppState,
    mut key: StoredKey,
    result: &AuthenticationResult,
    target: &str,
    source_ip: Option<&str>,
    now: i64,
) -> Result<()> {
    key.passkey.update_credential(result);
    let presented = i64::from(result.counter());
    let credential = serde_json::to_string(&key.passkey).map_err(internal("passkey"))?;
    let mut tx = state.db.begin().await?;
    let updated = sqlx::query(
        "UPDATE user_passkeys SET credential = $1, sign_count = $2, last_used_at = $3 \
         WHERE id = $4 AND (sign_count < $2 OR ($2 = 0 AND sign_count = 0))",
    )
    .bind(&credential)
    .bind(presented)
    .bind(now)
    .bind(&key.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 1 {
        tx.commit().await?;
        return Ok(());
    }
    let stored = sqlx::query("SELECT sign_count FROM user_passkeys WHERE id = $1")
        .bind(&key.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get::<i64, _>("sign_count"))
        .transpose()?;
    let why = if stored.is_some() { "counter_regression" } else { "unknown_credential" };
    audit::append(
        &mut tx,
        Event {
            actor: &Actor::Anonymous,
            action: "login.failure",
            target,
            source_ip,
            details: json!({ "stage": "passkey", "reason": why, "passkey": key.id, "presented": presented, "stored": stored }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    if stored.is_some() {
        tracing::warn!(target: "security", passkey = %key.id, presented, ?stored, "passkey counter did not rise: cloned authenticator or replay");
    }
    Err(INVALID)
}

/// Renames one of the user's passkeys (audited `mfa.passkey.rename`).
pub async fn rename(state: &AppState, user: &User, id: &str, name: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    let name = validate_name(name)?;
    let mut tx = state.db.begin().await?;
    let n = sqlx::query("UPDATE user_passkeys SET name = $1 WHERE id = $2 AND user_id = $3")
        .bind(&name)
        .bind(id)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n != 1 {
        return Err(BackendError::NotFound);
    }
    audit::append(
        &mut tx,
        Event {
            actor: &user.actor(),
            action: "mfa.passkey.rename",
            target: &user.target(),
            source_ip,
            details: json!({ "passkey": id, "name": name }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes one of the user's passkeys (audited `mfa.passkey.remove`). Refused with
/// `last_factor` when it is the user's only factor: an account never ends up without MFA.
pub async fn remove(state: &AppState, user: &User, id: &str, source_ip: Option<&str>, now: i64) -> Result<()> {
    let mut tx = state.db.begin().await?;
    // No-op write: takes the user row's lock, so two removals of a user's last two keys
    // cannot both see the other key.
    sqlx::query("UPDATE users SET failed_totp = failed_totp WHERE id = $1").bind(&user.id).execute(&mut *tx).await?;
    let row = sqlx::query(
        "SELECT p.name, (SELECT COUNT(*) FROM user_passkeys q WHERE q.user_id = p.user_id) AS keys, \
         (SELECT COUNT(*) FROM user_totp t WHERE t.user_id = p.user_id AND t.confirmed = 1) AS totp \
         FROM user_passkeys p WHERE p.id = $1 AND p.user_id = $2",
    )
    .bind(id)
    .bind(&user.id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(BackendError::NotFound)?;
    let keys: i64 = row.try_get("keys")?;
    let totp: i64 = row.try_get("totp")?;
    if keys <= 1 && totp == 0 {
        return Err(BackendError::Conflict("last_factor"));
    }
    let name: String = row.try_get("name")?;
    sqlx::query("DELETE FROM user_passkeys WHERE id = $1 AND user_id = $2").bind(id).bind(&user.id).execute(&mut *tx).await?;
    audit::append(
        &mut tx,
        Event {
            actor: &user.actor(),
            action: "mfa.passkey.remove",
            target: &user.target(),
            source_ip,
            details: json!({ "passkey": id, "name": name }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes every passkey and open ceremony of a user (MFA reset), in the caller's transaction.
pub async fn clear_in(conn: &mut Conn, user_id: &str) -> Result<u64> {
    ceremony::clear_user(conn, user_id).await?;
    Ok(sqlx::query("DELETE FROM user_passkeys WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?.rows_affected())
}
