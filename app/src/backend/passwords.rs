//! Password hashing: Argon2id (m = 64 MiB, t = 3, p = 1), PHC strings at rest.
//!
//! Hashing and verification are CPU- and memory-heavy, so they run in `spawn_blocking`
//! behind `AppState::password_limiter` (one permit per CPU): a burst of logins queues instead
//! of starving the async runtime or exhausting memory.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use tokio::sync::{OnceCell, Semaphore};

use super::error::{BackendError, Result};

pub const M_COST_KIB: u32 = 65536;
pub const T_COST: u32 = 3;
pub const P_COST: u32 = 1;

/// Passwords longer than this are refused (policy) or treated as wrong (login).
pub const MAX_LEN: usize = 1024;

fn hasher_with(m: u32, t: u32, p: u32) -> Result<Argon2<'static>> {
    let params = Params::new(m, t, p, None).map_err(|e| BackendError::Crypto(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &[u8], m: u32, t: u32, p: u32) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| BackendError::Crypto(format!("salt: {e}")))?;
    let phc = hasher_with(m, t, p)?
        .hash_password(password, &salt)
        .map_err(|e| BackendError::Crypto(format!("argon2 hash: {e}")))?;
    Ok(phc.to_string())
}

/// Verifies with the parameters recorded in the PHC string (so older, weaker hashes still
/// verify and can then be upgraded). An unparseable hash verifies as false.
fn verify_blocking(phc: &str, password: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

async fn run_limited<T: Send + 'static>(limiter: &Semaphore, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = limiter
        .acquire()
        .await
        .map_err(|_| BackendError::Internal("password limiter closed".into()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Internal(format!("password task: {e}")))
}

/// Hashes `password` with the current parameters.
pub async fn hash(limiter: &Semaphore, password: &str) -> Result<String> {
    let pw = password.as_bytes().to_vec();
    run_limited(limiter, move || hash_blocking(&pw, M_COST_KIB, T_COST, P_COST)).await?
}

/// Hash with explicit (possibly weak) parameters; only for tests of the upgrade path.
#[cfg(test)]
pub(crate) fn hash_with_params_blocking(password: &str, m: u32, t: u32, p: u32) -> Result<String> {
    hash_blocking(password.as_bytes(), m, t, p)
}

/// Hash of a random password, computed once, verified for unknown users so that a login
/// for a missing account costs the same as one with a wrong password.
static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

async fn dummy_hash(limiter: &Semaphore) -> Result<&'static str> {
    let h = DUMMY_HASH
        .get_or_try_init(|| async {
            let mut pw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut pw);
            let pw = hex::encode(pw);
            hash(limiter, &pw).await
        })
        .await?;
    Ok(h.as_str())
}

/// Checks `password` against `phc`; with `None` (unknown user) or an unparseable hash it verifies against the dummy
/// hash and returns false, taking the same time.
pub async fn verify(limiter: &Semaphore, phc: Option<&str>, password: &str) -> Result<bool> {
    // An account without a usable hash (invited, not yet accepted) costs the same as a
    // missing one.
    let (target, real) = match phc {
        Some(p) if PasswordHash::new(p).is_ok() => (p.to_string(), true),
        _ => (dummy_hash(limiter).await?.to_string(), false),
    };
    let pw = password.as_bytes().to_vec();
    let ok = run_limited(limiter, move || verify_blocking(&target, &pw)).await?;
    Ok(ok && real)
}

/// True when `phc` is not Argon2id v1.3 or uses weaker parameters than the current ones; the
/// caller re-hashes after a successful login.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return true };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    if parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() < M_COST_KIB || p.t_cost() < T_COST || p.p_cost() < P_COST,
        Err(_) => true,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verify_wrong_and_unknown() {
        let limiter = Semaphore::new(2);
        let phc = hash(&limiter, "correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{phc}");
        assert!(verify(&limiter, Some(&phc), "correct horse battery").await.unwrap());
        assert!(!verify(&limiter, Some(&phc), "correct horse battery!").await.unwrap());
        assert!(!verify(&limiter, None, "correct horse battery").await.unwrap());
        assert!(!verify(&limiter, Some("not a phc"), "x").await.unwrap());
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn weak_params_need_rehash() {
        let weak = hash_with_params_blocking("pw-pw-pw-pw-pw", 8192, 1, 1).unwrap();
        assert!(needs_rehash(&weak));
        let weak_t = hash_with_params_blocking("pw-pw-pw-pw-pw", 65536, 2, 1).unwrap();
        assert!(needs_rehash(&weak_t));
        assert!(needs_rehash("$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"));
        assert!(needs_rehash("garbage"));
    }
}
