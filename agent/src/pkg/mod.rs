//! Package managers, one backend per file behind [`PackageBackend`].
//!
//! Only `apt` exists today; `dnf.rs` and `zypper.rs` slot in next to it and into [`detect`].

pub mod apt;
pub mod command;

use std::path::{Path, PathBuf};

use crate::config::Commands;
use crate::error::{AgentError, Result};
use crate::proto::jobs::{PackageChange, PatchScope};
use crate::proto::{InstalledPackage, Inventory, PackageManager};

/// What a patch job asks the package manager for. Names in `scope` and `exclude` have
/// passed [`crate::pkgname::validate`] for this manager before a backend sees them.
#[derive(Debug, Clone, Copy)]
pub struct PatchRequest<'a> {
    pub scope: &'a PatchScope,
    pub exclude: &'a [String],
}

/// How an `apply` run ended (its output went to the caller's sink line by line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub success: bool,
    pub code: Option<i32>,
    /// One line for the operator, e.g. "apt-get exited with status 100".
    pub summary: String,
}

/// Reads what is installed and what could be updated, and installs updates. Implementations
/// run external programs (argument vectors, never a shell) and block: call them from
/// `spawn_blocking`.
pub trait PackageBackend: Send + Sync {
    fn manager(&self) -> PackageManager;
    fn inventory(&self) -> Result<Inventory>;
    /// Installed packages straight from the package database (job before/after snapshots).
    fn installed(&self) -> Result<Vec<InstalledPackage>>;
    /// A simulation of [`PackageBackend::apply`] with the same request: the packages that would
    /// change, from which version to which. Changes nothing.
    fn plan(&self, request: PatchRequest<'_>) -> Result<Vec<PackageChange>>;
    /// Installs the updates the request selects. Every output line goes to `output` as it is
    /// produced. Waits for the package manager's lock instead of failing at once.
    fn apply(&self, request: PatchRequest<'_>, output: &mut dyn FnMut(&str)) -> Result<ApplyOutcome>;
    /// Whether the host needs a reboot (after updates).
    fn reboot_required(&self) -> Result<bool>;
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
        let commands = Commands { dpkg_query: Some("/nonexistent/dpkg-query".into()), ..Commands::default() };
        assert!(matches!(detect(&commands), Err(AgentError::NoPackageManager(_))));
    }
}
