//! Test hook for the crash tests: with `PM_AGENT_PAUSE_AT=<stage>` in the agent's own
//! environment, the agent writes `<journal dir>/<job_id>.paused-<stage>` when a job reaches
//! that stage and then stops there forever, so a test can `kill -9` it at a known point.
//!
//! Only the local environment of the process enables it (nothing the server sends can), and
//! all it can do is stop the agent, which whoever sets the environment can do anyway.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub const ENV: &str = "PM_AGENT_PAUSE_AT";

/// The points a job can be stopped at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// Journaled as received; the `Received` event not sent yet.
    Received,
    /// Journaled as running, pre-commands and before snapshot done, `Running` reported;
    /// the package manager not started.
    BeforeExec,
    /// The package manager finished; the result not journaled yet.
    Applied,
    /// The result journaled; the terminal report not sent yet.
    Finished,
    /// The terminal report accepted; the reboot not started yet.
    Reported,
}

impl PausePoint {
    pub fn as_str(self) -> &'static str {
        match self {
            PausePoint::Received => "received",
            PausePoint::BeforeExec => "before_exec",
            PausePoint::Applied => "applied",
            PausePoint::Finished => "finished",
            PausePoint::Reported => "reported",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Pause {
    at: Option<String>,
    dir: PathBuf,
}

impl Pause {
    pub fn from_env(journal_dir: &Path) -> Pause {
        let at = std::env::var(ENV).ok().filter(|s| !s.is_empty());
        if let Some(stage) = &at {
            tracing::warn!(stage = %stage, "{ENV} is set: jobs will stop at this stage (test hook)");
        }
        Pause { at, dir: journal_dir.to_path_buf() }
    }

    fn marker(&self, point: PausePoint, job_id: &str) -> Option<PathBuf> {
        (self.at.as_deref() == Some(point.as_str()))
            .then(|| self.dir.join(format!("{job_id}.paused-{}", point.as_str())))
    }

    /// Blocking threads: stops here forever when asked to.
    pub fn blocking(&self, point: PausePoint, job_id: &str) {
        if let Some(marker) = self.marker(point, job_id) {
            let _ = std::fs::write(&marker, b"");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    /// Async tasks: stops here forever when asked to.
    pub async fn pause(&self, point: PausePoint, job_id: &str) {
        if let Some(marker) = self.marker(point, job_id) {
            let _ = std::fs::write(&marker, b"");
            std::future::pending::<()>().await;
        }
    }
}
