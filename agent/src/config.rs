//! `agent.toml` in the state dir: written by `pm-agent enroll`, read by `pm-agent run`.
//!
//! Only `agent_url` and `host_id` are written by enrollment; the optional keys are local
//! overrides an operator (or a test) adds by hand, and re-enrollment keeps them.
//!
//! ```toml
//! agent_url = "https://pm.example:8444"   # written by enrollment
//! host_id = "..."                          # written by enrollment
//! checkin_interval_secs = 60               # default: what the server says
//! os_release_path = "/etc/os-release"
//! reboot_required_path = "/var/run/reboot-required"   # apt's reboot flag (facts and jobs)
//! manager = "dnf"                  # apt | dnf | zypper; default: detected (apt, dnf, zypper)
//! package_root = "/srv/root"       # dnf --installroot / zypper --root / rpm --root; not apt
//!                                  # (with a root, "reboot if required" never reboots)
//! lock_timeout_secs = 300          # wait for the package-manager lock (apt, zypper)
//! apply_timeout_secs = 7200        # a patch run is killed after this long
//! boot_id_path = "/proc/sys/kernel/random/boot_id"   # tests fake a reboot with a file
//!
//! [commands]                       # program paths; default: looked up in PATH
//! apt_get = "/usr/bin/apt-get"
//! apt_mark = "/usr/bin/apt-mark"
//! dpkg_query = "/usr/bin/dpkg-query"
//! dnf = "/usr/bin/dnf"
//! zypper = "/usr/bin/zypper"
//! rpm = "/usr/bin/rpm"
//! needs_restarting = "/usr/bin/needs-restarting"   # dnf hosts (dnf-utils)
//! reboot = ["systemctl", "reboot"]  # argument vector run after a job that reboots
//!
//! [jobs]
//! lock_paths = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"]  # default: the manager's
//!                                  # (see `jobs::lock`; dnf/zypper ones under package_root)
//! journal_retention_days = 30      # finished jobs kept in <state_dir>/jobs
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::proto::PackageManager;

/// Check-in interval used when the server does not name one.
pub const DEFAULT_CHECKIN_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_OS_RELEASE_PATH: &str = "/etc/os-release";
pub const FALLBACK_OS_RELEASE_PATH: &str = "/usr/lib/os-release";
pub const DEFAULT_REBOOT_REQUIRED_PATH: &str = "/var/run/reboot-required";
/// Changes at every boot; the server compares it to see a reboot it asked for complete.
pub const DEFAULT_BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// What the agent runs to reboot the host after a job asked for it.
pub const DEFAULT_REBOOT_COMMAND: [&str; 2] = ["systemctl", "reboot"];
/// How long apt-get and zypper wait for the package manager's lock before giving up.
pub const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 300;
/// How long one patch run (refresh + transaction) may take before it is killed.
pub const DEFAULT_APPLY_TIMEOUT_SECS: u64 = 7200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Base URL of the server's agent (mTLS) listener.
    pub agent_url: String,
    /// Host id assigned at enrollment (the certificate's CN).
    pub host_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkin_interval_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_release_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_required_path: Option<PathBuf>,
    /// Where the boot id is read (tests point it at a file their fake reboot command rewrites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id_path: Option<PathBuf>,
    /// Use this package manager instead of detecting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<PackageManager>,
    /// dnf, zypper and rpm work on this install root instead of `/` (tests, image builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_root: Option<PathBuf>,
    /// Seconds to wait for the package manager's lock (apt `DPkg::Lock::Timeout`, zypper
    /// `ZYPP_LOCK_TIMEOUT`; dnf waits on its own). Default [`DEFAULT_LOCK_TIMEOUT_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_timeout_secs: Option<u64>,
    /// Seconds one patch run may take. Default [`DEFAULT_APPLY_TIMEOUT_SECS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_timeout_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Commands::is_default")]
    pub commands: Commands,
    #[serde(default, skip_serializing_if = "JobSettings::is_default")]
    pub jobs: JobSettings,
}

