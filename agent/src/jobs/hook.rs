//! Pre- and post-commands (and the reboot command): an argument vector run without a shell,
//! stdin closed, stdout and stderr streamed line by line into the job's output as they come,
//! and the whole process group killed when the time limit passes (the package backends'
//! [`command::stream`]).

use std::path::Path;
use std::time::Duration;

use crate::error::{AgentError, Result};
use crate::pkg::command;
use crate::proto::jobs::HookCommand;

pub use crate::pkg::command::Exit;

/// Longest time limit a signed hook may ask for.
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 6 * 60 * 60;

/// "exited with status 3", "timed out", ...
pub fn describe(exit: &Exit) -> String {
    match (exit.timed_out, exit.code) {
        (true, _) => "timed out".to_string(),
        (false, Some(code)) => format!("exited with status {code}"),
        (false, None) => "was killed by a signal".to_string(),
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
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    command::stream(Path::new(program), &args, &[], timeout, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
        assert_eq!(describe(&exit), "exited with status 3");
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
        assert_eq!(describe(&exit), "timed out");
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
