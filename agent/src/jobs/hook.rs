//! Pre- and post-commands (and the reboot command): an argument vector run without a shell,
//! stdin closed, stdout and stderr streamed line by line into the job's output as they come,
//! and the whole process group killed when the time limit passes.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{AgentError, Result};
use crate::proto::jobs::HookCommand;

/// Longest time limit a signed hook may ask for.
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 6 * 60 * 60;

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub success: bool,
    pub code: Option<i32>,
    pub timed_out: bool,
}

impl Exit {
    pub fn describe(&self) -> String {
        match (self.timed_out, self.code) {
            (true, _) => "timed out".to_string(),
            (false, Some(0)) => "exited with status 0".to_string(),
            (false, Some(code)) => format!("exited with status {code}"),
            (false, None) => "was killed by a signal".to_string(),
        }
    }
}

/// Runs one hook, its output going to `sink`. `Err` only when it could not be started.
pub fn run_hook(hook: &HookCommand, sink: &mut dyn FnMut(&str)) -> Result<Exit> {
    run_streaming(&hook.argv, Duration::from_secs(hook.timeout_secs.clamp(1, MAX_HOOK_TIMEOUT_SECS)), sink)
}

/// Runs `argv` (no shell), streaming its output lines to `sink` until it exits or
/// `timeout` passes (then its process group is killed).
pub fn run_streaming(argv: &[String], timeout: Duration, sink: &mut dyn FnMut(&str)) -> Result<Exit> {
    let Some((program, args)) = argv.split_first() else {
        return Err(AgentError::Job("empty command".into()));
    };
    let fail = |message: String| AgentError::Command { program: program.clone(), message };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills what it started too.
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    let (tx, rx) = mpsc::channel::<String>();
    let readers = [forward(child.stdout.take(), tx.clone()), forward(child.stderr.take(), tx)];

    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            sink(&line);
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                kill_group(child.id());
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => {
                if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                    sink(&line);
                }
            }
            Err(e) => return Err(fail(format!("wait failed: {e}"))),
        }
    };
    // Whatever is still buffered in the pipes. A grandchild that kept them open must not
    // hold us forever: stop waiting after a short grace.
    let grace = Instant::now() + Duration::from_secs(if timed_out { 2 } else { 10 });
    while let Ok(line) = rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        sink(&line);
    }
    if readers.iter().all(|r| r.is_finished()) {
        for r in readers {
            let _ = r.join();
        }
    }
    Ok(Exit {
        success: !timed_out && status.is_some_and(|s| s.success()),
        code: status.and_then(|s| s.code()),
        timed_out,
    })
}

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
                    let line = String::from_utf8_lossy(&buf);
                    if tx.send(line.trim_end_matches(['\n', '\r']).to_string()).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// SIGKILL to the whole group (`kill` from procps/util-linux; std can only signal the child).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn streams_both_outputs_and_reports_the_status() {
        let mut lines = Vec::new();
        let exit =
            run_streaming(&argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]), Duration::from_secs(10), &mut |l| {
                lines.push(l.to_string())
            })
            .unwrap();
        assert_eq!(exit, Exit { success: false, code: Some(3), timed_out: false });
        lines.sort();
        assert_eq!(lines, vec!["err", "out"]);
        assert_eq!(exit.describe(), "exited with status 3");
    }

    #[test]
    fn no_shell_interprets_the_arguments() {
        let mut lines = Vec::new();
        let hook =
            HookCommand { name: "echo".into(), argv: argv(&["echo", "$(id)", ";", "rm -rf /"]), timeout_secs: 5 };
        let exit = run_hook(&hook, &mut |l| lines.push(l.to_string())).unwrap();
        assert!(exit.success);
        assert_eq!(lines, vec!["$(id) ; rm -rf /"]);
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let started = Instant::now();
        let exit = run_streaming(&argv(&["sh", "-c", &script]), Duration::from_millis(300), &mut |_| {}).unwrap();
        assert!(exit.timed_out && !exit.success);
        assert_eq!(exit.describe(), "timed out");
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_secs(3));
        assert!(!marker.exists(), "the background child outlived the timeout");
    }

    #[test]
    fn missing_program_is_an_error() {
        let err = run_streaming(&argv(&["/nonexistent/hook"]), Duration::from_secs(1), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("cannot start"), "{err}");
        assert!(run_streaming(&[], Duration::from_secs(1), &mut |_| {}).is_err());
    }
}
