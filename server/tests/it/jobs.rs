//! Patch jobs end to end: jobs created through the server functions over HTTPS, the real
//! scheduler of the real server dispatching them, and hand-written agents receiving them by
//! check-in and long poll and reporting over real mTLS.

use std::time::{Duration, Instant};

use agent::proto::jobs::{JobState, JOB_EVENT_PATH};
use agent::proto::ApiError;
use app::api::job_dto::{JobMode, NewJob, RebootChoice, ScheduleKind, ScopeKind};
use app::backend::audit::{self, Actor};
use app::backend::db::now_unix;
use app::backend::{sessions, users};
use serde_json::{json, Value};

use crate::agent_sim::FakeAgent;
use crate::common::TestServer;

async fn admin_cookie(srv: &TestServer) -> String {
    let st = &srv.state;
    let admin = users::create_admin(st, &Actor::Cli, "admin", "correct horse battery staple", now_unix())
        .await
        .expect("admin");
    let t = sessions::start(st, &admin, None, now_unix()).await.expect("session");
    format!("pm_access={}", t.access)
}

/// A server function call from our own origin: JSON body, or form pairs.
async fn api(srv: &TestServer, cookie: &str, path: &str, body: Value) -> (u16, Value) {
    let req = srv.web_client().post(srv.web_url(path)).header("origin", srv.web_url("")).header("cookie", cookie);
    let req = match body {
        Value::Array(pairs) => {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|p| (p[0].as_str().unwrap_or_default().to_string(), p[1].as_str().unwrap_or_default().to_string()))
                .collect();
            req.form(&pairs)
        }
        other => req.json(&other),
    };
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub fn job(hosts: &[&FakeAgent]) -> NewJob {
    job_for(&hosts.iter().map(|a| &a.host_id).collect::<Vec<_>>())
}

/// Every host in one wave, 10 at once, start now, apply all pending updates.
pub fn job_for(host_ids: &[&String]) -> NewJob {
    NewJob {
        title: "it".into(),
        host_ids: host_ids.iter().map(|h| h.to_string()).collect(),
        group_ids: vec![],
        mode: JobMode::Apply,
        scope: ScopeKind::All,
        packages: vec![],
        exclude: vec![],
        schedule: ScheduleKind::Now,
        at: String::new(),
        window: String::new(),
        start_within_mins: 60,
        canary: 0,
        batch_size: 100,
        batch_percent: true,
        max_concurrent: 10,
        failure_threshold: 0,
        reboot: RebootChoice::Never,
        pre_hook_ids: vec![],
        post_hook_ids: vec![],
    }
}

async fn create(srv: &TestServer, cookie: &str, req: &NewJob) -> String {
    let (status, answer) = api(srv, cookie, "/api/jobs/create", json!({ "job": req })).await;
    assert_eq!(status, 200, "{answer}");
    answer.as_str().expect("job id").to_string()
}

async fn get(srv: &TestServer, cookie: &str, id: &str) -> Value {
    let (status, answer) = api(srv, cookie, "/api/jobs/get", json!([["id", id]])).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Re-reads the job until `check` holds (the scheduler ticks every second).
async fn wait_job(srv: &TestServer, cookie: &str, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = get(srv, cookie, id).await;
        if check(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "job never got {what}: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status(d: &Value) -> &str {
    d["summary"]["status"].as_str().unwrap_or("")
}

fn host_state<'a>(d: &'a Value, host_id: &str) -> &'a str {
    d["hosts"].as_array().into_iter().flatten().find(|h| h["host_id"] == host_id).and_then(|h| h["state"].as_str()).unwrap_or("")
}

async fn host_results(srv: &TestServer) -> usize {
    audit::list_by_action(&srv.state.db, "job.host_result").await.expect("audit").len()
}

