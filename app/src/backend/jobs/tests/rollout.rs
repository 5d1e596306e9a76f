//! Waves, concurrency, halts, resume, cancel, schedules, deadlines and reboots, with the
//! clock in the test's hand; and two schedulers (replicas) on one database.

use agent::proto::jobs::{JobMode as WireMode, JobState, RebootPolicy};

use super::*;
use crate::api::job_dto::HostJobState;
use crate::backend::access::Caller;
use crate::backend::audit;
use crate::backend::jobs::control;
use crate::backend::sessions::Principal;
use crate::api::dto::Role;

fn admin_caller() -> Caller {
    Caller {
        principal: Principal {
            user_id: "u-admin".into(),
            username: "admin".into(),
            role: Role::Admin,
            session_id: "s".into(),
        },
    }
}

#[tokio::test]
async fn canary_then_batches_never_more_than_m_in_flight() {
    let fx = Fx::new().await;
    let hosts = ["h1", "h2", "h3", "h4", "h5", "h6"];
    for h in hosts {
        fx.host(h).await;
    }
    let mut req = new_job(&hosts);
    req.canary = 1;
    req.batch_size = 3;
    req.batch_percent = false;
    req.max_concurrent = 2;
    let job = create_job(&fx, &req, NOW).await;
    assert_eq!(job_state(fx.db(), &job).await, ("scheduled".into(), 0));

    // Wave 0: the canary alone.
    let r = tick(&fx.state, NOW).await;
    assert_eq!(r.dispatched, vec![(job.clone(), "h1".to_string())]);
    assert_eq!(job_state(fx.db(), &job).await, ("running".into(), 0));
    let specs = pending(&fx.state, "h1", NOW).await;
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!((spec.job_id.as_str(), spec.host_id.as_str()), (job.as_str(), "h1"));
    assert_eq!((spec.not_before, spec.not_after), (NOW - scheduler::CLOCK_SKEW_SECS, NOW + 3600));
    assert_eq!(spec.mode, WireMode::Apply);
    assert!(pending(&fx.state, "h2", NOW).await.is_empty());
    // Re-ticking while the canary runs dispatches nothing more.
    assert!(tick(&fx.state, NOW + 1).await.dispatched.is_empty());
    run_host(fx.db(), "h1", &job, JobState::Succeeded, NOW + 2).await;

    // Wave 1 (h2..h4) with M = 2: two at a time.
    let r = tick(&fx.state, NOW + 3).await;
    assert_eq!(r.dispatched.len(), 2);
    assert_eq!(job_state(fx.db(), &job).await.1, 1);
    assert_eq!(in_flight(fx.db(), &job).await, 2);
    assert!(tick(&fx.state, NOW + 4).await.dispatched.is_empty());
    run_host(fx.db(), "h2", &job, JobState::Succeeded, NOW + 5).await;
    let r = tick(&fx.state, NOW + 6).await;
    assert_eq!(r.dispatched, vec![(job.clone(), "h4".to_string())]);
    assert_eq!(in_flight(fx.db(), &job).await, 2);
    run_host(fx.db(), "h3", &job, JobState::Succeeded, NOW + 7).await;
    // h3 done but h4 still running: wave 2 must wait for the whole of wave 1.
    assert!(tick(&fx.state, NOW + 8).await.dispatched.is_empty());
    run_host(fx.db(), "h4", &job, JobState::Succeeded, NOW + 9).await;
    let r = tick(&fx.state, NOW + 10).await;
    assert_eq!(r.dispatched.len(), 2);
    assert_eq!(job_state(fx.db(), &job).await.1, 2);
    run_host(fx.db(), "h5", &job, JobState::Succeeded, NOW + 11).await;
    run_host(fx.db(), "h6", &job, JobState::Succeeded, NOW + 11).await;
    let r = tick(&fx.state, NOW + 12).await;
    assert_eq!(r.completed, vec![job.clone()]);
    assert_eq!(job_state(fx.db(), &job).await.0, "completed");
    assert!(states(fx.db(), &job).await.values().all(|s| s == "succeeded"));
    assert_eq!(audit::list_by_action(fx.db(), "job.host_result").await.unwrap().len(), 6);
    let complete = audit::list_by_action(fx.db(), "job.complete").await.unwrap();
    assert_eq!((complete.len(), complete[0].actor.as_str()), (1, "system"));
    assert_eq!(audit::verify(fx.db()).await.unwrap().first_bad_seq, None);
    fx.finish().await;
}

