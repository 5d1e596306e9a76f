//! Stable element ids and routes shared with the Playwright suite
//! (mirrored in `end2end/tests/ids.ts`; change both together).

pub const ROUTE_LOGIN: &str = "/login";
pub const ROUTE_SETUP: &str = "/setup";
pub const ROUTE_HOSTS: &str = "/hosts";
pub const ROUTE_ENROLL: &str = "/enroll";
pub const ROUTE_USERS: &str = "/users";
pub const ROUTE_GROUPS: &str = "/groups";
pub const ROUTE_INVITE: &str = "/invite";
pub const ROUTE_ACCOUNT: &str = "/account";
pub const ROUTE_JOBS: &str = "/jobs";
pub const ROUTE_JOB_NEW: &str = "/jobs/new";
pub const ROUTE_HOOKS: &str = "/hooks";

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
// Passkeys and recovery codes at login
pub const PASSKEY_LOGIN: &str = "passkey-login";
pub const PASSKEY_SECOND_FACTOR: &str = "passkey-second-factor";
pub const PASSKEY_ENROL: &str = "passkey-enrol";
pub const RECOVERY_TOGGLE: &str = "recovery-toggle";
pub const RECOVERY_FORM: &str = "recovery-form";
pub const RECOVERY_CODE: &str = "recovery-code";
pub const RECOVERY_SUBMIT: &str = "recovery-submit";
/// The list of freshly made recovery codes (shown once).
pub const RECOVERY_CODES: &str = "recovery-codes";
pub const RECOVERY_CONTINUE: &str = "recovery-continue";

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
pub const HOST_CERT_SERIAL: &str = "host-cert-serial";
pub const HOST_CERT_STATUS: &str = "host-cert-status";
pub const HOST_REVOKE: &str = "host-revoke";
pub const HOST_REVOKE_CONFIRM: &str = "host-revoke-confirm";

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
pub const ENROLL_GROUP: &str = "enroll-group";

// Host groups (on the host page)
pub const HOST_GROUPS: &str = "host-groups";
pub const HOST_GROUPS_EDIT: &str = "host-groups-edit";
pub const HOST_GROUPS_SAVE: &str = "host-groups-save";

// Users
pub const INVITE_FORM: &str = "invite-form";
pub const INVITE_USERNAME: &str = "invite-username";
pub const INVITE_ROLE: &str = "invite-role";
pub const INVITE_GROUPS: &str = "invite-groups";
pub const INVITE_SUBMIT: &str = "invite-submit";
pub const INVITE_LINK: &str = "invite-link";
pub const USERS_TABLE: &str = "users-table";
/// Row of one user: `user-row-<username>`.
pub const USER_ROW_PREFIX: &str = "user-row-";

// Invitation acceptance and password change
pub const INVITE_ACCEPT_FORM: &str = "invite-accept-form";
pub const INVITE_PASSWORD: &str = "invite-password";
pub const INVITE_PASSWORD2: &str = "invite-password2";
pub const INVITE_ACCEPT_SUBMIT: &str = "invite-accept-submit";
pub const INVITE_ERROR: &str = "invite-error";
pub const INVITE_DONE: &str = "invite-done";
pub const PASSWORD_FORM: &str = "password-form";
pub const PASSWORD_CURRENT: &str = "password-current";
pub const PASSWORD_NEW: &str = "password-new";
pub const PASSWORD_NEW2: &str = "password-new2";
pub const PASSWORD_SUBMIT: &str = "password-submit";
pub const PASSWORD_ERROR: &str = "password-error";
// Account: passkeys (rows: `tr.passkey-row[data-passkey-name]` with buttons `.passkey-rename`,
// `.passkey-rename-save`, `.passkey-remove`), TOTP, recovery codes
pub const PASSKEYS_TABLE: &str = "passkeys-table";
pub const PASSKEY_FORM: &str = "passkey-form";
pub const PASSKEY_NAME: &str = "passkey-name";
pub const PASSKEY_ADD: &str = "passkey-add";
pub const PASSKEY_ERROR: &str = "passkey-error";
pub const TOTP_STATUS: &str = "totp-status";
pub const ACCOUNT_TOTP_BEGIN: &str = "account-totp-begin";
pub const RECOVERY_LEFT: &str = "recovery-left";
pub const RECOVERY_REGENERATE: &str = "recovery-regenerate";

