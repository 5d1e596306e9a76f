// Mirror of app/src/ui/ids.rs (element ids and routes shared with the UI). Change both together.

export const ROUTE_LOGIN = '/login';
export const ROUTE_SETUP = '/setup';
export const ROUTE_HOSTS = '/hosts';
export const ROUTE_ENROLL = '/enroll';
export const ROUTE_USERS = '/users';
export const ROUTE_GROUPS = '/groups';
export const ROUTE_INVITE = '/invite';
export const ROUTE_ACCOUNT = '/account';
export const HYDRATED_ATTR = 'data-hydrated';
// Navigation
export const NAV_USER = 'nav-user';
export const LOGOUT_BUTTON = 'logout-button';
// Login (password step, TOTP step, TOTP enrolment)
export const LOGIN_FORM = 'login-form';
export const LOGIN_USERNAME = 'login-username';
export const LOGIN_PASSWORD = 'login-password';
export const LOGIN_SUBMIT = 'login-submit';
export const LOGIN_ERROR = 'login-error';
export const TOTP_FORM = 'totp-form';
export const TOTP_CODE = 'totp-code';
export const TOTP_SUBMIT = 'totp-submit';
export const TOTP_ENROL_FORM = 'totp-enrol-form';
export const TOTP_QR = 'totp-qr';
export const TOTP_SECRET = 'totp-secret';
export const TOTP_ENROL_CODE = 'totp-enrol-code';
export const TOTP_ENROL_SUBMIT = 'totp-enrol-submit';
// Passkeys and recovery codes at login
export const PASSKEY_LOGIN = 'passkey-login';
export const PASSKEY_SECOND_FACTOR = 'passkey-second-factor';
export const PASSKEY_ENROL = 'passkey-enrol';
export const RECOVERY_TOGGLE = 'recovery-toggle';
export const RECOVERY_FORM = 'recovery-form';
export const RECOVERY_CODE = 'recovery-code';
export const RECOVERY_SUBMIT = 'recovery-submit';
export const RECOVERY_CODES = 'recovery-codes';
export const RECOVERY_CONTINUE = 'recovery-continue';
// First-run setup
export const SETUP_FORM = 'setup-form';
export const SETUP_USERNAME = 'setup-username';
export const SETUP_PASSWORD = 'setup-password';
export const SETUP_PASSWORD2 = 'setup-password2';
export const SETUP_SUBMIT = 'setup-submit';
export const SETUP_ERROR = 'setup-error';
export const SETUP_DONE = 'setup-done';
// Host list
export const HOSTS_TABLE = 'hosts-table';
export const HOSTS_TOTAL = 'hosts-total';
export const HOSTS_SEARCH = 'hosts-search';
export const HOSTS_STATUS = 'hosts-status';
export const HOSTS_SECURITY_ONLY = 'hosts-security-only';
export const HOSTS_REBOOT_ONLY = 'hosts-reboot-only';
export const HOSTS_APPLY = 'hosts-apply';
export const PAGE_PREV = 'page-prev';
export const PAGE_NEXT = 'page-next';
export const PAGE_INFO = 'page-info';
export const HOST_ROW_PREFIX = 'host-row-';
// Host detail
export const HOST_HOSTNAME = 'host-hostname';
export const HOST_STATUS = 'host-status';
export const INSTALLED_COUNT = 'installed-count';
export const PENDING_COUNT = 'pending-count';
export const SECURITY_COUNT = 'security-count';
export const UPDATES_TABLE = 'updates-table';
export const PACKAGES_TABLE = 'packages-table';
export const PACKAGES_SEARCH = 'packages-search';
// Enrollment
export const ENROLL_FORM = 'enroll-form';
export const ENROLL_NOTE = 'enroll-note';
export const ENROLL_VALIDITY = 'enroll-validity';
export const ENROLL_SUBMIT = 'enroll-submit';
export const ENROLL_TOKEN = 'enroll-token';
export const AGENT_COMMAND = 'agent-command';
export const AGENT_COMMAND_COPY = 'agent-command-copy';
export const CA_FINGERPRINT = 'ca-fingerprint';
export const TOKENS_TABLE = 'tokens-table';
export const ENROLL_GROUP = 'enroll-group';
// Host groups (on the host page)
export const HOST_GROUPS = 'host-groups';
export const HOST_GROUPS_EDIT = 'host-groups-edit';
export const HOST_GROUPS_SAVE = 'host-groups-save';
// Users
export const INVITE_FORM = 'invite-form';
export const INVITE_USERNAME = 'invite-username';
export const INVITE_ROLE = 'invite-role';
export const INVITE_GROUPS = 'invite-groups';
export const INVITE_SUBMIT = 'invite-submit';
export const INVITE_LINK = 'invite-link';
export const USERS_TABLE = 'users-table';
export const USER_ROW_PREFIX = 'user-row-';
// Invitation acceptance and password change
export const INVITE_ACCEPT_FORM = 'invite-accept-form';
export const INVITE_PASSWORD = 'invite-password';
export const INVITE_PASSWORD2 = 'invite-password2';
export const INVITE_ACCEPT_SUBMIT = 'invite-accept-submit';
export const INVITE_ERROR = 'invite-error';
export const INVITE_DONE = 'invite-done';
export const PASSWORD_FORM = 'password-form';
export const PASSWORD_CURRENT = 'password-current';
export const PASSWORD_NEW = 'password-new';
export const PASSWORD_NEW2 = 'password-new2';
export const PASSWORD_SUBMIT = 'password-submit';
export const PASSWORD_ERROR = 'password-error';
// Account: passkeys, TOTP, recovery codes
export const PASSKEYS_TABLE = 'passkeys-table';
export const PASSKEY_FORM = 'passkey-form';
export const PASSKEY_NAME = 'passkey-name';
export const PASSKEY_ADD = 'passkey-add';
export const PASSKEY_ERROR = 'passkey-error';
export const TOTP_STATUS = 'totp-status';
export const ACCOUNT_TOTP_BEGIN = 'account-totp-begin';
export const RECOVERY_LEFT = 'recovery-left';
export const RECOVERY_REGENERATE = 'recovery-regenerate';
// Groups
export const GROUP_FORM = 'group-form';
export const GROUP_NAME = 'group-name';
export const GROUP_SUBMIT = 'group-submit';
export const GROUPS_TABLE = 'groups-table';