#[tokio::test]
async fn failing_wave_halts_then_resume_and_cancel() {
    let fx = Fx::new().await;
    let hosts = ["h1", "h2", "h3", "h4"];
    for h in hosts {
        fx.host(h).await;
    }
    let mut req = new_job(&hosts);
    req.canary = 1;
    req.batch_size = 1;
    req.batch_percent = false;
    req.max_concurrent = 1;
    req.failure_threshold = 0;
    let job = create_job(&fx, &req, NOW).await;
    tick(&fx.state, NOW).await;
    run_host(fx.db(), "h1", &job, JobState::Failed, NOW + 1).await;
    let r = tick(&fx.state, NOW + 2).await;
    assert_eq!(r.halted, vec![job.clone()]);
    assert!(r.dispatched.is_empty());
    assert_eq!(job_state(fx.db(), &job).await, ("halted".into(), 0));
    let halt = audit::list_by_action(fx.db(), "job.halt").await.unwrap();
    assert_eq!((halt.len(), halt[0].actor.as_str()), (1, "system"));
    // Halted: nothing moves however often the scheduler ticks.
    assert!(tick(&fx.state, NOW + 3).await.dispatched.is_empty());
    assert_eq!(states(fx.db(), &job).await["h2"], "queued");

    // Resume: the next wave goes.
    control::resume(fx.db(), &admin_caller(), &job, NOW + 4).await.unwrap();
    assert_eq!(job_state(fx.db(), &job).await, ("running".into(), 1));
    assert_eq!(control::resume(fx.db(), &admin_caller(), &job, NOW + 4).await.unwrap_err().code(), "job_not_halted");
    let r = tick(&fx.state, NOW + 5).await;
    assert_eq!(r.dispatched, vec![(job.clone(), "h2".to_string())]);
    run_host(fx.db(), "h2", &job, JobState::Succeeded, NOW + 6).await;
    tick(&fx.state, NOW + 7).await;
    assert_eq!(states(fx.db(), &job).await["h3"], "dispatched");

    // Cancel: the dispatched-but-unacknowledged host and the queued one become cancelled;
    // the agent asking to start is told not to.
    control::cancel(fx.db(), &admin_caller(), &job, NOW + 8).await.unwrap();
    let s = states(fx.db(), &job).await;
    assert_eq!((s["h1"].as_str(), s["h2"].as_str(), s["h3"].as_str(), s["h4"].as_str()), ("failed", "succeeded", "cancelled", "cancelled"));
    assert_eq!(job_state(fx.db(), &job).await.0, "cancelled");
    let r = event(fx.db(), "h3", &job, JobState::Received, NOW + 9).await.unwrap();
    assert!(!r.proceed);
    assert!(pending(&fx.state, "h3", NOW + 9).await.is_empty());
    assert_eq!(control::cancel(fx.db(), &admin_caller(), &job, NOW + 10).await.unwrap_err().code(), "job_finished");
    assert!(tick(&fx.state, NOW + 11).await.dispatched.is_empty());
    for action in ["job.create", "job.resume", "job.cancel"] {
        assert_eq!(audit::list_by_action(fx.db(), action).await.unwrap().len(), 1, "{action}");
    }
    fx.finish().await;
}

