//! Runs a package-manager program: argument vector (no shell), `LC_ALL=C` so the output we
//! parse is not translated, a time limit, and stdout/stderr drained concurrently so a large
//! output can never block the child on a full pipe.
//!
//! [`run`] collects the output; [`stream`] hands every line to a sink as it arrives (apply
//! runs, whose output goes to the job journal). Both inherit the agent's environment (so an
//! `APT_CONFIG` set for the agent reaches apt-get) plus the variables the caller adds.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{AgentError, Result};

/// Set to the agent's pid in the environment of every package-manager run of a patch job
/// (`pkg::run_step`), so an agent restarted after a crash can tell that a run its predecessor
/// started is still going (`jobs::lock`).
pub const RUN_MARKER_ENV: &str = "PM_AGENT_PACKAGE_RUN";

/// How long [`stream`] keeps reading after the program exited while something it started
/// still holds its output pipes.
const LINGER: Duration = Duration::from_secs(2);

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How a streamed program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub success: bool,
    pub code: Option<i32>,
    /// Killed (with its process group) when the time limit passed.
    pub timed_out: bool,
}

pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    run_env(program, args, &[], timeout)
}

/// [`run`] with extra environment variables.
pub fn run_env(program: &Path, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Result<Output> {
    let name = program.display().to_string();
    let fail = |message: String| AgentError::Command { program: name.clone(), message };
    let mut child = spawn(program, args, env).map_err(|e| fail(format!("cannot start: {e}")))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(fail(format!("timed out after {} s", timeout.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("wait failed: {e}"))),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Output { success: status.success(), code: status.code(), stdout, stderr })
}

/// Runs `program` and passes each line of its stdout and stderr (interleaved as they arrive,
/// without the newline) to `sink`. A non-zero exit is an [`Exit`], not an error; `Err` means
/// the program could not be started or waited for.
pub fn stream(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
    sink: &mut dyn FnMut(&str),
) -> Result<Exit> {
    let name = program.display().to_string();
    let fail = |message: String| AgentError::Command { program: name.clone(), message };
    let mut child = spawn(program, args, env).map_err(|e| fail(format!("cannot start: {e}")))?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers = [forward(child.stdout.take(), tx.clone()), forward(child.stderr.take(), tx)];

    let deadline = Instant::now() + timeout;
    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut pipes_closed = false;
    let mut timed_out = false;
    loop {
        if status.is_none() {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                }
                Ok(None) => {}
                Err(e) => {
                    kill_group(&mut child);
                    return Err(fail(format!("wait failed: {e}")));
                }
            }
        }
        let now = Instant::now();
        if status.is_none() && now >= deadline {
            timed_out = true;
            kill_group(&mut child);
            // The pipes close with the group; pass on what was already read.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                sink(&line);
            }
            break;
        }
        // A daemon the program started (a service restarted by a maintainer script) may keep
        // the pipes open after the program exited: read what is left for a moment, then stop.
        if (pipes_closed && status.is_some()) || exited_at.is_some_and(|t| now >= t + LINGER) {
            break;
        }
        if pipes_closed {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => sink(&line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => pipes_closed = true,
        }
    }
    for reader in readers {
        if pipes_closed {
            let _ = reader.join();
        }
        // Otherwise a process outside our control holds a pipe: do not wait for it.
    }
    if timed_out {
        return Ok(Exit { success: false, code: None, timed_out });
    }
    Ok(Exit { success: status.is_some_and(|s| s.success()), code: status.and_then(|s| s.code()), timed_out })
}

/// The child runs in its own process group, so a timeout can stop what it started (apt-get's
/// dpkg, dnf's scriptlets) and a signal meant for the agent does not interrupt it mid-way.
fn spawn(program: &Path, args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    command
        .args(args)
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    command.spawn()
}

