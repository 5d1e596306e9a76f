//! rustls client configurations. TLS 1.3 only, ring provider, and never the system roots:
//! the agent trusts exactly the CA it pinned at enrollment.
//!
//! - [`unverified`]: only to download the CA certificate whose SHA-256 the operator gave us;
//!   nothing from that connection is trusted until the fingerprint matches.
//! - [`pinned`]: the web listener at enrollment (server cert must chain to the pinned CA).
//! - [`mtls`]: the agent listener, with our certificate and key as client auth.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{AgentError, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>> {
    ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| AgentError::Tls(e.to_string()))
}

/// Certificates from a PEM text (in order). Errors when there is none.
pub fn parse_certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::Tls(format!("{what}: invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(AgentError::Tls(format!("{what}: no certificate found")));
    }
    Ok(certs)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| AgentError::Tls(format!("private key: invalid PEM: {e}")))?
        .ok_or_else(|| AgentError::Tls("private key: no key found".into()))
}

fn roots(ca_pem: &str) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in parse_certs(ca_pem, "CA certificate")? {
        store.add(cert).map_err(|e| AgentError::Tls(format!("CA certificate: {e}")))?;
    }
    Ok(store)
}

/// Server certificate must chain to `ca_pem` (and nothing else); no client certificate.
pub fn pinned(ca_pem: &str) -> Result<ClientConfig> {
    Ok(builder()?.with_root_certificates(roots(ca_pem)?).with_no_client_auth())
}

/// Server certificate must chain to `ca_pem`; we authenticate with `cert_pem` + `key_pem`.
/// Fails when the key does not belong to the certificate.
pub fn mtls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<ClientConfig> {
    let chain = parse_certs(cert_pem, "client certificate")?;
    let key = parse_key(key_pem)?;
    builder()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| AgentError::Tls(format!("client certificate: {e}")))
}

/// Accepts any server certificate. Only for fetching the CA that is then checked against
/// the operator's fingerprint.
pub fn unverified() -> Result<ClientConfig> {
    Ok(builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider())))
        .with_no_client_auth())
}

/// PEM text of one DER certificate.
pub fn cert_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// `sha256:<lowercase hex>` of a DER certificate (the server's `Ca::fingerprint` format).
pub fn fingerprint(der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(der)))
}

/// Parses `sha256:HEX` (hex case and `:` separators between bytes are tolerated).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let bad = || AgentError::Usage(format!("CA fingerprint must look like sha256:<64 hex digits>, got {text:?}"));
    let trimmed = text.trim();
    let hex_part = match trimmed.split_once(':') {
        Some((algo, rest)) if algo.eq_ignore_ascii_case("sha256") => rest,
        _ => return Err(bad()),
    };
    let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(digits).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Constant-time check of a CA certificate against the pinned fingerprint.
pub fn check_fingerprint(der: &[u8], expected: &[u8; 32]) -> Result<()> {
    let actual = Sha256::digest(der);
    if bool::from(actual.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(AgentError::FingerprintMismatch {
            expected: format!("sha256:{}", hex::encode(expected)),
            actual: format!("sha256:{}", hex::encode(actual)),
        })
    }
}

#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_ca() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn fingerprint_parsing_is_tolerant_but_strict_on_length() {
        let hex64 = "AB".repeat(32);
        assert_eq!(parse_fingerprint(&format!("sha256:{hex64}")).unwrap(), [0xab; 32]);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&format!("SHA256:{colons}")).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint(&hex64).is_err());
        assert!(parse_fingerprint("sha256:abcd").is_err());
        assert!(parse_fingerprint("sha1:abcd").is_err());
    }

    #[test]
    fn fingerprint_check_matches_only_the_same_der() {
        let (ca, _) = new_ca();
        let fp = fingerprint(ca.der());
        let pinned = parse_fingerprint(&fp).unwrap();
        check_fingerprint(ca.der(), &pinned).unwrap();
        let (other, _) = new_ca();
        assert!(matches!(check_fingerprint(other.der(), &pinned), Err(AgentError::FingerprintMismatch { .. })));
        let round_trip = parse_certs(&cert_pem(ca.der()), "ca").unwrap();
        assert_eq!(round_trip[0].as_ref(), ca.der().as_ref());
    }

    #[test]
    fn configs_are_tls13_only_and_mtls_checks_the_key() {
        let (ca, ca_key) = new_ca();
        let config = pinned(&ca.pem()).unwrap();
        assert!(!config.client_auth_cert_resolver.has_certs());

        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let config = mtls(&ca.pem(), &cert.pem(), &key.serialize_pem()).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());

        let wrong = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        assert!(mtls(&ca.pem(), &cert.pem(), &wrong.serialize_pem()).is_err());
        assert!(pinned("not pem").is_err());
        assert!(unverified().is_ok());
    }
}
