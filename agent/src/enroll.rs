//! `pm-agent enroll`: make a key pair, prove the server is ours (pinned CA), trade the
//! one-time token and a CSR for a client certificate, and store everything in the state dir.
//!
//! Ordering: nothing is written until the server accepted the enrollment and the returned
//! certificate matches our key; `agent.toml` is written last, so a crash leaves either the
//! old enrollment or a complete new one as far as `pm-agent run` is concerned.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::AgentConfig;
use crate::error::{AgentError, Result};
use crate::proto::{self, EnrollRequest, EnrollResponse};
use crate::state::{self, StateDir};
use crate::{http, tls};

/// How the operator tells us which CA the server's certificate must chain to.
#[derive(Debug, Clone)]
pub enum CaPin {
    /// A PEM file holding the CA certificate(s), e.g. copied from the server.
    File(PathBuf),
    /// `sha256:HEX` of the CA certificate's DER, as shown on the enrollment page.
    Fingerprint(String),
}

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// Base URL of the server's web listener, e.g. `https://pm.example:8443`.
    pub server: String,
    pub token: String,
    pub ca: CaPin,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub host_id: String,
    pub agent_url: String,
}

const TIMEOUT: Duration = Duration::from_secs(60);

#[tracing::instrument(skip_all, fields(server = %opts.server))]
pub async fn enroll(opts: &EnrollOptions) -> Result<Enrolled> {
    let enroll_url = http::join(&opts.server, proto::ENROLL_PATH)?;
    if opts.token.trim().is_empty() {
        return Err(AgentError::Usage("the enrollment token is empty".into()));
    }
    let ca_pem = pinned_ca(opts).await?;

    let hostname = crate::facts::hostname(Path::new("/proc"));
    let hostname = if hostname.is_empty() { "localhost".to_string() } else { hostname };
    let cn = hostname.clone();
    let (key_pem, csr_pem) = tokio::task::spawn_blocking(move || key_and_csr(&cn))
        .await
        .map_err(|e| AgentError::KeyGen(e.to_string()))??;

    let client = http::client(tls::pinned(&ca_pem)?, TIMEOUT)?;
    let request = EnrollRequest { token: opts.token.trim().to_string(), csr_pem, hostname };
    let response: EnrollResponse = http::post_json(&client, &enroll_url, &request).await?;

    http::join(&response.agent_url, "").map_err(|_| bad_response(&enroll_url, "agent_url is not an https:// URL"))?;
    if response.host_id.trim().is_empty() {
        return Err(bad_response(&enroll_url, "empty host_id"));
    }
    if !valid_job_key(&response.job_signing_key) {
        return Err(bad_response(&enroll_url, "job_signing_key is not a base64 Ed25519 public key"));
    }
    // Proves the certificate is for our key and both PEMs parse before anything is stored.
    tls::mtls(&response.ca_pem, &response.cert_pem, &key_pem).map_err(|e| bad_response(&enroll_url, &e.to_string()))?;

    store(&StateDir::new(&opts.state_dir), &response, &key_pem)?;
    tracing::info!(target: "pm_agent::security", host_id = %response.host_id, "enrolled");
    Ok(Enrolled { host_id: response.host_id, agent_url: response.agent_url })
}

/// The CA (PEM) the web listener's certificate must chain to.
async fn pinned_ca(opts: &EnrollOptions) -> Result<String> {
    match &opts.ca {
        CaPin::File(path) => {
            let pem = std::fs::read_to_string(path).map_err(|e| AgentError::io("cannot read CA file", path, e))?;
            tls::parse_certs(&pem, "CA file")?;
            Ok(pem)
        }
        CaPin::Fingerprint(text) => {
            let expected = tls::parse_fingerprint(text)?;
            let url = http::join(&opts.server, proto::CA_PATH)?;
            // Unauthenticated on purpose: the fingerprint check below is what authenticates it.
            let client = http::client(tls::unverified()?, TIMEOUT)?;
            let fetched = http::get_text(&client, &url).await?;
            let first = tls::parse_certs(&fetched, "CA from server")?.into_iter().next();
            let der = first.ok_or_else(|| bad_response(&url, "no CA certificate"))?;
            if let Err(e) = tls::check_fingerprint(der.as_ref(), &expected) {
                tracing::warn!(target: "pm_agent::security", %url, "CA fingerprint mismatch");
                return Err(e);
            }
            // Only the certificate that matched is trusted, never anything else in the body.
            Ok(tls::cert_pem(der.as_ref()))
        }
    }
}

