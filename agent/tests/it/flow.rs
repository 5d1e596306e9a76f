//! Enrollment and check-ins against the test-only stand-in for the patch-manager listeners
//! ([`crate::server`]): real TLS 1.3 and mTLS.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use agent::checkin::Agent;
use agent::enroll::{enroll, CaPin, EnrollOptions};
use agent::state::StateDir;
use agent::AgentError;

use crate::server::{new_ca, start};

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Points the enrolled agent at fake package tools and an os-release fixture.
fn add_overrides(state: &StateDir, dir: &Path) {
    let dpkg =
        script(dir, "dpkg-query", "printf 'bash\\t5.2.15-2+b2\\tamd64\\tii \\nlibssl3\\t3.0.11-1\\tamd64\\tii \\n'\n");
    let apt = script(
        dir,
        "apt-get",
        "echo 'Inst libssl3 [3.0.11-1] (3.0.13-1 Debian-Security:12/stable-security [amd64])'\n",
    );
    let os_release = dir.join("os-release");
    std::fs::write(&os_release, "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
        .unwrap();
    let mut text = std::fs::read_to_string(state.config_path()).unwrap();
    text.push_str(&format!(
        "os_release_path = {:?}\nreboot_required_path = {:?}\n[commands]\napt_get = {apt:?}\ndpkg_query = {dpkg:?}\n",
        os_release.display().to_string(),
        dir.join("reboot-required").display().to_string(),
    ));
    std::fs::write(state.config_path(), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_by_fingerprint_then_check_in_over_mtls() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "good-token".into(),
        ca: CaPin::Fingerprint(server.ca_fingerprint.to_uppercase().replace("SHA256", "sha256")),
        state_dir: state.root().to_path_buf(),
    };
    let enrolled = enroll(&opts).await.unwrap();
    assert_eq!(enrolled.host_id, "host-1");
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(state.key_path()), 0o600);
    assert_eq!(std::fs::read_to_string(state.ca_path()).unwrap(), server.ca_pem);
    assert_eq!(std::fs::read_to_string(state.job_key_path()).unwrap(), server.jobs.public_key_b64());
    add_overrides(&state, dir.path());

    let agent = Agent::load(state.clone()).unwrap();
    // First check-in carries the inventory.
    let report = agent.cycle().await.unwrap();
    assert_eq!((report.checkins, report.inventory_sent), (1, true));
    assert_eq!(report.response.next_checkin_seconds, 1);
    {
        let checkins = server.checkins.lock().unwrap();
        let first = &checkins[0];
        assert_eq!(first.facts.os_id, "debian");
        assert!(!first.facts.reboot_required);
        let inv = first.inventory.as_ref().unwrap();
        assert_eq!(inv.installed.len(), 2);
        assert_eq!(inv.updates.len(), 1);
        assert!(inv.updates[0].security);
        assert_eq!(first.inventory_digest, inv.digest());
    }
    // Unchanged inventory: digest only.
    let report = agent.cycle().await.unwrap();
    assert_eq!((report.checkins, report.inventory_sent), (1, false));
    assert!(server.checkins.lock().unwrap()[1].inventory.is_none());

    // The server lost it: the agent sends it again right away, in the same cycle.
    server.ask_inventory.store(true, Ordering::SeqCst);
    let report = agent.cycle().await.unwrap();
    assert_eq!((report.checkins, report.inventory_sent), (2, true));
    let checkins = server.checkins.lock().unwrap();
    assert_eq!(checkins.len(), 4);
    assert!(checkins[2].inventory.is_none());
    assert!(checkins[3].inventory.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused_before_anything_is_sent() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "good-token".into(),
        ca: CaPin::Fingerprint(format!("sha256:{}", "00".repeat(32))),
        state_dir: dir.path().join("state"),
    };
    let err = enroll(&opts).await.unwrap_err();
    assert!(matches!(err, AgentError::FingerprintMismatch { .. }), "{err}");
    assert!(err.to_string().contains("fingerprint mismatch"));
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_shows_the_server_message() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "stale-token".into(),
        ca: CaPin::File(ca_file),
        state_dir: dir.path().join("state"),
    };
    let err = enroll(&opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "server refused the request (HTTP 401, token_invalid): enrollment token is invalid or expired"
    );
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_cert_from_another_ca_is_rejected() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, new_ca().ca.pem()).unwrap();
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "good-token".into(),
        ca: CaPin::File(other),
        state_dir: dir.path().join("state"),
    };
    let err = enroll(&opts).await.unwrap_err();
    assert!(matches!(err, AgentError::Transport { .. }), "{err}");
    let chain = agent::checkin::error_chain(&err);
    assert!(chain.contains("UnknownIssuer") || chain.contains("certificate"), "{chain}");
    assert!(!dir.path().join("state").exists());
}