/// SIGKILL to the child's whole process group (std can only signal the child itself; the
/// `kill` program reaches the group), then reap the child.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Sends each line (lossy UTF-8, without `\n`/`\r\n`) of `pipe` to `tx`.
fn forward<R: Read + Send + 'static>(pipe: Option<R>, tx: mpsc::Sender<String>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Some(pipe) = pipe else { return };
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

impl Output {
    /// The last non-empty stderr line, for error messages.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    }

    /// `Err` with the exit status and the last stderr line unless the program succeeded.
    pub fn check(self, program: &Path) -> Result<Output> {
        if self.success {
            return Ok(self);
        }
        Err(AgentError::Command {
            program: program.display().to_string(),
            message: format!("exit status {}: {}", code_text(self.code), self.stderr_tail()),
        })
    }
}

/// `100`, or `signal` when the program was killed.
pub fn code_text(code: Option<i32>) -> String {
    code.map_or_else(|| "signal".to_string(), |c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_large_output_and_status() {
        let out =
            run(Path::new("sh"), &["-c", "seq 1 200000; echo oops >&2; exit 3"], Duration::from_secs(20)).unwrap();
        assert!(!out.success);
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout.lines().count(), 200000);
        assert_eq!(out.stderr_tail(), "oops");
        let env = run(Path::new("sh"), &["-c", "echo $LC_ALL"], Duration::from_secs(5)).unwrap();
        assert_eq!(env.stdout.trim(), "C");
        let extra = run_env(Path::new("sh"), &["-c", "echo $PM_X"], &[("PM_X", "y z")], Duration::from_secs(5));
        assert_eq!(extra.unwrap().stdout.trim(), "y z");
    }

    #[test]
    fn times_out_and_reports_missing_programs() {
        let err = run(Path::new("sleep"), &["10"], Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(run(Path::new("/nonexistent/x"), &[], Duration::from_secs(1)).is_err());
        let mut lines = Vec::new();
        assert!(stream(Path::new("/nonexistent/x"), &[], &[], Duration::from_secs(1), &mut |l| lines
            .push(l.to_string()))
        .is_err());
    }

    #[test]
    fn streams_lines_as_they_come() {
        let started = Instant::now();
        let mut seen: Vec<(String, Duration)> = Vec::new();
        let exit = stream(
            Path::new("sh"),
            &["-c", "echo one; echo two >&2; sleep 0.5; printf 'three\\r\\nlast-no-newline'; exit 4"],
            &[("PM_Y", "1")],
            Duration::from_secs(20),
            &mut |l| seen.push((l.to_string(), started.elapsed())),
        )
        .unwrap();
        assert_eq!(exit, Exit { success: false, code: Some(4), timed_out: false });
        let mut names: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
        names[..2].sort_unstable();
        assert_eq!(names, ["one", "two", "three", "last-no-newline"]);
        // The first lines reached the sink before the program finished.
        assert!(seen[0].1 < Duration::from_millis(450), "{seen:?}");
        assert!(seen[2].1 >= Duration::from_millis(450), "{seen:?}");
    }

    #[test]
    fn stream_returns_when_the_program_exits_even_if_a_daemon_keeps_the_pipe() {
        let started = Instant::now();
        let mut seen = Vec::new();
        let exit = stream(
            Path::new("sh"),
            &["-c", "echo before; sleep 8 & echo after; exit 0"],
            &[],
            Duration::from_secs(60),
            &mut |l| seen.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(exit, Exit { success: true, code: Some(0), timed_out: false });
        assert_eq!(seen, ["before", "after"]);
        assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    }

    #[test]
    fn stream_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("echo started; (sleep 2; touch {}) & sleep 30", marker.display());
        let started = Instant::now();
        let mut seen = Vec::new();
        let exit = stream(Path::new("sh"), &["-c", &script], &[], Duration::from_millis(500), &mut |l| {
            seen.push(l.to_string())
        })
        .unwrap();
        assert!(exit.timed_out && !exit.success && exit.code.is_none(), "{exit:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(seen, ["started"]);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }
}
