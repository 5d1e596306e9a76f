//! `kill -9` of the agent at every stage of a job, then a restart: exactly one terminal
//! report reaches the server, the package manager never runs twice, and the report says
//! what really changed. Plus redelivery of finished jobs whose report did or did not get
//! through.
//!
//! Stages are made deterministic with the agent's test hook (`PM_AGENT_PAUSE_AT`: the agent
//! writes `<job>.paused-<stage>` and stops), except "during the package manager", where the
//! fake apt-get itself is slow and the agent is killed while it runs.

use std::time::Duration;

use agent::proto::jobs::{JobEvent, JobState, RebootPolicy};

use super::{change_of, spec, upgraded, Host};
use crate::server::{start, FakeServer};

/// Starts a job with the agent told to stop at `stage`, kills it there, restarts it and
/// returns the job's one terminal report.
async fn crash_at(stage: &str, job_id: &str, reboot: RebootPolicy) -> (FakeServer, Host, JobEvent) {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(Some(stage));
    let mut s = spec(job_id);
    s.reboot = reboot;
    server.jobs.dispatch(server.jobs.sign(&s));
    host.wait(&format!("the agent to stop at {stage}"), 60, || host.paused(job_id, stage).then_some(())).await;
    host.kill9();
    host.start(None);
    let event = host.terminal(&server, job_id, 60).await;
    settle_and_check_one_report(&server, &host, job_id).await;
    (server, host, event)
}

/// Gives a duplicate report time to show up, then checks there is none and that the
/// package manager ran at most once.
async fn settle_and_check_one_report(server: &FakeServer, host: &Host, job_id: &str) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reports = server.jobs.terminal_reports(job_id);
    assert_eq!(reports.len(), 1, "terminal reports: {reports:?}\n{}", host.logs());
    assert!(host.applies() <= 1, "apt-get ran {} times", host.applies());
    let running = server.jobs.events_of(job_id).iter().filter(|e| e.state == JobState::Running).count();
    assert!(running <= 1, "Running reported {running} times");
}

fn reason(event: &JobEvent) -> &str {
    &event.result.as_ref().unwrap().reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_journaling_the_job_it_runs_it_once_after_restart() {
    let (_server, host, event) = crash_at("received", "job-crash-received", RebootPolicy::Never).await;
    // Nothing had run: the restarted agent asks again and runs it, once.
    assert_eq!(event.state, JobState::Succeeded, "{event:?}");
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    assert_eq!(host.applies(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_package_manager_it_reports_interrupted_without_changes() {
    let (_server, host, event) = crash_at("before_exec", "job-crash-before", RebootPolicy::Never).await;
    assert_eq!(event.state, JobState::Interrupted, "{event:?}");
    assert!(event.result.as_ref().unwrap().changes.is_empty());
    assert!(reason(&event).contains("before the package manager started"), "{}", reason(&event));
    assert!(reason(&event).ends_with("no package changed"));
    assert_eq!(host.applies(), 0, "started after a crash past `running`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_the_package_manager_it_waits_for_the_lock_and_reports_what_changed() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    // apt-get holds its lock for 4 s and only then changes the database.
    std::fs::write(host.fake("apply-sleep"), "4").unwrap();
    host.start(None);
    server.jobs.dispatch(server.jobs.sign(&spec("job-crash-during")));
    host.wait("apt-get to start", 60, || host.fake("apply-started").exists().then_some(())).await;
    host.kill9();
    assert!(!host.fake("apply-done").exists());
    host.start(None);
    let event = host.terminal(&server, "job-crash-during", 60).await;
    // Reported only after the orphaned apt-get finished and released its lock.
    assert!(host.fake("apply-done").exists());
    assert_eq!(event.state, JobState::Interrupted, "{event:?}");
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    assert!(
        reason(&event).contains("while the package manager was running; 2 package(s) changed"),
        "{}",
        reason(&event)
    );
    let output = &event.result.as_ref().unwrap().output;
    assert!(output.contains("Unpacking updates"), "output streamed before the crash is kept:\n{output}");
    assert!(output.contains("agent restarted"));
    assert_eq!(host.applies(), 1);
    settle_and_check_one_report(&server, &host, "job-crash-during").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_package_manager_it_reports_interrupted_with_the_changes() {
    let (_server, host, event) = crash_at("applied", "job-crash-applied", RebootPolicy::Never).await;
    assert_eq!(event.state, JobState::Interrupted, "{event:?}");
    assert_eq!(change_of(&event, "libssl3"), upgraded("3.0.11-1", "3.0.13-1"));
    assert_eq!(host.applies(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_report_it_sends_the_journaled_result() {
    let (_server, host, event) = crash_at("finished", "job-crash-finished", RebootPolicy::Never).await;
    assert_eq!(event.state, JobState::Succeeded, "{event:?}");
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    assert_eq!(host.applies(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_report_and_reboot_it_reboots_once() {
    let (server, mut host, event) = crash_at("reported", "job-crash-reported", RebootPolicy::Always).await;
    assert_eq!(event.state, JobState::Succeeded);
    assert!(event.result.as_ref().unwrap().reboot_pending);
    host.wait("the reboot after the restart", 30, || (host.lines("reboots").len() == 1).then_some(())).await;
    // Another restart (the same "boot" if the reboot had failed): never a second reboot.
    host.kill9();
    host.start(None);
    host.wait("a check-in of the restarted agent", 30, || (server.checkins.lock().unwrap().len() > 3).then_some(()))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(host.lines("reboots").len(), 1);
    assert_eq!(host.applies(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_result_is_reported_again_after_a_restart_never_rerun() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    // The server cannot take reports for now, and keeps delivering the job.
    {
        let mut jobs = server.jobs.lock();
        jobs.fail_terminal = u32::MAX;
        jobs.keep_delivering = true;
    }
    host.start(None);
    server.jobs.dispatch(server.jobs.sign(&spec("job-redelivered")));
    host.wait("a refused report", 60, || (!server.jobs.lock().rejected_terminal.is_empty()).then_some(())).await;
    // Redelivered while the report is retried: not run again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(host.applies(), 1);
    host.kill9();

    server.jobs.lock().fail_terminal = 0;
    host.start(None);
    let event = host.terminal(&server, "job-redelivered", 60).await;
    assert_eq!(event.state, JobState::Succeeded);
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(host.applies(), 1, "a redelivered finished job ran again");
    // The first accepted report came from the restart's recovery; at most one duplicate
    // after it (a redelivery of an acknowledged job is answered once per process).
    let reports = server.jobs.terminal_reports("job-redelivered");
    assert!((1..=2).contains(&reports.len()), "{reports:?}");
    assert_eq!(host.journal("job-redelivered")["report"]["status"], "acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_job_lets_it_finish_and_report_first() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    std::fs::write(host.fake("apply-sleep"), "2").unwrap();
    host.start(None);
    server.jobs.dispatch(server.jobs.sign(&spec("job-sigterm")));
    host.wait("apt-get to start", 60, || host.fake("apply-started").exists().then_some(())).await;
    let status = host.terminate(60).await;
    assert!(status.success(), "{status:?}");
    // The job was finished and reported before the agent exited, not left `interrupted`.
    let event = server.jobs.terminal_of("job-sigterm").expect("no report before exit");
    assert_eq!(event.state, JobState::Succeeded, "{event:?}");
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    assert!(host.logs().contains("finishing it before shutting down"));
}
