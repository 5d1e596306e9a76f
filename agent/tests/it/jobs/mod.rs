//! Patch jobs end to end: the real `pm-agent` binary (`CARGO_BIN_EXE_pm-agent`) against the
//! fake server ([`crate::server`]), with the real apt backend driving fake `apt-get`,
//! `dpkg-query` and `apt-mark` programs over a tiny text package database, a recorder script
//! as the reboot command and a boot id file it rewrites.
//!
//! # Layout
//! - `run`: a job from delivery to report (versions, hooks, window, reboot policy, cancel).
//! - `refuse`: tampered, foreign-signed and misaddressed jobs never run.
//! - `crash`: `kill -9` of the agent at every stage; redelivery of finished jobs.
//! - `real_apt`: one job with the real apt-get and dpkg (root; the local test repository of
//!   `end2end/fixtures/deb`).
//! - `real_rpm`: check-in inventory, dry run, exclusion and security jobs with the real dnf
//!   and the real zypper on an install root (`end2end/fixtures/rpm`).
//! - `dnf_crash`: `kill -9` while a (fake, slow) dnf runs on an install root: the restarted
//!   agent waits for dnf as dnf really locks (PID files, and no lock at all part of the time).

mod crash;
mod dnf_crash;
mod real_apt;
mod real_rpm;
mod refuse;
mod run;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::config::{AgentConfig, Commands};
use agent::enroll::{enroll, CaPin, EnrollOptions};
use agent::proto::jobs::{JobEvent, JobMode, JobSpec, PatchScope, RebootPolicy};
use agent::proto::PackageManager;
use agent::state::StateDir;

use crate::server::{FakeServer, HOST_ID};

/// Installed packages at the start: `name\tversion\tarch\tstatus` (what dpkg-query prints).
const DB: &str = "bash\t5.2.15-2+b2\tamd64\tii \nopenssl\t3.0.11-1\tamd64\tii \nlibssl3\t3.0.11-1\tamd64\tii \n";
/// Candidates from the (fake) security suite: `name\tversion\tarch`.
const UPDATES: &str = "openssl\t3.0.13-1\tamd64\nlibssl3\t3.0.13-1\tamd64\n";

/// apt-get: `update` succeeds, `-s` prints the pending upgrades, anything else is a real
/// run: it records its arguments, holds the dpkg-style lock (flock) while it "works" for
/// `apply-sleep` seconds, then rewrites the database. It ignores SIGPIPE, like a package
/// manager that outlives a killed agent.
const APT_GET: &str = r#"
trap '' PIPE
case " $* " in
  *" update "*) echo "Reading package lists... Done"; exit 0 ;;
  *" -s "*)
    awk -F'\t' 'NR==FNR { cur[$1]=$2; next } ($1 in cur) && cur[$1] != $2 {
      printf "Inst %s [%s] (%s Debian-Security:12/stable-security [%s])\n", $1, cur[$1], $2, $3 }' "$D/db" "$D/updates"
    exit 0 ;;
esac
echo "$*" >> "$D/apply.log"
exec 9>>"$D/lock"
flock 9
echo "Unpacking updates ..."
# Time for the agent to log that line before a test kills it.
sleep 0.5
: > "$D/apply-started"
sleep "$(cat "$D/apply-sleep" 2>/dev/null || echo 0)"
awk -F'\t' -v OFS='\t' 'NR==FNR { up[$1]=$2; next } ($1 in up) { $2=up[$1] } { print }' "$D/updates" "$D/db" > "$D/db.new"
mv "$D/db.new" "$D/db"
echo "Setting up updates ..."
: > "$D/apply-done"
exit "$(cat "$D/apply-exit" 2>/dev/null || echo 0)"
"#;

/// The reboot command: records its arguments and "reboots" (a new boot id).
const REBOOT: &str = r#"
echo "$*" >> "$D/reboots"
cat /proc/sys/kernel/random/uuid > "$D/boot_id"
"#;

/// One enrolled host: its state dir, its fake programs, and the agent process.
pub struct Host {
    dir: tempfile::TempDir,
    pub state: StateDir,
    agent: Option<Child>,
    starts: u32,
}

