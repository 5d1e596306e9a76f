//! Internal certificate authority (rcgen): the CA itself, the web listener's certificate and
//! host client certificates signed from agent CSRs.
//!
//! Files live in `data_dir/pki/`: `ca.key` + `ca.pem`, `web.key` + `web.pem`. Private keys are
//! created with mode 0600 before any byte is written (never chmod after the fact) and replaced
//! by rename, so a reader never sees a half-written or world-readable key.
//!
//! Host certificates take nothing from the CSR but its public key: subject, SANs, key usages
//! and CA flags asked for in the CSR are ignored. The serial is 16 random bytes (positive,
//! first byte non-zero), never rcgen's key-derived default, so re-enrolling the same key gives
//! a new serial that can be revoked independently.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::certs::serial_hex_of_der;
use super::error::{BackendError, Result};

pub const CA_COMMON_NAME: &str = "Patch Manager Internal CA";
const CA_VALIDITY_DAYS: i64 = 3650;
const WEB_VALIDITY_DAYS: i64 = 397;
/// The web certificate is re-issued when fewer than this many days are left.
const WEB_RENEW_BEFORE_DAYS: i64 = 30;
/// Upper bound for host certificates whatever the settings say.
pub const HOST_VALIDITY_CAP_DAYS: i64 = 825;
/// Host certificates are back-dated a little for hosts whose clock runs behind.
pub const BACKDATE_SECS: i64 = 300;
const DAY: i64 = 86_400;

pub struct Ca {
    key: KeyPair,
    /// Issuer view of the CA for rcgen (re-built from the stored cert on load; only its DN,
    /// key identifier and key usages are used when signing).
    issuer: Certificate,
    cert_pem: String,
    cert_der: Vec<u8>,
}

/// A signed host certificate. `serial_hex` is the canonical form (see
/// [`serial_hex_of_der`]) used as the key of the `certificates` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
}

fn crypto<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> BackendError {
    move |e| BackendError::Crypto(format!("{what}: {e}"))
}

fn ts(unix: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(crypto("timestamp"))
}

pub(crate) fn pki_dir(data_dir: &Path) -> Result<PathBuf> {
    let dir = data_dir.join("pki");
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Writes `contents` to `path` through a temporary file created with `mode`, then renames it
/// into place.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// 16 random bytes with the first byte in 0x10..=0x7f: the top bit is clear (a positive
/// INTEGER, so DER adds no 0x00 pad) and the first hex digit is never `0`, so every common
/// rendering (raw DER bytes, big-integer hex) gives the same 32-digit string.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] = 0x10 + bytes[0] % 0x70;
    SerialNumber::from_slice(&bytes)
}

fn parse_cert_pem(pem_text: &str) -> Result<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(crypto("certificate PEM"))?;
    if pem.label != "CERTIFICATE" {
        return Err(BackendError::Crypto("expected a CERTIFICATE PEM block".into()));
    }
    Ok(pem.contents)
}

impl Ca {
    /// Loads the CA from `data_dir/pki/`, or creates it (ECDSA P-256, 10 years) when neither
    /// file exists. One file without the other is an error rather than a silent new CA, which
    /// would orphan every enrolled host.
    pub fn load_or_create(data_dir: &Path, now: i64) -> Result<Ca> {
        let dir = pki_dir(data_dir)?;
        let key_path = dir.join("ca.key");
        let cert_path = dir.join("ca.pem");
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => {
                let key = KeyPair::from_pem(&fs::read_to_string(&key_path)?).map_err(crypto("CA key"))?;
                let cert_pem = fs::read_to_string(&cert_path)?;
                Ca::from_parts(key, cert_pem)
            }
            (false, false) => {
                let ca = Ca::generate(now)?;
                // Key first: a crash in between leaves a key without a cert, which is refused
                // on the next start instead of producing a second CA.
                write_file(&key_path, ca.key.serialize_pem().as_bytes(), 0o600)?;
                write_file(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
                tracing::info!(target: "security", fingerprint = %ca.fingerprint(), "created internal CA");
                Ok(ca)
            }
            _ => {
                Err(BackendError::Internal(format!("incomplete CA in {}: need both ca.key and ca.pem", dir.display())))
            }
        }
    }

    fn generate(now: i64) -> Result<Ca> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(crypto("CA key generation"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = ts(now - BACKDATE_SECS)?;
        params.not_after = ts(now + CA_VALIDITY_DAYS * DAY)?;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key).map_err(crypto("CA self-sign"))?;
        let cert_pem = cert.pem();
        Ca::from_parts(key, cert_pem)
    }