// Groups
pub const GROUP_FORM: &str = "group-form";
pub const GROUP_NAME: &str = "group-name";
pub const GROUP_SUBMIT: &str = "group-submit";
pub const GROUPS_TABLE: &str = "groups-table";

// Patch jobs: list
pub const JOBS_TABLE: &str = "jobs-table";
/// Row of one job: `job-row-<job id>`.
pub const JOB_ROW_PREFIX: &str = "job-row-";
pub const NEW_JOB_LINK: &str = "new-job-link";

// Patch jobs: new-job form
pub const JOB_FORM: &str = "job-form";
pub const JOB_TITLE: &str = "job-title";
pub const JOB_HOST_FILTER: &str = "job-host-filter";
pub const JOB_HOSTS: &str = "job-hosts";
pub const JOB_GROUPS: &str = "job-groups";
pub const JOB_MODE: &str = "job-mode";
pub const JOB_SCOPE: &str = "job-scope";
pub const JOB_PACKAGES: &str = "job-packages";
pub const JOB_EXCLUDE: &str = "job-exclude";
pub const JOB_SCHEDULE: &str = "job-schedule";
pub const JOB_AT: &str = "job-at";
pub const JOB_WINDOW: &str = "job-window";
pub const JOB_START_WITHIN: &str = "job-start-within";
pub const JOB_CANARY: &str = "job-canary";
pub const JOB_BATCH: &str = "job-batch";
pub const JOB_BATCH_PERCENT: &str = "job-batch-percent";
pub const JOB_MAX_CONCURRENT: &str = "job-max-concurrent";
pub const JOB_THRESHOLD: &str = "job-threshold";
pub const JOB_REBOOT: &str = "job-reboot";
pub const JOB_PRE_HOOKS: &str = "job-pre-hooks";
pub const JOB_POST_HOOKS: &str = "job-post-hooks";
pub const JOB_PREVIEW_BUTTON: &str = "job-preview-button";
pub const JOB_PREVIEW: &str = "job-preview";
pub const JOB_SUBMIT: &str = "job-submit";
pub const JOB_ERROR: &str = "job-error";

// Patch jobs: one job
pub const JOB_STATUS: &str = "job-status";
pub const JOB_COUNTS: &str = "job-counts";
pub const JOB_HALT_REASON: &str = "job-halt-reason";
pub const JOB_CANCEL: &str = "job-cancel";
pub const JOB_RESUME: &str = "job-resume";
pub const JOB_RUN_FOR_REAL: &str = "job-run-for-real";
pub const JOB_HOSTS_TABLE: &str = "job-hosts-table";
/// Row of one host in a job: `job-host-<hostname>` (`data-state` holds its state).
pub const JOB_HOST_ROW_PREFIX: &str = "job-host-";
pub const JOB_HOST_CHANGES: &str = "job-host-changes";
pub const JOB_HOST_OUTPUT: &str = "job-host-output";

// Patch jobs on the host page
pub const HOST_JOBS: &str = "host-jobs";
pub const HOST_NEW_JOB: &str = "host-new-job";

// Hooks (Admin)
pub const HOOK_FORM: &str = "hook-form";
pub const HOOK_NAME: &str = "hook-name";
pub const HOOK_ARGV: &str = "hook-argv";
pub const HOOK_TIMEOUT: &str = "hook-timeout";
pub const HOOK_SUBMIT: &str = "hook-submit";
pub const HOOKS_TABLE: &str = "hooks-table";

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
