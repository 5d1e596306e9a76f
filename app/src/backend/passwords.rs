//! Password hashing: Argon2id (m = 64 MiB, t >= 3, p = 1), PHC strings at rest.
//!
//! Hashing and verification are CPU- and memory-heavy, so they run in `spawn_blocking`
//! behind the [`Hasher`]'s limiter (`AppState::password_limiter`, one permit per CPU): a burst
//! of logins queues instead of starving the async runtime or exhausting memory.
//!
//! Calibration: m and p are fixed; the time cost t starts at 3 and is raised until one hash
//! costs at least 250 ms on this server (target band 250–500 ms; a machine too slow for t = 3
//! keeps t = 3). The first start measures it and stores it in `settings` (key
//! `argon2_t_cost`) so every replica uses the same value; `patch-manager passwords calibrate`
//! measures again, and the config key `password_time_cost` pins it. Stored hashes carry their
//! own parameters: older or weaker ones still verify and are re-hashed at the next login.
//! `cargo bench -p server --bench passwords` reports the timings.

use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sqlx::Row;
use tokio::sync::{OnceCell, Semaphore};

use super::audit::{self, Actor, Event};
use super::db::Db;
use super::error::{BackendError, Result};

pub const M_COST_KIB: u32 = 65536;
/// The minimum (and default) time cost; calibration may raise it.
pub const T_COST: u32 = 3;
pub const MAX_T_COST: u32 = 16;
pub const P_COST: u32 = 1;
/// One hash should cost this much on the server (milliseconds).
pub const TARGET_MS: (f64, f64) = (250.0, 500.0);
/// Settings key of the calibrated time cost.
pub const T_COST_SETTING: &str = "argon2_t_cost";

/// The concurrency bound and the current time cost.
#[derive(Debug)]
pub struct Hasher {
    limiter: Semaphore,
    t_cost: u32,
}

impl Hasher {
    pub fn new(permits: usize, t_cost: u32) -> Hasher {
        Hasher { limiter: Semaphore::new(permits.max(1)), t_cost: t_cost.clamp(T_COST, MAX_T_COST) }
    }

    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }
}

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

async fn run_limited<T: Send + 'static>(hasher: &Hasher, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let _permit = hasher
        .limiter
        .acquire()
        .await
        .map_err(|_| BackendError::Internal("password limiter closed".into()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Internal(format!("password task: {e}")))
}

/// Hashes `password` with the current parameters.
pub async fn hash(hasher: &Hasher, password: &str) -> Result<String> {
    let pw = password.as_bytes().to_vec();
    let t = hasher.t_cost;
    run_limited(hasher, move || hash_blocking(&pw, M_COST_KIB, t, P_COST)).await?
}

/// Hash with explicit (possibly weak) parameters; only for tests of the upgrade path.
#[cfg(test)]
pub(crate) fn hash_with_params_blocking(password: &str, m: u32, t: u32, p: u32) -> Result<String> {
    hash_blocking(password.as_bytes(), m, t, p)
}

/// Hash of a random password, computed once, verified for unknown users so that a login
/// for a missing account costs the same as one with a wrong password.
static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

async fn dummy_hash(hasher: &Hasher) -> Result<&'static str> {
    let h = DUMMY_HASH
        .get_or_try_init(|| async {
            let mut pw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut pw);
            let pw = hex::encode(pw);
            hash(hasher, &pw).await
        })
        .await?;
    Ok(h.as_str())
}

/// Checks `password` against `phc`; with `None` (unknown user) or an unparseable hash it verifies against the dummy
/// hash and returns false, taking the same time.
pub async fn verify(hasher: &Hasher, phc: Option<&str>, password: &str) -> Result<bool> {
    // An account without a usable hash (invited, not yet accepted) costs the same as a
    // missing one.
    let (target, real) = match phc {
        Some(p) if PasswordHash::new(p).is_ok() => (p.to_string(), true),
        _ => (dummy_hash(hasher).await?.to_string(), false),
    };
    let pw = password.as_bytes().to_vec();
    let ok = run_limited(hasher, move || verify_blocking(&target, &pw)).await?;
    Ok(ok && real)
}

