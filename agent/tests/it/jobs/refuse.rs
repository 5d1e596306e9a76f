//! Jobs the agent must never run: tampered after signing, signed by another key, or for
//! another host. Each is refused before anything runs, journaled under the digest of what
//! was delivered, and reported `Failed` with the reason, once.

use std::time::Duration;

use agent::proto::jobs::JobState;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::Ed25519KeyPair;

use super::{hook, spec, Host};
use crate::server::{sign_with, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_foreign_and_misaddressed_jobs_never_run() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(None);
    let marker = host.fake("evil-ran");
    let evil = hook("evil", &format!("touch {}", marker.display()));

    // Signed by the server, then a pre-command slipped into the bytes.
    let genuine = spec("job-tampered");
    let mut tampered = server.jobs.sign(&genuine);
    let mut changed = genuine.clone();
    changed.pre_commands = vec![evil.clone()];
    tampered.spec_b64 = B64.encode(serde_json::to_vec(&changed).unwrap());

    // Well formed and signed, by a key this host never pinned.
    let rng = ring::rand::SystemRandom::new();
    let other_key = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let mut foreign_spec = spec("job-foreign");
    foreign_spec.pre_commands = vec![evil.clone()];
    let foreign = sign_with(&other_key, &foreign_spec);

    // Signed by the server, but for another host.
    let mut elsewhere = spec("job-other-host");
    elsewhere.host_id = "host-2".into();
    elsewhere.pre_commands = vec![evil];
    let misaddressed = server.jobs.sign(&elsewhere);

    server.jobs.lock().keep_delivering = true;
    for signed in [tampered, foreign, misaddressed] {
        server.jobs.dispatch(signed);
    }

    for (id, reason) in [
        ("job-tampered", "job refused by the agent: signature invalid"),
        ("job-foreign", "job refused by the agent: signature invalid (signed by key "),
        ("job-other-host", "job refused by the agent: job is for another host (host-2)"),
    ] {
        let event = host.terminal(&server, id, 60).await;
        assert_eq!(event.state, JobState::Failed, "{event:?}");
        let result = event.result.as_ref().unwrap();
        assert!(result.reason.starts_with(reason), "{id}: {}", result.reason);
        assert!(result.changes.is_empty());
        assert_eq!(result.started_at, 0);
        // Never acknowledged as received, never journaled under the job id.
        assert_eq!(server.jobs.events_of(id).len(), 1, "{id}: {:?}", server.jobs.events_of(id));
        assert!(!host.journal_dir().join(format!("{id}.json")).exists());
    }
    // Delivered again and again: recognised, not reported again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in ["job-tampered", "job-foreign", "job-other-host"] {
        assert_eq!(server.jobs.terminal_reports(id).len(), 1, "{id}");
    }
    let refused = std::fs::read_dir(host.journal_dir().join("refused")).unwrap().count();
    assert_eq!(refused, 3);
    assert!(!marker.exists(), "a refused job ran a command");
    assert_eq!(host.applies(), 0);
    assert!(host.logs().contains("job refused; it will not run"), "{}", host.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_copy_of_a_finished_job_does_not_touch_its_result() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(None);
    let genuine = spec("job-genuine");
    server.jobs.dispatch(server.jobs.sign(&genuine));
    let event = host.terminal(&server, "job-genuine", 60).await;
    assert_eq!(event.state, JobState::Succeeded);

    // The same id again, altered after signing.
    let mut forged = server.jobs.sign(&genuine);
    let mut changed = genuine.clone();
    changed.post_commands = vec![hook("evil", &format!("touch {}", host.fake("evil-ran").display()))];
    forged.spec_b64 = B64.encode(serde_json::to_vec(&changed).unwrap());
    server.jobs.lock().dispatched.clear();
    server.jobs.dispatch(forged);
    server.jobs.lock().keep_delivering = true;
    host.wait("the forged copy refused", 60, || {
        let dir = host.journal_dir().join("refused");
        (std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0) == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.jobs.terminal_reports("job-genuine").len(), 1, "the genuine result was overwritten");
    assert_eq!(server.jobs.terminal_of("job-genuine").unwrap().state, JobState::Succeeded);
    assert!(!host.fake("evil-ran").exists());
    assert_eq!(host.applies(), 1);
}
