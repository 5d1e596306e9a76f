//! Everything checked before a delivered job is journaled, let alone run: the Ed25519
//! signature with the key pinned at enrollment (over [`JOB_SIGNATURE_CONTEXT`] followed by
//! the exact delivered bytes, checked before those bytes are parsed), the target host id,
//! the job id (it names files), package names for this host's manager, and the hooks.
//! The maintenance window is checked later, at start ([`check_window`]): a job outside its
//! window is still a valid job, reported `Skipped`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

use crate::pkgname::{self, NameError};
use crate::proto::jobs::{HookCommand, JobSpec, PatchScope, SignedJob, JOB_SIGNATURE_CONTEXT};
use crate::proto::PackageManager;

use super::hook::MAX_HOOK_TIMEOUT_SECS;

/// Longest job id accepted (it becomes a file name).
pub const MAX_JOB_ID_LEN: usize = 128;
/// A job that arrives this little before its `not_before` waits for it (clock skew between
/// server and host) instead of being skipped.
pub const MAX_EARLY_WAIT_SECS: i64 = 300;
/// Bound on the delivered base64 text (a spec is a few KiB).
const MAX_SPEC_B64_LEN: usize = 1024 * 1024;
const ALL_MANAGERS: [PackageManager; 3] = [PackageManager::Apt, PackageManager::Dnf, PackageManager::Zypper];

/// Why a delivery is refused. The `Display` text is what the server is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no job-signing key is pinned on this host (re-enroll it)")]
    NoPinnedKey,
    #[error("malformed job: {0}")]
    Malformed(&'static str),
    #[error("signature invalid (signed by key {delivered_key_id}, this host trusts key {pinned_key_id})")]
    UnknownKey { delivered_key_id: String, pinned_key_id: String },
    #[error("signature invalid")]
    SignatureInvalid,
    #[error("invalid job id")]
    BadJobId,
    #[error("job is for another host ({0})")]
    OtherHost(String),
    #[error("invalid package name in {field}: {error}")]
    BadName { field: &'static str, error: NameError },
    #[error("invalid {field} {name:?}: {problem}")]
    BadHook { field: &'static str, name: String, problem: &'static str },
}

/// Checks deliveries for one host.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Raw 32-byte Ed25519 key; `None` when the host was enrolled before jobs existed.
    key: Option<Vec<u8>>,
    key_id: String,
    host_id: String,
    /// `None`: no package manager detected; names must then be valid for every manager.
    manager: Option<PackageManager>,
}

/// `key_id` of a raw Ed25519 public key (the server's `job_signing::key_id_of`).
pub fn key_id_of(public_key: &[u8]) -> String {
    hex::encode(Sha256::digest(public_key))[..16].to_string()
}

impl Verifier {
    /// `pinned_b64`: content of `job-signing.pub` (raw key, base64), if any.
    pub fn new(pinned_b64: Option<&str>, host_id: &str, manager: Option<PackageManager>) -> Verifier {
        let key = pinned_b64.and_then(|b| B64.decode(b.trim()).ok()).filter(|k| k.len() == 32);
        let key_id = key.as_deref().map(key_id_of).unwrap_or_default();
        Verifier { key, key_id, host_id: host_id.to_string(), manager }
    }

    /// The spec, once everything about it checked out.
    pub fn verify(&self, signed: &SignedJob) -> Result<JobSpec, Refusal> {
        let Some(key) = &self.key else {
            return Err(Refusal::NoPinnedKey);
        };
        let bytes = decode_spec_bytes(signed)?;
        let signature =
            B64.decode(signed.signature_b64.trim()).map_err(|_| Refusal::Malformed("signature is not base64"))?;
        let mut message = Vec::with_capacity(JOB_SIGNATURE_CONTEXT.len() + bytes.len());
        message.extend_from_slice(JOB_SIGNATURE_CONTEXT);
        message.extend_from_slice(&bytes);
        if UnparsedPublicKey::new(&ED25519, key).verify(&message, &signature).is_err() {
            // key_id is unsigned and only makes the reason more useful (key rotation).
            return Err(if signed.key_id != self.key_id && !signed.key_id.is_empty() {
                Refusal::UnknownKey { delivered_key_id: short(&signed.key_id, 16), pinned_key_id: self.key_id.clone() }
            } else {
                Refusal::SignatureInvalid
            });
        }
        let spec: JobSpec = serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed("spec is not a job"))?;
        self.check_spec(&spec)?;
        Ok(spec)
    }

    fn check_spec(&self, spec: &JobSpec) -> Result<(), Refusal> {
        if !valid_job_id(&spec.job_id) {
            return Err(Refusal::BadJobId);
        }
        if spec.host_id != self.host_id {
            return Err(Refusal::OtherHost(short(&spec.host_id, 64)));
        }
        let check = |field: &'static str, name: &str| {
            let result = match self.manager {
                Some(m) => pkgname::validate(m, name),
                None => pkgname::validate_all(&ALL_MANAGERS, name),
            };
            result.map_err(|error| Refusal::BadName { field, error })
        };
        if let PatchScope::Packages { names } = &spec.scope {
            if names.is_empty() {
                return Err(Refusal::Malformed("package scope without names"));
            }
            names.iter().try_for_each(|n| check("scope", n))?;
        }
        spec.exclude.iter().try_for_each(|n| check("exclude", n))?;
        spec.pre_commands.iter().try_for_each(|h| check_hook("pre-command", h))?;
        spec.post_commands.iter().try_for_each(|h| check_hook("post-command", h))?;
        Ok(())
    }
}

