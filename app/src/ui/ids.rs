//! Stable element ids and routes shared with the Playwright suite
//! (mirrored in `end2end/tests/ids.ts`; change both together).

pub const ROUTE_LOGIN: &str = "/login";
pub const ROUTE_SETUP: &str = "/setup";
pub const ROUTE_HOSTS: &str = "/hosts";
pub const ROUTE_ENROLL: &str = "/enroll";

/// `<body data-hydrated="true">` once the WASM has hydrated the page.
pub const HYDRATED_ATTR: &str = "data-hydrated";

// Navigation
pub const NAV_USER: &str = "nav-user";
pub const LOGOUT_BUTTON: &str = "logout-button";

// Login (password step, TOTP step, TOTP enrolment)
pub const LOGIN_FORM: &str = "login-form";
pub const LOGIN_USERNAME: &str = "login-username";
pub const LOGIN_PASSWORD: &str = "login-password";
pub const LOGIN_SUBMIT: &str = "login-submit";
pub const LOGIN_ERROR: &str = "login-error";
pub const TOTP_FORM: &str = "totp-form";
pub const TOTP_CODE: &str = "totp-code";
pub const TOTP_SUBMIT: &str = "totp-submit";
pub const TOTP_ENROL_FORM: &str = "totp-enrol-form";
pub const TOTP_QR: &str = "totp-qr";
pub const TOTP_SECRET: &str = "totp-secret";
pub const TOTP_ENROL_CODE: &str = "totp-enrol-code";
pub const TOTP_ENROL_SUBMIT: &str = "totp-enrol-submit";

// First-run setup
pub const SETUP_FORM: &str = "setup-form";
pub const SETUP_USERNAME: &str = "setup-username";
pub const SETUP_PASSWORD: &str = "setup-password";
pub const SETUP_PASSWORD2: &str = "setup-password2";
pub const SETUP_SUBMIT: &str = "setup-submit";
pub const SETUP_ERROR: &str = "setup-error";
pub const SETUP_DONE: &str = "setup-done";

// Host list
pub const HOSTS_TABLE: &str = "hosts-table";
pub const HOSTS_TOTAL: &str = "hosts-total";
pub const HOSTS_SEARCH: &str = "hosts-search";
pub const HOSTS_STATUS: &str = "hosts-status";
pub const HOSTS_SECURITY_ONLY: &str = "hosts-security-only";
pub const HOSTS_REBOOT_ONLY: &str = "hosts-reboot-only";
pub const HOSTS_APPLY: &str = "hosts-apply";
pub const PAGE_PREV: &str = "page-prev";
pub const PAGE_NEXT: &str = "page-next";
pub const PAGE_INFO: &str = "page-info";
/// Row of one host: `host-row-<hostname>`.
pub const HOST_ROW_PREFIX: &str = "host-row-";

// Host detail
pub const HOST_HOSTNAME: &str = "host-hostname";
pub const HOST_STATUS: &str = "host-status";
pub const INSTALLED_COUNT: &str = "installed-count";
pub const PENDING_COUNT: &str = "pending-count";
pub const SECURITY_COUNT: &str = "security-count";
pub const UPDATES_TABLE: &str = "updates-table";
pub const PACKAGES_TABLE: &str = "packages-table";
pub const PACKAGES_SEARCH: &str = "packages-search";

// Enrollment
pub const ENROLL_FORM: &str = "enroll-form";
pub const ENROLL_NOTE: &str = "enroll-note";
pub const ENROLL_VALIDITY: &str = "enroll-validity";
pub const ENROLL_SUBMIT: &str = "enroll-submit";
pub const ENROLL_TOKEN: &str = "enroll-token";
pub const AGENT_COMMAND: &str = "agent-command";
pub const AGENT_COMMAND_COPY: &str = "agent-command-copy";
pub const CA_FINGERPRINT: &str = "ca-fingerprint";
pub const TOKENS_TABLE: &str = "tokens-table";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    /// Every constant here appears with the same value in the Playwright mirror.
    #[test]
    fn end2end_mirror_is_in_sync() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rust = std::fs::read_to_string(dir.join("src/ui/ids.rs")).unwrap();
        let ts = std::fs::read_to_string(dir.join("../end2end/tests/ids.ts")).unwrap();
        let mut checked = 0;
        for line in rust.lines() {
            let Some(rest) = line.strip_prefix("pub const ") else { continue };
            let (name, value) = rest.split_once(": &str = ").unwrap();
            let value = value.trim_end_matches(';').trim_matches('"');
            let expected = format!("export const {name} = '{value}';");
            assert!(ts.lines().any(|l| l == expected), "end2end/tests/ids.ts lacks `{expected}`");
            checked += 1;
        }
        assert!(checked > 20);
        assert_eq!(ts.matches("export const ").count(), checked, "ids.ts has constants ids.rs lacks");
    }
}
