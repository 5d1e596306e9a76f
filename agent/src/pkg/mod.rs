//! Package managers, one backend per file behind [`PackageBackend`]: `apt` (Debian, Ubuntu),
//! `dnf` (RHEL family), `zypper` (SUSE); `rpm` reads the RPM database for the latter two.
//!
//! Every backend validates the names of a request with [`crate::pkgname`] before it runs
//! anything ([`validate_request`]), runs programs with argument vectors (never a shell) and
//! puts `--` before package names. `plan` and `apply` build their commands from the same
//! function, so a dry run shows exactly what the real run would do.
//!
//! # Layout
//! - `command`: runs a program (collected or streamed, with a time limit).
//! - `apt` + `aptsim` (the `apt-get -s` and `dpkg-query` parsers), `dnf`, `zypper` + `xml`
//!   (the few elements of zypper's `--xmlout` we read), `rpm` (`rpm -qa`, kernels).
//! - `diff`: the changes between two snapshots of installed packages.

pub mod apt;
pub mod aptsim;
pub mod command;
pub mod diff;
pub mod dnf;
pub mod rpm;
pub mod xml;
pub mod zypper;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{
    Commands, LocalSettings, DEFAULT_APPLY_TIMEOUT_SECS, DEFAULT_LOCK_TIMEOUT_SECS, DEFAULT_REBOOT_REQUIRED_PATH,
};
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
    /// change, from which version to which. Changes no package (like `apply`, it first
    /// refreshes the package lists/metadata, so both see the same candidates).
    fn plan(&self, request: PatchRequest<'_>) -> Result<Vec<PackageChange>>;
    /// Installs the updates the request selects. Every output line goes to `output` as it is
    /// produced. Waits for the package manager's lock instead of failing at once.
    fn apply(&self, request: PatchRequest<'_>, output: &mut dyn FnMut(&str)) -> Result<ApplyOutcome>;
    /// Whether the host needs a reboot (after updates).
    fn reboot_required(&self) -> Result<bool>;
}

/// Settings every backend shares (from agent.toml, with defaults).
#[derive(Debug, Clone)]
pub struct Options {
    /// dnf/zypper/rpm install root (`None`: the running system).
    pub root: Option<PathBuf>,
    pub lock_timeout: Duration,
    pub apply_timeout: Duration,
    /// apt's reboot flag file.
    pub reboot_required_path: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: None,
            lock_timeout: Duration::from_secs(DEFAULT_LOCK_TIMEOUT_SECS),
            apply_timeout: Duration::from_secs(DEFAULT_APPLY_TIMEOUT_SECS),
            reboot_required_path: PathBuf::from(DEFAULT_REBOOT_REQUIRED_PATH),
        }
    }
}

impl Options {
    pub fn from_settings(settings: &LocalSettings) -> Options {
        let defaults = Options::default();
        Options {
            root: settings.package_root.clone(),
            lock_timeout: settings.lock_timeout_secs.map_or(defaults.lock_timeout, Duration::from_secs),
            apply_timeout: settings.apply_timeout_secs.map_or(defaults.apply_timeout, Duration::from_secs),
            reboot_required_path: settings.reboot_required_path.clone().unwrap_or(defaults.reboot_required_path),
        }
    }
}

/// Picks the backend with default settings (see [`from_settings`]).
pub fn detect(commands: &Commands) -> Result<Box<dyn PackageBackend>> {
    from_settings(&LocalSettings { commands: commands.clone(), ..LocalSettings::default() })
}

/// The backend agent.toml asks for: the forced `manager`, else the first found of apt
/// (`dpkg-query` and `apt-get`), dnf, zypper. With a `package_root` apt is never chosen.
pub fn from_settings(settings: &LocalSettings) -> Result<Box<dyn PackageBackend>> {
    let c = &settings.commands;
    let path = |configured: &Option<PathBuf>, default: &str| configured.clone().unwrap_or_else(|| default.into());
    let (dpkg_query, apt_get) = (path(&c.dpkg_query, apt::DPKG_QUERY), path(&c.apt_get, apt::APT_GET));
    let (dnf, zypper, rpm) = (path(&c.dnf, dnf::DNF), path(&c.zypper, zypper::ZYPPER), path(&c.rpm, rpm::RPM));
    let found = |p: &PathBuf| find_program(p).is_some();
    let manager = match settings.manager {
        Some(m) => m,
        None if settings.package_root.is_none() && found(&dpkg_query) && found(&apt_get) => PackageManager::Apt,
        None if found(&dnf) && found(&rpm) => PackageManager::Dnf,
        None if found(&zypper) && found(&rpm) => PackageManager::Zypper,
        None => {
            let looked_for = [&dpkg_query, &apt_get, &dnf, &zypper, &rpm].map(|p| p.display().to_string());
            return Err(AgentError::NoPackageManager(looked_for.join(", ")));
        }
    };
    let options = Options::from_settings(settings);
    let require = |programs: &[&PathBuf]| match programs.iter().find(|p| !found(p)) {
        Some(missing) => Err(AgentError::NoPackageManager(missing.display().to_string())),
        None => Ok(()),
    };
    Ok(match manager {
        PackageManager::Apt => {
            if options.root.is_some() {
                return Err(AgentError::Usage("package_root is supported for dnf and zypper only".into()));
            }
            require(&[&dpkg_query, &apt_get])?;
            let apt_mark = path(&c.apt_mark, apt::APT_MARK);
            Box::new(apt::Apt::new(dpkg_query, apt_get).with_apt_mark(apt_mark).with_options(options))
        }
        PackageManager::Dnf => {
            require(&[&dnf, &rpm])?;
            let needs_restarting = path(&c.needs_restarting, dnf::NEEDS_RESTARTING);
            Box::new(dnf::Dnf::new(dnf, rpm, options).with_needs_restarting(needs_restarting))
        }
        PackageManager::Zypper => {
            require(&[&zypper, &rpm])?;
            Box::new(zypper::Zypper::new(zypper, rpm, options))
        }
    })
}