#[tokio::test]
async fn a_job_runs_over_mtls_from_poll_to_reboot() {
    let srv = TestServer::start().await;
    let cookie = admin_cookie(&srv).await;
    let a = FakeAgent::online(&srv, "jobs-a").await;
    let b = FakeAgent::online(&srv, "jobs-b").await;

    // The instant preview: from the stored inventory, what would change on each host.
    let mut req = job(&[&a]);
    req.scope = ScopeKind::Security;
    let (st, preview) = api(&srv, &cookie, "/api/jobs/preview", json!({ "job": req })).await;
    assert_eq!(st, 200, "{preview}");
    assert_eq!(preview["hosts"][0]["changes"][0], json!({"name": "openssl", "arch": "amd64", "from": "3.0.11-1", "to": "3.0.15-1", "security": true}));

    // An agent already waiting in a long poll is woken when the job is dispatched.
    let waiting = {
        let started = Instant::now();
        let poll = a.poll(&srv, 30);
        let id = create(&srv, &cookie, &req);
        let (jobs, id) = tokio::join!(poll, id);
        assert!(started.elapsed() < Duration::from_secs(15), "poll was not woken: {:?}", started.elapsed());
        (jobs, id)
    };
    let (jobs, id) = waiting;
    assert_eq!(jobs.len(), 1, "the waiting poll got the job");
    let spec = a.verify(&jobs[0]);
    assert_eq!((spec.job_id.as_str(), spec.scope.clone()), (id.as_str(), agent::proto::jobs::PatchScope::Security));
    assert!(spec.not_before <= now_unix() && spec.not_after > now_unix() + 3000);

    // Delivered again in check-in responses until acknowledged.
    assert_eq!(a.checkin(&srv, "boot-1").await.jobs, jobs);
    assert!(b.checkin(&srv, "boot-1").await.jobs.is_empty());

    // Host B cannot acknowledge or report host A's job.
    let (st, body) = b.event(&srv, &id, JobState::Received, None).await;
    assert_eq!(st, 404, "{body}");
    let (st, _) = b.event(&srv, &id, JobState::Succeeded, Some(crate::agent_sim::openssl_result(false))).await;
    assert_eq!(st, 404);
    assert_eq!(host_state(&get(&srv, &cookie, &id).await, &a.host_id), "Dispatched");

    // Malformed events get the listener's error body.
    let (st, body) = a.post_raw(&srv, JOB_EVENT_PATH, r#"{"job_id":"x","state":"bogus","at":0,"result":null}"#).await;
    assert_eq!(st, 422, "{body}");
    assert_eq!(serde_json::from_str::<ApiError>(&body).expect("ApiError").code, "invalid_request");
    let (st, body) = a.event(&srv, &id, JobState::Succeeded, None).await;
    assert_eq!((st, serde_json::from_str::<ApiError>(&body).expect("ApiError").code.as_str()), (422, "invalid_input"));

    assert!(a.report(&srv, &id, JobState::Received, None).await.proceed);
    assert!(a.checkin(&srv, "boot-1").await.jobs.is_empty(), "acknowledged jobs are not re-sent");
    a.report(&srv, &id, JobState::Running, None).await;
    assert_eq!(host_state(&get(&srv, &cookie, &id).await, &a.host_id), "Running");
    let first = a.report(&srv, &id, JobState::Succeeded, Some(crate::agent_sim::openssl_result(true))).await;
    assert!(!first.duplicate);
    let again = a.report(&srv, &id, JobState::Succeeded, Some(crate::agent_sim::openssl_result(true))).await;
    assert!(again.duplicate);
    assert_eq!(host_results(&srv).await, 1);

    // Rebooting: the job waits for the host to come back with a new boot id.
    let d = wait_job(&srv, &cookie, &id, "a rebooting host", |d| d["hosts"][0]["reboot_state"] == "pending").await;
    assert_eq!(status(&d), "Running");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.checkin(&srv, "boot-1").await;
    assert_eq!(status(&get(&srv, &cookie, &id).await), "Running");
    a.checkin(&srv, "boot-2").await;
    let d = wait_job(&srv, &cookie, &id, "completion", |d| status(d) == "Completed").await;
    assert_eq!(d["hosts"][0]["reboot_state"], "done");

    // The full result and the host's history.
    let (st, r) = api(&srv, &cookie, "/api/jobs/host_result", json!([["job_id", id.as_str()], ["host_id", a.host_id.as_str()]])).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["changes"][0], json!({"name": "openssl", "arch": "amd64", "before": "3.0.11-1", "after": "3.0.15-1"}));
    assert!(r["output"].as_str().unwrap_or_default().contains("Setting up openssl (3.0.15-1)"));
    let (st, h) = api(&srv, &cookie, "/api/jobs/for_host", json!([["host_id", a.host_id.as_str()]])).await;
    assert_eq!(st, 200);
    assert_eq!(h[0]["job_id"], Value::String(id.clone()));
    let results = audit::list_by_action(&srv.state.db, "job.host_result").await.expect("audit");
    assert_eq!(results[0].actor, format!("host:{}", a.host_id));
    srv.stop().await;
}