#[tokio::test]
async fn received_before_cancel_still_runs_and_is_recorded() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    fx.host("h2").await;
    let job = create_job(&fx, &new_job(&["h1", "h2"]), NOW).await;
    tick(&fx.state, NOW).await;
    assert!(event(fx.db(), "h1", &job, JobState::Received, NOW).await.unwrap().proceed);
    control::cancel(fx.db(), &admin_caller(), &job, NOW + 1).await.unwrap();
    // h1 had been told to proceed; its result is still recorded. h2 never starts.
    event(fx.db(), "h1", &job, JobState::Running, NOW + 2).await.unwrap();
    assert!(!event(fx.db(), "h1", &job, JobState::Succeeded, NOW + 3).await.unwrap().duplicate);
    assert!(!event(fx.db(), "h2", &job, JobState::Received, NOW + 3).await.unwrap().proceed);
    let s = states(fx.db(), &job).await;
    assert_eq!((s["h1"].as_str(), s["h2"].as_str()), ("succeeded", "cancelled"));
    fx.finish().await;
}

#[tokio::test]
async fn window_schedule_dispatches_only_inside_and_deadline_skips() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    fx.host("h2").await;
    let mut req = new_job(&["h1", "h2"]);
    req.schedule = ScheduleKind::Window;
    req.window = "daily 09:00-10:00 UTC".into();
    // NOW is 08:00 UTC.
    let job = create_job(&fx, &req, NOW).await;
    assert!(tick(&fx.state, NOW + 1800).await.dispatched.is_empty());
    let r = tick(&fx.state, NOW + 3600 + 60).await;
    assert_eq!(r.dispatched.len(), 2);
    let spec = &pending(&fx.state, "h1", NOW + 3600 + 60).await[0];
    assert_eq!((spec.not_before, spec.not_after), (NOW + 3600, NOW + 7200));
    run_host(fx.db(), "h1", &job, JobState::Succeeded, NOW + 3700).await;
    // h2 never picks its job up: at the window's end it is skipped, and the job completes.
    assert!(pending(&fx.state, "h2", NOW + 7200).await.is_empty());
    let r = tick(&fx.state, NOW + 7200).await;
    assert_eq!(r.completed, vec![job.clone()]);
    let row = sqlx::query("SELECT state, reason FROM job_hosts WHERE job_id = $1 AND host_id = 'h2'")
        .bind(&job)
        .fetch_one(&fx.db().pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("state").unwrap(), "skipped");
    assert_eq!(row.try_get::<String, _>("reason").unwrap(), scheduler::DEADLINE_REASON);
    // The late agent asking to start is turned away, and its late report changes nothing.
    let r = event(fx.db(), "h2", &job, JobState::Received, NOW + 7300).await.unwrap();
    assert!(!r.proceed && r.duplicate);
    assert!(event(fx.db(), "h2", &job, JobState::Succeeded, NOW + 7300).await.unwrap().duplicate);
    assert_eq!(states(fx.db(), &job).await["h2"], "skipped");

    // "At" schedules wait for their time.
    let mut req = new_job(&["h1"]);
    req.schedule = ScheduleKind::At;
    req.at = "2027-01-15 12:00 Europe/Berlin".into();
    let job = create_job(&fx, &req, NOW).await;
    assert!(tick(&fx.state, NOW + 3 * 3600 - 1).await.dispatched.is_empty());
    assert_eq!(tick(&fx.state, NOW + 3 * 3600).await.dispatched, vec![(job.clone(), "h1".to_string())]);
    let spec = &pending(&fx.state, "h1", NOW + 3 * 3600).await[0];
    assert_eq!((spec.job_id.as_str(), spec.not_before), (job.as_str(), NOW + 3 * 3600));
    fx.finish().await;
}

