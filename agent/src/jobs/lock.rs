//! Whether the package manager is still at work, as seen from outside: after a restart the
//! agent waits until it is quiet before it reads the package database (a package manager
//! orphaned by the crash may still be working).
//!
//! The package manager is busy while any of these holds:
//! - **a lock file is locked**: `/proc/locks` lists a POSIX or flock lock on its device and
//!   inode. apt-get holds dpkg's `lock-frontend` for its whole run (and dpkg `lock`); rpm
//!   holds its transaction lock `.rpm.lock` for each transaction (inside dnf, or the `rpm`
//!   that zypper runs).
//! - **a lock file names a running process**: dnf's and zypper's own locks are PID files
//!   that hold no kernel lock while they work. Checked on dnf 4.14 and zypper 1.14.42 (libzypp
//!   17.25.7) with strace and `/proc/locks`: each locks the file only for the instant it
//!   writes its PID, then treats "a PID of a live process in the file" as the lock; dnf
//!   removes its files at the end, zypper empties `zypp.pid`, and after a `kill -9` a stale
//!   PID stays behind. A PID counts only if that process started before the file was last
//!   written, so a stale file whose PID now belongs to an unrelated process (after a power
//!   loss, in an install root that no systemd-tmpfiles rule cleans) does not block.
//! - **a run of an earlier agent process is alive**: every package-manager run of a patch job
//!   carries [`RUN_MARKER_ENV`]`=<agent pid>` in its environment (the group leader the agent
//!   spawned). A leader whose agent process is gone is an orphan of a crashed agent. This
//!   covers dnf, which has no lock for its whole run: between its metadata, download and
//!   rpmdb locks it holds none (depsolving, signature checks), so its locks alone can look
//!   free just before it installs.
//!
//! All of it reads `/proc` only: no privileges beyond what the agent has, no `unsafe`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

pub use crate::pkg::command::RUN_MARKER_ENV;
use crate::proto::PackageManager;

/// Longest wait for a lock after a restart; then the database is read anyway (and the
/// report says so).
pub const MAX_LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

/// dnf 4 (`persistdir` and `cachedir` lock files; dnf puts both under `--installroot`).
const DNF_LOCKS: [&str; 3] =
    ["/var/lib/dnf/rpmdb_lock.pid", "/var/cache/dnf/metadata_lock.pid", "/var/cache/dnf/download_lock.pid"];
/// libzypp's global lock; under `--root ROOT` zypper uses `ROOT/run/zypp.pid`. Older libzypp
/// (SLES 12) wrote `/var/run/zypp.pid` (the same file where `/var/run` links to `/run`).
const ZYPPER_LOCKS: [&str; 2] = ["/run/zypp.pid", "/var/run/zypp.pid"];
/// rpm's transaction lock where RPM distributions keep the database (RHEL <= 9 and SLES:
/// `/var/lib/rpm`; Fedora >= 36, openSUSE Tumbleweed, RHEL 10: `/usr/lib/sysimage/rpm`). The
/// local rpm's own `%{_rpmlock_path}` is added by the caller (Debian's rpm: `~/.rpmdb`).
const RPM_LOCKS: [&str; 2] = ["/var/lib/rpm/.rpm.lock", "/usr/lib/sysimage/rpm/.rpm.lock"];
const APT_LOCKS: [&str; 2] = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"];

/// Linux reports process times in USER_HZ, 100 on every architecture we run on.
const USER_HZ: u64 = 100;

#[derive(Debug, Clone)]
pub struct PackageLock {
    paths: Vec<PathBuf>,
    proc: PathBuf,
    /// Our own pid, when runs left by earlier agent processes count (see the module doc).
    own_pid: Option<u32>,
}