/// A fresh ECDSA P-256 key and a CSR whose subject is only `CN=<hostname>`.
pub fn key_and_csr(hostname: &str) -> Result<(String, String)> {
    let keygen = |e: rcgen::Error| AgentError::KeyGen(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(keygen)?;
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, hostname);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(keygen)?;
    Ok((key.serialize_pem(), csr.pem().map_err(keygen)?))
}

/// A raw Ed25519 public key: 32 bytes, base64 (standard alphabet).
fn valid_job_key(b64: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(b64.trim()).is_ok_and(|k| k.len() == 32)
}

/// Writes key, certificates and config. Local overrides of an earlier `agent.toml` survive;
/// the inventory ack does not (the new host id has no inventory on the server yet).
fn store(state: &StateDir, response: &EnrollResponse, key_pem: &str) -> Result<()> {
    state.ensure()?;
    let previous = AgentConfig::load(&state.config_path()).ok();
    let agent_url = response.agent_url.trim().trim_end_matches('/').to_string();
    let host_id = response.host_id.clone();
    let config = match previous {
        Some(previous) => AgentConfig { agent_url, host_id, ..previous },
        None => AgentConfig::new(agent_url, host_id),
    };
    state::write_atomic(&state.key_path(), key_pem.as_bytes(), state::SECRET_MODE)?;
    state::write_atomic(&state.cert_path(), response.cert_pem.as_bytes(), state::SECRET_MODE)?;
    state::write_atomic(&state.ca_path(), response.ca_pem.as_bytes(), state::PUBLIC_MODE)?;
    state::write_atomic(&state.job_key_path(), response.job_signing_key.trim().as_bytes(), state::PUBLIC_MODE)?;
    state::remove_if_exists(&state.ack_path())?;
    state::write_atomic(&state.config_path(), config.to_toml()?.as_bytes(), state::PUBLIC_MODE)
}

fn bad_response(url: &str, message: &str) -> AgentError {
    AgentError::BadResponse { url: url.to_string(), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn csr_has_only_the_hostname_and_a_p256_key() {
        let (key_pem, csr_pem) = key_and_csr("web-01.example").unwrap();
        assert!(key_pem.contains("BEGIN PRIVATE KEY"));
        let csr = rcgen::CertificateSigningRequestParams::from_pem(&csr_pem).unwrap();
        let cn: Vec<_> = csr.params.distinguished_name.iter().collect();
        assert_eq!(cn.len(), 1);
        assert!(matches!(cn[0], (rcgen::DnType::CommonName, rcgen::DnValue::Utf8String(s)) if s == "web-01.example"));
        assert!(csr.params.subject_alt_names.is_empty());
        assert!(csr.params.extended_key_usages.is_empty());
        assert_eq!(csr.public_key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn store_writes_private_key_0600_and_keeps_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("s"));
        state.ensure().unwrap();
        std::fs::write(
            state.config_path(),
            "agent_url = \"https://old:8444\"\nhost_id = \"old\"\n[commands]\napt_get = \"/fake/apt-get\"\n",
        )
        .unwrap();
        std::fs::write(state.ack_path(), "digest\n").unwrap();
        let response = EnrollResponse {
            host_id: "new-id".into(),
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
            agent_url: "https://pm:8444/".into(),
            job_signing_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        };
        store(&state, &response, "KEY").unwrap();
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(state.key_path()), 0o600);
        assert_eq!(mode(state.cert_path()), 0o600);
        assert_eq!(std::fs::read_to_string(state.key_path()).unwrap(), "KEY");
        let config = AgentConfig::load(&state.config_path()).unwrap();
        assert_eq!(config.host_id, "new-id");
        assert_eq!(config.agent_url, "https://pm:8444");
        assert_eq!(config.commands.apt_get, Some(PathBuf::from("/fake/apt-get")));
        assert!(!state.ack_path().exists());
        assert_eq!(std::fs::read_to_string(state.job_key_path()).unwrap(), response.job_signing_key);
        assert!(valid_job_key(&response.job_signing_key));
        assert!(!valid_job_key("AAAA"));
        assert!(!valid_job_key("not base64!"));
    }
}
