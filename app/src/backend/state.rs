//! What every handler and server function is given.

use std::path::PathBuf;
use std::sync::Arc;

use super::db::Db;
use super::error::Result;
use super::{ca, certs, job_signing, jobs, passkeys, passwords, sessions};

/// Runtime settings the backend needs (validated by the server's config module).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where keys, the CA and the SQLite file live.
    pub data_dir: PathBuf,
    /// Public base URL of the web listener, e.g. `https://pm.example:8443`.
    pub public_url: String,
    /// Public base URL of the agent (mTLS) listener, e.g. `https://pm.example:8444`.
    pub agent_url: String,
    pub checkin_interval_secs: u64,
    /// A host is offline when its last check-in is older than this.
    pub offline_after_secs: i64,
    pub host_cert_validity_days: i64,
    pub enroll_token_default_ttl_secs: i64,
    pub enroll_token_max_ttl_secs: i64,
    /// Age at which the JWT signing key is replaced (90 days by default).
    pub jwt_rotation_secs: i64,
    /// Argon2 time cost; `None`: the stored calibration (measured at first start).
    pub password_time_cost: Option<u32>,
}

impl Settings {
    pub fn for_data_dir(data_dir: PathBuf) -> Settings {
        Settings {
            data_dir,
            public_url: "https://localhost:8443".into(),
            agent_url: "https://localhost:8444".into(),
            checkin_interval_secs: 60,
            offline_after_secs: 300,
            host_cert_validity_days: 365,
            enroll_token_default_ttl_secs: 3600,
            enroll_token_max_ttl_secs: 7 * 24 * 3600,
            jwt_rotation_secs: sessions::DEFAULT_ROTATION_DAYS * 86400,
            // Tests and tools built on this get the minimum; the server's config leaves it
            // unset so the first start calibrates.
            password_time_cost: Some(passwords::T_COST),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub ca: Arc<ca::Ca>,
    pub certs: Arc<certs::CertRegistry>,
    /// Signs patch jobs; agents pin its public key at enrollment.
    pub job_signer: Arc<job_signing::JobSigner>,
    /// Wakes agents' long polls when a job is dispatched to them.
    pub job_hub: Arc<jobs::notify::Hub>,
    /// JWT signing/verification keys (identity).
    pub keys: Arc<sessions::KeySet>,
    /// Argon2 parameters and the bound on concurrent hashing (one permit per CPU).
    pub password_limiter: Arc<passwords::Hasher>,
    /// The WebAuthn relying party (RP ID = host of `public_url`, origin = `public_url`);
    /// `None` when `public_url` names no valid RP ID (an IP address): passkeys are then
    /// refused with `passkeys_unavailable`, TOTP still works.
    pub webauthn: Option<Arc<passkeys::RelyingParty>>,
}

impl AppState {
    /// Migrates the database, then loads (or creates) the CA and the certificate registry.
    pub async fn init(settings: Settings, db: Db, now: i64) -> Result<AppState> {
        db.migrate().await?;
        let ca = Arc::new(ca::Ca::load_or_create(&settings.data_dir, now)?);
        let certs = Arc::new(certs::CertRegistry::load(&db).await?);
        let job_signer = Arc::new(job_signing::JobSigner::load_or_create(&settings.data_dir)?);
        let keys = Arc::new(sessions::KeySet::load(&db, settings.jwt_rotation_secs, now).await?);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
        let t_cost = passwords::load_or_calibrate(&db, settings.password_time_cost, now).await?;
        let password_limiter = Arc::new(passwords::Hasher::new(cpus, t_cost));
        let webauthn = match passkeys::RelyingParty::new(&settings.public_url) {
            Ok(rp) => Some(Arc::new(rp)),
            Err(e) => {
                tracing::warn!(public_url = %settings.public_url, error = %e, "passkeys disabled: public_url gives no WebAuthn relying party");
                None
            }
        };
        Ok(AppState {
            db,
            settings: Arc::new(settings),
            ca,
            certs,
            job_signer,
            job_hub: Arc::new(jobs::notify::Hub::new()),
            keys,
            password_limiter,
            webauthn,
        })
    }
}
