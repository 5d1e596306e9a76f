//! View types shared by the WASM front end and the server (serde only).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
}

/// The logged-in user, as the UI sees them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Me {
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

/// What the login form must show next.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum LoginStep {
    /// Password accepted; finish with one of the user's factors (or a recovery code).
    SecondFactor {
        totp: bool,
        passkey: bool,
    },
    /// Password accepted; the account has no factor yet: enrol one (TOTP or a passkey) first.
    Enrol,
    /// Fully logged in.
    Done,
}

/// A passkey or security key of the signed-in user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The signed-in user's second factors, for the account page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountFactors {
    pub totp_enrolled: bool,
    pub passkeys: Vec<PasskeyInfo>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// False when the server's `public_url` gives no WebAuthn relying party (an IP address).
    pub passkeys_available: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// Base32 secret, for manual entry.
    pub secret: String,
    pub otpauth_url: String,
    /// PNG of the QR code, base64.
    pub qr_png_base64: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    All,
    Online,
    Offline,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HostQuery {
    /// Matches hostname, OS or kernel (case-insensitive substring).
    pub search: String,
    pub status: StatusFilter,
    pub security_only: bool,
    pub reboot_only: bool,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostSummary {
    pub id: String,
    pub hostname: String,
    pub os_pretty_name: String,
    pub kernel: String,
    pub arch: String,
    /// Unix seconds of the last check-in; None before the first.
    pub last_seen: Option<i64>,
    pub online: bool,
    pub pending_updates: i64,
    pub security_updates: i64,
    pub reboot_required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: u32,
    pub per_page: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostDetail {
    pub summary: HostSummary,
    pub os_id: String,
    pub os_version_id: String,
    pub uptime_seconds: i64,
    pub agent_version: String,
    pub package_manager: String,
    pub enrolled_at: i64,
    pub installed_count: i64,
    pub cert_serial: String,
    pub cert_not_after: i64,
    pub groups: Vec<GroupRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageRow {
    pub name: String,
    pub version: String,
    pub arch: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpdateRow {
    pub name: String,
    pub arch: String,
    pub current_version: String,
    pub candidate_version: String,
    pub source: String,
    pub security: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrollTokenInfo {
    pub id: String,
    pub note: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_by_host: Option<String>,
    /// The group an enrolled host joins.
    pub group_name: Option<String>,
}

/// Returned once, when a token is created: the plaintext is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewEnrollToken {
    pub info: EnrollTokenInfo,
    pub token: String,
    /// `sha256:<hex>` of the internal CA certificate (DER).
    pub ca_fingerprint: String,
    /// The exact command to run on the host.
    pub agent_command: String,
}

/// Enrollment tokens plus the server's clock, so the page can tell active from expired
/// without consulting the browser's clock (the server render and the hydrated page agree).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenList {
    pub now: i64,
    pub tokens: Vec<EnrollTokenInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub host_count: i64,
}

/// A user as the admin's user list shows them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub totp_enrolled: bool,
    /// Registered passkeys / security keys.
    pub passkeys: i64,
    /// The invitation has not been accepted yet (no password set).
    pub invited: bool,
    pub created_at: i64,
    pub groups: Vec<GroupRef>,
}

/// Returned once when a user is invited: the link is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewInvitation {
    pub user: UserInfo,
    pub link: String,
    pub expires_at: i64,
}