/// True when `phc` is not Argon2id v1.3 or uses weaker parameters than the current ones; the
/// caller re-hashes after a successful login.
pub fn needs_rehash(hasher: &Hasher, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return true };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    if parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() < M_COST_KIB || p.t_cost() < hasher.t_cost || p.p_cost() < P_COST,
        Err(_) => true,
    }
}

/// The smallest time cost (>= [`T_COST`]) that makes one hash cost at least the lower end of
/// [`TARGET_MS`] (with a 10 % margin), given the measured cost of one hash at t = [`T_COST`].
/// Argon2's time grows linearly with t.
pub fn t_cost_for(ms_at_min: f64) -> u32 {
    if !ms_at_min.is_finite() || ms_at_min <= 0.0 {
        return T_COST;
    }
    let per_pass = ms_at_min / f64::from(T_COST);
    let wanted = (TARGET_MS.0 * 1.1 / per_pass).ceil();
    (wanted as u32).clamp(T_COST, MAX_T_COST)
}

/// Measures this machine: the median of three hashes at t = [`T_COST`] gives the estimate,
/// the median at the estimate confirms it -> the time cost to use and its milliseconds.
pub async fn calibrate(hasher: &Hasher) -> Result<(u32, f64)> {
    run_limited(hasher, || {
        let median = |t: u32| -> Result<f64> {
            let mut ms = Vec::new();
            for _ in 0..3 {
                let start = Instant::now();
                hash_blocking(b"calibration password", M_COST_KIB, t, P_COST)?;
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(f64::total_cmp);
            Ok(ms[1])
        };
        // The estimate from t = T_COST, then checked: on a machine whose load changed while
        // measuring, step up until the target's lower end is met (or the maximum is reached).
        let mut t = t_cost_for(median(T_COST)?);
        let mut ms = median(t)?;
        while ms < TARGET_MS.0 && t < MAX_T_COST {
            t += 1;
            ms = median(t)?;
        }
        Ok((t, ms))
    })
    .await?
}

/// The time cost to use: `configured` when set; else the stored calibration; else (first
/// start) a fresh measurement, stored for every replica (the first writer wins) and audited.
pub async fn load_or_calibrate(db: &Db, configured: Option<u32>, now: i64) -> Result<u32> {
    if let Some(t) = configured {
        return Ok(t.clamp(T_COST, MAX_T_COST));
    }
    if let Some(t) = stored_t_cost(db).await? {
        return Ok(t);
    }
    let (t, ms) = calibrate(&Hasher::new(1, T_COST)).await?;
    store_t_cost(db, &Actor::System, t, ms, now).await?;
    Ok(stored_t_cost(db).await?.unwrap_or(t))
}

async fn stored_t_cost(db: &Db) -> Result<Option<u32>> {
    let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(T_COST_SETTING).fetch_optional(&db.pool).await?;
    Ok(match row {
        Some(r) => r.try_get::<String, _>("value")?.parse::<u32>().ok().map(|t| t.clamp(T_COST, MAX_T_COST)),
        None => None,
    })
}

/// Records a calibration (`patch-manager passwords calibrate` replaces the stored value; the
/// first start only inserts one). Takes effect at the next start.
pub async fn store_t_cost(db: &Db, actor: &Actor, t: u32, measured_ms: f64, now: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let replace = !matches!(actor, Actor::System);
    let sql = if replace {
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)          ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
    } else {
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING"
    };
    let res = sqlx::query(sql).bind(T_COST_SETTING).bind(t.to_string()).bind(now).execute(&mut *tx).await?;
    if res.rows_affected() > 0 {
        audit::append(
            &mut tx,
            Event {
                actor,
                action: "password.calibrate",
                target: "setting:argon2_t_cost",
                source_ip: None,
                details: serde_json::json!({ "t_cost": t, "m_cost_kib": M_COST_KIB, "p_cost": P_COST, "measured_ms": measured_ms.round() }),
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

    #[tokio::test]
    async fn hash_verify_wrong_and_unknown() {
        let hasher = Hasher::new(2, T_COST);
        let phc = hash(&hasher, "correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{phc}");
        assert!(verify(&hasher, Some(&phc), "correct horse battery").await.unwrap());
        assert!(!verify(&hasher, Some(&phc), "correct horse battery!").await.unwrap());
        assert!(!verify(&hasher, None, "correct horse battery").await.unwrap());
        assert!(!verify(&hasher, Some("not a phc"), "x").await.unwrap());
        assert!(!needs_rehash(&hasher, &phc));
        // A calibrated, higher time cost makes t = 3 hashes outdated.
        let stronger = Hasher::new(2, 4);
        assert!(needs_rehash(&stronger, &phc));
        assert!(hash(&stronger, "x-x-x-x-x-x").await.unwrap().starts_with("$argon2id$v=19$m=65536,t=4,p=1$"));
    }

    #[test]
    fn weak_params_need_rehash() {
        let hasher = Hasher::new(1, T_COST);
        let weak = hash_with_params_blocking("pw-pw-pw-pw-pw", 8192, 1, 1).unwrap();
        assert!(needs_rehash(&hasher, &weak));
        let weak_t = hash_with_params_blocking("pw-pw-pw-pw-pw", 65536, 2, 1).unwrap();
        assert!(needs_rehash(&hasher, &weak_t));
        assert!(needs_rehash(&hasher, "$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"));
        assert!(needs_rehash(&hasher, "garbage"));
    }

    #[test]
    fn time_cost_lands_in_the_target_band() {
        // Fast machine: 50 ms per hash at t = 3 -> 17 ms a pass -> t = 17 would exceed the cap.
        assert_eq!(t_cost_for(50.0), MAX_T_COST);
        // 160 ms at t = 3 (this kind of CI machine): t = 6 -> ~320 ms.
        assert_eq!(t_cost_for(160.0), 6);
        let t = f64::from(t_cost_for(160.0));
        assert!((TARGET_MS.0..=TARGET_MS.1).contains(&(160.0 / 3.0 * t)));
        // Slow machine: already above the band at the minimum -> the minimum.
        assert_eq!(t_cost_for(600.0), T_COST);
        assert_eq!(t_cost_for(f64::NAN), T_COST);
        assert_eq!(t_cost_for(0.0), T_COST);
    }

    #[tokio::test]
    async fn first_start_calibrates_once_and_the_cli_replaces_it() {
        let t = crate::backend::testkit::test_db().await;
        let first = load_or_calibrate(&t.db, None, 1000).await.unwrap();
        assert!((T_COST..=MAX_T_COST).contains(&first));
        // Stored: a second start (or another replica) reads it instead of measuring.
        assert_eq!(stored_t_cost(&t.db).await.unwrap(), Some(first));
        assert_eq!(load_or_calibrate(&t.db, None, 2000).await.unwrap(), first);
        // A configured value wins and is clamped to the allowed range.
        assert_eq!(load_or_calibrate(&t.db, Some(1), 2000).await.unwrap(), T_COST);
        assert_eq!(load_or_calibrate(&t.db, Some(99), 2000).await.unwrap(), MAX_T_COST);
        // The CLI replaces it; the first-start path never does.
        store_t_cost(&t.db, &Actor::Cli, 7, 400.0, 3000).await.unwrap();
        store_t_cost(&t.db, &Actor::System, 4, 300.0, 3001).await.unwrap();
        assert_eq!(stored_t_cost(&t.db).await.unwrap(), Some(7));
        let rows = audit::list_by_action(&t.db, "password.calibrate").await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(audit::verify(&t.db).await.unwrap().first_bad_seq, None);
        t.cleanup().await;
    }
}
