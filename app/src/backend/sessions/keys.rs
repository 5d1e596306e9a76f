//! JWT signing keys (Ed25519, EdDSA) and the two token kinds signed with them: access tokens
//! (audience `pm-web`) and "second factor pending" tokens (audience `pm-mfa`).
//!
//! Keys live in the database (`jwt_keys`, PKCS#8 base64), so every replica on one database
//! signs and verifies with the same set; `kid` = first 16 hex digits of SHA-256(public key).
//! A token's `kid` must name a key in the in-memory set: it is never fetched on demand.
//!
//! Rotation (every `jwt_rotation_days`, 90 by default, or at once with `patch-manager keys
//! rotate`): a new key is written with `activates_at = now + ACTIVATION_DELAY_SECS`, longer
//! than two refresh periods of every replica, so all of them know it before any of them
//! signs with it; the old key's `retired_at` is that same instant. A retired key still
//! verifies for `OVERLAP_SECS` (24 h) after retirement, then never: the check is made
//! against `now` at verification, not only when the set is reloaded.
//!
//! Time is checked here against the `now` passed in: jsonwebtoken's own `exp`/`nbf` checks use
//! the system clock, so they are switched off (the claims stay required).

use std::collections::HashMap;
use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD as B64STD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::Principal;
use crate::backend::audit::{self, Actor, Event};
use crate::backend::db::Db;
use crate::backend::error::{BackendError, Result};
use crate::backend::users::{self, User};

pub const ISSUER: &str = "patch-manager";
pub const AUD_ACCESS: &str = "pm-web";
pub const AUD_PENDING: &str = "pm-mfa";
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
pub const PENDING_TTL_SECS: i64 = 5 * 60;
/// Allowed clock difference between replicas for `exp`/`nbf`/`iat`.
pub const LEEWAY_SECS: i64 = 5;
/// How long a retired key still verifies.
pub const OVERLAP_SECS: i64 = 24 * 3600;
/// Delay between writing a new key and signing with it (replicas reload every
/// `KEY_REFRESH_SECS`).
pub const ACTIVATION_DELAY_SECS: i64 = 150;
pub const KEY_REFRESH_SECS: u64 = 60;
pub const DEFAULT_ROTATION_DAYS: i64 = 90;

/// Password accepted, the user has a factor: finish with TOTP, a passkey or a recovery code.
pub const STAGE_SECOND_FACTOR: &str = "second_factor";
/// Password accepted, no factor yet: only enrolling one (TOTP or a passkey) finishes the login.
pub const STAGE_ENROL: &str = "enrol";
/// Older names of the two stages.
pub const STAGE_TOTP: &str = STAGE_SECOND_FACTOR;
pub const STAGE_ENROLL_TOTP: &str = STAGE_ENROL;

const INVALID: BackendError = BackendError::Unauthorized("invalid_token");
const EXPIRED: BackendError = BackendError::Unauthorized("token_expired");

struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Raw Ed25519 public key (tests use it for algorithm-confusion forgeries).
    #[cfg_attr(not(test), allow(dead_code))]
    public: Vec<u8>,
    activates_at: i64,
    retired_at: Option<i64>,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<String, Key>,
}

/// The keys this process trusts, reloaded from the database by a background task.
pub struct KeySet {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids = self.kids();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

fn crypto(what: &str) -> impl Fn(ring::error::KeyRejected) -> BackendError + '_ {
    move |e| BackendError::Crypto(format!("{what}: {e}"))
}

fn kid_of(public_key: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key))[..16].to_string()
}

fn key_from_pkcs8(pkcs8: &[u8], activates_at: i64, retired_at: Option<i64>) -> Result<(String, Key)> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(crypto("jwt key"))?;
    let public = pair.public_key().as_ref();
    let kid = kid_of(public);
    let key = Key {
        encoding: EncodingKey::from_ed_der(pkcs8),
        decoding: DecodingKey::from_ed_der(public),
        public: public.to_vec(),
        activates_at,
        retired_at,
    };
    Ok((kid, key))
}

