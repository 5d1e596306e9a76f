//! rustls server configurations for both listeners. TLS 1.3 only, ring provider.
//!
//! The agent listener requires a client certificate chained to the internal CA *and* known
//! to the certificate registry (not revoked, not expired). The registry check here only runs
//! at the handshake; the agent router re-checks the serial on every request because a
//! keep-alive connection outlives a revocation.

use std::io::BufReader;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use app::backend::certs::{self, CertRegistry};
use app::backend::state::AppState;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

use crate::config::Config;

/// The one crypto provider both listeners use.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> anyhow::Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 unsupported by the crypto provider")
}

fn parse_certs(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .context("malformed certificate PEM")?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in PEM"));
    }
    Ok(certs)
}

fn parse_key(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut BufReader::new(pem.as_bytes()))
        .context("malformed private key PEM")?
        .ok_or_else(|| anyhow!("no private key in PEM"))
}

/// Lowercase hex serial of a DER certificate, in the registry's format.
pub fn serial_of(der: &[u8]) -> Option<String> {
    certs::serial_hex_of_der(der).ok()
}

/// Web listener: internal-CA certificate for the configured names, or the operator's files.
pub fn web_server_config(state: &AppState, config: &Config, now: i64) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert_pem, key_pem) = match &config.tls_files {
        Some((cert, key)) => (
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
        ),
        None => state
            .ca
            .load_or_issue_web_cert(&config.data_dir, &config.tls_sans, now)
            .context("issuing the web certificate")?,
    };
    let mut cfg = builder()?
        .with_no_client_auth()
        .with_single_cert(parse_certs(&cert_pem)?, parse_key(&key_pem)?)
        .context("web certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Agent listener: mTLS against the internal CA plus the registry, no session resumption
/// (every connection proves possession of the key and is checked against revocation).
pub fn agent_server_config(state: &AppState, config: &Config, now: i64) -> anyhow::Result<Arc<ServerConfig>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(state.ca.cert_der().to_vec()))
        .context("internal CA certificate rejected as trust anchor")?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .context("building the client verifier")?;
    let verifier = Arc::new(RegistryClientVerifier { inner, registry: state.certs.clone() });
    // The agent listener presents a certificate from the internal CA, which agents pin.
    let (cert_pem, key_pem) = state
        .ca
        .load_or_issue_web_cert(&config.data_dir, &config.tls_sans, now)
        .context("issuing the agent listener certificate")?;
    let mut cfg = builder()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(&cert_pem)?, parse_key(&key_pem)?)
        .context("agent listener certificate and key do not match")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// WebPKI chain validation (root = internal CA, validity period) followed by the registry
/// lookup of the end-entity serial.
#[derive(Debug)]
pub struct RegistryClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    registry: Arc<CertRegistry>,
}

impl ClientCertVerifier for RegistryClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let serial =
            serial_of(end_entity.as_ref()).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        match self.registry.check(&serial, now_secs) {
            Some(_host_id) => Ok(verified),
            None => {
                tracing::warn!(target: "security", serial = %serial, "client certificate unknown, revoked or expired");
                Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
