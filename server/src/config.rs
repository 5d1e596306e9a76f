//! Configuration: the TOML file as written ([`RawConfig`], `deny_unknown_fields`) validated
//! into the runtime [`Config`].
//!
//! Secrets never live in the file: a database URL with a password is read from
//! `database_url_file` (or the `PM_DATABASE_URL` environment variable), and `Debug` redacts it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use app::backend::db::Db;
use app::backend::state::Settings;
use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The config file exactly as written. Every field is optional; defaults are applied in
/// [`Config::from_raw`].
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://user@host/db`; must not contain a password.
    pub database_url: Option<String>,
    /// File holding the database URL (may contain a password). Wins over `database_url`.
    pub database_url_file: Option<PathBuf>,
    pub web_listen: Option<String>,
    pub agent_listen: Option<String>,
    pub public_url: Option<String>,
    pub agent_url: Option<String>,
    pub site_dir: Option<PathBuf>,
    pub checkin_interval_secs: Option<u64>,
    pub offline_after_secs: Option<i64>,
    pub host_cert_validity_days: Option<i64>,
    pub enroll_token_default_ttl_secs: Option<i64>,
    pub enroll_token_max_ttl_secs: Option<i64>,
    /// How often each replica reloads the certificate registry from the database.
    pub cert_refresh_secs: Option<u64>,
    /// Age in days at which the JWT signing key is replaced (default 90).
    pub jwt_rotation_days: Option<i64>,
    /// Argon2id time cost (3..=16). Unset: measured at first start so one hash costs
    /// 250-500 ms here, stored for every replica (`patch-manager passwords calibrate`).
    pub password_time_cost: Option<u32>,
    pub tls: Option<RawTls>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Names and addresses the internal-CA web certificate is issued for.
    pub sans: Option<Vec<String>>,
    /// PEM certificate chain to serve on the web listener instead of the internal-CA one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Validated runtime configuration.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// May contain a password: never logged (see the `Debug` impl).
    pub database_url: String,
    pub web_listen: SocketAddr,
    pub agent_listen: SocketAddr,
    pub public_url: String,
    pub agent_url: String,
    pub site_dir: PathBuf,
    pub tls_sans: Vec<String>,
    /// `(cert_file, key_file)` when an external web certificate is configured.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    pub checkin_interval_secs: u64,
    pub offline_after_secs: i64,
    pub host_cert_validity_days: i64,
    pub enroll_token_default_ttl_secs: i64,
    pub enroll_token_max_ttl_secs: i64,
    pub cert_refresh_secs: u64,
    pub jwt_rotation_days: i64,
    pub password_time_cost: Option<u32>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("web_listen", &self.web_listen)
            .field("agent_listen", &self.agent_listen)
            .field("public_url", &self.public_url)
            .field("agent_url", &self.agent_url)
            .field("site_dir", &self.site_dir)
            .field("tls_sans", &self.tls_sans)
            .field("tls_files", &self.tls_files)
            .field("checkin_interval_secs", &self.checkin_interval_secs)
            .field("offline_after_secs", &self.offline_after_secs)
            .field("host_cert_validity_days", &self.host_cert_validity_days)
            .field("enroll_token_default_ttl_secs", &self.enroll_token_default_ttl_secs)
            .field("enroll_token_max_ttl_secs", &self.enroll_token_max_ttl_secs)
            .field("cert_refresh_secs", &self.cert_refresh_secs)
            .field("jwt_rotation_days", &self.jwt_rotation_days)
            .field("password_time_cost", &self.password_time_cost)
            .finish()
    }
}

/// Engine and host of a database URL, without credentials.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://<redacted>@{host}"),
            None => url.to_string(),
        },
        None => "<unparseable>".into(),
    }
}

fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The machine's host name (for default URLs and certificate names).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn default_site_dir() -> PathBuf {
    let beside_exe =
        std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("../site"))).filter(|p| p.is_dir());
    beside_exe.unwrap_or_else(|| PathBuf::from("target/site"))
}