/// The lock files of a package manager (dnf and zypper: under their install root).
/// `rpm_lock` is rpm's `%{_rpmlock_path}` on this host, relative to the root.
pub fn default_paths(manager: Option<PackageManager>, root: Option<&Path>, rpm_lock: Option<&Path>) -> Vec<PathBuf> {
    let mut paths: Vec<&Path> = match manager {
        Some(PackageManager::Apt) => return APT_LOCKS.iter().map(PathBuf::from).collect(),
        Some(PackageManager::Dnf) => DNF_LOCKS.iter().map(Path::new).collect(),
        Some(PackageManager::Zypper) => ZYPPER_LOCKS.iter().map(Path::new).collect(),
        None => return Vec::new(),
    };
    paths.extend(rpm_lock);
    paths.extend(RPM_LOCKS.iter().map(Path::new));
    let root = root.unwrap_or(Path::new("/"));
    let mut joined: Vec<PathBuf> = Vec::new();
    for path in paths {
        let path = root.join(path.strip_prefix("/").unwrap_or(path));
        if !joined.contains(&path) {
            joined.push(path);
        }
    }
    joined
}

impl PackageLock {
    /// Watches these lock files only.
    pub fn new(paths: Vec<PathBuf>) -> PackageLock {
        PackageLock { paths, proc: PathBuf::from("/proc"), own_pid: None }
    }

    /// Also waits for package-manager runs whose agent process is gone.
    pub fn with_orphaned_runs(mut self) -> PackageLock {
        self.own_pid = Some(std::process::id());
        self
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// What keeps the package manager busy right now (empty: quiet), one description each.
    pub fn busy(&self) -> Vec<String> {
        let locked = std::fs::read_to_string(self.proc.join("locks")).map(|t| parse_proc_locks(&t)).unwrap_or_default();
        let mut busy = Vec::new();
        for path in &self.paths {
            if file_id(path).is_some_and(|id| locked.contains(&id)) {
                busy.push(format!("{} is locked", path.display()));
            } else if let Some(pid) = self.pid_holder(path) {
                busy.push(format!("{} names running process {pid}", path.display()));
            }
        }
        if let Some(own) = self.own_pid {
            busy.extend(
                self.orphaned_runs(own)
                    .into_iter()
                    .map(|pid| format!("package-manager process {pid} of an earlier agent is still running")),
            );
        }
        busy
    }

    /// Waits until nothing is busy, up to `max`. Returns false when still busy. Logs what
    /// it waits for whenever that changes.
    pub fn wait_free(&self, max: Duration, poll: Duration) -> bool {
        let deadline = Instant::now() + max;
        let mut logged: Vec<String> = Vec::new();
        loop {
            let busy = self.busy();
            if busy.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if busy != logged {
                tracing::info!(busy = ?busy, "the package manager is busy; waiting");
                logged = busy;
            }
            std::thread::sleep(poll);
        }
    }

    /// The PID in a lock file, when that process runs and started before the file was
    /// last written.
    fn pid_holder(&self, path: &Path) -> Option<u32> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.len() == 0 || meta.len() > 32 {
            return None;
        }
        let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
        let written = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let stat = self.stat(pid)?;
        let started = self.boot_time()? + stat.start_ticks / USER_HZ;
        // Two seconds of slack: `btime` and the file time are whole seconds.
        (pid != 0 && started <= written + 2).then_some(pid)
    }

    /// Leaders of marked package-manager runs whose agent process is gone.
    fn orphaned_runs(&self, own_pid: u32) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(&self.proc) else { return Vec::new() };
        let mut found: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| {
                // An agent started by a package's script inherits the marker: not a run.
                if pid == own_pid {
                    return false;
                }
                let Some(agent) = self.marker_of(pid) else { return false };
                // A live agent owns the run: ourselves, or another agent (tests run several).
                if agent == own_pid || self.stat(agent).is_some() {
                    return false;
                }
                // The process the agent spawned leads its own group (`process_group(0)`) in
                // the agent's session; its children, and daemons that made a session of their
                // own, are not what we wait for.
                self.stat(pid).is_some_and(|s| s.group == pid && s.session != pid)
            })
            .collect();
        found.sort_unstable();
        found
    }

    /// The agent pid in a process's [`RUN_MARKER_ENV`].
    fn marker_of(&self, pid: u32) -> Option<u32> {
        let environ = std::fs::read(self.proc.join(pid.to_string()).join("environ")).ok()?;
        let prefix = format!("{RUN_MARKER_ENV}=");
        environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(prefix.as_bytes()))
            .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok())
    }

    /// A running (not zombie) process's group, session and start time.
    fn stat(&self, pid: u32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(self.proc.join(pid.to_string()).join("stat")).ok()?;
        parse_stat(&text)
    }

    /// Boot time, unix seconds (`btime` in /proc/stat).
    fn boot_time(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.proc.join("stat")).ok()?;
        text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    group: u32,
    session: u32,
    /// Clock ticks after boot.
    start_ticks: u64,
}

