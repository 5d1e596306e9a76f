//! The apt backend against the real apt-get and dpkg: a local repository built by
//! `end2end/fixtures/deb/pm-deb-fixture.sh` (its own APT_CONFIG, nothing under /etc/apt
//! changes), test packages really installed with dpkg and purged at the end.

use std::path::Path;
use std::process::Command;

use agent::config::{Commands, LocalSettings};
use agent::pkg::{diff::diff, from_settings, PatchRequest};
use agent::proto::jobs::{PackageChange, PatchScope};
use agent::proto::PackageManager;

use crate::pkg_support::{dpkg_version, fixture_script, have, run_fixture, unique_prefix, write_script};

/// Purges the test packages when the test ends, also when it fails.
struct Purge(String);

impl Drop for Purge {
    fn drop(&mut self) {
        let status = Command::new("bash").arg(fixture_script("deb")).args(["purge", &self.0]).status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("warning: could not purge the test packages {}-*", self.0);
        }
    }
}

fn apt_mark(args: &[&str]) {
    assert!(Command::new("apt-mark").args(args).output().unwrap().status.success(), "apt-mark {args:?}");
}

#[test]
fn real_apt_get_installs_only_the_security_update() {
    if !have(
        "real_apt_get_installs_only_the_security_update",
        &["dpkg", "dpkg-deb", "apt-get", "apt-mark", "sha256sum"],
        true,
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("deb");
    let _purge = Purge(prefix.clone());
    let vars = run_fixture("deb", &["setup", dir.path().join("fx").to_str().unwrap(), &prefix]);
    let (sec, plain, apt_config) = (&vars["PM_DEB_SEC"], &vars["PM_DEB_PLAIN"], &vars["APT_CONFIG"]);
    assert_eq!(dpkg_version(sec).as_deref(), Some("1.0"));
    assert_eq!(dpkg_version(plain).as_deref(), Some("1.0"));

    // The agent inherits APT_CONFIG from its environment; here one test must not change the
    // environment of the whole test binary, so wrappers set it for the real programs.
    let wrap = |name: &str| {
        let path = dir.path().join(name);
        let real = agent::pkg::find_program(Path::new(name)).unwrap();
        write_script(&path, &format!("#!/bin/sh\nAPT_CONFIG='{apt_config}' exec '{}' \"$@\"\n", real.display()));
        path
    };
    let settings = LocalSettings {
        manager: Some(PackageManager::Apt),
        reboot_required_path: Some(dir.path().join("reboot-required")),
        lock_timeout_secs: Some(600),
        commands: Commands { apt_get: Some(wrap("apt-get")), apt_mark: Some(wrap("apt-mark")), ..Commands::default() },
        ..LocalSettings::default()
    };
    let backend = from_settings(&settings).unwrap();
    let ours = |changes: Vec<PackageChange>| -> Vec<PackageChange> {
        changes.into_iter().filter(|c| c.name.starts_with(&prefix)).collect()
    };
    let change = |name: &str, before: &str, after: &str| PackageChange {
        name: name.to_string(),
        arch: "all".into(),
        before: Some(before.into()),
        after: Some(after.into()),
    };

    let inventory = backend.inventory().unwrap();
    let update = |name: &str| inventory.updates.iter().find(|u| u.name == *name).cloned().unwrap();
    let (u_sec, u_plain) = (update(sec), update(plain));
    assert!(u_sec.security && u_sec.source == "pmtest-security", "{u_sec:?}");
    assert_eq!((u_sec.current_version.as_str(), u_sec.candidate_version.as_str()), ("1.0", "2.0"));
    assert!(!u_plain.security && u_plain.source == "pmtest-updates", "{u_plain:?}");
    assert!(inventory.installed.iter().any(|p| p.name == *sec && p.version == "1.0"));

    let security = PatchRequest { scope: &PatchScope::Security, exclude: &[] };
    assert_eq!(ours(backend.plan(security).unwrap()), vec![change(sec, "1.0", "2.0")]);
    let all = PatchRequest { scope: &PatchScope::All, exclude: &[] };
    assert_eq!(ours(backend.plan(all).unwrap()), vec![change(plain, "1.0", "1.1"), change(sec, "1.0", "2.0")]);

    // Security only, with the real apt-get.
    let before = backend.installed().unwrap();
    let mut lines = Vec::new();
    let outcome = backend.apply(security, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(outcome.success, "{outcome:?}\n{}", lines.join("\n"));
    assert!(
        lines.iter().any(|l| l.starts_with("$ ") && l.ends_with(&format!("install --only-upgrade -- {sec}"))),
        "{lines:?}"
    );
    let after = backend.installed().unwrap();
    assert_eq!(ours(diff(&before, &after)), vec![change(sec, "1.0", "2.0")]);
    assert_eq!(dpkg_version(sec).as_deref(), Some("2.0"));
    assert_eq!(dpkg_version(plain).as_deref(), Some("1.0"));

    // A held package stays as it is, even for "all" and when named.
    apt_mark(&["hold", plain]);
    let mut lines = Vec::new();
    let outcome = backend.apply(all, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(outcome.success, "{outcome:?}\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.starts_with("$ ") && l.ends_with("upgrade --with-new-pkgs")), "{lines:?}");
    assert_eq!(dpkg_version(plain).as_deref(), Some("1.0"));
    let named = PatchScope::Packages { names: vec![plain.clone()] };
    let mut lines = Vec::new();
    let outcome =
        backend.apply(PatchRequest { scope: &named, exclude: &[] }, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!((outcome.success, outcome.summary.as_str()), (true, "nothing to upgrade"));
    assert!(lines.contains(&format!("skipping {plain}: held by the package manager")), "{lines:?}");
    apt_mark(&["unhold", plain]);

    // Excluded: nothing to do; then named: upgraded.
    let exclude = [plain.clone()];
    assert!(ours(backend.plan(PatchRequest { scope: &PatchScope::All, exclude: &exclude }).unwrap()).is_empty());
    let outcome = backend.apply(PatchRequest { scope: &PatchScope::All, exclude: &exclude }, &mut |_| {}).unwrap();
    assert_eq!((outcome.success, outcome.summary.as_str()), (true, "nothing to upgrade"));
    assert_eq!(dpkg_version(plain).as_deref(), Some("1.0"));
    let outcome = backend.apply(PatchRequest { scope: &named, exclude: &[] }, &mut |_| {}).unwrap();
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(dpkg_version(plain).as_deref(), Some("1.1"));
    assert!(!backend.reboot_required().unwrap());
}
