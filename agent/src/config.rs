//! `agent.toml` in the state dir: written by `pm-agent enroll`, read by `pm-agent run`.
//!
//! Only `agent_url` and `host_id` are written by enrollment; the optional keys are local
//! overrides an operator (or a test) adds by hand, and re-enrollment keeps them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};

/// Check-in interval used when the server does not name one.
pub const DEFAULT_CHECKIN_INTERVAL_SECS: u64 = 60;
pub const DEFAULT_OS_RELEASE_PATH: &str = "/etc/os-release";
pub const FALLBACK_OS_RELEASE_PATH: &str = "/usr/lib/os-release";
pub const DEFAULT_REBOOT_REQUIRED_PATH: &str = "/var/run/reboot-required";

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
    #[serde(default, skip_serializing_if = "Commands::is_default")]
    pub commands: Commands,
}

/// Paths of the package-manager programs (default: looked up in `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commands {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt_get: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpkg_query: Option<PathBuf>,
}

impl Commands {
    fn is_default(&self) -> bool {
        *self == Commands::default()
    }
}

/// The local overrides alone, for hosts not enrolled yet (`pm-agent inventory`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSettings {
    pub os_release_path: Option<PathBuf>,
    pub reboot_required_path: Option<PathBuf>,
    pub commands: Commands,
}

impl AgentConfig {
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
        Ok(())
    }

    pub fn local(&self) -> LocalSettings {
        LocalSettings {
            os_release_path: self.os_release_path.clone(),
            reboot_required_path: self.reboot_required_path.clone(),
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
            commands: Commands { apt_get: Some("/opt/fake/apt-get".into()), dpkg_query: None },
        };
        let text = config.to_toml().unwrap();
        assert_eq!(AgentConfig::parse(&text, Path::new("agent.toml")).unwrap(), config);
    }

    #[test]
    fn minimal_file_parses() {
        let c = AgentConfig::parse("agent_url = \"https://a:8444\"\nhost_id = \"x\"\n", Path::new("a")).unwrap();
        assert_eq!(c.commands, Commands::default());
        assert_eq!(c.checkin_interval_secs, None);
    }

    #[test]
    fn rejects_unknown_keys_and_plain_http() {
        let unknown = "agent_url = \"https://a\"\nhost_id = \"x\"\nsurprise = 1\n";
        assert!(AgentConfig::parse(unknown, Path::new("a")).is_err());
        let unknown_cmd = "agent_url = \"https://a\"\nhost_id = \"x\"\n[commands]\nyum = \"/bin/yum\"\n";
        assert!(AgentConfig::parse(unknown_cmd, Path::new("a")).is_err());
        let http = "agent_url = \"http://a\"\nhost_id = \"x\"\n";
        assert!(AgentConfig::parse(http, Path::new("a")).is_err());
    }
}
