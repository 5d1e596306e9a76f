//! The RPM database, shared by the dnf and zypper backends: installed packages and kernels.
//!
//! Versions are written like dnf and zypper print them: `[EPOCH:]VERSION-RELEASE`, the epoch
//! only when it is not 0 (`EPOCHNUM` is 0 for packages without an epoch). Compare them with
//! [`crate::rpmversion::compare`].

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command;
use crate::error::Result;
use crate::proto::InstalledPackage;

pub const RPM: &str = "rpm";

const QUERYFORMAT: &str = "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n";
const TIMEOUT: Duration = Duration::from_secs(300);
/// Kernel package names on RHEL 8+ (`kernel-core`), older RHEL (`kernel`) and SUSE.
const KERNELS: [&str; 3] = ["kernel-core", "kernel", "kernel-default"];

/// `rpm [--root ROOT] -qa --qf ...`.
pub fn installed(rpm: &Path, root: Option<&Path>) -> Result<Vec<InstalledPackage>> {
    let mut args: Vec<&str> = Vec::new();
    if let Some(root) = root.and_then(Path::to_str) {
        args.extend(["--root", root]);
    }
    args.extend(["-qa", "--qf", QUERYFORMAT]);
    let out = command::run(rpm, &args, TIMEOUT)?.check(rpm)?;
    Ok(parse_qa(&out.stdout))
}

/// rpm's transaction lock file as this host's rpm places it (`%{_rpmlock_path}`: the
/// database directory's `.rpm.lock`), relative to any `--root`. `None` when rpm cannot say.
/// The path comes from the host's macros: dnf and zypper use the same ones for an install
/// root (Debian's rpm keeps its database in `~/.rpmdb`, also inside a root).
pub fn lock_path(rpm: &Path) -> Option<PathBuf> {
    let out = command::run(rpm, &["--eval", "%{_rpmlock_path}"], Duration::from_secs(30)).ok()?;
    let path = out.stdout.trim();
    let plain = path.starts_with('/') && !path.contains('%') && !path.contains('\n');
    (out.success && plain).then(|| PathBuf::from(path))
}

/// Lines `NAME\tEPOCHNUM\tVERSION\tRELEASE\tARCH`. The `gpg-pubkey` pseudo-packages (imported
/// signing keys) are not software and are left out.
pub fn parse_qa(text: &str) -> Vec<InstalledPackage> {
    let mut packages: Vec<InstalledPackage> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, epoch, version, release, arch) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            if name.is_empty() || version.is_empty() || name == "gpg-pubkey" {
                return None;
            }
            Some(InstalledPackage { name: name.into(), version: evr(epoch, version, release), arch: arch.into() })
        })
        .collect();
    packages.sort();
    packages
}

/// `[EPOCH:]VERSION-RELEASE`, without a zero or missing epoch.
pub fn evr(epoch: &str, version: &str, release: &str) -> String {
    let epoch = epoch.trim();
    let mut out = String::new();
    if !epoch.is_empty() && epoch != "0" && epoch != "(none)" {
        out.push_str(epoch);
        out.push(':');
    }
    out.push_str(version);
    if !release.is_empty() {
        out.push('-');
        out.push_str(release);
    }
    out
}

/// The newest installed kernel as `uname -r` spells it on RHEL (`VERSION-RELEASE.ARCH`).
pub fn newest_kernel(installed: &[InstalledPackage]) -> Option<String> {
    let newest = installed
        .iter()
        .filter(|p| KERNELS.contains(&p.name.as_str()))
        .max_by(|a, b| crate::rpmversion::compare(&a.version, &b.version))?;
    // uname -r has no epoch.
    let version = newest.version.split_once(':').map_or(newest.version.as_str(), |(_, v)| v);
    Some(format!("{version}.{}", newest.arch))
}

/// Whether the running kernel (`uname -r`) is older than the newest installed one; false when
/// no kernel package is installed (containers, install roots).
pub fn kernel_reboot_needed(installed: &[InstalledPackage], running: &str) -> bool {
    let Some(newest) = newest_kernel(installed) else { return false };
    let running = running.trim();
    let strip_arch = |k: &str| k.rsplit_once('.').map_or(k, |(v, _)| v).to_string();
    newest != running && crate::rpmversion::compare(&strip_arch(&newest), &strip_arch(running)) != Ordering::Less
}

/// `uname -r` (empty when unreadable).
pub fn running_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rpm_qa() {
        let text = "bash\t0\t5.1.8\t6.el9_1\tx86_64\n\
                    gpg-pubkey\t0\tfd431d51\t4ae0493b\t(none)\n\
                    shadow-utils\t2\t4.9\t8.el9\tx86_64\n\
                    glibc\t0\t2.34\t60.el9\ti686\n\
                    broken line\n";
        let packages = parse_qa(text);
        let short: Vec<_> = packages.iter().map(|p| format!("{} {} {}", p.name, p.version, p.arch)).collect();
        assert_eq!(short, ["bash 5.1.8-6.el9_1 x86_64", "glibc 2.34-60.el9 i686", "shadow-utils 2:4.9-8.el9 x86_64"]);
    }

    #[test]
    fn asks_rpm_for_its_lock_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("rpm");
        let script = "#!/bin/sh\n[ \"$1 $2\" = '--eval %{_rpmlock_path}' ] && echo /var/lib/rpm/.rpm.lock\n";
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert_eq!(lock_path(&fake), Some(PathBuf::from("/var/lib/rpm/.rpm.lock")));
        // An undefined macro comes back unexpanded.
        std::fs::write(&fake, "#!/bin/sh\necho '%{_rpmlock_path}'\n").unwrap();
        assert_eq!(lock_path(&fake), None);
        assert_eq!(lock_path(Path::new("/nonexistent/rpm")), None);
        // The real rpm, where there is one (Debian's: `~/.rpmdb/.rpm.lock`).
        if let Some(real) = super::super::find_program(Path::new(RPM)) {
            let path = lock_path(&real).unwrap();
            assert!(path.is_absolute() && path.ends_with(".rpm.lock"), "{}", path.display());
        }
    }

    #[test]
    fn kernels() {
        let k = |v: &str| InstalledPackage { name: "kernel-core".into(), version: v.into(), arch: "x86_64".into() };
        let installed = [k("5.14.0-70.13.1.el9_0"), k("5.14.0-362.8.1.el9_3"), k("5.14.0-284.11.1.el9_2")];
        assert_eq!(newest_kernel(&installed).as_deref(), Some("5.14.0-362.8.1.el9_3.x86_64"));
        assert!(kernel_reboot_needed(&installed, "5.14.0-284.11.1.el9_2.x86_64\n"));
        assert!(!kernel_reboot_needed(&installed, "5.14.0-362.8.1.el9_3.x86_64"));
        // A newer kernel than any package (custom build) needs no reboot.
        assert!(!kernel_reboot_needed(&installed, "6.1.0-99.x86_64"));
        assert!(!kernel_reboot_needed(&[], "6.1.0-18-amd64"));
    }
}
