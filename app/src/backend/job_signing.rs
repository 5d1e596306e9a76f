//! The server's Ed25519 job-signing key: every patch job a host receives is signed with it
//! (see `agent::proto::jobs`), and agents pin its public key at enrollment.
//!
//! Stored in `data_dir/pki/job-signing.key` (PKCS#8, PEM-armoured, mode 0600, created before
//! any byte is written), next to the CA; replicas share it the same way they share the CA.

use std::path::Path;

use agent::proto::jobs::{JobSpec, SignedJob, JOB_SIGNATURE_CONTEXT};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

use super::error::{BackendError, Result};

const FILE: &str = "job-signing.key";
const PEM_LABEL: &str = "PRIVATE KEY";

pub struct JobSigner {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for JobSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSigner").field("key_id", &self.key_id).finish()
    }
}

/// `key_id` of a raw 32-byte Ed25519 public key: first 16 hex digits of its SHA-256.
pub fn key_id_of(public_key: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key))[..16].to_string()
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

fn pem_decode(text: &str) -> Result<Vec<u8>> {
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != format!("-----BEGIN {PEM_LABEL}-----"))
        .skip(1)
        .take_while(|l| *l != format!("-----END {PEM_LABEL}-----"))
        .collect();
    B64.decode(body).map_err(|_| BackendError::Internal(format!("{FILE} is not a PEM private key")))
}

impl JobSigner {
    /// Loads `data_dir/pki/job-signing.key`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<JobSigner> {
        let dir = super::ca::pki_dir(data_dir)?;
        let path = dir.join(FILE);
        if path.exists() {
            let der = pem_decode(&std::fs::read_to_string(&path)?)?;
            return JobSigner::from_pkcs8(&der);
        }
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| BackendError::Crypto("ed25519 keygen".into()))?;
        super::ca::write_file(&path, pem_encode(doc.as_ref()).as_bytes(), 0o600)?;
        let signer = JobSigner::from_pkcs8(doc.as_ref())?;
        tracing::info!(target: "security", key_id = %signer.key_id, "created job-signing key");
        Ok(signer)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<JobSigner> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| BackendError::Crypto(format!("job-signing key: {e}")))?;
        let key_id = key_id_of(pair.public_key().as_ref());
        Ok(JobSigner { pair, key_id })
    }

    /// A fresh key that lives in memory only (tests).
    pub fn generate_ephemeral() -> Result<JobSigner> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| BackendError::Crypto("ed25519 keygen".into()))?;
        JobSigner::from_pkcs8(doc.as_ref())
    }

    /// Raw 32-byte public key, base64 (what `EnrollResponse::job_signing_key` carries).
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Serialises `spec` once and signs those bytes.
    pub fn sign(&self, spec: &JobSpec) -> Result<SignedJob> {
        let bytes = serde_json::to_vec(spec).map_err(|e| BackendError::Internal(format!("job spec: {e}")))?;
        let mut message = JOB_SIGNATURE_CONTEXT.to_vec();
        message.extend_from_slice(&bytes);
        let signature = self.pair.sign(&message);
        Ok(SignedJob {
            spec_b64: B64.encode(&bytes),
            signature_b64: B64.encode(signature.as_ref()),
            key_id: self.key_id.clone(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use agent::proto::jobs::{JobMode, PatchScope, RebootPolicy};
    use ring::signature::{UnparsedPublicKey, ED25519};
    use std::os::unix::fs::PermissionsExt;

    fn spec() -> JobSpec {
        JobSpec {
            job_id: "j1".into(),
            host_id: "h1".into(),
            issued_at: 1,
            not_before: 1,
            not_after: 2,
            mode: JobMode::Apply,
            scope: PatchScope::Security,
            exclude: vec![],
            reboot: RebootPolicy::Never,
            pre_commands: vec![],
            post_commands: vec![],
        }
    }

    #[test]
    fn key_file_is_private_reloads_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let a = JobSigner::load_or_create(dir.path()).unwrap();
        let path = dir.path().join("pki").join(FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = JobSigner::load_or_create(dir.path()).unwrap();
        assert_eq!(a.public_key_b64(), b.public_key_b64());
        assert!(!format!("{a:?}").contains(&std::fs::read_to_string(&path).unwrap()[40..80]));

        let signed = a.sign(&spec()).unwrap();
        assert_eq!(signed.key_id, a.key_id());
        let public = B64.decode(a.public_key_b64()).unwrap();
        let bytes = B64.decode(&signed.spec_b64).unwrap();
        let sig = B64.decode(&signed.signature_b64).unwrap();
        let mut msg = JOB_SIGNATURE_CONTEXT.to_vec();
        msg.extend_from_slice(&bytes);
        UnparsedPublicKey::new(&ED25519, &public).verify(&msg, &sig).unwrap();
        // Without the context prefix the signature does not verify (domain separation).
        assert!(UnparsedPublicKey::new(&ED25519, &public).verify(&bytes, &sig).is_err());
        assert_eq!(serde_json::from_slice::<JobSpec>(&bytes).unwrap(), spec());
    }
}