fn decode_spec_bytes(signed: &SignedJob) -> Result<Vec<u8>, Refusal> {
    if signed.spec_b64.len() > MAX_SPEC_B64_LEN {
        return Err(Refusal::Malformed("spec too large"));
    }
    B64.decode(signed.spec_b64.trim()).map_err(|_| Refusal::Malformed("spec is not base64"))
}

/// The job id an unverified delivery claims, if it is a valid id (refusals are reported to
/// it so the operator sees them; it is never used to name a journal file).
pub fn claimed_job_id(signed: &SignedJob) -> Option<String> {
    let bytes = decode_spec_bytes(signed).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let id = value.get("job_id")?.as_str()?;
    valid_job_id(id).then(|| id.to_string())
}

/// `[A-Za-z0-9._-]{1,128}`, not starting with `.` (ids name journal files).
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_JOB_ID_LEN
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A hook runs as root without a shell: an absolute program path, no NUL bytes, a sane
/// time limit.
fn check_hook(field: &'static str, hook: &HookCommand) -> Result<(), Refusal> {
    let bad = |problem| Refusal::BadHook { field, name: short(&hook.name, 64), problem };
    let Some(program) = hook.argv.first() else {
        return Err(bad("empty command"));
    };
    if !program.starts_with('/') {
        return Err(bad("the program must be an absolute path"));
    }
    if hook.argv.iter().any(|a| a.contains('\0')) {
        return Err(bad("NUL byte in an argument"));
    }
    if hook.timeout_secs == 0 || hook.timeout_secs > MAX_HOOK_TIMEOUT_SECS {
        return Err(bad("timeout out of range"));
    }
    Ok(())
}

