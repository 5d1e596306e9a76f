//! JWT signing keys (Ed25519, EdDSA) and the two token kinds signed with them: access tokens
//! (audience `pm-web`) and "second factor pending" tokens (audience `pm-mfa`).
//!
//! Keys live in `data_dir/keys/jwt-<kid>.pk8` (PKCS#8, mode 0600 from creation);
//! `kid` = first 16 hex digits of SHA-256(public key). Every key file found is trusted for
//! verification; the newest one signs. A token's `kid` header must name a loaded key.
//!
//! Time is checked here against the `now` passed in: jsonwebtoken's own `exp`/`nbf` checks use
//! the system clock, so they are switched off (the claims stay required).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Principal;
use crate::backend::error::{BackendError, Result};
use crate::backend::users::{self, User};

pub const ISSUER: &str = "patch-manager";
pub const AUD_ACCESS: &str = "pm-web";
pub const AUD_PENDING: &str = "pm-mfa";
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
pub const PENDING_TTL_SECS: i64 = 5 * 60;
/// Allowed clock difference between replicas for `exp`/`nbf`/`iat`.
pub const LEEWAY_SECS: i64 = 5;

pub const STAGE_TOTP: &str = "totp";
pub const STAGE_ENROLL_TOTP: &str = "enroll_totp";

const INVALID: BackendError = BackendError::Unauthorized("invalid_token");
const EXPIRED: BackendError = BackendError::Unauthorized("token_expired");

struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
    modified: std::time::SystemTime,
}

pub struct KeySet {
    signing_kid: String,
    keys: HashMap<String, Key>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("KeySet").field("signing_kid", &self.signing_kid).field("kids", &kids).finish()
    }
}

fn crypto(what: &str) -> impl Fn(ring::error::KeyRejected) -> BackendError + '_ {
    move |e| BackendError::Crypto(format!("{what}: {e}"))
}

fn kid_of(public_key: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key))[..16].to_string()
}

fn key_from_pkcs8(pkcs8: &[u8], modified: std::time::SystemTime) -> Result<(String, Key)> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(crypto("jwt key"))?;
    let public = pair.public_key().as_ref();
    let kid = kid_of(public);
    Ok((kid, Key { encoding: EncodingKey::from_ed_der(pkcs8), decoding: DecodingKey::from_ed_der(public), modified }))
}

/// Writes `bytes` to `path` via a temporary file created with mode 0600 (never readable by
/// others, not even briefly), then renames it into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("pk8.tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

impl KeySet {
    /// Loads every `jwt-*.pk8` under `data_dir/keys`, creating a first key if there is none.
    pub fn load_or_create(data_dir: &Path, _now: i64) -> Result<KeySet> {
        let dir = data_dir.join("keys");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let mut keys = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("jwt-") && name.ends_with(".pk8")) {
                continue;
            }
            let path = entry.path();
            let meta = entry.metadata()?;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(target: "security", path = %path.display(), "JWT key file is readable by group or others; chmod 600 it");
            }
            let pkcs8 = fs::read(&path)?;
            let (kid, key) = key_from_pkcs8(&pkcs8, meta.modified()?)?;
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            let rng = ring::rand::SystemRandom::new();
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| BackendError::Crypto("ed25519 keygen".into()))?;
            let (kid, key) = key_from_pkcs8(doc.as_ref(), std::time::SystemTime::now())?;
            let path: PathBuf = dir.join(format!("jwt-{kid}.pk8"));
            write_private(&path, doc.as_ref())?;
            tracing::info!(target: "security", kid = %kid, "created JWT signing key");
            keys.insert(kid, key);
        }
        // Newest file signs; ties broken by kid so every replica picks the same one.
        let signing_kid = keys
            .iter()
            .max_by(|a, b| a.1.modified.cmp(&b.1.modified).then_with(|| a.0.cmp(b.0)))
            .map(|(kid, _)| kid.clone())
            .ok_or_else(|| BackendError::Internal("no JWT key".into()))?;
        Ok(KeySet { signing_kid, keys })
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String> {
        let key = self.keys.get(&self.signing_kid).ok_or_else(|| BackendError::Internal("signing key missing".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| BackendError::Crypto(format!("jwt sign: {e}")))
    }

    /// Signature, algorithm, kid, issuer and audience checked by jsonwebtoken; time by us.
    fn verify<T: DeserializeOwned + TimeClaims>(&self, token: &str, audience: &str, now: i64) -> Result<T> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        if header.alg != Algorithm::EdDSA {
            return Err(INVALID);
        }
        let key = header.kid.as_deref().and_then(|kid| self.keys.get(kid)).ok_or(INVALID)?;
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
    keys.sign(&AccessClaims {
        iss: ISSUER.into(),
        aud: AUD_ACCESS.into(),
        sub: principal.user_id.clone(),
        exp: now + ACCESS_TTL_SECS,
        nbf: now,
        iat: now,
        sid: principal.session_id.clone(),
        role: users::role_str(&principal.role).into(),
        username: principal.username.clone(),
    })
}