    fn from_parts(key: KeyPair, cert_pem: String) -> Result<Ca> {
        let cert_der = parse_cert_pem(&cert_pem)?;
        let params = CertificateParams::from_ca_cert_der(&cert_der.clone().into()).map_err(crypto("CA certificate"))?;
        let (_, parsed) = X509Certificate::from_der(&cert_der).map_err(crypto("CA certificate"))?;
        if parsed.public_key().raw != key.public_key_der().as_slice() {
            return Err(BackendError::Internal("ca.key does not match ca.pem".into()));
        }
        let issuer = params.self_signed(&key).map_err(crypto("CA issuer"))?;
        Ok(Ca { key, issuer, cert_pem, cert_der })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// `sha256:<lowercase hex>` of the CA certificate's DER; what agents pin at enrollment.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(&self.cert_der)))
    }

    /// Certificate and key (PEM) for the web listener, from `data_dir/pki/web.{pem,key}`.
    /// A new one is issued when none exists, the SAN set differs from `sans`, fewer than 30
    /// days are left, or it was not signed by this CA.
    pub fn load_or_issue_web_cert(&self, data_dir: &Path, sans: &[String], now: i64) -> Result<(String, String)> {
        let dir = pki_dir(data_dir)?;
        let cert_path = dir.join("web.pem");
        let key_path = dir.join("web.key");
        let wanted = san_set(sans)?;
        if wanted.is_empty() {
            return Err(BackendError::Invalid("the web certificate needs at least one SAN".into()));
        }
        if cert_path.exists() && key_path.exists() {
            let cert_pem = fs::read_to_string(&cert_path)?;
            let key_pem = fs::read_to_string(&key_path)?;
            match self.web_cert_reusable(&cert_pem, &key_pem, &wanted, now) {
                Ok(true) => return Ok((cert_pem, key_pem)),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "stored web certificate unusable, issuing a new one"),
            }
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(crypto("web key generation"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, sans.first().map(String::as_str).unwrap_or("patch-manager"));
        params.distinguished_name = dn;
        params.subject_alt_names = wanted.iter().map(WebSan::to_rcgen).collect::<Result<Vec<_>>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = ts(now - BACKDATE_SECS)?;
        params.not_after = ts(now + WEB_VALIDITY_DAYS * DAY)?;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer, &self.key).map_err(crypto("web certificate"))?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        write_file(&key_path, key_pem.as_bytes(), 0o600)?;
        write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
        tracing::info!(target: "security", sans = ?sans, "issued web certificate");
        Ok((cert_pem, key_pem))
    }

    fn web_cert_reusable(&self, cert_pem: &str, key_pem: &str, wanted: &BTreeSet<WebSan>, now: i64) -> Result<bool> {
        let der = parse_cert_pem(cert_pem)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(crypto("web certificate"))?;
        let key = KeyPair::from_pem(key_pem).map_err(crypto("web key"))?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Ok(false);
        }
        let (_, ca) = X509Certificate::from_der(&self.cert_der).map_err(crypto("CA certificate"))?;
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return Ok(false);
        }
        if cert.validity().not_after.timestamp() - now < WEB_RENEW_BEFORE_DAYS * DAY {
            return Ok(false);
        }
        let mut have = BTreeSet::new();
        if let Some(ext) = cert.subject_alternative_name().map_err(crypto("web certificate SAN"))? {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(d) => {
                        have.insert(WebSan::Dns(d.to_ascii_lowercase()));
                    }
                    GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
                        Ok(v4) => {
                            have.insert(WebSan::Ip(IpAddr::from(v4)));
                        }
                        Err(_) => match <[u8; 16]>::try_from(*b) {
                            Ok(v6) => {
                                have.insert(WebSan::Ip(IpAddr::from(v6)));
                            }
                            Err(_) => return Ok(false),
                        },
                    },
                    _ => return Ok(false),
                }
            }
        }
        Ok(&have == wanted)
    }

    /// Signs a host client certificate for `host_id` from a PEM CSR. The CSR's signature is
    /// verified (proof of possession); only its public key is used.
    /// Errors: `Invalid("malformed CSR")` for anything wrong with the CSR.
    pub fn sign_host_csr(&self, csr_pem: &str, host_id: &str, validity_days: i64, now: i64) -> Result<IssuedCert> {
        let public_key = csr_public_key(csr_pem)?;
        let days = validity_days.clamp(1, HOST_VALIDITY_CAP_DAYS);
        let not_before = now - BACKDATE_SECS;
        let not_after = now + days * DAY;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host_id);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = ts(not_before)?;
        params.not_after = ts(not_after)?;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&public_key, &self.issuer, &self.key).map_err(crypto("host certificate"))?;
        Ok(IssuedCert { cert_pem: cert.pem(), serial_hex: serial_hex_of_der(cert.der())?, not_before, not_after })
    }
}