fn generate_pkcs8() -> Result<Vec<u8>> {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| BackendError::Crypto("ed25519 keygen".into()))?;
    Ok(doc.as_ref().to_vec())
}

/// Writes a new key. `activates_at` = now for the very first key, later for a rotation (see
/// the module docs); keys not yet retired retire when the new one activates.
async fn insert_key(conn: &mut crate::backend::db::Conn, actor: &Actor, activates_at: i64, now: i64) -> Result<String> {
    let pkcs8 = generate_pkcs8()?;
    let (kid, _) = key_from_pkcs8(&pkcs8, activates_at, None)?;
    let retired = sqlx::query("UPDATE jwt_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(activates_at)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("INSERT INTO jwt_keys (kid, pkcs8, created_at, activates_at) VALUES ($1, $2, $3, $4)")
        .bind(&kid)
        .bind(B64STD.encode(&pkcs8))
        .bind(now)
        .bind(activates_at)
        .execute(&mut *conn)
        .await?;
    let ev = Event {
        actor,
        action: "jwt_key.rotate",
        target: &format!("jwt_key:{kid}"),
        source_ip: None,
        details: serde_json::json!({ "activates_at": activates_at, "retired_keys": retired }),
    };
    audit::append(conn, ev, now).await?;
    tracing::info!(target: "security", %kid, activates_at, "new JWT signing key");
    Ok(kid)
}

/// Serialises key rotation across replicas: the `jwt_keys` settings row is locked for the
/// rest of the transaction (SQLite serialises writers anyway).
async fn lock_rotation(conn: &mut crate::backend::db::Conn, now: i64) -> Result<()> {
    let n = sqlx::query("UPDATE settings SET updated_at = $1 WHERE key = 'jwt_keys'").bind(now).execute(&mut *conn).await?;
    if n.rows_affected() == 0 {
        sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ('jwt_keys', 'rotation lock', $1)")
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Makes sure a usable key exists and rotates when the active key is older than
/// `rotation_secs`. Idempotent; safe on several replicas at once.
pub async fn ensure_current(db: &Db, rotation_secs: i64, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    lock_rotation(&mut tx, now).await?;
    // The newest key that signs now, if any (a first start, or only a pending key written by
    // `keys rotate` before the first start, means none).
    let active = sqlx::query(
        "SELECT activates_at FROM jwt_keys WHERE activates_at <= $1 ORDER BY activates_at DESC, kid DESC LIMIT 1",
    )
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let pending = sqlx::query("SELECT COUNT(*) AS n FROM jwt_keys WHERE activates_at > $1").bind(now).fetch_one(&mut *tx).await?;
    let pending: i64 = pending.try_get("n")?;
    match active {
        None => {
            insert_key(&mut tx, &Actor::System, now, now).await?;
        }
        Some(r) => {
            let activates_at: i64 = r.try_get("activates_at")?;
            if pending == 0 && activates_at + rotation_secs <= now {
                insert_key(&mut tx, &Actor::System, now + ACTIVATION_DELAY_SECS, now).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// `patch-manager keys rotate`: a new key at once (it signs after the activation delay).
pub async fn rotate_now(db: &Db, actor: &Actor, now: i64) -> Result<String> {
    let mut tx = db.begin().await?;
    lock_rotation(&mut tx, now).await?;
    let kid = insert_key(&mut tx, actor, now + ACTIVATION_DELAY_SECS, now).await?;
    tx.commit().await?;
    Ok(kid)
}

impl KeySet {
    /// Ensures a key exists, then loads every key that may still verify.
    pub async fn load(db: &Db, rotation_secs: i64, now: i64) -> Result<KeySet> {
        let ks = KeySet { inner: RwLock::new(Inner::default()) };
        ks.refresh(db, rotation_secs, now).await?;
        Ok(ks)
    }

    /// Rotates if due, then replaces the in-memory set with the database's.
    pub async fn refresh(&self, db: &Db, rotation_secs: i64, now: i64) -> Result<()> {
        ensure_current(db, rotation_secs, now).await?;
        let rows = sqlx::query("SELECT kid, pkcs8, activates_at, retired_at FROM jwt_keys WHERE retired_at IS NULL OR retired_at > $1")
            .bind(now - OVERLAP_SECS)
            .fetch_all(&db.pool)
            .await?;
        let mut keys = HashMap::new();
        for r in &rows {
            let stored: String = r.try_get("kid")?;
            let pkcs8 = B64STD.decode(r.try_get::<String, _>("pkcs8")?).map_err(|_| BackendError::Internal("jwt key not base64".into()))?;
            let (kid, key) = key_from_pkcs8(&pkcs8, r.try_get("activates_at")?, r.try_get("retired_at")?)?;
            if kid != stored {
                return Err(BackendError::Internal(format!("jwt key {stored} does not match its kid")));
            }
            keys.insert(kid, key);
        }
        let mut inner = self.inner.write().map_err(|_| BackendError::Internal("key set lock poisoned".into()))?;
        inner.keys = keys;
        Ok(())
    }

    /// A set with one fresh key, in memory only (tests of the token formats).
    #[cfg(test)]
    pub(crate) fn generate_in_memory(now: i64) -> Result<KeySet> {
        let (kid, key) = key_from_pkcs8(&generate_pkcs8()?, now, None)?;
        Ok(KeySet { inner: RwLock::new(Inner { keys: HashMap::from([(kid, key)]) }) })
    }

    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.inner.read().map(|i| i.keys.keys().cloned().collect()).unwrap_or_default();
        kids.sort();
        kids
    }

    /// The key that signs at `now`: the latest activated one (ties by kid, so every replica
    /// picks the same).
    pub fn signing_kid(&self, now: i64) -> Option<String> {
        let inner = self.inner.read().ok()?;
        inner
            .keys
            .iter()
            .filter(|(_, k)| k.activates_at <= now)
            .max_by(|a, b| a.1.activates_at.cmp(&b.1.activates_at).then_with(|| a.0.cmp(b.0)))
            .map(|(kid, _)| kid.clone())
    }

    fn sign<T: Serialize>(&self, claims: &T, now: i64) -> Result<String> {
        let kid = self.signing_kid(now).ok_or_else(|| BackendError::Internal("no active JWT signing key".into()))?;
        let inner = self.inner.read().map_err(|_| BackendError::Internal("key set lock poisoned".into()))?;
        let key = inner.keys.get(&kid).ok_or_else(|| BackendError::Internal("signing key missing".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| BackendError::Crypto(format!("jwt sign: {e}")))
    }

    /// Signature, algorithm, kid, issuer and audience checked by jsonwebtoken; time by us.
    fn verify<T: DeserializeOwned + TimeClaims>(&self, token: &str, audience: &str, now: i64) -> Result<T> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        if header.alg != Algorithm::EdDSA {
            return Err(INVALID);
        }
        let inner = self.inner.read().map_err(|_| BackendError::Internal("key set lock poisoned".into()))?;
        let key = header.kid.as_deref().and_then(|kid| inner.keys.get(kid)).ok_or(INVALID)?;
        // A retired key verifies for the overlap, then never (whatever the reload cadence).
        if key.retired_at.is_some_and(|r| now >= r + OVERLAP_SECS) {
            return Err(INVALID);
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[audience]);
        let data = jsonwebtoken::decode::<T>(token, &key.decoding, &v).map_err(|_| INVALID)?;
        let (exp, nbf, iat) = data.claims.times();
        if nbf > now + LEEWAY_SECS || iat > now + LEEWAY_SECS {
            return Err(INVALID);
        }
        if now >= exp + LEEWAY_SECS {
            return Err(EXPIRED);
        }
        Ok(data.claims)
    }
}

trait TimeClaims {
    fn times(&self) -> (i64, i64, i64);
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    iss: String,
    aud: String,
    /// user id
    sub: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    /// session (refresh family) id
    sid: String,
    role: String,
    username: String,
}

impl TimeClaims for AccessClaims {
    fn times(&self) -> (i64, i64, i64) {
        (self.exp, self.nbf, self.iat)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PendingClaims {
    iss: String,
    aud: String,
    sub: String,
    exp: i64,
    nbf: i64,
    iat: i64,
    stage: String,
}

impl TimeClaims for PendingClaims {
    fn times(&self) -> (i64, i64, i64) {
        (self.exp, self.nbf, self.iat)
    }
}

/// A 15-minute access token for `principal`.
pub(crate) fn issue_access(keys: &KeySet, principal: &Principal, now: i64) -> Result<String> {
    keys.sign(
        &AccessClaims {
        iss: ISSUER.into(),
        aud: AUD_ACCESS.into(),
        sub: principal.user_id.clone(),
        exp: now + ACCESS_TTL_SECS,
        nbf: now,
        iat: now,
        sid: principal.session_id.clone(),
        role: users::role_str(&principal.role).into(),
        username: principal.username.clone(),
        },
        now,
    )
}

/// Checks an access token (signature, kid, `iss`, `aud = pm-web`, time against `now`).
/// Stateless: whether the session is still live (and the role current) is checked by
/// `access::resolve` on every call that reads or changes anything.
pub fn verify_access(keys: &KeySet, jwt: &str, now: i64) -> Result<Principal> {
    let c: AccessClaims = keys.verify(jwt, AUD_ACCESS, now)?;
    let role = users::parse_role(&c.role).map_err(|_| INVALID)?;
    Ok(Principal { user_id: c.sub, username: c.username, role, session_id: c.sid })
}

/// "Password OK, second factor pending" token (5 min, `aud = pm-mfa`). Its stage is
/// `second_factor` when the user has a confirmed factor (TOTP or passkey), else `enrol`.
pub fn issue_pending(keys: &KeySet, user: &User, now: i64) -> Result<String> {
    let stage = if user.has_factor() { STAGE_SECOND_FACTOR } else { STAGE_ENROL };
    keys.sign(
        &PendingClaims {
        iss: ISSUER.into(),
        aud: AUD_PENDING.into(),
        sub: user.id.clone(),
        exp: now + PENDING_TTL_SECS,
        nbf: now,
        iat: now,
        stage: stage.into(),
        },
        now,
    )
}

/// `(user_id, stage)` of a valid pending token.
pub fn verify_pending(keys: &KeySet, token: &str, now: i64) -> Result<(String, String)> {
    let c: PendingClaims = keys.verify(token, AUD_PENDING, now)?;
    if c.stage != STAGE_SECOND_FACTOR && c.stage != STAGE_ENROL {
        return Err(INVALID);
    }
    Ok((c.sub, c.stage))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    use super::*;
    use crate::api::dto::Role;

    const NOW: i64 = 1_700_000_000;

    impl KeySet {
        fn public_key(&self, kid: &str) -> Vec<u8> {
            self.inner.read().unwrap().keys.get(kid).unwrap().public.clone()
        }
        fn encoding_key(&self, kid: &str) -> EncodingKey {
            self.inner.read().unwrap().keys.get(kid).unwrap().encoding.clone()
        }
    }

    fn principal() -> Principal {
        Principal { user_id: "u1".into(), username: "alice".into(), role: Role::Admin, session_id: "s1".into() }
    }

    fn user(enrolled: bool) -> User {
        User { id: "u1".into(), username: "alice".into(), role: Role::Admin, disabled: false, totp_enrolled: enrolled, passkeys: 0 }
    }

    #[tokio::test]
    async fn keys_rotate_overlap_then_expire() {
        let t = crate::backend::testkit::test_db().await;
        let db = &t.db;
        let rotation = DEFAULT_ROTATION_DAYS * 86400;
        let ks = KeySet::load(db, rotation, NOW).await.unwrap();
        let first = ks.signing_kid(NOW).unwrap();
        assert_eq!(first.len(), 16);
        assert!(!format!("{ks:?}").contains("encoding"));
        // A second replica on the same database gets the same key.
        let replica = KeySet::load(db, rotation, NOW).await.unwrap();
        assert_eq!(replica.kids(), vec![first.clone()]);
        let old_token = issue_access(&ks, &principal(), NOW).unwrap();
        assert_eq!(verify_access(&replica, &old_token, NOW).unwrap(), principal());

        // Not due yet: nothing changes.
        ks.refresh(db, rotation, NOW + rotation - 1).await.unwrap();
        assert_eq!(ks.kids().len(), 1);
        // Due: a new key, known to every replica before anyone signs with it.
        let due = NOW + rotation;
        ks.refresh(db, rotation, due).await.unwrap();
        replica.refresh(db, rotation, due).await.unwrap();
        assert_eq!(ks.kids().len(), 2);
        assert_eq!(ks.signing_kid(due).unwrap(), first, "the new key is not active yet");
        let active = due + ACTIVATION_DELAY_SECS;
        let second = ks.signing_kid(active).unwrap();
        assert_ne!(second, first);
        assert_eq!(replica.signing_kid(active).unwrap(), second);
        let new_token = issue_access(&ks, &principal(), active).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.unwrap(), second);
        assert!(verify_access(&replica, &new_token, active).is_ok());
        // Rotating again at once does nothing (the new key is still young).
        ks.refresh(db, rotation, active).await.unwrap();
        assert_eq!(ks.kids().len(), 2);

        // The old key verifies for 24 h after its retirement, then never, even before a reload.
        let fresh_on_old = {
            let c = AccessClaims {
                iss: ISSUER.into(), aud: AUD_ACCESS.into(), sub: "u1".into(),
                exp: active + OVERLAP_SECS + 600, nbf: NOW, iat: NOW, sid: "s1".into(),
                role: "admin".into(), username: "alice".into(),
            };
            ks.sign(&c, NOW).unwrap()
        };
        assert!(verify_access(&ks, &fresh_on_old, active + OVERLAP_SECS - 1).is_ok());
        assert_eq!(verify_access(&ks, &fresh_on_old, active + OVERLAP_SECS).unwrap_err().code(), "invalid_token");
        // And after a reload it is gone from the set.
        ks.refresh(db, rotation, active + OVERLAP_SECS).await.unwrap();
        assert_eq!(ks.kids(), vec![second.clone()]);

        // Manual rotation (CLI) is audited with its actor.
        let third = rotate_now(db, &Actor::Cli, active + 10).await.unwrap();
        ks.refresh(db, rotation, active + 10).await.unwrap();
        assert_eq!(ks.signing_kid(active + 10 + ACTIVATION_DELAY_SECS).unwrap(), third);
        let rows = audit::list_by_action(db, "jwt_key.rotate").await.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].actor, "cli");
        // Private keys never appear in the audit log.
        let pk: String = sqlx::query("SELECT pkcs8 FROM jwt_keys LIMIT 1").fetch_one(&db.pool).await.unwrap().try_get("pkcs8").unwrap();
        assert!(rows.iter().all(|r| !r.details.contains(&pk)));
        t.cleanup().await;
    }

    #[test]
    fn access_round_trip_and_expiry() {
        let ks = KeySet::generate_in_memory(NOW).unwrap();
        let t = issue_access(&ks, &principal(), NOW).unwrap();
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid, Some(ks.signing_kid(NOW).unwrap()));
        assert_eq!(verify_access(&ks, &t, NOW + ACCESS_TTL_SECS - 1).unwrap(), principal());
        // Expired, decided by `now` (the system clock is far later than NOW anyway).
        assert_eq!(verify_access(&ks, &t, NOW + ACCESS_TTL_SECS + LEEWAY_SECS).unwrap_err().code(), "token_expired");
        // Not yet valid.
        assert_eq!(verify_access(&ks, &t, NOW - 60).unwrap_err().code(), "invalid_token");
        // A token that the system clock would call expired but `now` doesn't still verifies.
        let ks_old = KeySet::generate_in_memory(1000).unwrap();
        let old = issue_access(&ks_old, &principal(), 1000).unwrap();
        assert!(verify_access(&ks_old, &old, 1001).is_ok());
    }

    #[test]
    fn forged_tokens_refused() {
        let ks = KeySet::generate_in_memory(NOW).unwrap();
        let good = issue_access(&ks, &principal(), NOW).unwrap();
        let mut parts = good.split('.');
        let (_h, payload) = (parts.next().unwrap(), parts.next().unwrap());

        // alg: none, no signature.
        let none_header = B64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, ks.signing_kid(NOW).unwrap()));
        let none = format!("{none_header}.{payload}.");
        assert_eq!(verify_access(&ks, &none, NOW).unwrap_err().code(), "invalid_token");

        // HS256 "signed" with the public key bytes (algorithm confusion).
        let public = ks.public_key(&ks.signing_kid(NOW).unwrap());
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(ks.signing_kid(NOW).unwrap());
        let hs = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&public)).unwrap();
        assert_eq!(verify_access(&ks, &hs, NOW).unwrap_err().code(), "invalid_token");

        // Tampered payload with the original signature.
        let mut tampered_claims = claims.clone();
        tampered_claims["role"] = "admin".into();
        tampered_claims["sub"] = "someone-else".into();
        let tp = B64.encode(tampered_claims.to_string());
        let sig = good.rsplit('.').next().unwrap();
        let hdr = good.split('.').next().unwrap();
        assert_eq!(verify_access(&ks, &format!("{hdr}.{tp}.{sig}"), NOW).unwrap_err().code(), "invalid_token");

        // Unknown kid: a token from another key set.
        let other = KeySet::generate_in_memory(NOW).unwrap();
        let foreign = issue_access(&other, &principal(), NOW).unwrap();
        assert_eq!(verify_access(&ks, &foreign, NOW).unwrap_err().code(), "invalid_token");
        // Other key, but claiming our kid: bad signature.
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(ks.signing_kid(NOW).unwrap());
        let spoof = jsonwebtoken::encode(&h, &claims, &other.encoding_key(&other.signing_kid(NOW).unwrap())).unwrap();
        assert_eq!(verify_access(&ks, &spoof, NOW).unwrap_err().code(), "invalid_token");
        // No kid at all.
        let nokid = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &ks.encoding_key(&ks.signing_kid(NOW).unwrap())).unwrap();
        assert_eq!(verify_access(&ks, &nokid, NOW).unwrap_err().code(), "invalid_token");
        assert_eq!(verify_access(&ks, "not.a.jwt", NOW).unwrap_err().code(), "invalid_token");
        assert_eq!(verify_access(&ks, "", NOW).unwrap_err().code(), "invalid_token");

        // ES256, properly signed by a P-256 key, claiming our kid: wrong algorithm.
        let rng = ring::rand::SystemRandom::new();
        let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(ks.signing_kid(NOW).unwrap());
        let es = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_ec_der(p256.as_ref())).unwrap();
        assert_eq!(verify_access(&ks, &es, NOW).unwrap_err().code(), "invalid_token");

        // Hostile kids on tokens genuinely signed with our key: only the in-memory set is
        // consulted, never a path, a query or a URL.
        let signing = ks.encoding_key(&ks.signing_kid(NOW).unwrap());
        let long_kid = "k".repeat(10_000);
        for kid in ["../../../../etc/passwd", "' OR '1'='1", "https://evil.example/jwks.json", "nul\u{0}kid", long_kid.as_str(), ""] {
            let mut h = Header::new(Algorithm::EdDSA);
            h.kid = Some(kid.to_string());
            let t = jsonwebtoken::encode(&h, &claims, &signing).unwrap();
            assert_eq!(verify_access(&ks, &t, NOW).unwrap_err().code(), "invalid_token", "kid {:?}", &kid[..kid.len().min(40)]);
        }
    }

    #[test]
    fn time_claims_must_be_numbers() {
        let ks = KeySet::generate_in_memory(NOW).unwrap();
        let base = serde_json::json!({
            "iss": ISSUER, "aud": AUD_ACCESS, "sub": "u1", "exp": NOW + 60, "nbf": NOW, "iat": NOW,
            "sid": "s1", "role": "admin", "username": "alice"
        });
        assert!(verify_access(&ks, &ks.sign(&base, NOW).unwrap(), NOW).is_ok());
        for (field, value) in [
            ("exp", serde_json::json!((NOW + 60).to_string())),
            ("exp", serde_json::json!("never")),
            ("exp", serde_json::json!(null)),
            ("exp", serde_json::json!(1.0e300)),
            ("nbf", serde_json::json!(NOW.to_string())),
            ("iat", serde_json::json!([NOW])),
        ] {
            let mut c = base.clone();
            c[field] = value.clone();
            let t = ks.sign(&c, NOW).unwrap();
            assert_eq!(verify_access(&ks, &t, NOW).unwrap_err().code(), "invalid_token", "{field} = {value}");
        }
    }

    #[test]
    fn audiences_do_not_mix() {
        let ks = KeySet::generate_in_memory(NOW).unwrap();
        let pending = issue_pending(&ks, &user(true), NOW).unwrap();
        assert_eq!(verify_pending(&ks, &pending, NOW).unwrap(), ("u1".to_string(), STAGE_TOTP.to_string()));
        // Pending token used as an access token.
        assert_eq!(verify_access(&ks, &pending, NOW).unwrap_err().code(), "invalid_token");
        // And the other way round.
        let access = issue_access(&ks, &principal(), NOW).unwrap();
        assert_eq!(verify_pending(&ks, &access, NOW).unwrap_err().code(), "invalid_token");
        // Stage for an unenrolled user; pending expiry.
        let enroll = issue_pending(&ks, &user(false), NOW).unwrap();
        assert_eq!(verify_pending(&ks, &enroll, NOW).unwrap().1, STAGE_ENROLL_TOTP);
        assert_eq!(verify_pending(&ks, &enroll, NOW + PENDING_TTL_SECS + LEEWAY_SECS).unwrap_err().code(), "token_expired");
    }

    #[test]
    fn missing_required_claims_refused() {
        let ks = KeySet::generate_in_memory(NOW).unwrap();
        let base = serde_json::json!({
            "iss": ISSUER, "aud": AUD_ACCESS, "sub": "u1", "exp": NOW + 60, "nbf": NOW, "iat": NOW,
            "sid": "s1", "role": "admin", "username": "alice"
        });
        assert!(verify_access(&ks, &ks.sign(&base, NOW).unwrap(), NOW).is_ok());
        for field in ["iss", "aud", "sub", "exp", "nbf", "iat", "sid", "role"] {
            let mut c = base.clone();
            c.as_object_mut().unwrap().remove(field);
            assert!(verify_access(&ks, &ks.sign(&c, NOW).unwrap(), NOW).is_err(), "{field}");
        }
        let mut c = base.clone();
        c["iss"] = "someone-else".into();
        assert!(verify_access(&ks, &ks.sign(&c, NOW).unwrap(), NOW).is_err());
        let mut c = base;
        c["role"] = "root".into();
        assert!(verify_access(&ks, &ks.sign(&c, NOW).unwrap(), NOW).is_err());
    }
}
