//! Runs a package-manager program: argument vector (no shell), `LC_ALL=C` so the output we
//! parse is not translated, a time limit, and stdout/stderr drained concurrently so a large
//! output can never block the child on a full pipe.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{AgentError, Result};

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output> {
    let name = program.display().to_string();
    let fail = |message: String| AgentError::Command { program: name.clone(), message };
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
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

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

impl Output {
    /// The last non-empty stderr line, for error messages.
    pub fn stderr_tail(&self) -> String {
        self.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string()
    }
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
    }

    #[test]
    fn times_out_and_reports_missing_programs() {
        let err = run(Path::new("sleep"), &["10"], Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        assert!(run(Path::new("/nonexistent/x"), &[], Duration::from_secs(1)).is_err());
    }
}