#[tokio::test]
async fn waves_halt_on_failure_then_resume_and_cancel() {
    let srv = TestServer::start().await;
    let cookie = admin_cookie(&srv).await;
    let a = FakeAgent::online(&srv, "wave-a").await;
    let b = FakeAgent::online(&srv, "wave-b").await;
    let c = FakeAgent::online(&srv, "wave-c").await;
    let mut req = job(&[&a, &b, &c]);
    req.canary = 1;
    req.batch_size = 1;
    req.batch_percent = false;
    req.max_concurrent = 1;
    req.failure_threshold = 0;
    let id = create(&srv, &cookie, &req).await;

    // The canary (first by hostname) fails: the job halts, nobody else gets anything.
    let spec = a.wait_for_job(&srv, 10).await;
    assert_eq!(spec.job_id, id);
    a.run(&srv, &id, JobState::Failed, false).await;
    let d = wait_job(&srv, &cookie, &id, "halted", |d| status(d) == "Halted").await;
    assert!(d["halt_reason"].as_str().unwrap_or_default().contains("1 of 1 hosts failed"), "{d}");
    assert!(b.poll(&srv, 2).await.is_empty() && c.poll(&srv, 1).await.is_empty());
    let halts = audit::list_by_action(&srv.state.db, "job.halt").await.expect("audit");
    assert_eq!((halts.len(), halts[0].actor.as_str()), (1, "system"));

    // Resume: the next wave goes.
    let (st, answer) = api(&srv, &cookie, "/api/jobs/resume", json!([["id", id.as_str()]])).await;
    assert_eq!(st, 200, "{answer}");
    let (st, answer) = api(&srv, &cookie, "/api/jobs/resume", json!([["id", id.as_str()]])).await;
    assert_eq!((st, answer["code"].as_str()), (409, Some("job_not_halted")));
    b.wait_for_job(&srv, 10).await;
    b.run(&srv, &id, JobState::Succeeded, false).await;

    // The last wave is dispatched; cancelling before its agent acknowledges stops it.
    let spec = c.wait_for_job(&srv, 10).await;
    let (st, answer) = api(&srv, &cookie, "/api/jobs/cancel", json!([["id", id.as_str()]])).await;
    assert_eq!(st, 200, "{answer}");
    let r = c.report(&srv, &spec.job_id, JobState::Received, None).await;
    assert!(!r.proceed, "a cancelled job must not start");
    let d = get(&srv, &cookie, &id).await;
    assert_eq!(status(&d), "Cancelled");
    assert_eq!(
        [host_state(&d, &a.host_id), host_state(&d, &b.host_id), host_state(&d, &c.host_id)],
        ["Failed", "Succeeded", "Cancelled"]
    );
    assert!(c.checkin(&srv, "boot-1").await.jobs.is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn server_restart_mid_job_records_once_and_waves_continue() {
    let srv = TestServer::start().await;
    let cookie = admin_cookie(&srv).await;
    let a = FakeAgent::online(&srv, "restart-a").await;
    let b = FakeAgent::online(&srv, "restart-b").await;
    let mut req = job(&[&a, &b]);
    req.canary = 1;
    req.batch_size = 1;
    req.batch_percent = false;
    req.max_concurrent = 1;
    let id = create(&srv, &cookie, &req).await;
    a.wait_for_job(&srv, 10).await;
    assert!(a.report(&srv, &id, JobState::Received, None).await.proceed);
    a.report(&srv, &id, JobState::Running, None).await;

    // The server goes away while host A runs the job, and comes back on the same database.
    let srv = srv.restart().await;
    let first = a.report(&srv, &id, JobState::Succeeded, Some(crate::agent_sim::openssl_result(false))).await;
    assert!(!first.duplicate);
    // The agent did not see the answer (say) and reports again: nothing changes.
    let again = a.report(&srv, &id, JobState::Succeeded, Some(crate::agent_sim::openssl_result(false))).await;
    assert!(again.duplicate);
    assert_eq!(host_results(&srv).await, 1);

    // The new server's scheduler carries on with the next wave.
    let spec = b.wait_for_job(&srv, 10).await;
    assert_eq!(spec.job_id, id);
    b.run(&srv, &id, JobState::Succeeded, false).await;
    let d = wait_job(&srv, &cookie, &id, "completion", |d| status(d) == "Completed").await;
    assert_eq!([host_state(&d, &a.host_id), host_state(&d, &b.host_id)], ["Succeeded", "Succeeded"]);
    assert_eq!(host_results(&srv).await, 2);
    assert_eq!(audit::verify(&srv.state.db).await.expect("verify").first_bad_seq, None);
    srv.stop().await;
}

#[tokio::test]
async fn long_poll_times_out_empty_and_ends_at_shutdown() {
    let srv = TestServer::start().await;
    let a = FakeAgent::online(&srv, "poll-a").await;
    let started = Instant::now();
    assert!(a.poll(&srv, 1).await.is_empty());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "{took:?}");
    assert_eq!(srv.state.job_hub.waiting(), 0, "finished polls leave the hub");

    // A poll held open does not keep the server from shutting down promptly.
    let mut conn = a.connect(&srv).await;
    let body = serde_json::to_string(&agent::proto::jobs::JobPoll { wait_secs: 55 }).expect("json");
    let poll = tokio::spawn(async move {
        crate::common::http1_post(&mut conn, agent::proto::jobs::JOBS_POLL_PATH, &body).await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while srv.state.job_hub.waiting() == 0 {
        assert!(Instant::now() < deadline, "the poll never started waiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    srv.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(10), "shutdown waited for the poll: {:?}", stopping.elapsed());
    let answered = tokio::time::timeout(Duration::from_secs(5), poll).await.expect("poll ended").expect("task");
    if let Ok((status, body)) = answered {
        assert_eq!(status, 200, "{body}");
    }
}
