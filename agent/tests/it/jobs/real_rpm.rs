//! The whole agent with the real dnf and the real zypper on an install root built by
//! `end2end/fixtures/rpm` (agent.toml `manager` + `package_root`, default lock files): the
//! check-in inventory (installed packages from the root's rpm database, pending updates with
//! the right security flag), then signed jobs: a dry run that reports the exact plan and
//! changes nothing, a security job whose exclusion leaves nothing to do, and a security job
//! that really upgrades the security package (versions read back from the root's rpm
//! database) and leaves the bugfix update alone. Nothing outside the temporary directory is
//! installed; the reboot command is the recorder.

use agent::proto::jobs::{JobEvent, JobMode, JobState, PackageChange, PatchScope, RebootPolicy};
use agent::proto::{InstalledPackage, Inventory, PackageManager, PendingUpdate};

use super::{spec, Host};
use crate::pkg_support::{have, rpm_version, run_fixture, unique_prefix};
use crate::server::{start, FakeServer};

const FIXTURE_TOOLS: [&str; 5] = ["bash", "rpm", "rpmbuild", "createrepo_c", "modifyrepo_c"];

fn change(name: &str, before: &str, after: &str) -> PackageChange {
    PackageChange { name: name.into(), arch: "noarch".into(), before: Some(before.into()), after: Some(after.into()) }
}

fn installed(name: &str, version: &str) -> InstalledPackage {
    InstalledPackage { name: name.into(), version: version.into(), arch: "noarch".into() }
}

fn pending(name: &str, current: &str, candidate: &str, security: bool) -> PendingUpdate {
    PendingUpdate {
        name: name.into(),
        arch: "noarch".into(),
        current_version: current.into(),
        candidate_version: candidate.into(),
        source: "pmtest-updates".into(),
        security,
    }
}

/// The newest inventory the server received after `after` check-ins.
async fn inventory_after(server: &FakeServer, host: &Host, after: usize, what: &str) -> Inventory {
    host.wait(what, 180, || server.checkins.lock().unwrap().iter().skip(after).rev().find_map(|c| c.inventory.clone()))
        .await
}

async fn run(server: &FakeServer, host: &Host, job: agent::proto::jobs::JobSpec) -> JobEvent {
    let id = job.job_id.clone();
    server.jobs.dispatch(server.jobs.sign(&job));
    let event = host.terminal(server, &id, 300).await;
    assert_eq!(event.state, JobState::Succeeded, "{event:?}\n{}", host.logs());
    event
}

/// `rpm -q NAME` on the machine itself: our test packages must never get there.
fn on_the_host(name: &str) -> bool {
    std::process::Command::new("rpm").args(["-q", name]).output().unwrap().status.success()
}