/// Paths of the package-manager programs (default: looked up in `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_get: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpkg_query: Option<PathBuf>,
    /// Argument vector run (without a shell) to reboot after a job; default
    /// [`DEFAULT_REBOOT_COMMAND`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Vec<String>>,
    /// `apt-mark` (lists holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_mark: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnf: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zypper: Option<PathBuf>,
    /// `rpm` (installed packages on dnf and zypper hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<PathBuf>,
    /// `needs-restarting` from dnf-utils (`-r`: exit 1 when a reboot is needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_restarting: Option<PathBuf>,
}

impl Commands {
    fn is_default(&self) -> bool {
        *self == Commands::default()
    }

    /// The reboot command's argument vector.
    pub fn reboot_argv(&self) -> Vec<String> {
        match &self.reboot {
            Some(argv) => argv.clone(),
            None => DEFAULT_REBOOT_COMMAND.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Patch-job settings (`[jobs]`), all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// The package manager's lock files; after a crash the agent waits until none is held
    /// (locked by a process, or naming a running process, as dnf's and zypper's PID files do)
    /// before it inspects the package database. Default: the manager's own
    /// ([`crate::jobs::lock::default_paths`]: dpkg's locks; dnf's `*_lock.pid` files, zypper's
    /// `zypp.pid` and rpm's `.rpm.lock`, under `package_root`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_paths: Option<Vec<PathBuf>>,
    /// Days a finished job stays in the journal (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal_retention_days: Option<u64>,
}

impl JobSettings {
    fn is_default(&self) -> bool {
        *self == JobSettings::default()
    }
}

/// The local overrides alone, for hosts not enrolled yet (`pm-agent inventory`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSettings {
    pub os_release_path: Option<PathBuf>,
    pub reboot_required_path: Option<PathBuf>,
    pub boot_id_path: Option<PathBuf>,
    pub manager: Option<PackageManager>,
    pub package_root: Option<PathBuf>,
    pub lock_timeout_secs: Option<u64>,
    pub apply_timeout_secs: Option<u64>,
    pub commands: Commands,
}

impl AgentConfig {
    /// What enrollment writes: the two required keys, no local overrides.
    pub fn new(agent_url: String, host_id: String) -> AgentConfig {
        AgentConfig {
            agent_url,
            host_id,
            checkin_interval_secs: None,
            os_release_path: None,
            reboot_required_path: None,
            manager: None,
            package_root: None,
            lock_timeout_secs: None,
            apply_timeout_secs: None,
            boot_id_path: None,
            commands: Commands::default(),
            jobs: JobSettings::default(),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<AgentConfig> {
        let config: AgentConfig = toml::from_str(text)
            .map_err(|e| AgentError::Config { path: path.to_path_buf(), message: e.message().to_string() })?;
        config.validate(path)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<AgentConfig> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AgentError::NotEnrolled(path.to_path_buf()))
            }
            Err(e) => return Err(AgentError::io("cannot read configuration", path, e)),
        };
        AgentConfig::parse(&text, path)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| AgentError::Config { path: PathBuf::new(), message: e.to_string() })
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |message: &str| AgentError::Config { path: path.to_path_buf(), message: message.to_string() };
        if !self.agent_url.starts_with("https://") {
            return Err(bad("agent_url must be an https:// URL"));
        }
        if self.host_id.trim().is_empty() {
            return Err(bad("host_id is empty"));
        }
        if self.checkin_interval_secs == Some(0) {
            return Err(bad("checkin_interval_secs must be at least 1"));
        }
        if let Some(argv) = &self.commands.reboot {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(bad("commands.reboot must name a program"));
            }
        }
        if self.jobs.journal_retention_days == Some(0) {
            return Err(bad("jobs.journal_retention_days must be at least 1"));
        }
        if self.apply_timeout_secs == Some(0) {
            return Err(bad("apply_timeout_secs must be at least 1"));
        }
        if let Some(root) = &self.package_root {
            if !root.is_absolute() {
                return Err(bad("package_root must be an absolute path"));
            }
            if self.manager == Some(PackageManager::Apt) {
                return Err(bad("package_root is supported for dnf and zypper only"));
            }
        }
        Ok(())
    }

    pub fn local(&self) -> LocalSettings {
        LocalSettings {
            os_release_path: self.os_release_path.clone(),
            reboot_required_path: self.reboot_required_path.clone(),
            boot_id_path: self.boot_id_path.clone(),
            manager: self.manager,
            package_root: self.package_root.clone(),
            lock_timeout_secs: self.lock_timeout_secs,
            apply_timeout_secs: self.apply_timeout_secs,
            commands: self.commands.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_overrides() {
        let config = AgentConfig {
            agent_url: "https://pm.example:8444".into(),
            host_id: "h-1".into(),
            checkin_interval_secs: Some(30),
            os_release_path: Some("/tmp/os-release".into()),
            reboot_required_path: None,
            boot_id_path: Some("/tmp/boot_id".into()),
            manager: None,
            package_root: None,
            lock_timeout_secs: None,
            apply_timeout_secs: None,
            commands: Commands {
                apt_get: Some("/opt/fake/apt-get".into()),
                reboot: Some(vec!["/opt/fake/reboot".into(), "--now".into()]),
                ..Commands::default()
            },
            jobs: JobSettings { lock_paths: Some(vec!["/tmp/lock".into()]), journal_retention_days: Some(7) },
        };
        let text = config.to_toml().unwrap();
        assert_eq!(AgentConfig::parse(&text, Path::new("agent.toml")).unwrap(), config);

        let rpm_side = AgentConfig {
            manager: Some(PackageManager::Zypper),
            package_root: Some("/tmp/root".into()),
            lock_timeout_secs: Some(5),
            apply_timeout_secs: Some(60),
            commands: Commands {
                apt_mark: Some("/x/apt-mark".into()),
                dnf: Some("/x/dnf".into()),
                zypper: Some("/x/zypper".into()),
                rpm: Some("/x/rpm".into()),
                needs_restarting: Some("/x/needs-restarting".into()),
                ..Commands::default()
            },
            ..config
        };
        let text = rpm_side.to_toml().unwrap();
        assert!(text.contains("manager = \"zypper\""), "{text}");
        let parsed = AgentConfig::parse(&text, Path::new("agent.toml")).unwrap();
        assert_eq!(parsed, rpm_side);
        assert_eq!(parsed.local().package_root.as_deref(), Some(Path::new("/tmp/root")));
        assert_eq!(parsed.local().manager, Some(PackageManager::Zypper));
    }

    #[test]
    fn package_settings_are_checked() {
        let base = "agent_url = \"https://a\"\nhost_id = \"x\"\n";
        let parse = |extra: &str| AgentConfig::parse(&format!("{base}{extra}"), Path::new("a"));
        assert!(parse("manager = \"dnf\"\npackage_root = \"/r\"\n").is_ok());
        assert!(parse("manager = \"yum\"\n").is_err());
        assert!(parse("package_root = \"relative\"\n").is_err());
        assert!(parse("manager = \"apt\"\npackage_root = \"/r\"\n").is_err());
        assert!(parse("apply_timeout_secs = 0\n").is_err());
    }

    #[test]
    fn minimal_file_parses() {
        let c = AgentConfig::parse("agent_url = \"https://a:8444\"\nhost_id = \"x\"\n", Path::new("a")).unwrap();
        assert_eq!(c.commands, Commands::default());
        assert_eq!(c.checkin_interval_secs, None);
        assert_eq!(c.commands.reboot_argv(), vec!["systemctl".to_string(), "reboot".to_string()]);
        assert_eq!(c.jobs, JobSettings::default());
    }

    #[test]
    fn rejects_unknown_keys_and_plain_http() {
        let unknown = "agent_url = \"https://a\"\nhost_id = \"x\"\nsurprise = 1\n";
        assert!(AgentConfig::parse(unknown, Path::new("a")).is_err());
        let unknown_cmd = "agent_url = \"https://a\"\nhost_id = \"x\"\n[commands]\nyum = \"/bin/yum\"\n";
        assert!(AgentConfig::parse(unknown_cmd, Path::new("a")).is_err());
        let http = "agent_url = \"http://a\"\nhost_id = \"x\"\n";
        assert!(AgentConfig::parse(http, Path::new("a")).is_err());
        let empty_reboot = "agent_url = \"https://a\"\nhost_id = \"x\"\n[commands]\nreboot = []\n";
        assert!(AgentConfig::parse(empty_reboot, Path::new("a")).is_err());
    }
}