/// The agent's own check of every name in a request (the server checked them too), before
/// any command runs.
pub fn validate_request(manager: PackageManager, request: &PatchRequest<'_>) -> Result<()> {
    let names = match request.scope {
        PatchScope::Packages { names } => names.as_slice(),
        PatchScope::All | PatchScope::Security => &[],
    };
    if let PatchScope::Packages { names } = request.scope {
        if names.is_empty() {
            return Err(AgentError::Usage("a package-scope request names no package".into()));
        }
    }
    for name in names.iter().chain(request.exclude) {
        crate::pkgname::validate(manager, name)
            .map_err(|e| AgentError::Usage(format!("refusing package name {}: {e}", shown(name))))?;
    }
    Ok(())
}

/// A name for a message: quoted, escaped, at most 64 characters.
fn shown(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    let more = if name.chars().count() > 64 { "..." } else { "" };
    format!("\"{}{more}\"", short.escape_debug())
}

/// Whether `exclude` (plain names, or `name:arch` on apt) covers this package.
pub fn is_excluded(exclude: &[String], name: &str, arch: &str) -> bool {
    exclude.iter().any(|e| e == name || e.split_once(':').is_some_and(|(n, a)| n == name && a == arch))
}

/// The planned changes that touch an excluded package (a dependency can drag one in when a
/// manager has no per-transaction exclusion).
pub fn excluded_changes(plan: &[PackageChange], exclude: &[String]) -> Vec<String> {
    plan.iter().filter(|c| is_excluded(exclude, &c.name, &c.arch)).map(|c| format!("{}.{}", c.name, c.arch)).collect()
}

/// The requested names that are installed (a name may carry `:arch` on apt), minus excluded
/// and `held` ones; the others are reported through `note`.
pub fn installed_selection(
    requested: &[String],
    installed: &[InstalledPackage],
    exclude: &[String],
    held: &[String],
    note: &mut dyn FnMut(String),
) -> Vec<String> {
    let mut selected = Vec::new();
    for name in requested {
        let (base, arch) = name.split_once(':').map_or((name.as_str(), None), |(n, a)| (n, Some(a)));
        let is_installed = installed.iter().any(|p| p.name == base && arch.is_none_or(|a| p.arch == a));
        if !is_installed {
            note(format!("skipping {name}: not installed"));
        } else if exclude.contains(name) || is_excluded(exclude, base, arch.unwrap_or("")) {
            note(format!("skipping {name}: excluded by the job"));
        } else if held.contains(name) || held.iter().any(|h| h == base) {
            note(format!("skipping {name}: held by the package manager"));
        } else if !selected.contains(name) {
            selected.push(name.clone());
        }
    }
    selected
}

/// The time left of a run that must end at `deadline` (at least one second, so a command
/// still starts and reports its own timeout).
fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1))
}