/// Checks an access token (signature, kid, `iss`, `aud = pm-web`, time against `now`).
/// Stateless: a revoked session's access token stays valid until it expires (≤ 15 min);
/// revocation takes effect at the next refresh.
pub fn verify_access(keys: &KeySet, jwt: &str, now: i64) -> Result<Principal> {
    let c: AccessClaims = keys.verify(jwt, AUD_ACCESS, now)?;
    let role = users::parse_role(&c.role).map_err(|_| INVALID)?;
    Ok(Principal { user_id: c.sub, username: c.username, role, session_id: c.sid })
}

/// "Password OK, second factor pending" token (5 min, `aud = pm-mfa`). Its stage is `totp`
/// when the user has a confirmed factor, else `enroll_totp`.
pub fn issue_pending(keys: &KeySet, user: &User, now: i64) -> Result<String> {
    let stage = if user.totp_enrolled { STAGE_TOTP } else { STAGE_ENROLL_TOTP };
    keys.sign(&PendingClaims {
        iss: ISSUER.into(),
        aud: AUD_PENDING.into(),
        sub: user.id.clone(),
        exp: now + PENDING_TTL_SECS,
        nbf: now,
        iat: now,
        stage: stage.into(),
    })
}

/// `(user_id, stage)` of a valid pending token.
pub fn verify_pending(keys: &KeySet, token: &str, now: i64) -> Result<(String, String)> {
    let c: PendingClaims = keys.verify(token, AUD_PENDING, now)?;
    if c.stage != STAGE_TOTP && c.stage != STAGE_ENROLL_TOTP {
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

    fn principal() -> Principal {
        Principal { user_id: "u1".into(), username: "alice".into(), role: Role::Admin, session_id: "s1".into() }
    }

    fn user(enrolled: bool) -> User {
        User { id: "u1".into(), username: "alice".into(), role: Role::Admin, disabled: false, totp_enrolled: enrolled }
    }

    #[test]
    fn key_file_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeySet::load_or_create(dir.path(), NOW).unwrap();
        let kid = ks.signing_kid().to_string();
        assert_eq!(kid.len(), 16);
        let path = dir.path().join("keys").join(format!("jwt-{kid}.pk8"));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!format!("{ks:?}").contains("encoding"));
        let again = KeySet::load_or_create(dir.path(), NOW).unwrap();
        assert_eq!(again.signing_kid(), kid);
        // A token from the first instance verifies with the reloaded one.
        let t = issue_access(&ks, &principal(), NOW).unwrap();
        assert_eq!(verify_access(&again, &t, NOW).unwrap(), principal());
    }

    #[test]
    fn access_round_trip_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeySet::load_or_create(dir.path(), NOW).unwrap();
        let t = issue_access(&ks, &principal(), NOW).unwrap();
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(ks.signing_kid()));
        assert_eq!(verify_access(&ks, &t, NOW + ACCESS_TTL_SECS - 1).unwrap(), principal());
        // Expired, decided by `now` (the system clock is far later than NOW anyway).
        assert_eq!(verify_access(&ks, &t, NOW + ACCESS_TTL_SECS + LEEWAY_SECS).unwrap_err().code(), "token_expired");
        // Not yet valid.
        assert_eq!(verify_access(&ks, &t, NOW - 60).unwrap_err().code(), "invalid_token");
        // A token that the system clock would call expired but `now` doesn't still verifies.
        let old = issue_access(&ks, &principal(), 1000).unwrap();
        assert!(verify_access(&ks, &old, 1001).is_ok());
    }

    #[test]
    fn forged_tokens_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeySet::load_or_create(dir.path(), NOW).unwrap();
        let good = issue_access(&ks, &principal(), NOW).unwrap();
        let mut parts = good.split('.');
        let (_h, payload) = (parts.next().unwrap(), parts.next().unwrap());

        // alg: none, no signature.
        let none_header = B64.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, ks.signing_kid()));
        let none = format!("{none_header}.{payload}.");
        assert_eq!(verify_access(&ks, &none, NOW).unwrap_err().code(), "invalid_token");

        // HS256 "signed" with the public key bytes (algorithm confusion).
        let pkcs8 = fs::read(dir.path().join("keys").join(format!("jwt-{}.pk8", ks.signing_kid()))).unwrap();
        let public = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap().public_key().as_ref().to_vec();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(ks.signing_kid().into());
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
        let other_dir = tempfile::tempdir().unwrap();
        let other = KeySet::load_or_create(other_dir.path(), NOW).unwrap();
        let foreign = issue_access(&other, &principal(), NOW).unwrap();
        assert_eq!(verify_access(&ks, &foreign, NOW).unwrap_err().code(), "invalid_token");
        // Other key, but claiming our kid: bad signature.
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(ks.signing_kid().into());
        let other_key = other.keys.get(other.signing_kid()).unwrap();
        let spoof = jsonwebtoken::encode(&h, &claims, &other_key.encoding).unwrap();
        assert_eq!(verify_access(&ks, &spoof, NOW).unwrap_err().code(), "invalid_token");
        // No kid at all.
        let nokid = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &ks.keys[ks.signing_kid()].encoding).unwrap();
        assert_eq!(verify_access(&ks, &nokid, NOW).unwrap_err().code(), "invalid_token");
        assert_eq!(verify_access(&ks, "not.a.jwt", NOW).unwrap_err().code(), "invalid_token");
        assert_eq!(verify_access(&ks, "", NOW).unwrap_err().code(), "invalid_token");
    }

    #[test]
    fn audiences_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeySet::load_or_create(dir.path(), NOW).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let ks = KeySet::load_or_create(dir.path(), NOW).unwrap();
        let base = serde_json::json!({
            "iss": ISSUER, "aud": AUD_ACCESS, "sub": "u1", "exp": NOW + 60, "nbf": NOW, "iat": NOW,
            "sid": "s1", "role": "admin", "username": "alice"
        });
        assert!(verify_access(&ks, &ks.sign(&base).unwrap(), NOW).is_ok());
        for field in ["iss", "aud", "sub", "exp", "nbf", "iat", "sid", "role"] {
            let mut c = base.clone();
            c.as_object_mut().unwrap().remove(field);
            assert!(verify_access(&ks, &ks.sign(&c).unwrap(), NOW).is_err(), "{field}");
        }
        let mut c = base.clone();
        c["iss"] = "someone-else".into();
        assert!(verify_access(&ks, &ks.sign(&c).unwrap(), NOW).is_err());
        let mut c = base;
        c["role"] = "root".into();
        assert!(verify_access(&ks, &ks.sign(&c).unwrap(), NOW).is_err());
    }
}