/// Parses a PEM CSR, verifies its self-signature and returns only its public key.
fn csr_public_key(csr_pem: &str) -> Result<SubjectPublicKeyInfo> {
    use x509_parser::certification_request::X509CertificationRequest;
    let malformed = || BackendError::Invalid("malformed CSR".into());
    let (_, pem) = x509_parser::pem::parse_x509_pem(csr_pem.as_bytes()).map_err(|_| malformed())?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(malformed());
    }
    let (rest, csr) = X509CertificationRequest::from_der(&pem.contents).map_err(|_| malformed())?;
    if !rest.is_empty() {
        return Err(malformed());
    }
    csr.verify_signature().map_err(|_| malformed())?;
    SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw).map_err(|_| malformed())
}

/// One web SAN, normalised so that sets compare regardless of order and case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum WebSan {
    Dns(String),
    Ip(IpAddr),
}

impl WebSan {
    fn to_rcgen(&self) -> Result<SanType> {
        Ok(match self {
            WebSan::Ip(ip) => SanType::IpAddress(*ip),
            WebSan::Dns(d) => SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(|_| BackendError::Invalid(format!("invalid DNS name in tls sans: {d}")))?,
            ),
        })
    }
}

fn san_set(sans: &[String]) -> Result<BTreeSet<WebSan>> {
    let mut set = BTreeSet::new();
    for s in sans {
        let s = s.trim();
        if s.is_empty() {
            continue;
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            set.insert(WebSan::Ip(ip));
        } else if s.len() <= 253 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '*') {
            set.insert(WebSan::Dns(s.to_ascii_lowercase()));
        } else {
            return Err(BackendError::Invalid(format!("invalid name in tls sans: {s}")));
        }
    }
    Ok(set)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::extensions::ParsedExtension;

    const NOW: i64 = 1_800_000_000;

    fn ca_in(dir: &Path) -> Ca {
        Ca::load_or_create(dir, NOW).unwrap()
    }

    fn csr_for(params: CertificateParams) -> (String, KeyPair) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = params.serialize_request(&key).unwrap();
        (csr.pem().unwrap(), key)
    }

    /// BasicConstraints CA:TRUE as a requested extension (rcgen refuses `is_ca` in a CSR).
    pub(crate) fn ca_true_extension() -> rcgen::CustomExtension {
        rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x03, 0x01, 0x01, 0xff])
    }

    pub(crate) fn simple_csr() -> String {
        csr_for(CertificateParams::new(vec![]).unwrap()).0
    }

    #[test]
    fn ca_create_then_load_round_trip_with_private_key_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = ca_in(dir.path());
        let b = Ca::load_or_create(dir.path(), NOW + 1000).unwrap();
        assert_eq!(a.cert_pem(), b.cert_pem());
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(a.fingerprint().starts_with("sha256:"));
        assert_eq!(a.fingerprint().len(), 7 + 64);
        let mode = fs::metadata(dir.path().join("pki/ca.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (_, cert) = X509Certificate::from_der(a.cert_der()).unwrap();
        assert!(cert.is_ca());
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), CA_COMMON_NAME);
        assert_eq!(cert.validity().not_after.timestamp(), NOW + CA_VALIDITY_DAYS * DAY);
        // A cert signed by the reloaded CA verifies against the original CA certificate.
        let issued = b.sign_host_csr(&simple_csr(), "h1", 30, NOW).unwrap();
        let der = parse_cert_pem(&issued.cert_pem).unwrap();
        let (_, host) = X509Certificate::from_der(&der).unwrap();
        host.verify_signature(Some(cert.public_key())).unwrap();
        assert_eq!(host.issuer().as_raw(), cert.subject().as_raw());
    }

    #[test]
    fn half_present_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ca_in(dir.path());
        fs::remove_file(dir.path().join("pki/ca.pem")).unwrap();
        assert!(Ca::load_or_create(dir.path(), NOW).is_err());
    }

    #[test]
    fn serials_are_random_unique_positive_and_not_rcgen_default() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path());
        let (csr, key) = csr_for(CertificateParams::new(vec![]).unwrap());
        // rcgen's default serial is derived from the subject key: compute it for this key.
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        let default_serial = {
            let c = p.signed_by(&key, &ca.issuer, &ca.key).unwrap();
            serial_hex_of_der(c.der()).unwrap()
        };
        let mut seen = BTreeSet::new();
        for _ in 0..100 {
            let issued = ca.sign_host_csr(&csr, "host-1", 365, NOW).unwrap();
            assert_eq!(issued.serial_hex.len(), 32, "{}", issued.serial_hex);
            let first = u8::from_str_radix(&issued.serial_hex[..2], 16).unwrap();
            assert!((0x10..0x80).contains(&first), "{}", issued.serial_hex);
            assert_ne!(issued.serial_hex, default_serial);
            let der = parse_cert_pem(&issued.cert_pem).unwrap();
            assert_eq!(serial_hex_of_der(&der).unwrap(), issued.serial_hex);
            assert!(seen.insert(issued.serial_hex));
        }
    }

    #[test]
    fn csr_requests_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path());
        let mut evil = CertificateParams::new(vec!["evil.example".to_string(), "10.0.0.1".to_string()]).unwrap();
        evil.distinguished_name = DistinguishedName::new();
        evil.distinguished_name.push(DnType::CommonName, "evil");
        evil.custom_extensions = vec![ca_true_extension()];
        evil.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        evil.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let (csr, key) = csr_for(evil);
        let issued = ca.sign_host_csr(&csr, "host-42", 10_000, NOW).unwrap();
        let der = parse_cert_pem(&issued.cert_pem).unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cns: Vec<_> = cert.subject().iter_common_name().map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(cns, vec!["host-42".to_string()]);
        assert_eq!(cert.subject().iter().count(), 1);
        assert!(cert.subject_alternative_name().unwrap().is_none());
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        for ext in cert.extensions() {
            if let ParsedExtension::BasicConstraints(bc) = ext.parsed_extension() {
                assert!(!bc.ca);
            }
        }
        assert_eq!(cert.public_key().raw, key.public_key_der().as_slice());
        // Validity capped at 825 days, back-dated 5 minutes.
        assert_eq!(issued.not_after, NOW + HOST_VALIDITY_CAP_DAYS * DAY);
        assert_eq!(cert.validity().not_after.timestamp(), issued.not_after);
        assert_eq!(cert.validity().not_before.timestamp(), NOW - 300);
    }

    #[test]
    fn malformed_or_forged_csr_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path());
        for bad in ["", "hello", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"] {
            let err = ca.sign_host_csr(bad, "h", 30, NOW).unwrap_err();
            assert!(matches!(err, BackendError::Invalid(ref m) if m == "malformed CSR"), "{err:?}");
        }
        // A CA certificate is not a CSR.
        assert!(matches!(ca.sign_host_csr(ca.cert_pem(), "h", 30, NOW), Err(BackendError::Invalid(_))));
        // Tampered CSR: signature no longer verifies.
        let csr = simple_csr();
        let (_, pem) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
        let mut der = pem.contents.clone();
        let n = der.len();
        der[n - 5] ^= 0x01;
        let forged = {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
            format!("-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n", lines.join("\n"))
        };
        // The untampered CSR is accepted.
        assert!(ca.sign_host_csr(&csr, "h", 30, NOW).is_ok());
        assert!(matches!(ca.sign_host_csr(&forged, "h", 30, NOW), Err(BackendError::Invalid(_))));
    }

    #[test]
    fn web_cert_is_reused_and_reissued_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca_in(dir.path());
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string(), "pm.example".to_string()];
        let (c1, k1) = ca.load_or_issue_web_cert(dir.path(), &sans, NOW).unwrap();
        let mode = fs::metadata(dir.path().join("pki/web.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let der = parse_cert_pem(&c1).unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let names = &cert.subject_alternative_name().unwrap().unwrap().value.general_names;
        assert!(names.contains(&GeneralName::DNSName("localhost")));
        assert!(names.contains(&GeneralName::IPAddress(&[127, 0, 0, 1])));
        // Same SANs in another order: re-used.
        let reordered = vec!["pm.example".to_string(), "LOCALHOST".to_string(), "127.0.0.1".to_string()];
        let (c2, k2) = ca.load_or_issue_web_cert(dir.path(), &reordered, NOW + DAY).unwrap();
        assert_eq!((&c1, &k1), (&c2, &k2));
        // SAN set changed: re-issued.
        let (c3, _) = ca.load_or_issue_web_cert(dir.path(), &sans[..2], NOW + DAY).unwrap();
        assert_ne!(c1, c3);
        // Close to expiry: re-issued.
        let late = NOW + (WEB_VALIDITY_DAYS - 10) * DAY;
        let (c4, _) = ca.load_or_issue_web_cert(dir.path(), &sans[..2], late).unwrap();
        assert_ne!(c3, c4);
        // A different CA: re-issued.
        let other = tempfile::tempdir().unwrap();
        let ca2 = ca_in(other.path());
        let (c5, _) = ca2.load_or_issue_web_cert(dir.path(), &sans[..2], late).unwrap();
        assert_ne!(c4, c5);
        assert!(ca.load_or_issue_web_cert(dir.path(), &["bad name!".to_string()], NOW).is_err());
    }
}