async fn real_rpm_jobs(manager: PackageManager, tool: &str, security_command: &str) {
    let test = format!("real_{tool}_jobs_through_the_agent");
    let tools: Vec<&str> = FIXTURE_TOOLS.iter().copied().chain([tool]).collect();
    if !have(&test, &tools, false) {
        return;
    }
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    let fixture = host.fake("rpm-fixture");
    let vars = run_fixture("rpm", &["setup", fixture.to_str().unwrap(), &unique_prefix(&format!("{tool}job"))]);
    let (root, sec, plain) = (&vars["PM_RPM_ROOT"], &vars["PM_RPM_SEC"], &vars["PM_RPM_PLAIN"]);
    host.use_rpm_manager(manager, std::path::Path::new(root), &[]);
    host.start(None);

    // Check-in: the root's rpm database and its pending updates, the security one flagged.
    let inventory = inventory_after(&server, &host, 0, "the first inventory").await;
    assert_eq!(inventory.manager, manager);
    assert_eq!(inventory.installed, [installed(plain, "1.0-1"), installed(sec, "1.0-1")]);
    assert_eq!(inventory.updates, [pending(plain, "1.0-1", "1.1-1", false), pending(sec, "1.0-1", "2.0-1", true)]);

    // Dry run of everything: the exact plan, nothing installed.
    let mut dry = spec(&format!("job-{tool}-dry-run"));
    dry.mode = JobMode::DryRun;
    let event = run(&server, &host, dry).await;
    let result = event.result.as_ref().unwrap();
    assert_eq!(result.changes, [change(plain, "1.0-1", "1.1-1"), change(sec, "1.0-1", "2.0-1")]);
    assert_eq!(result.reason, "dry run: 2 package(s) would change");
    assert!(!result.reboot_pending);
    assert_eq!(
        (rpm_version(root, sec).as_deref(), rpm_version(root, plain).as_deref()),
        (Some("1.0-1"), Some("1.0-1"))
    );

    // Security only, but the security package excluded: nothing to do, nothing changed.
    let mut excluded = spec(&format!("job-{tool}-excluded"));
    excluded.scope = PatchScope::Security;
    excluded.exclude = vec![sec.clone()];
    let event = run(&server, &host, excluded).await;
    let result = event.result.as_ref().unwrap();
    assert!(result.changes.is_empty(), "{result:?}");
    assert_eq!(result.reason, "nothing to update");
    assert_eq!(
        (rpm_version(root, sec).as_deref(), rpm_version(root, plain).as_deref()),
        (Some("1.0-1"), Some("1.0-1"))
    );

    // The root's own reboot flag (what libzypp writes after an update that wants a reboot)
    // does not reboot this machine: the root is not the running system.
    std::fs::create_dir_all(format!("{root}/run")).unwrap();
    std::fs::write(format!("{root}/run/reboot-needed"), "").unwrap();

    // Security only, for real.
    let checkins_before = server.checkins.lock().unwrap().len();
    let mut security = spec(&format!("job-{tool}-security"));
    security.scope = PatchScope::Security;
    security.reboot = RebootPolicy::IfRequired;
    let event = run(&server, &host, security).await;
    let result = event.result.as_ref().unwrap();
    assert_eq!(result.changes, [change(sec, "1.0-1", "2.0-1")], "{}", result.output);
    assert_eq!(result.reason, "1 package(s) updated");
    assert!(result.output.contains(security_command), "{}", result.output);
    assert_eq!(rpm_version(root, sec).as_deref(), Some("2.0-1"));
    assert_eq!(rpm_version(root, plain).as_deref(), Some("1.0-1"), "the bugfix update was installed");
    assert!(!result.reboot_pending);
    assert!(result.output.contains("no reboot required"), "{}", result.output);

    // The next check-in reports the new state: only the bugfix update is left.
    let inventory = inventory_after(&server, &host, checkins_before, "the inventory after the job").await;
    assert_eq!(inventory.installed, [installed(plain, "1.0-1"), installed(sec, "2.0-1")]);
    assert_eq!(inventory.updates, [pending(plain, "1.0-1", "1.1-1", false)]);

    if manager == PackageManager::Zypper {
        let log = std::fs::read_to_string(format!("{root}/var/log/zypper.log")).unwrap_or_default();
        assert!(log.contains(sec.as_str()), "zypper did not log into the install root");
    }
    // No check-in ever carried an inventory read while a job was changing packages (rpm's
    // list from before a transaction with dnf's or zypper's pending updates from after it).
    let first = [installed(plain, "1.0-1"), installed(sec, "1.0-1")];
    let last = [installed(plain, "1.0-1"), installed(sec, "2.0-1")];
    for inventory in server.checkins.lock().unwrap().iter().filter_map(|c| c.inventory.as_ref()) {
        let consistent = (inventory.installed == first && inventory.updates.len() == 2)
            || (inventory.installed == last && inventory.updates.len() == 1);
        assert!(consistent, "torn inventory: {inventory:?}");
    }
    assert!(host.lines("reboots").is_empty());
    assert!(!on_the_host(sec) && !on_the_host(plain), "a test package reached the machine's own rpm database");
    let reports: usize = ["dry-run", "excluded", "security"]
        .iter()
        .map(|j| server.jobs.terminal_reports(&format!("job-{tool}-{j}")).len())
        .sum();
    assert_eq!(reports, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_dnf_jobs_through_the_agent() {
    real_rpm_jobs(PackageManager::Dnf, "dnf", "--refresh -y upgrade --security").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_zypper_jobs_through_the_agent() {
    real_rpm_jobs(PackageManager::Zypper, "zypper", "patch --category security --auto-agree-with-licenses").await;
}