fn parse_listen(name: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid(format!("{name} must be IP:PORT, got {value:?}")))
}

fn check_url(name: &str, value: &str) -> Result<String, ConfigError> {
    if !value.starts_with("https://") || value.len() <= "https://".len() {
        return Err(ConfigError::Invalid(format!("{name} must be an https:// URL")));
    }
    Ok(value.trim_end_matches('/').to_string())
}

fn positive(name: &str, v: i64) -> Result<i64, ConfigError> {
    if v <= 0 {
        return Err(ConfigError::Invalid(format!("{name} must be > 0")));
    }
    Ok(v)
}

/// Overrides from the command line and environment, applied on top of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    /// `PM_DATABASE_URL`.
    pub database_url: Option<String>,
}

impl Config {
    /// Reads and validates `path` (or uses all defaults when `None`).
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = match path {
            Some(p) => RawConfig::from_file(p)?,
            None => RawConfig::default(),
        };
        Config::from_raw(raw, overrides)
    }

    pub fn from_raw(raw: RawConfig, overrides: &Overrides) -> Result<Config, ConfigError> {
        let host = hostname();
        let data_dir = overrides.data_dir.clone().or(raw.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        if raw.database_url.is_some() && raw.database_url_file.is_some() {
            return Err(ConfigError::Invalid("set only one of database_url and database_url_file".into()));
        }
        if let Some(url) = &raw.database_url {
            if url_has_password(url) {
                return Err(ConfigError::Invalid(
                    "database_url must not contain a password: use database_url_file or PM_DATABASE_URL".into(),
                ));
            }
        }
        let from_file = match &raw.database_url_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read { path: p.clone(), source })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let database_url = overrides
            .database_url
            .clone()
            .or(from_file)
            .or(raw.database_url)
            .unwrap_or_else(|| Db::sqlite_url_for(&data_dir));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid("database_url must start with sqlite:// or postgres://".into()));
        }

        let web_listen = parse_listen("web_listen", raw.web_listen.as_deref().unwrap_or("0.0.0.0:8443"))?;
        let agent_listen = parse_listen("agent_listen", raw.agent_listen.as_deref().unwrap_or("0.0.0.0:8444"))?;
        let public_url = check_url(
            "public_url",
            &raw.public_url.unwrap_or_else(|| format!("https://{host}:{}", web_listen.port())),
        )?;
        let agent_url = check_url(
            "agent_url",
            &raw.agent_url.unwrap_or_else(|| format!("https://{host}:{}", agent_listen.port())),
        )?;

        let tls = raw.tls.unwrap_or_default();
        let tls_sans = tls.sans.unwrap_or_else(|| {
            let mut v = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            if !v.contains(&host) {
                v.push(host.clone());
            }
            v
        });
        if tls_sans.is_empty() || tls_sans.iter().any(|s| s.trim().is_empty()) {
            return Err(ConfigError::Invalid("tls.sans must list at least one non-empty name".into()));
        }
        let tls_files = match (tls.cert_file, tls.key_file) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError::Invalid("tls.cert_file and tls.key_file go together".into())),
        };

        let checkin_interval_secs = raw.checkin_interval_secs.unwrap_or(60);
        if !(5..=86_400).contains(&checkin_interval_secs) {
            return Err(ConfigError::Invalid("checkin_interval_secs must be within 5..=86400".into()));
        }
        let offline_after_secs = positive("offline_after_secs", raw.offline_after_secs.unwrap_or(300))?;
        let host_cert_validity_days = positive("host_cert_validity_days", raw.host_cert_validity_days.unwrap_or(365))?;
        let enroll_token_default_ttl_secs =
            positive("enroll_token_default_ttl_secs", raw.enroll_token_default_ttl_secs.unwrap_or(3600))?;
        let enroll_token_max_ttl_secs =
            positive("enroll_token_max_ttl_secs", raw.enroll_token_max_ttl_secs.unwrap_or(7 * 24 * 3600))?;
        if enroll_token_default_ttl_secs > enroll_token_max_ttl_secs {
            return Err(ConfigError::Invalid(
                "enroll_token_default_ttl_secs must not exceed enroll_token_max_ttl_secs".into(),
            ));
        }
        let cert_refresh_secs = raw.cert_refresh_secs.unwrap_or(30);
        if cert_refresh_secs == 0 {
            return Err(ConfigError::Invalid("cert_refresh_secs must be > 0".into()));
        }
        let jwt_rotation_days = raw.jwt_rotation_days.unwrap_or(90);
        if !(1..=3650).contains(&jwt_rotation_days) {
            return Err(ConfigError::Invalid("jwt_rotation_days must be within 1..=3650".into()));
        }
        let password_time_cost = raw.password_time_cost;
        if password_time_cost.is_some_and(|t| !(app::backend::passwords::T_COST..=app::backend::passwords::MAX_T_COST).contains(&t)) {
            return Err(ConfigError::Invalid("password_time_cost must be within 3..=16".into()));
        }

        Ok(Config {
            data_dir,
            database_url,
            web_listen,
            agent_listen,
            public_url,
            agent_url,
            site_dir: raw.site_dir.unwrap_or_else(default_site_dir),
            tls_sans,
            tls_files,
            checkin_interval_secs,
            offline_after_secs,
            host_cert_validity_days,
            enroll_token_default_ttl_secs,
            enroll_token_max_ttl_secs,
            cert_refresh_secs,
            jwt_rotation_days,
            password_time_cost,
        })
    }

    /// What the backend needs from the configuration.
    pub fn settings(&self) -> Settings {
        Settings {
            data_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            agent_url: self.agent_url.clone(),
            checkin_interval_secs: self.checkin_interval_secs,
            offline_after_secs: self.offline_after_secs,
            host_cert_validity_days: self.host_cert_validity_days,
            enroll_token_default_ttl_secs: self.enroll_token_default_ttl_secs,
            enroll_token_max_ttl_secs: self.enroll_token_max_ttl_secs,
            jwt_rotation_secs: self.jwt_rotation_days * 86_400,
            password_time_cost: self.password_time_cost,
        }
    }
}