/// Runs one step of an apply: announces the command line in the output, then streams it,
/// marked with [`command::RUN_MARKER_ENV`].
fn run_step(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    deadline: Instant,
    output: &mut dyn FnMut(&str),
) -> Result<command::Exit> {
    output(&format!("$ {} {}", program.display(), args.join(" ")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = std::process::id().to_string();
    let mut env = env.to_vec();
    env.push((command::RUN_MARKER_ENV, &agent));
    command::stream(program, &args, &env, remaining(deadline), output)
}

/// The outcome of a failed step: "apt-get exited with status 100" or the timeout.
fn failed_step(program: &Path, exit: &command::Exit, timeout: Duration) -> ApplyOutcome {
    let name = program.file_name().map_or_else(|| program.display().to_string(), |n| n.to_string_lossy().into_owned());
    let summary = if exit.timed_out {
        format!("{name} did not finish within {} s and was killed", timeout.as_secs())
    } else {
        format!("{name} exited with status {}", command::code_text(exit.code))
    };
    ApplyOutcome { success: false, code: exit.code, summary }
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

    fn missing() -> Commands {
        let none = |n: &str| Some(PathBuf::from(format!("/nonexistent/{n}")));
        Commands {
            apt_get: none("apt-get"),
            dpkg_query: none("dpkg-query"),
            dnf: none("dnf"),
            zypper: none("zypper"),
            rpm: none("rpm"),
            ..Commands::default()
        }
    }

    #[test]
    fn finds_programs_and_reports_missing_ones() {
        assert!(find_program(Path::new("sh")).is_some());
        assert!(find_program(Path::new("/bin/sh")).is_some());
        assert!(find_program(Path::new("/nonexistent/dpkg-query")).is_none());
        assert!(matches!(detect(&missing()), Err(AgentError::NoPackageManager(_))));
    }

    #[test]
    fn forced_manager_and_root_choose_the_backend() {
        let sh = Some(PathBuf::from("/bin/sh"));
        let commands = Commands { dnf: sh.clone(), zypper: sh.clone(), rpm: sh.clone(), ..missing() };
        let settings = |manager, root: Option<&str>| LocalSettings {
            manager,
            package_root: root.map(PathBuf::from),
            commands: commands.clone(),
            ..LocalSettings::default()
        };
        let backend = from_settings(&settings(None, None)).unwrap();
        assert_eq!(backend.manager(), PackageManager::Dnf);
        let backend = from_settings(&settings(Some(PackageManager::Zypper), Some("/tmp/r"))).unwrap();
        assert_eq!(backend.manager(), PackageManager::Zypper);
        assert!(matches!(
            from_settings(&settings(Some(PackageManager::Apt), None)),
            Err(AgentError::NoPackageManager(p)) if p.contains("dpkg-query")
        ));
        let apt = Commands { dpkg_query: sh.clone(), apt_get: sh.clone(), ..commands.clone() };
        let with_root =
            LocalSettings { package_root: Some("/r".into()), commands: apt.clone(), ..LocalSettings::default() };
        assert_eq!(from_settings(&with_root).unwrap().manager(), PackageManager::Dnf);
        let forced = LocalSettings { manager: Some(PackageManager::Apt), ..with_root };
        assert!(matches!(from_settings(&forced), Err(AgentError::Usage(_))));
        let plain = LocalSettings { commands: apt, ..LocalSettings::default() };
        assert_eq!(from_settings(&plain).unwrap().manager(), PackageManager::Apt);
    }

    #[test]
    fn requests_with_hostile_names_are_refused() {
        let names = |n: &[&str]| PatchScope::Packages { names: n.iter().map(|s| s.to_string()).collect() };
        let ok = names(&["openssl", "libc6:i386"]);
        assert!(validate_request(PackageManager::Apt, &PatchRequest { scope: &ok, exclude: &["bash".into()] }).is_ok());
        let bad = names(&["openssl", "-oAPT::Get::Trivial-Only=1"]);
        let err = validate_request(PackageManager::Apt, &PatchRequest { scope: &bad, exclude: &[] }).unwrap_err();
        assert!(err.to_string().contains("must not start with '-'"), "{err}");
        let long = "x;".repeat(200);
        let err = validate_request(PackageManager::Dnf, &PatchRequest { scope: &PatchScope::All, exclude: &[long] })
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
        let empty = names(&[]);
        assert!(validate_request(PackageManager::Zypper, &PatchRequest { scope: &empty, exclude: &[] }).is_err());
    }

    #[test]
    fn selection_skips_missing_excluded_and_held_names() {
        let pkg = |n: &str, a: &str| InstalledPackage { name: n.into(), version: "1".into(), arch: a.into() };
        let installed = [pkg("openssl", "amd64"), pkg("libc6", "i386"), pkg("bash", "amd64"), pkg("vim", "amd64")];
        let mut notes = Vec::new();
        let requested: Vec<String> =
            ["openssl", "libc6:i386", "libc6:arm64", "nginx", "bash", "vim", "openssl"].map(String::from).to_vec();
        let exclude = ["bash".to_string(), "libc6".to_string()];
        let selected = installed_selection(&requested, &installed, &exclude, &["vim".into()], &mut |n| notes.push(n));
        assert_eq!(selected, ["openssl"]);
        assert_eq!(
            notes,
            [
                "skipping libc6:i386: excluded by the job",
                "skipping libc6:arm64: not installed",
                "skipping nginx: not installed",
                "skipping bash: excluded by the job",
                "skipping vim: held by the package manager"
            ]
        );
        assert!(is_excluded(&["libc6:i386".into()], "libc6", "i386"));
        assert!(!is_excluded(&["libc6:i386".into()], "libc6", "amd64"));
    }
}
