//! Helpers for the package-manager tests: recording fake programs, the fixture scripts in
//! `end2end/fixtures/`, and the rule for tests that need real tools or root.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use agent::pkg::find_program;

/// Set (CI does) to turn a missing tool or missing root into a test failure instead of a skip.
pub const REQUIRE_ENV: &str = "PM_REQUIRE_REAL_PACKAGE_MANAGERS";

/// True when `tools` are on PATH (and we are root, if asked). Otherwise prints why the test is
/// skipped, or fails when [`REQUIRE_ENV`] is set.
pub fn have(test: &str, tools: &[&str], needs_root: bool) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| find_program(Path::new(t)).is_none()).collect();
    let root = !needs_root || is_root();
    if missing.is_empty() && root {
        return true;
    }
    let why = format!(
        "{}{}",
        if missing.is_empty() { String::new() } else { format!("missing {}", missing.join(", ")) },
        if root { "" } else { " not running as root" }
    );
    assert!(std::env::var_os(REQUIRE_ENV).is_none(), "{test}: {why} (and {REQUIRE_ENV} is set)");
    eprintln!("note: SKIPPED {test}: {why}");
    false
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A package-name prefix nobody else uses: `pm-test-<tag>-<hex>`.
pub fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("pm-test-{tag}-{:x}{:05x}", std::process::id(), nanos & 0xfffff)
}

pub fn fixture_script(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../end2end/fixtures/{kind}/pm-{kind}-fixture.sh"))
}

/// Runs a fixture script and returns the `KEY=VALUE` lines it printed.
pub fn run_fixture(kind: &str, args: &[&str]) -> HashMap<String, String> {
    let out = Command::new("bash").arg(fixture_script(kind)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{kind} fixture {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A fake program `dir/name` that appends its argv (fields separated by 0x1f) and the
/// environment variables in `env_names` to `dir/calls.log`, then runs `body` (sh).
pub fn fake(dir: &Path, name: &str, env_names: &[&str], body: &str) -> PathBuf {
    let path = dir.join(name);
    let log = dir.join("calls.log");
    let env: String =
        env_names.iter().map(|n| format!("printf '%s=%s\\037' {n} \"${n}\" >>'{}'\n", log.display())).collect();
    write_script(
        &path,
        &format!(
            "#!/bin/sh\n{{ printf '%s\\037' \"$(basename \"$0\")\"; for a in \"$@\"; do printf '%s\\037' \"$a\"; done; }} >>'{log}'\n{env}printf '\\n' >>'{log}'\n{body}\n",
            log = log.display()
        ),
    );
    path
}

/// Every recorded call: program name first, then its arguments, then `NAME=value` entries.
pub fn calls(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default();
    text.lines().map(|l| l.split('\u{1f}').filter(|f| !f.is_empty()).map(String::from).collect()).collect()
}

pub fn clear_calls(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("calls.log"));
}

/// `rpm --root ROOT -q NAME` (`None` when not installed).
pub fn rpm_version(root: &str, name: &str) -> Option<String> {
    let out = Command::new("rpm").args(["--root", root, "-q", "--qf", "%{VERSION}-%{RELEASE}", name]).output().unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The installed version of a Debian package (`None`: not installed).
pub fn dpkg_version(name: &str) -> Option<String> {
    let out = Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}\t${Version}", name]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = text.split_once('\t')?;
    (out.status.success() && status.as_bytes().get(1) == Some(&b'i')).then(|| version.to_string())
}
