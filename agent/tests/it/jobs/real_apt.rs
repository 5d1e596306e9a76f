//! A patch job with the real apt-get and dpkg, through the agent binary: the security update
//! of a test package really installed, the result's versions read back from dpkg.

use agent::proto::jobs::{JobState, PatchScope, RebootPolicy};

use super::{change_of, spec, upgraded, Host};
use crate::pkg_support::{dpkg_version, fixture_script, have, run_fixture, unique_prefix};
use crate::server::start;

/// Purges the test packages when the test ends, also when it fails.
struct Purge(String);

impl Drop for Purge {
    fn drop(&mut self) {
        let status = std::process::Command::new("bash").arg(fixture_script("deb")).args(["purge", &self.0]).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("warning: could not purge the test packages {}-*", self.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_apt_job_installs_the_security_update_and_reports_dpkg_versions() {
    let test = "real_apt_job_installs_the_security_update_and_reports_dpkg_versions";
    if !have(test, &["dpkg", "dpkg-deb", "dpkg-query", "apt-get", "apt-mark", "sha256sum"], true) {
        return;
    }
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    let prefix = unique_prefix("job");
    let _purge = Purge(prefix.clone());
    let fixture = host.fake("deb-fixture");
    let vars = run_fixture("deb", &["setup", fixture.to_str().unwrap(), &prefix]);
    let (sec, plain) = (&vars["PM_DEB_SEC"], &vars["PM_DEB_PLAIN"]);
    host.use_real_apt(&vars["APT_CONFIG"]);
    host.start(None);

    let mut s = spec("job-real-apt");
    s.scope = PatchScope::Security;
    s.reboot = RebootPolicy::IfRequired;
    server.jobs.dispatch(server.jobs.sign(&s));
    let event = host.terminal(&server, "job-real-apt", 300).await;

    assert_eq!(event.state, JobState::Succeeded, "{event:?}\n{}", host.logs());
    assert_eq!(change_of(&event, sec), upgraded("1.0", "2.0"));
    assert_eq!(change_of(&event, plain), None, "not a security update");
    assert_eq!(dpkg_version(sec).as_deref(), Some("2.0"));
    assert_eq!(dpkg_version(plain).as_deref(), Some("1.0"));
    let result = event.result.as_ref().unwrap();
    assert!(result.output.contains(&format!("install --only-upgrade -- {sec}")), "{}", result.output);
    assert!(!result.reboot_pending);
    assert!(host.lines("reboots").is_empty());
}
