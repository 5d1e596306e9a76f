//! The package manager's lock, as seen from outside: after a restart the agent waits until
//! no process holds a lock on the manager's lock files before it reads the package database
//! (a package manager orphaned by the crash may still be working).
//!
//! A lock is "held" when `/proc/locks` lists a POSIX or flock lock on the file's device and
//! inode: that is how dpkg (`fcntl`), rpm and zypper lock, and it needs no privileges and no
//! `unsafe`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proto::PackageManager;

/// Longest wait for a lock after a restart; then the database is read anyway (and the
/// report says so).
pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone)]
pub struct PackageLock {
    paths: Vec<PathBuf>,
    proc_locks: PathBuf,
}

/// The lock files a package manager uses (dnf and zypper under their install root).
pub fn default_paths(manager: Option<PackageManager>, root: Option<&Path>) -> Vec<PathBuf> {
    let paths: &[&str] = match manager {
        Some(PackageManager::Apt) => &["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"],
        Some(PackageManager::Dnf) => &["/var/lib/rpm/.rpm.lock", "/var/lib/dnf/rpmdb_lock.pid"],
        Some(PackageManager::Zypper) => &["/var/lib/rpm/.rpm.lock", "/run/zypp.pid"],
        None => &[],
    };
    let root = match manager {
        Some(PackageManager::Dnf | PackageManager::Zypper) => root.unwrap_or(Path::new("/")),
        _ => Path::new("/"),
    };
    paths.iter().map(|p| root.join(p.trim_start_matches('/'))).collect()
}

impl PackageLock {
    pub fn new(paths: Vec<PathBuf>) -> PackageLock {
        PackageLock { paths, proc_locks: PathBuf::from("/proc/locks") }
    }

    /// The lock files currently locked by some process.
    pub fn held(&self) -> Vec<PathBuf> {
        let Ok(table) = std::fs::read_to_string(&self.proc_locks) else {
            return Vec::new();
        };
        let locked = parse_proc_locks(&table);
        self.paths.iter().filter(|p| file_id(p).is_some_and(|id| locked.contains(&id))).cloned().collect()
    }

    /// Waits until no lock file is locked, up to `max`. Returns false when still locked.
    pub fn wait_free(&self, max: Duration, poll: Duration) -> bool {
        let deadline = Instant::now() + max;
        let mut logged = false;
        loop {
            let held = self.held();
            if held.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if !logged {
                tracing::info!(locks = ?held, "the package manager is busy; waiting for its lock");
                logged = true;
            }
            std::thread::sleep(poll);
        }
    }
}

/// (major, minor, inode) of a file, as `/proc/locks` prints them.
fn file_id(path: &Path) -> Option<(u64, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let dev = meta.dev();
    // glibc's gnu_dev_major/minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    Some((major, minor, meta.ino()))
}

/// `1: POSIX  ADVISORY  WRITE 3821 fe:00:770190 0 EOF` -> (0xfe, 0x00, 770190). Blocked
/// waiters (`-> ...` lines) hold nothing and are skipped.
fn parse_proc_locks(table: &str) -> Vec<(u64, u64, u64)> {
    table
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|line| {
            let id = line.split_whitespace().nth(5)?;
            let mut parts = id.split(':');
            let major = u64::from_str_radix(parts.next()?, 16).ok()?;
            let minor = u64::from_str_radix(parts.next()?, 16).ok()?;
            let inode = parts.next()?.parse().ok()?;
            Some((major, minor, inode))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn parses_proc_locks() {
        let table = "1: POSIX  ADVISORY  WRITE 3821 fe:00:770190 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 6956 103:02:10010647 0 EOF\n\
                     3: -> POSIX  ADVISORY  WRITE 4000 fe:00:5 0 EOF\n\
                     garbage\n";
        assert_eq!(parse_proc_locks(table), vec![(0xfe, 0, 770190), (0x103, 2, 10010647)]);
    }

    #[test]
    fn sees_a_real_lock_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lock-frontend");
        std::fs::write(&file, "").unwrap();
        let lock = PackageLock::new(vec![file.clone(), dir.path().join("missing")]);
        assert!(lock.held().is_empty());
        // flock(1) holds the lock for a second, like a package manager orphaned by a crash.
        let mut holder =
            Command::new("flock").args([file.to_str().unwrap(), "sleep", "1"]).stdout(Stdio::null()).spawn().unwrap();
        let seen = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            !lock.held().is_empty()
        });
        assert!(seen, "lock not seen in /proc/locks");
        assert!(!lock.wait_free(Duration::from_millis(50), Duration::from_millis(10)));
        assert!(lock.wait_free(Duration::from_secs(10), Duration::from_millis(20)));
        holder.wait().unwrap();
        assert_eq!(
            default_paths(Some(PackageManager::Apt), Some(Path::new("/r")))[0],
            Path::new("/var/lib/dpkg/lock-frontend")
        );
        assert_eq!(
            default_paths(Some(PackageManager::Dnf), Some(Path::new("/r")))[0],
            Path::new("/r/var/lib/rpm/.rpm.lock")
        );
        assert!(default_paths(None, None).is_empty());
    }
}
