//! Package managers, one backend per file behind [`PackageBackend`].
//!
//! Only `apt` exists today; `dnf.rs` and `zypper.rs` slot in next to it and into [`detect`].

pub mod apt;
pub mod command;

use std::path::{Path, PathBuf};

use crate::config::Commands;
use crate::error::{AgentError, Result};
use crate::proto::{Inventory, PackageManager};

/// Reads what is installed and what could be updated. Implementations run external
/// programs and block: call them from `spawn_blocking`.
pub trait PackageBackend: Send + Sync {
    fn manager(&self) -> PackageManager;
    fn inventory(&self) -> Result<Inventory>;
}

/// Picks the backend for this host: apt when `dpkg-query` is available.
pub fn detect(commands: &Commands) -> Result<Box<dyn PackageBackend>> {
    let dpkg_query = commands.dpkg_query.clone().unwrap_or_else(|| PathBuf::from(apt::DPKG_QUERY));
    if find_program(&dpkg_query).is_some() {
        let apt_get = commands.apt_get.clone().unwrap_or_else(|| PathBuf::from(apt::APT_GET));
        return Ok(Box::new(apt::Apt::new(dpkg_query, apt_get)));
    }
    Err(AgentError::NoPackageManager(dpkg_query.display().to_string()))
}

/// Resolves a program like `execvp` would: paths with a `/` as given, bare names via `PATH`.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return is_executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_and_reports_missing_ones() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("/bin/sh")).is_some());
        assert!(find_program(Path::new("/nonexistent/dpkg-query")).is_none());
        let commands = Commands { dpkg_query: Some("/nonexistent/dpkg-query".into()), apt_get: None };
        assert!(matches!(detect(&commands), Err(AgentError::NoPackageManager(_))));
    }
}