/// `/proc/PID/stat`: `pid (comm) state ppid pgrp session ... starttime(22nd) ...`; the comm
/// may hold spaces and parentheses, so fields are counted after the last `)`. `None` for
/// zombies and dead processes.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z" | &"X" | &"x")) {
        return None;
    }
    Some(ProcStat {
        group: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
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
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    fn seen(lock: &PackageLock, busy: bool) -> bool {
        (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            lock.busy().is_empty() != busy
        })
    }

    #[test]
    fn parses_proc_locks_and_stat() {
        let table = "1: POSIX  ADVISORY  WRITE 3821 fe:00:770190 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 6956 103:02:10010647 0 EOF\n\
                     3: -> POSIX  ADVISORY  WRITE 4000 fe:00:5 0 EOF\n\
                     garbage\n";
        assert_eq!(parse_proc_locks(table), vec![(0xfe, 0, 770190), (0x103, 2, 10010647)]);
        let stat = "4242 (a) b (c)) S 1 4242 4000 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(stat), Some(ProcStat { group: 4242, session: 4000, start_ticks: 987654 }));
        assert_eq!(parse_stat("7 (zombie) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"), None);
    }

    #[test]
    fn default_paths_follow_manager_and_root() {
        let root = Path::new("/srv/r");
        let rpm_lock = Path::new("/root/.rpmdb/.rpm.lock");
        let apt = default_paths(Some(PackageManager::Apt), Some(root), None);
        assert_eq!(apt, [PathBuf::from("/var/lib/dpkg/lock-frontend"), PathBuf::from("/var/lib/dpkg/lock")]);
        let dnf = default_paths(Some(PackageManager::Dnf), Some(root), Some(rpm_lock));
        let shown: Vec<String> = dnf.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            shown,
            [
                "/srv/r/var/lib/dnf/rpmdb_lock.pid",
                "/srv/r/var/cache/dnf/metadata_lock.pid",
                "/srv/r/var/cache/dnf/download_lock.pid",
                "/srv/r/root/.rpmdb/.rpm.lock",
                "/srv/r/var/lib/rpm/.rpm.lock",
                "/srv/r/usr/lib/sysimage/rpm/.rpm.lock",
            ]
        );
        let zypper = default_paths(Some(PackageManager::Zypper), None, Some(Path::new("/var/lib/rpm/.rpm.lock")));
        let shown: Vec<String> = zypper.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            shown,
            ["/run/zypp.pid", "/var/run/zypp.pid", "/var/lib/rpm/.rpm.lock", "/usr/lib/sysimage/rpm/.rpm.lock"]
        );
        assert!(default_paths(None, None, None).is_empty());
    }

    #[test]
    fn sees_a_real_lock_come_and_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lock-frontend");
        std::fs::write(&file, "").unwrap();
        let lock = PackageLock::new(vec![file.clone(), dir.path().join("missing")]);
        assert!(lock.busy().is_empty());
        // flock(1) holds the lock for a second, like a package manager orphaned by a crash.
        let mut holder =
            Command::new("flock").args([file.to_str().unwrap(), "sleep", "1"]).stdout(Stdio::null()).spawn().unwrap();
        assert!(seen(&lock, true), "lock not seen in /proc/locks");
        assert!(lock.busy()[0].ends_with("lock-frontend is locked"), "{:?}", lock.busy());
        assert!(!lock.wait_free(Duration::from_millis(50), Duration::from_millis(10)));
        assert!(lock.wait_free(Duration::from_secs(10), Duration::from_millis(20)));
        holder.wait().unwrap();
    }

    #[test]
    fn a_pid_file_is_held_while_its_writer_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rpmdb_lock.pid");
        let lock = PackageLock::new(vec![file.clone()]);
        // Like dnf: write the PID (no kernel lock kept), work, remove the file.
        let script = format!("printf %s $$ > '{0}'; sleep 1; rm '{0}'", file.display());
        let mut dnf_like = Command::new("sh").args(["-c", &script]).spawn().unwrap();
        assert!(seen(&lock, true), "PID file not seen");
        assert!(lock.busy()[0].contains(&format!("names running process {}", dnf_like.id())), "{:?}", lock.busy());
        dnf_like.wait().unwrap();
        assert!(lock.busy().is_empty());

        // A stale PID (the writer was killed) blocks nothing; nor does an empty file (zypper
        // empties zypp.pid at exit) or garbage.
        let mut gone = Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        std::fs::write(&file, gone_pid.to_string()).unwrap();
        assert!(lock.busy().is_empty());
        for content in ["", "not a pid\n", "0"] {
            std::fs::write(&file, content).unwrap();
            assert!(lock.busy().is_empty(), "{content:?}");
        }

        // A live process that started after the file was written did not write it (a PID
        // reused after a power loss): not a holder.
        let mut later = Command::new("sleep").arg("5").spawn().unwrap();
        std::fs::write(&file, format!("{}\n", later.id())).unwrap();
        assert!(!lock.busy().is_empty());
        let status = Command::new("touch").args(["-d", "@1000000000"]).arg(&file).status().unwrap();
        assert!(status.success());
        assert!(lock.busy().is_empty(), "{:?}", lock.busy());
        later.kill().unwrap();
        later.wait().unwrap();
    }

    #[test]
    fn waits_for_a_run_left_by_a_dead_agent_only() {
        // A marked run whose agent is gone: `sh` plays the dead agent (it exits at once), its
        // child plays the package manager, spawned as the agent spawns it (own group).
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pm.pid");
        let mut dead_agent = Command::new("sh")
            .args([
                "-c",
                &format!("{RUN_MARKER_ENV}=$$ setsid -f sh -c 'echo $$ > {0}; exec sleep 2' ", pid_file.display()),
            ])
            .spawn()
            .unwrap();
        dead_agent.wait().unwrap();
        // setsid makes it a session leader: like a daemon, not waited for.
        let lock = PackageLock::new(vec![]).with_orphaned_runs();
        let daemon: u32 = (0..200)
            .find_map(|_| {
                std::thread::sleep(Duration::from_millis(10));
                std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
            })
            .expect("the daemon did not start");
        assert_eq!(lock.marker_of(daemon), Some(dead_agent.id()));
        assert!(lock.busy().is_empty(), "{:?}", lock.busy());

        // The real shape: its own process group inside the agent's session.
        let marked = |agent: u32| {
            Command::new("sleep").arg("30").env(RUN_MARKER_ENV, agent.to_string()).process_group(0).spawn().unwrap()
        };
        let mut run = marked(gone_pid());
        wait_exec(&lock, &run);
        let busy = lock.busy();
        assert_eq!(busy, [format!("package-manager process {} of an earlier agent is still running", run.id())]);
        // Marked with a live agent's pid (ours, or another agent's): not an orphan.
        let mut ours = marked(std::process::id());
        wait_exec(&lock, &ours);
        assert_eq!(lock.busy(), busy);
        assert!(PackageLock::new(vec![]).busy().is_empty(), "not asked to look at runs");
        assert!(!lock.wait_free(Duration::from_millis(50), Duration::from_millis(10)));
        run.kill().unwrap();
        run.wait().unwrap();
        assert!(lock.wait_free(Duration::from_secs(10), Duration::from_millis(20)));
        ours.kill().unwrap();
        ours.wait().unwrap();
    }

    /// `spawn` can return before the child has exec'd (its environment is still ours).
    fn wait_exec(lock: &PackageLock, child: &std::process::Child) {
        let exec = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            lock.marker_of(child.id()).is_some()
        });
        assert!(exec, "the marked child did not start");
    }

    /// A pid no process has.
    fn gone_pid() -> u32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }
}