#[tokio::test]
async fn reboots_hold_the_wave_until_a_new_boot_id_or_timeout() {
    let fx = Fx::new().await;
    for h in ["h1", "h2", "h3"] {
        fx.host(h).await;
    }
    let mut req = new_job(&["h1", "h2", "h3"]);
    req.canary = 1;
    req.batch_size = 1;
    req.batch_percent = false;
    req.max_concurrent = 1;
    req.reboot = RebootChoice::Always;
    let job = create_job(&fx, &req, NOW).await;
    tick(&fx.state, NOW).await;
    assert_eq!(pending(&fx.state, "h1", NOW).await[0].reboot, RebootPolicy::Always);
    for (state, now) in [(JobState::Received, NOW), (JobState::Running, NOW + 1)] {
        event(fx.db(), "h1", &job, state, now).await.unwrap();
    }
    let ev = JobEvent { job_id: job.clone(), state: JobState::Succeeded, at: NOW + 2, result: Some(result(true)) };
    assert!(!results::record(fx.db(), "h1", &ev, NOW + 2).await.unwrap().duplicate);
    // Rebooting: still in flight, wave not settled.
    assert!(tick(&fx.state, NOW + 3).await.dispatched.is_empty());
    assert_eq!(in_flight(fx.db(), &job).await, 1);
    fx.checkin("h1", "boot-1", NOW + 30).await;
    assert!(tick(&fx.state, NOW + 31).await.dispatched.is_empty());
    // Back with a new boot id: the next wave goes.
    fx.checkin("h1", "boot-2", NOW + 90).await;
    assert_eq!(tick(&fx.state, NOW + 91).await.dispatched, vec![(job.clone(), "h2".to_string())]);
    let detail = crate::backend::jobs::queries::get(fx.db(), &admin_caller(), &job, NOW + 91).await.unwrap();
    let h1 = detail.hosts.iter().find(|h| h.host_id == "h1").unwrap();
    assert_eq!((h1.state, h1.reboot_state.as_str(), h1.display_state()), (HostJobState::Succeeded, "done", "succeeded"));

    // h2 reboots and never comes back: after the timeout the wave settles anyway.
    event(fx.db(), "h2", &job, JobState::Received, NOW + 92).await.unwrap();
    event(fx.db(), "h2", &job, JobState::Running, NOW + 92).await.unwrap();
    let ev = JobEvent { job_id: job.clone(), state: JobState::Succeeded, at: NOW + 93, result: Some(result(true)) };
    results::record(fx.db(), "h2", &ev, NOW + 93).await.unwrap();
    let detail = crate::backend::jobs::queries::get(fx.db(), &admin_caller(), &job, NOW + 94).await.unwrap();
    assert_eq!(detail.hosts.iter().find(|h| h.host_id == "h2").unwrap().display_state(), "rebooting");
    assert_eq!(detail.summary.counts.rebooting, 1);
    assert!(tick(&fx.state, NOW + 93 + scheduler::REBOOT_TIMEOUT_SECS - 1).await.dispatched.is_empty());
    let r = tick(&fx.state, NOW + 93 + scheduler::REBOOT_TIMEOUT_SECS).await;
    assert_eq!(r.dispatched, vec![(job.clone(), "h3".to_string())]);
    let rs: String = sqlx::query("SELECT reboot_state FROM job_hosts WHERE job_id = $1 AND host_id = 'h2'")
        .bind(&job)
        .fetch_one(&fx.db().pool)
        .await
        .unwrap()
        .try_get("reboot_state")
        .unwrap();
    assert_eq!(rs, "timeout");
    fx.finish().await;
}

