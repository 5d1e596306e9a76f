//! Reboot after a job: whether one is due (policy, mode, outcome, the host's own
//! reboot-required signal), and running the configured reboot command once the server has
//! accepted the report.

use std::time::Duration;

use crate::error::Result;
use crate::proto::jobs::{JobMode, RebootPolicy};

use super::hook;

/// `systemctl reboot` returns as soon as the shutdown is queued.
const REBOOT_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether the job ends with a reboot, and a line for the job output explaining why (not).
/// `required` is asked only when the policy depends on it.
pub fn decide(
    policy: RebootPolicy,
    mode: JobMode,
    succeeded: bool,
    required: impl FnOnce() -> Result<bool>,
) -> (bool, String) {
    if mode == JobMode::DryRun {
        return (false, "dry run: no reboot".into());
    }
    if !succeeded {
        return (false, "no reboot: the job did not succeed".into());
    }
    match policy {
        RebootPolicy::Never => (false, "reboot policy never: no reboot".into()),
        RebootPolicy::Always => (true, "reboot policy always: rebooting after the report".into()),
        RebootPolicy::IfRequired => match required() {
            Ok(true) => (true, "the host requires a reboot: rebooting after the report".into()),
            Ok(false) => (false, "no reboot required".into()),
            Err(e) => (false, format!("no reboot: cannot tell whether one is required ({e})")),
        },
    }
}

/// Runs the reboot command (argument vector, no shell). Its output goes to the agent's log.
pub fn run_command(argv: &[String]) -> Result<hook::Exit> {
    tracing::warn!(command = ?argv, "rebooting the host as the job asked");
    hook::run_streaming(argv, REBOOT_COMMAND_TIMEOUT, &mut |line| tracing::info!(output = %line, "reboot command"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AgentError;

    #[test]
    fn policy_table() {
        let yes = || Ok(true);
        let no = || Ok(false);
        assert!(!decide(RebootPolicy::Never, JobMode::Apply, true, yes).0);
        assert!(decide(RebootPolicy::Always, JobMode::Apply, true, no).0);
        assert!(decide(RebootPolicy::IfRequired, JobMode::Apply, true, yes).0);
        assert!(!decide(RebootPolicy::IfRequired, JobMode::Apply, true, no).0);
        let (reboot, why) =
            decide(RebootPolicy::IfRequired, JobMode::Apply, true, || Err(AgentError::Job("no idea".into())));
        assert!(!reboot);
        assert!(why.contains("no idea"));
        // Never after a failure or a dry run, whatever the policy.
        assert!(!decide(RebootPolicy::Always, JobMode::Apply, false, yes).0);
        assert!(!decide(RebootPolicy::Always, JobMode::DryRun, true, yes).0);
    }

    #[test]
    fn runs_the_configured_command() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("rebooted");
        let argv = vec!["touch".to_string(), marker.display().to_string()];
        assert!(run_command(&argv).unwrap().success);
        assert!(marker.exists());
    }
}
