//! Agent events: exactly-once results, duplicates and late reports, one host never touching
//! another's job, bad input refused without changes, delivery until acknowledged.

use agent::proto::jobs::{JobEvent, JobState};

use super::*;
use crate::backend::audit;
use crate::backend::error::BackendError;

#[tokio::test]
async fn results_are_recorded_exactly_once() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    fx.host("h2").await;
    let job = create_job(&fx, &new_job(&["h1"]), NOW).await;

    // Not dispatched yet: nothing to acknowledge.
    let e = event(fx.db(), "h1", &job, JobState::Received, NOW).await.unwrap_err();
    assert_eq!(e.code(), "job_not_dispatched");
    tick(&fx.state, NOW).await;

    // Delivered in every check-in response until acknowledged.
    assert_eq!(fx.checkin("h1", "boot-1", NOW + 1).await.jobs.len(), 1);
    assert_eq!(fx.checkin("h1", "boot-1", NOW + 2).await.jobs.len(), 1);
    // Running before Received is out of order.
    assert_eq!(event(fx.db(), "h1", &job, JobState::Running, NOW).await.unwrap_err().code(), "job_not_received");
    let r = event(fx.db(), "h1", &job, JobState::Received, NOW + 3).await.unwrap();
    assert!(r.proceed && !r.duplicate);
    assert!(fx.checkin("h1", "boot-1", NOW + 4).await.jobs.is_empty());
    // A repeated Received (lost response) gets the same answer.
    assert!(event(fx.db(), "h1", &job, JobState::Received, NOW + 4).await.unwrap().proceed);

    // Host h2 cannot acknowledge or report h1's job: it only ever touches its own row.
    let e = results::record(
        fx.db(),
        "h2",
        &JobEvent { job_id: job.clone(), state: JobState::Succeeded, at: NOW, result: Some(result(false)) },
        NOW,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, BackendError::NotFound));
    assert!(matches!(event(fx.db(), "h2", &job, JobState::Received, NOW).await, Err(BackendError::NotFound)));
    assert_eq!(states(fx.db(), &job).await["h1"], "received");
    event(fx.db(), "h1", &job, JobState::Running, NOW + 5).await.unwrap();

    let first = event(fx.db(), "h1", &job, JobState::Succeeded, NOW + 6).await.unwrap();
    assert!(!first.duplicate);
    let again = event(fx.db(), "h1", &job, JobState::Succeeded, NOW + 7).await.unwrap();
    assert!(again.duplicate && again.proceed);
    let other = event(fx.db(), "h1", &job, JobState::Failed, NOW + 8).await.unwrap();
    assert!(other.duplicate && !other.proceed);
    let r = event(fx.db(), "h1", &job, JobState::Received, NOW + 9).await.unwrap();
    assert!(!r.proceed && r.duplicate);
    assert_eq!(states(fx.db(), &job).await["h1"], "succeeded");
    let rows = audit::list_by_action(fx.db(), "job.host_result").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, "host:h1");
    assert_eq!(rows[0].target, format!("job:{job}"));

    // The result is stored as the agent reported it.
    let res = crate::backend::jobs::queries::host_result(fx.db(), &Scope::All, &job, "h1").await.unwrap();
    assert_eq!(res.changes.len(), 1);
    assert_eq!((res.changes[0].before.as_deref(), res.changes[0].after.as_deref()), (Some("1.0"), Some("1.0+1")));
    assert!(res.output.contains("Setting up pkg00000"));

    // An unknown job for this host is not found.
    assert!(matches!(event(fx.db(), "h2", "no-such-job", JobState::Received, NOW).await, Err(BackendError::NotFound)));
    fx.finish().await;
}