#[tokio::test]
async fn dry_run_sends_no_hooks_or_reboot_and_runs_for_real_after() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    let hook = crate::backend::jobs::hooks::create(fx.db(), &Actor::Cli, "drain", &["/usr/bin/true".to_string()], 30, NOW)
        .await
        .unwrap();
    let mut req = new_job(&["h1"]);
    req.mode = JobMode::DryRun;
    req.reboot = RebootChoice::Always;
    req.pre_hook_ids = vec![hook.id.clone()];
    let dry = create_job(&fx, &req, NOW).await;
    tick(&fx.state, NOW).await;
    let spec = &pending(&fx.state, "h1", NOW).await[0];
    assert_eq!((spec.mode, spec.reboot), (WireMode::DryRun, RebootPolicy::Never));
    assert!(spec.pre_commands.is_empty() && spec.post_commands.is_empty());
    assert_eq!(control::run_for_real(fx.db(), &admin_caller(), &dry, NOW).await.unwrap_err().code(), "not_a_finished_dry_run");
    run_host(fx.db(), "h1", &dry, JobState::Succeeded, NOW + 1).await;
    tick(&fx.state, NOW + 2).await;
    let real = control::run_for_real(fx.db(), &admin_caller(), &dry, NOW + 3).await.unwrap();
    tick(&fx.state, NOW + 3).await;
    let spec = &pending(&fx.state, "h1", NOW + 3).await[0];
    assert_eq!(spec.job_id, real);
    assert_eq!((spec.mode, spec.reboot), (WireMode::Apply, RebootPolicy::Always));
    assert_eq!(spec.pre_commands.len(), 1);
    assert_eq!(spec.pre_commands[0].argv, vec!["/usr/bin/true".to_string()]);
    let detail = crate::backend::jobs::queries::get(fx.db(), &admin_caller(), &real, NOW + 3).await.unwrap();
    assert_eq!(detail.source_job_id.as_deref(), Some(dry.as_str()));
    fx.finish().await;
}

/// Two replicas (two pools, two `AppState`s) tick the same jobs at the same time while
/// agents finish hosts: never more than M in flight, every host dispatched exactly once,
/// every wave entered exactly once (a double advance would skip a wave's hosts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_database_never_over_dispatch() {
    let fx = Fx::new().await;
    let hosts: Vec<String> = (0..12).map(|i| format!("h{i:02}")).collect();
    for h in &hosts {
        fx.host(h).await;
    }
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    // Job A: one host per wave. Job B: one wave, at most 3 at once.
    let mut a = new_job(&refs[..6]);
    a.batch_size = 1;
    a.batch_percent = false;
    a.max_concurrent = 1;
    let job_a = create_job(&fx, &a, NOW).await;
    let mut b = new_job(&refs[6..]);
    b.max_concurrent = 3;
    let job_b = create_job(&fx, &b, NOW).await;

    let other = AppState::init(fx.tdb.settings(), Db::connect(&fx.tdb.url).await.unwrap(), NOW).await.unwrap();
    let mut dispatched: Vec<(String, String)> = Vec::new();
    let mut now = NOW;
    for round in 0..40 {
        now += 1;
        let (s1, s2) = (fx.state.clone(), other.clone());
        let t1 = tokio::spawn(async move { scheduler::tick(&s1, now).await });
        let t2 = tokio::spawn(async move { scheduler::tick(&s2, now).await });
        for r in [t1.await.unwrap().unwrap(), t2.await.unwrap().unwrap()] {
            dispatched.extend(r.dispatched);
        }
        assert!(in_flight(fx.db(), &job_a).await <= 1, "round {round}: job A over M");
        assert!(in_flight(fx.db(), &job_b).await <= 3, "round {round}: job B over M");
        // The agents finish whatever is dispatched (every other round, so some stay in flight).
        if round % 2 == 1 {
            for job in [&job_a, &job_b] {
                for (host, state) in states(fx.db(), job).await {
                    if state == "dispatched" {
                        run_host(fx.db(), &host, job, JobState::Succeeded, now).await;
                    }
                }
            }
        }
    }
    let mut seen = dispatched.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), dispatched.len(), "a host was dispatched twice: {dispatched:?}");
    assert_eq!(dispatched.len(), 12);
    assert_eq!(job_state(fx.db(), &job_a).await, ("completed".into(), 5));
    assert_eq!(job_state(fx.db(), &job_b).await.0, "completed");
    assert!(states(fx.db(), &job_a).await.values().all(|s| s == "succeeded"));
    assert_eq!(audit::list_by_action(fx.db(), "job.complete").await.unwrap().len(), 2);
    assert_eq!(audit::verify(fx.db()).await.unwrap().first_bad_seq, None);
    other.db.pool.close().await;
    fx.finish().await;
}
