//! A job from delivery to report.

use std::time::{Duration, Instant};

use agent::proto::jobs::{JobState, RebootPolicy};

use super::{change_of, hook, spec, unix_now, upgraded, Host};
use crate::server::{start, Delivery};

fn states(events: &[agent::proto::jobs::JobEvent]) -> Vec<JobState> {
    events.iter().map(|e| e.state).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_once_and_reports_versions_from_the_package_database() {
    let server = start().await;
    // Only the long poll delivers: a job "now" must start within seconds, not at a check-in.
    server.jobs.lock().delivery = Delivery::Poll;
    let mut host = Host::enroll(&server).await;
    host.start(None);
    host.wait("the first check-in", 30, || (!server.checkins.lock().unwrap().is_empty()).then_some(())).await;

    let mut s = spec("job-run");
    s.pre_commands = vec![hook("announce", "echo pre-command says hi")];
    // No shell: the argument reaches the program literally.
    s.post_commands = vec![agent::proto::jobs::HookCommand {
        name: "literal".into(),
        argv: vec!["/bin/echo".into(), "post $(id) ;".into()],
        timeout_secs: 10,
    }];
    let dispatched = Instant::now();
    server.jobs.dispatch(server.jobs.sign(&s));
    let event = host.terminal(&server, "job-run", 60).await;
    assert!(dispatched.elapsed() < Duration::from_secs(20), "took {:?}", dispatched.elapsed());

    assert_eq!(event.state, JobState::Succeeded, "{event:?}");
    let result = event.result.as_ref().unwrap();
    assert_eq!(result.changes.len(), 2, "{:?}", result.changes);
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    assert_eq!(change_of(&event, "libssl3"), upgraded("3.0.11-1", "3.0.13-1"));
    assert_eq!(result.reason, "2 package(s) updated");
    assert!(!result.reboot_pending);
    assert!(result.started_at > 0 && result.finished_at >= result.started_at);
    let out = &result.output;
    for expected in ["pre-command says hi", "Unpacking updates", "Setting up updates", "post $(id) ;"] {
        assert!(out.contains(expected), "{expected:?} missing from output:\n{out}");
    }
    assert_eq!(states(&server.jobs.events_of("job-run")), [JobState::Received, JobState::Running, JobState::Succeeded]);
    assert_eq!(host.applies(), 1);
    assert!(host.lines("apply.log")[0].contains("upgrade --with-new-pkgs"), "{:?}", host.lines("apply.log"));

    // Journal: finished and acknowledged (journaled once the server's answer is in, just
    // after the server recorded the report); the output log kept next to it.
    host.wait("the acknowledgement in the journal", 30, || {
        (host.journal("job-run")["report"]["status"] == "acknowledged").then_some(())
    })
    .await;
    assert_eq!(host.journal("job-run")["phase"], "finished");
    let log = std::fs::read_to_string(host.journal_dir().join("job-run.log")).unwrap();
    assert!(log.contains("Setting up updates"));

    // The check-in right after the job carries the new inventory.
    host.wait("an inventory with the new openssl", 30, || {
        let checkins = server.checkins.lock().unwrap();
        checkins
            .iter()
            .filter_map(|c| c.inventory.as_ref())
            .any(|inv| inv.installed.iter().any(|p| p.name == "openssl" && p.version == "3.0.13-1"))
            .then_some(())
    })
    .await;

    // A server that lost its state delivers the job again: it is not run again, its result
    // is sent again once (the server answers duplicate).
    server.jobs.lock().keep_delivering = true;
    host.wait("the result sent again", 30, || (server.jobs.terminal_reports("job-run").len() == 2).then_some(())).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(host.applies(), 1);
    let reports = server.jobs.terminal_reports("job-run");
    assert_eq!(reports.len(), 2, "re-sent once per agent process, not at every delivery");
    assert_eq!(reports[1].result, reports[0].result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_refuses_to_start_outside_the_window() {
    let server = start().await;
    server.jobs.lock().delivery = Delivery::CheckIn;
    let mut host = Host::enroll(&server).await;
    host.start(None);
    let marker = host.fake("hook-ran");
    let now = unix_now();
    let mut early = spec("job-early");
    (early.not_before, early.not_after) = (now + 3600, now + 7200);
    early.pre_commands = vec![hook("mark", &format!("touch {}", marker.display()))];
    let mut late = spec("job-late");
    (late.not_before, late.not_after) = (now - 7200, now - 3600);
    late.pre_commands = early.pre_commands.clone();
    server.jobs.dispatch(server.jobs.sign(&early));
    server.jobs.dispatch(server.jobs.sign(&late));

    for (id, word) in [("job-early", "opens at"), ("job-late", "ended at")] {
        let event = host.terminal(&server, id, 60).await;
        assert_eq!(event.state, JobState::Skipped, "{event:?}");
        let reason = &event.result.as_ref().unwrap().reason;
        assert!(reason.starts_with("outside its maintenance window") && reason.contains(word), "{reason}");
        assert_eq!(event.result.as_ref().unwrap().started_at, 0);
        assert_eq!(states(&server.jobs.events_of(id)), [JobState::Received, JobState::Skipped]);
    }
    assert_eq!(host.applies(), 0);
    assert!(!marker.exists(), "a pre-command ran outside the window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboot_policy_never_if_required_always() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(None);
    let flag = host.fake("reboot-required");

    // never: no reboot even though the host asks for one.
    std::fs::write(&flag, "").unwrap();
    let mut never = spec("job-never");
    never.reboot = RebootPolicy::Never;
    server.jobs.dispatch(server.jobs.sign(&never));
    let event = host.terminal(&server, "job-never", 60).await;
    assert_eq!(event.state, JobState::Succeeded);
    assert!(!event.result.as_ref().unwrap().reboot_pending);

    // if required, not required.
    std::fs::remove_file(&flag).unwrap();
    let mut not_required = spec("job-if-required-no");
    not_required.reboot = RebootPolicy::IfRequired;
    server.jobs.dispatch(server.jobs.sign(&not_required));
    let event = host.terminal(&server, "job-if-required-no", 60).await;
    assert_eq!(event.state, JobState::Succeeded);
    assert_eq!(event.result.as_ref().unwrap().reason, "nothing to update");
    assert!(!event.result.as_ref().unwrap().reboot_pending);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(host.lines("reboots").is_empty(), "rebooted without a reason");

    // if required, required: reboot after the report, with the configured command.
    std::fs::write(&flag, "").unwrap();
    let mut required = spec("job-if-required-yes");
    required.reboot = RebootPolicy::IfRequired;
    server.jobs.dispatch(server.jobs.sign(&required));
    let event = host.terminal(&server, "job-if-required-yes", 60).await;
    assert!(event.result.as_ref().unwrap().reboot_pending);
    host.wait("the reboot", 30, || (host.lines("reboots").len() == 1).then_some(())).await;
    assert_eq!(host.lines("reboots"), ["--now"]);
    // The server sees the reboot through the boot id of a later check-in.
    host.wait("a check-in with a new boot id", 30, || {
        let checkins = server.checkins.lock().unwrap();
        checkins.last().is_some_and(|c| !c.facts.boot_id.is_empty() && c.facts.boot_id != "boot-1").then_some(())
    })
    .await;

    // always: also without updates; and only after the server accepted the report.
    std::fs::remove_file(&flag).unwrap();
    server.jobs.lock().fail_terminal = 2;
    let mut always = spec("job-always");
    always.reboot = RebootPolicy::Always;
    server.jobs.dispatch(server.jobs.sign(&always));
    host.wait("two refused reports", 60, || (server.jobs.lock().rejected_terminal.len() == 2).then_some(())).await;
    assert_eq!(host.lines("reboots").len(), 1, "rebooted before the server had the result");
    let event = host.terminal(&server, "job-always", 60).await;
    assert!(event.result.as_ref().unwrap().reboot_pending);
    assert!(event.result.as_ref().unwrap().changes.is_empty(), "only the first job had updates");
    host.wait("the second reboot", 30, || (host.lines("reboots").len() == 2).then_some(())).await;
    let journal = host.journal("job-always");
    assert_eq!(journal["reboot"]["status"], "started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pre_command_and_cancelled_jobs_change_nothing() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(None);

    let mut failing = spec("job-pre-fails");
    failing.pre_commands = vec![hook("drain", "echo cannot drain >&2; exit 4")];
    server.jobs.dispatch(server.jobs.sign(&failing));
    let event = host.terminal(&server, "job-pre-fails", 60).await;
    assert_eq!(event.state, JobState::Failed);
    let result = event.result.as_ref().unwrap();
    assert_eq!(result.reason, "pre-command drain exited with status 4; no package was changed");
    assert!(result.output.contains("cannot drain"));
    assert!(result.changes.is_empty());

    // Cancelled on the server before the agent asked to start: never run, nothing reported.
    server.jobs.lock().cancelled.insert("job-cancelled".into());
    server.jobs.dispatch(server.jobs.sign(&spec("job-cancelled")));
    host.wait("the cancelled job journaled", 60, || {
        let path = host.journal_dir().join("job-cancelled.json");
        path.exists().then(|| host.journal("job-cancelled")).filter(|j| j["phase"] == "finished")
    })
    .await;
    assert_eq!(host.journal("job-cancelled")["outcome"]["state"], "cancelled");
    assert_eq!(states(&server.jobs.events_of("job-cancelled")), [JobState::Received]);
    assert_eq!(host.applies(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reboot_when_the_server_ended_the_job_otherwise_meanwhile() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(None);
    let mut s = spec("job-late-result");
    s.reboot = RebootPolicy::Always;
    // Slow enough for the server to give up on the host while it runs.
    s.post_commands = vec![hook("slow", "sleep 2")];
    server.jobs.dispatch(server.jobs.sign(&s));
    host.wait("the job to run", 60, || {
        server.jobs.events_of("job-late-result").iter().any(|e| e.state == JobState::Running).then_some(())
    })
    .await;
    let skipped = agent::proto::jobs::JobEvent {
        job_id: "job-late-result".into(),
        state: JobState::Skipped,
        at: unix_now(),
        result: None,
    };
    server.jobs.lock().terminal.insert("job-late-result".into(), skipped);
    host.wait("the late report", 60, || (!server.jobs.terminal_reports("job-late-result").is_empty()).then_some(()))
        .await;
    host.wait("the journal to settle", 30, || {
        (host.journal("job-late-result")["report"]["status"] == "acknowledged").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(host.lines("reboots").is_empty(), "rebooted although the server had ended the job");
    assert_eq!(host.journal("job-late-result")["reboot"]["status"], "not_needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_inventory_travels_while_a_job_may_be_changing_packages() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    host.start(Some("before_exec"));
    let has_inventory = |from: usize| server.checkins.lock().unwrap().iter().skip(from).any(|c| c.inventory.is_some());
    host.wait("the first inventory", 30, || has_inventory(0).then_some(())).await;
    server.jobs.dispatch(server.jobs.sign(&spec("job-flux")));
    host.wait("the job to stop before apt-get", 30, || host.paused("job-flux", "before_exec").then_some(())).await;

    // The database changes under the job (as during a transaction): check-ins go on, without
    // an inventory, until the job is over.
    let from = server.checkins.lock().unwrap().len();
    let db = std::fs::read_to_string(host.fake("db")).unwrap().replace("openssl\t3.0.11-1", "openssl\t3.0.13-1");
    std::fs::write(host.fake("db"), db).unwrap();
    host.wait("three more check-ins", 30, || (server.checkins.lock().unwrap().len() >= from + 3).then_some(())).await;
    assert!(!has_inventory(from), "an inventory was sent while the job was between its snapshots");

    // After the restart the job is reported interrupted, then the new inventory goes out.
    host.kill9();
    host.start(None);
    let event = host.terminal(&server, "job-flux", 60).await;
    assert_eq!(event.state, JobState::Interrupted, "{event:?}");
    assert_eq!(change_of(&event, "openssl"), upgraded("3.0.11-1", "3.0.13-1"));
    host.wait("the inventory with the new openssl", 30, || {
        let checkins = server.checkins.lock().unwrap();
        let newest = checkins.iter().rev().find_map(|c| c.inventory.as_ref())?;
        newest.installed.iter().any(|p| p.name == "openssl" && p.version == "3.0.13-1").then_some(())
    })
    .await;
}