#[tokio::test]
async fn malformed_events_are_refused_and_change_nothing() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    let job = create_job(&fx, &new_job(&["h1"]), NOW).await;
    tick(&fx.state, NOW).await;
    event(fx.db(), "h1", &job, JobState::Received, NOW).await.unwrap();
    let ev = |state: JobState, result: Option<agent::proto::jobs::JobResult>| JobEvent { job_id: job.clone(), state, at: NOW, result };
    let mut huge = result(false);
    huge.output = "x".repeat(agent::proto::jobs::MAX_OUTPUT_BYTES + 10_000);
    let mut bad_change = result(false);
    bad_change.changes[0].name = "evil\nname".into();
    for (e, why) in [
        (ev(JobState::Cancelled, Some(result(false))), "agents cannot cancel"),
        (ev(JobState::Queued, None), "agents cannot queue"),
        (ev(JobState::Succeeded, None), "terminal without result"),
        (ev(JobState::Running, Some(result(false))), "result without terminal state"),
        (ev(JobState::Succeeded, Some(huge)), "output too large"),
        (ev(JobState::Failed, Some(bad_change)), "control characters"),
        (JobEvent { job_id: "x".repeat(65), state: JobState::Received, at: NOW, result: None }, "long id"),
    ] {
        let err = results::record(fx.db(), "h1", &e, NOW).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{why}");
    }
    assert_eq!(states(fx.db(), &job).await["h1"], "received");
    // NUL bytes in the output are kept readable (PostgreSQL text cannot hold them).
    event(fx.db(), "h1", &job, JobState::Running, NOW).await.unwrap();
    let mut nul = result(false);
    nul.output = "before\0after".into();
    let e = JobEvent { job_id: job.clone(), state: JobState::Failed, at: NOW, result: Some(nul) };
    assert!(!results::record(fx.db(), "h1", &e, NOW).await.unwrap().duplicate);
    let res = crate::backend::jobs::queries::host_result(fx.db(), &Scope::All, &job, "h1").await.unwrap();
    assert_eq!(res.output, "before\u{fffd}after");
    fx.finish().await;
}

#[tokio::test]
async fn a_silent_host_is_given_up_after_the_result_timeout_and_a_late_result_still_counts_once() {
    use crate::backend::jobs::scheduler::{LOST_REASON, RESULT_TIMEOUT_SECS};
    let fx = Fx::new().await;
    fx.host("h1").await;
    fx.host("h2").await;
    let job = create_job(&fx, &new_job(&["h1", "h2"]), NOW).await;
    tick(&fx.state, NOW).await;
    run_host(fx.db(), "h2", &job, JobState::Succeeded, NOW + 1).await;
    event(fx.db(), "h1", &job, JobState::Received, NOW + 1).await.unwrap();
    event(fx.db(), "h1", &job, JobState::Running, NOW + 2).await.unwrap();

    // Just inside the limit nothing changes; the job waits for h1.
    tick(&fx.state, NOW + 2 + RESULT_TIMEOUT_SECS - 1).await;
    assert_eq!(states(fx.db(), &job).await["h1"], "running");
    assert_eq!(job_state(fx.db(), &job).await.0, "running");

    // Past it, h1 is failed with the reason (a failure like any other: over this job's 0 %
    // threshold the wave halts instead of waiting forever), and it is audited once.
    let later = NOW + 2 + RESULT_TIMEOUT_SECS + 60;
    tick(&fx.state, later).await;
    tick(&fx.state, later + 1).await;
    assert_eq!(states(fx.db(), &job).await["h1"], "failed");
    assert_eq!(job_state(fx.db(), &job).await.0, "halted");
    let reason: String = sqlx::query("SELECT reason FROM job_hosts WHERE job_id = $1 AND host_id = 'h1'")
        .bind(&job)
        .fetch_one(&fx.db().pool)
        .await
        .unwrap()
        .try_get("reason")
        .unwrap();
    assert_eq!(reason, LOST_REASON);
    assert_eq!(audit::list_by_action(fx.db(), "job.hosts_lost").await.unwrap().len(), 1);

    // The agent comes back with its real result: recorded (once), replacing the guess.
    let late = event(fx.db(), "h1", &job, JobState::Succeeded, later + 100).await.unwrap();
    assert!(late.proceed && !late.duplicate);
    assert_eq!(states(fx.db(), &job).await["h1"], "succeeded");
    let again = event(fx.db(), "h1", &job, JobState::Succeeded, later + 101).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(audit::list_by_action(fx.db(), "job.host_result").await.unwrap().len(), 2, "h2 and h1, once each");
    fx.finish().await;
}