impl RawConfig {
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        RawConfig::from_toml(&text).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })
    }

    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_raw(RawConfig::default(), &Overrides::default()).unwrap();
        assert_eq!(c.web_listen.port(), 8443);
        assert_eq!(c.agent_listen.port(), 8444);
        assert!(c.database_url.starts_with("sqlite://"));
        assert!(c.tls_sans.contains(&"localhost".to_string()));
        assert_eq!(c.checkin_interval_secs, 60);
        assert_eq!(c.offline_after_secs, 300);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(RawConfig::from_toml("web_listen = \"127.0.0.1:1\"\nbogus = 1\n").is_err());
        assert!(RawConfig::from_toml("[tls]\nsan = []\n").is_err());
    }

    #[test]
    fn inline_password_is_rejected_and_redacted() {
        let raw = RawConfig { database_url: Some("postgres://u:secret@db/pm".into()), ..Default::default() };
        assert!(Config::from_raw(raw, &Overrides::default()).is_err());
        let o = Overrides { database_url: Some("postgres://u:secret@db/pm".into()), ..Default::default() };
        let c = Config::from_raw(RawConfig::default(), &o).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn tls_files_go_together() {
        let raw =
            RawConfig { tls: Some(RawTls { cert_file: Some("a".into()), ..Default::default() }), ..Default::default() };
        assert!(Config::from_raw(raw, &Overrides::default()).is_err());
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../packaging/config.example.toml");
        let raw = RawConfig::from_toml(text).unwrap();
        Config::from_raw(raw, &Overrides::default()).unwrap();
    }
}