impl Host {
    /// Enrolls against `server` (in-process, the real enrollment code) and points agent.toml
    /// at the fakes.
    pub async fn enroll(server: &FakeServer) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let opts = EnrollOptions {
            server: server.web_url.clone(),
            token: "good-token".into(),
            ca: CaPin::Fingerprint(server.ca_fingerprint.clone()),
            state_dir: state.root().to_path_buf(),
        };
        enroll(&opts).await.unwrap();
        let host = Host { dir, state, agent: None, starts: 0 };
        host.install_fakes();
        host
    }

    pub fn fake(&self, name: &str) -> PathBuf {
        self.dir.path().join("fake").join(name)
    }

    fn install_fakes(&self) {
        let fake = self.dir.path().join("fake");
        std::fs::create_dir_all(&fake).unwrap();
        let d = format!("D={:?}\n", fake.display().to_string());
        let script = |name: &str, body: &str| {
            let path = fake.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{d}{body}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let apt_get = script("apt-get", APT_GET);
        let dpkg_query = script("dpkg-query", "cat \"$D/db\"\n");
        let apt_mark = script("apt-mark", "exit 0\n");
        let reboot = script("reboot", REBOOT);
        std::fs::write(fake.join("db"), DB).unwrap();
        std::fs::write(fake.join("updates"), UPDATES).unwrap();
        std::fs::write(fake.join("boot_id"), "boot-1\n").unwrap();
        std::fs::write(fake.join("lock"), "").unwrap();
        std::fs::write(fake.join("os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        let path = |name: &str| format!("{:?}", fake.join(name).display().to_string());
        let mut text = std::fs::read_to_string(self.state.config_path()).unwrap();
        text.push_str(&format!(
            "os_release_path = {}\nreboot_required_path = {}\nboot_id_path = {}\nlock_timeout_secs = 5\n\
             [commands]\napt_get = {apt_get:?}\ndpkg_query = {dpkg_query:?}\napt_mark = {apt_mark:?}\n\
             reboot = [{reboot:?}, \"--now\"]\n[jobs]\nlock_paths = [{}]\n",
            path("os-release"),
            path("reboot-required"),
            path("boot_id"),
            path("lock"),
        ));
        std::fs::write(self.state.config_path(), text).unwrap();
    }

    /// Points the agent at the real dpkg-query, and at the real apt-get and apt-mark through
    /// wrappers that set `APT_CONFIG` (the test repository only), with the real dpkg locks.
    /// The reboot command stays the recorder.
    pub fn use_real_apt(&self, apt_config: &str) {
        let wrap = |name: &str| {
            let real = agent::pkg::find_program(std::path::Path::new(name)).unwrap();
            let path = self.fake(&format!("real-{name}"));
            let body = format!("#!/bin/sh\nAPT_CONFIG='{apt_config}' exec '{}' \"$@\"\n", real.display());
            std::fs::write(&path, body).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let dpkg_query = agent::pkg::find_program(std::path::Path::new("dpkg-query")).unwrap();
        let text = std::fs::read_to_string(self.state.config_path()).unwrap();
        let text: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with("lock_paths"))
            .map(|l| match l.split_once(" = ") {
                Some(("apt_get", _)) => format!("apt_get = {:?}", wrap("apt-get")),
                Some(("apt_mark", _)) => format!("apt_mark = {:?}", wrap("apt-mark")),
                Some(("dpkg_query", _)) => format!("dpkg_query = {:?}", dpkg_query.display().to_string()),
                Some(("lock_timeout_secs", _)) => "lock_timeout_secs = 600".to_string(),
                _ => l.to_string(),
            })
            .collect();
        std::fs::write(self.state.config_path(), text.join("\n") + "\n").unwrap();
    }

    /// Edits agent.toml (read when the agent starts).
    pub fn configure(&self, edit: impl FnOnce(&mut AgentConfig)) {
        let path = self.state.config_path();
        let mut config = AgentConfig::load(&path).unwrap();
        edit(&mut config);
        std::fs::write(&path, config.to_toml().unwrap()).unwrap();
    }

    /// Points the agent at `manager` (dnf or zypper) working on the install root `root`, with
    /// the manager's default lock files; the programs are `programs` (name -> path, e.g.
    /// fakes), the others found in PATH. The reboot command stays the recorder.
    pub fn use_rpm_manager(&self, manager: PackageManager, root: &Path, programs: &[(&str, &Path)]) {
        self.configure(|c| {
            c.manager = Some(manager);
            c.package_root = Some(root.to_path_buf());
            c.lock_timeout_secs = Some(600);
            c.jobs.lock_paths = None;
            let reboot = c.commands.reboot.take();
            c.commands = Commands { reboot, ..Commands::default() };
            for (name, path) in programs {
                let slot = match *name {
                    "dnf" => &mut c.commands.dnf,
                    "zypper" => &mut c.commands.zypper,
                    "rpm" => &mut c.commands.rpm,
                    other => panic!("no [commands] entry for {other}"),
                };
                *slot = Some(path.to_path_buf());
            }
        });
    }

    /// Starts `pm-agent run`; with `pause_at`, jobs stop at that stage (`PM_AGENT_PAUSE_AT`).
    pub fn start(&mut self, pause_at: Option<&str>) {
        assert!(self.agent.is_none(), "agent already running");
        self.starts += 1;
        let log = std::fs::File::create(self.dir.path().join(format!("agent-{}.log", self.starts))).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pm-agent"));
        command
            .args(["run", "--state-dir"])
            .arg(self.state.root())
            .env("RUST_LOG", "info")
            .env_remove(agent::jobs::pause::ENV)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(stage) = pause_at {
            command.env(agent::jobs::pause::ENV, stage);
        }
        self.agent = Some(command.spawn().unwrap());
    }

    /// SIGKILL (what `kill -9` sends) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.agent.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM (what `systemctl stop` sends); returns once the agent exited, with its status.
    pub async fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut child = self.agent.take().expect("agent not running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
                panic!("agent did not stop after SIGTERM\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the agent logged so far (all runs), for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.dir.path().join(format!("agent-{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// Lines of a recorder file (apply.log, reboots).
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.fake(name)).unwrap_or_default().lines().map(String::from).collect()
    }

    /// Real package-manager runs so far.
    pub fn applies(&self) -> usize {
        self.lines("apply.log").len()
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.state.root().join("jobs")
    }

    pub fn journal(&self, job_id: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.journal_dir().join(format!("{job_id}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn paused(&self, job_id: &str, stage: &str) -> bool {
        self.journal_dir().join(format!("{job_id}.paused-{stage}")).exists()
    }

    /// Polls `check` every 50 ms until it yields a value; panics with the agent's log after
    /// `secs`.
    pub async fn wait<T>(&self, what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}\nagent log:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the job's terminal report to be recorded by the server.
    pub async fn terminal(&self, server: &FakeServer, job_id: &str, secs: u64) -> JobEvent {
        self.wait(&format!("the terminal report of {job_id}"), secs, || server.jobs.terminal_of(job_id)).await
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn unix_now() -> i64 {
    agent::jobs::unix_now()
}

/// A job for the test host: all updates, window open for an hour, no reboot, no hooks.
pub fn spec(job_id: &str) -> JobSpec {
    let now = unix_now();
    JobSpec {
        job_id: job_id.into(),
        host_id: HOST_ID.into(),
        issued_at: now,
        not_before: now - 60,
        not_after: now + 3600,
        mode: JobMode::Apply,
        scope: PatchScope::All,
        exclude: vec![],
        reboot: RebootPolicy::Never,
        pre_commands: vec![],
        post_commands: vec![],
    }
}

/// A hook running `sh -c script` (absolute program path, as the agent requires).
pub fn hook(name: &str, script: &str) -> agent::proto::jobs::HookCommand {
    agent::proto::jobs::HookCommand {
        name: name.into(),
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        timeout_secs: 30,
    }
}

/// `before -> after` of one package in a result.
pub fn change_of(event: &JobEvent, name: &str) -> Option<(Option<String>, Option<String>)> {
    let result = event.result.as_ref()?;
    result.changes.iter().find(|c| c.name == name).map(|c| (c.before.clone(), c.after.clone()))
}

pub fn upgraded(from: &str, to: &str) -> Option<(Option<String>, Option<String>)> {
    Some((Some(from.to_string()), Some(to.to_string())))
}
