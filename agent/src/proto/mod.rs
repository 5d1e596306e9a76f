//! Wire types shared by the agent and the server (serde only, no I/O).
//!
//! Every body is JSON. Paths are relative to the listener named on each type.

pub mod jobs;

use serde::{Deserialize, Serialize};

/// Path on the web listener (the agent has no certificate yet): POST [`EnrollRequest`].
pub const ENROLL_PATH: &str = "/api/v1/enroll";
/// Path on the web listener: GET the internal CA certificate (PEM). Public by design.
pub const CA_PATH: &str = "/api/v1/ca.pem";
/// Path on the agent (mTLS) listener: POST [`CheckIn`], answered by [`CheckInResponse`].
pub const CHECKIN_PATH: &str = "/agent/v1/checkin";

/// Sent by `pm-agent enroll` to the web listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-time enrollment token, as shown to the admin.
    pub token: String,
    /// PKCS#10 CSR in PEM. Only its public key is used; the server decides the rest.
    pub csr_pem: String,
    /// The host's name as the agent sees it (informational; the host id is the server's).
    pub hostname: String,
}

/// The server's answer to a successful enrollment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrollResponse {
    /// Host id assigned by the server; also the certificate's subject CN.
    pub host_id: String,
    /// The host's client certificate (PEM).
    pub cert_pem: String,
    /// The internal CA certificate (PEM) the agent must pin.
    pub ca_pem: String,
    /// Base URL of the agent (mTLS) listener, e.g. `https://pm.example:8444`.
    pub agent_url: String,
    /// The server's Ed25519 job-signing public key (raw 32 bytes, base64 standard). The
    /// agent pins it and runs only jobs signed with it (see [`jobs`]).
    pub job_signing_key: String,
}

/// Facts about the host, sent on every check-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HostFacts {
    pub hostname: String,
    /// os-release `ID` (e.g. `debian`), empty when missing.
    pub os_id: String,
    /// os-release `VERSION_ID`, empty when missing.
    pub os_version_id: String,
    /// os-release `PRETTY_NAME`, empty when missing.
    pub os_pretty_name: String,
    /// `uname -r`.
    pub kernel: String,
    /// Machine architecture, e.g. `x86_64`.
    pub arch: String,
    pub uptime_seconds: u64,
    /// `/var/run/reboot-required` exists.
    pub reboot_required: bool,
    pub agent_version: String,
    /// `/proc/sys/kernel/random/boot_id`: changes at every boot (the server sees a reboot
    /// it asked for complete). Empty when unreadable.
    #[serde(default)]
    pub boot_id: String,
}

/// Package manager family of the host.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Apt,
    Dnf,
    Zypper,
}

/// One installed package.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// One pending update (installed version -> candidate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingUpdate {
    pub name: String,
    pub arch: String,
    pub current_version: String,
    pub candidate_version: String,
    /// The suite/pocket/repository the candidate comes from (e.g. `bookworm-security`).
    pub source: String,
    /// True when the candidate comes from a security suite/pocket/advisory.
    pub security: bool,
}

/// Full package inventory of a host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inventory {
    pub manager: PackageManager,
    pub installed: Vec<InstalledPackage>,
    pub updates: Vec<PendingUpdate>,
}

impl Inventory {
    /// Stable SHA-256 (hex) over the canonical JSON of the sorted inventory. The agent sends
    /// the full inventory only when this changes; the server stores the hash it last accepted.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut sorted = self.clone();
        sorted.installed.sort();
        sorted.updates.sort();
        let bytes = serde_json::to_vec(&sorted).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

/// Sent by the agent on every check-in over mTLS. The host is identified by its certificate,
/// never by anything in the body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    pub facts: HostFacts,
    /// Digest of the agent's current inventory ([`Inventory::digest`]).
    pub inventory_digest: String,
    /// Present only when the inventory changed since the server last acknowledged it, or
    /// when the server asked for it.
    pub inventory: Option<Inventory>,
}

/// The server's answer to a check-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckInResponse {
    /// Server asks for the full inventory on the next check-in (its stored digest differs).
    pub send_inventory: bool,
    /// Seconds until the next check-in (the agent adds jitter).
    pub next_checkin_seconds: u64,
    /// Jobs dispatched to this host and not yet acknowledged (see [`jobs`]).
    #[serde(default)]
    pub jobs: Vec<jobs::SignedJob>,
}

/// Error body returned by every JSON endpoint on both listeners.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    /// Stable machine-readable code, e.g. `token_invalid`.
    pub code: String,
    /// Human-readable message; never contains internal error text or secrets.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_order_and_tracks_content() {
        let a = InstalledPackage { name: "a".into(), version: "1".into(), arch: "amd64".into() };
        let b = InstalledPackage { name: "b".into(), version: "2".into(), arch: "amd64".into() };
        let inv1 = Inventory { manager: PackageManager::Apt, installed: vec![a.clone(), b.clone()], updates: vec![] };
        let inv2 = Inventory { manager: PackageManager::Apt, installed: vec![b, a.clone()], updates: vec![] };
        assert_eq!(inv1.digest(), inv2.digest());
        let inv3 = Inventory { manager: PackageManager::Apt, installed: vec![a], updates: vec![] };
        assert_ne!(inv1.digest(), inv3.digest());
    }
}
