//! The `patch-manager` binary's subcommands, against a temp data dir (SQLite).

use std::process::{Command, Output, Stdio};

fn pm(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patch-manager"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("PM_CONFIG")
        .env_remove("PM_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run patch-manager")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn config_check_accepts_example_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/config.example.toml");
    let o = pm(dir.path(), &["config", "check", example]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("configuration OK"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "web_listen = \"127.0.0.1:1\"\nweb_listne = \"x\"\n").expect("write");
    let o = pm(dir.path(), &["config", "check", bad.to_str().expect("utf8")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("web_listne"));
}

#[test]
fn admin_token_fingerprint_and_audit_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse battery staple\n").expect("write");

    let o = pm(&data, &["migrate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = pm(&data, &["user", "create-admin", "--username", "root", "--password-file", pw.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout(&o).contains("created admin root"));

    let o = pm(&data, &["enroll-token", "create", "--note", "rack 4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert!(out.contains("token:") && out.contains("pm-agent"), "{out}");

    let o = pm(&data, &["ca", "fingerprint"]);
    assert!(o.status.success());
    assert!(stdout(&o).trim().starts_with("sha256:"));
    assert!(out.contains(stdout(&o).trim()), "token output shows the same CA fingerprint");

    let o = pm(&data, &["audit", "verify"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("audit chain OK"));

    // Revoking an unknown host is a clear error, and writes nothing.
    let o = pm(&data, &["ca", "revoke", "--host", "no-such-host"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("not found"), "{err}");
    let o = pm(&data, &["audit", "verify"]);
    assert!(stdout(&o).contains("audit chain OK"));
}

#[test]
fn commands_on_a_data_dir_without_server_state_refuse_instead_of_creating_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("not-the-server");
    for args in [
        &["ca", "fingerprint"][..],
        &["audit", "verify"],
        &["enroll-token", "create"],
        &["keys", "rotate"],
        &["ca", "revoke", "--host", "h1"],
    ] {
        let o = pm(&data, args);
        assert!(!o.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no server state in") && err.contains("not-the-server"), "{args:?}: {err}");
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
}

#[test]
fn the_data_dir_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = pm(&data, &["migrate"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("patch-manager.db")), 0o600);
}