fn short(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Whether a job may start at `now` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Window {
    Open,
    /// Slightly early (clock skew): wait this many seconds, then it is open.
    WaitSecs(u64),
    /// Outside: the reason for the `Skipped` report.
    Closed(String),
}

/// `[not_before, not_after)`, with up to [`MAX_EARLY_WAIT_SECS`] of waiting when early.
pub fn check_window(spec: &JobSpec, now: i64) -> Window {
    if spec.not_after <= spec.not_before || now >= spec.not_after {
        return Window::Closed(format!(
            "outside its maintenance window: it ended at {} (unix), the host's clock says {now}",
            spec.not_after
        ));
    }
    if now < spec.not_before {
        let early = spec.not_before - now;
        if early <= MAX_EARLY_WAIT_SECS {
            return Window::WaitSecs(u64::try_from(early).unwrap_or(0));
        }
        return Window::Closed(format!(
            "outside its maintenance window: it opens at {} (unix), the host's clock says {now}",
            spec.not_before
        ));
    }
    Window::Open
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jobs::journal::tests::spec;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    pub(crate) fn keypair() -> Ed25519KeyPair {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    /// Signs `bytes` like the server's `JobSigner::sign`.
    pub(crate) fn sign_bytes(pair: &Ed25519KeyPair, bytes: &[u8]) -> SignedJob {
        let mut message = JOB_SIGNATURE_CONTEXT.to_vec();
        message.extend_from_slice(bytes);
        SignedJob {
            spec_b64: B64.encode(bytes),
            signature_b64: B64.encode(pair.sign(&message).as_ref()),
            key_id: key_id_of(pair.public_key().as_ref()),
        }
    }

    pub(crate) fn sign(pair: &Ed25519KeyPair, spec: &JobSpec) -> SignedJob {
        sign_bytes(pair, &serde_json::to_vec(spec).unwrap())
    }

    fn verifier(pair: &Ed25519KeyPair) -> Verifier {
        Verifier::new(Some(&B64.encode(pair.public_key().as_ref())), "host-1", Some(PackageManager::Apt))
    }

    #[test]
    fn a_signed_job_for_this_host_verifies() {
        let pair = keypair();
        let s = spec("job-1", 100);
        assert_eq!(verifier(&pair).verify(&sign(&pair, &s)), Ok(s));
    }

    #[test]
    fn tampered_foreign_and_unsigned_jobs_are_refused() {
        let pair = keypair();
        let v = verifier(&pair);
        let s = spec("job-1", 100);

        // One byte of the spec changed after signing (a pre-command smuggled in, say).
        let mut tampered = sign(&pair, &s);
        let mut evil = s.clone();
        evil.pre_commands.push(HookCommand { name: "x".into(), argv: vec!["/bin/true".into()], timeout_secs: 1 });
        tampered.spec_b64 = B64.encode(serde_json::to_vec(&evil).unwrap());
        assert_eq!(v.verify(&tampered), Err(Refusal::SignatureInvalid));
        assert_eq!(claimed_job_id(&tampered).as_deref(), Some("job-1"));

        // Signed by another key (it names its own key id).
        let other = keypair();
        let foreign = sign(&other, &s);
        let err = v.verify(&foreign).unwrap_err();
        assert!(matches!(err, Refusal::UnknownKey { .. }), "{err}");
        assert!(err.to_string().starts_with("signature invalid"), "{err}");

        // Another key claiming our key id.
        let mut impostor = foreign.clone();
        impostor.key_id = sign(&pair, &s).key_id;
        assert_eq!(v.verify(&impostor), Err(Refusal::SignatureInvalid));

        // Signature over the bytes without the context prefix (domain separation).
        let bytes = serde_json::to_vec(&s).unwrap();
        let mut no_context = sign(&pair, &s);
        no_context.signature_b64 = B64.encode(pair.sign(&bytes).as_ref());
        assert_eq!(v.verify(&no_context), Err(Refusal::SignatureInvalid));

        let mut garbage = sign(&pair, &s);
        garbage.signature_b64 = "***".into();
        assert!(matches!(v.verify(&garbage), Err(Refusal::Malformed(_))));
        let no_key = Verifier::new(None, "host-1", Some(PackageManager::Apt));
        assert_eq!(no_key.verify(&sign(&pair, &s)), Err(Refusal::NoPinnedKey));
        let short_key = Verifier::new(Some("AAAA"), "host-1", None);
        assert_eq!(short_key.verify(&sign(&pair, &s)), Err(Refusal::NoPinnedKey));
    }

    #[test]
    fn signed_but_wrong_content_is_refused() {
        let pair = keypair();
        let v = verifier(&pair);
        let mut other_host = spec("job-1", 100);
        other_host.host_id = "host-2".into();
        assert_eq!(v.verify(&sign(&pair, &other_host)), Err(Refusal::OtherHost("host-2".into())));

        for bad_id in ["", "../etc/passwd", ".hidden", "a/b", "a b"] {
            assert_eq!(v.verify(&sign(&pair, &spec(bad_id, 100))), Err(Refusal::BadJobId), "{bad_id:?}");
        }
        let mut names = spec("job-1", 100);
        names.scope = PatchScope::Packages { names: vec!["openssl".into(), "-oAPT::X=1".into()] };
        assert_eq!(v.verify(&sign(&pair, &names)), Err(Refusal::BadName { field: "scope", error: NameError::Option }));
        let mut exclude = spec("job-1", 100);
        exclude.exclude = vec!["NetworkManager".into()];
        assert!(matches!(v.verify(&sign(&pair, &exclude)), Err(Refusal::BadName { field: "exclude", .. })));
        // Without a detected manager the name must suit every manager.
        let any = Verifier::new(Some(&B64.encode(pair.public_key().as_ref())), "host-1", None);
        assert!(any.verify(&sign(&pair, &exclude)).is_err());

        let mut relative = spec("job-1", 100);
        relative.pre_commands = vec![HookCommand { name: "h".into(), argv: vec!["true".into()], timeout_secs: 5 }];
        assert!(matches!(v.verify(&sign(&pair, &relative)), Err(Refusal::BadHook { .. })));
        let mut forever = spec("job-1", 100);
        forever.post_commands = vec![HookCommand { name: "h".into(), argv: vec!["/bin/true".into()], timeout_secs: 0 }];
        assert!(matches!(v.verify(&sign(&pair, &forever)), Err(Refusal::BadHook { .. })));

        // Unknown fields in the signed JSON: refused, not ignored.
        let mut value = serde_json::to_value(spec("job-1", 100)).unwrap();
        value["surprise"] = serde_json::json!(1);
        let extra = sign_bytes(&pair, &serde_json::to_vec(&value).unwrap());
        assert!(matches!(v.verify(&extra), Err(Refusal::Malformed(_))));
    }

    #[test]
    fn window_is_half_open_and_tolerates_small_clock_skew() {
        let mut s = spec("j", 2000);
        s.not_before = 1000;
        assert_eq!(check_window(&s, 1000), Window::Open);
        assert_eq!(check_window(&s, 1999), Window::Open);
        assert!(matches!(check_window(&s, 2000), Window::Closed(r) if r.contains("ended")));
        assert_eq!(check_window(&s, 990), Window::WaitSecs(10));
        assert!(matches!(check_window(&s, 1000 - MAX_EARLY_WAIT_SECS - 1), Window::Closed(r) if r.contains("opens")));
        s.not_after = 1000;
        assert!(matches!(check_window(&s, 1000), Window::Closed(_)));
    }
}
