//! The dnf and zypper backends against the real dnf, zypper and rpm on this machine, on an
//! install-root tree built by `end2end/fixtures/rpm/pm-rpm-fixture.sh` (nothing outside the
//! temporary directory changes).

use agent::config::LocalSettings;
use agent::pkg::{diff::diff, from_settings, PatchRequest};
use agent::proto::jobs::{PackageChange, PatchScope};
use agent::proto::PackageManager;

use crate::pkg_support::{have, rpm_version, run_fixture, unique_prefix};

const FIXTURE_TOOLS: [&str; 5] = ["bash", "rpm", "rpmbuild", "createrepo_c", "modifyrepo_c"];

fn real_rpm_manager(manager: PackageManager, tool: &str) {
    let test = format!("real_{tool}_security_update_in_an_install_root");
    let tools: Vec<&str> = FIXTURE_TOOLS.iter().copied().chain([tool]).collect();
    if !have(&test, &tools, false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vars = run_fixture("rpm", &["setup", dir.path().to_str().unwrap(), &unique_prefix(tool)]);
    let (root, sec, plain) = (&vars["PM_RPM_ROOT"], &vars["PM_RPM_SEC"], &vars["PM_RPM_PLAIN"]);
    let settings = LocalSettings {
        manager: Some(manager),
        package_root: Some(root.into()),
        lock_timeout_secs: Some(120),
        ..LocalSettings::default()
    };
    let backend = from_settings(&settings).unwrap();
    assert_eq!(backend.manager(), manager);
    let change = |name: &str, before: &str, after: &str| PackageChange {
        name: name.to_string(),
        arch: "noarch".into(),
        before: Some(before.into()),
        after: Some(after.into()),
    };

    let inventory = backend.inventory().unwrap();
    assert_eq!(inventory.installed.len(), 2, "{:?}", inventory.installed);
    let update = |name: &str| inventory.updates.iter().find(|u| u.name == *name).cloned().unwrap();
    let (u_sec, u_plain) = (update(sec), update(plain));
    assert_eq!(inventory.updates.len(), 2, "{:?}", inventory.updates);
    assert!(u_sec.security, "{u_sec:?}");
    assert_eq!((u_sec.current_version.as_str(), u_sec.candidate_version.as_str()), ("1.0-1", "2.0-1"));
    assert_eq!(u_sec.source, "pmtest-updates");
    assert!(!u_plain.security, "{u_plain:?}");
    assert_eq!((u_plain.current_version.as_str(), u_plain.candidate_version.as_str()), ("1.0-1", "1.1-1"));

    let security = PatchRequest { scope: &PatchScope::Security, exclude: &[] };
    assert_eq!(backend.plan(security).unwrap(), vec![change(sec, "1.0-1", "2.0-1")]);
    let all = PatchRequest { scope: &PatchScope::All, exclude: &[] };
    assert_eq!(backend.plan(all).unwrap(), vec![change(plain, "1.0-1", "1.1-1"), change(sec, "1.0-1", "2.0-1")]);

    let before = backend.installed().unwrap();
    let mut lines = Vec::new();
    let outcome = backend.apply(security, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(outcome.success, "{outcome:?}\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.starts_with("$ ")), "{lines:?}");
    let after = backend.installed().unwrap();
    assert_eq!(diff(&before, &after), vec![change(sec, "1.0-1", "2.0-1")]);
    assert_eq!(rpm_version(root, sec).as_deref(), Some("2.0-1"));
    assert_eq!(rpm_version(root, plain).as_deref(), Some("1.0-1"), "the non-security package was touched");

    // Everything but the excluded package: nothing left to do.
    let exclude = [plain.clone()];
    let outcome = backend.apply(PatchRequest { scope: &PatchScope::All, exclude: &exclude }, &mut |_| {}).unwrap();
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(rpm_version(root, plain).as_deref(), Some("1.0-1"));

    // By name (a name that is not installed is skipped, never installed).
    let named = PatchScope::Packages { names: vec![plain.clone(), format!("{plain}-absent")] };
    let mut lines = Vec::new();
    let outcome =
        backend.apply(PatchRequest { scope: &named, exclude: &[] }, &mut |l| lines.push(l.to_string())).unwrap();
    assert!(outcome.success, "{outcome:?}\n{}", lines.join("\n"));
    assert_eq!(rpm_version(root, plain).as_deref(), Some("1.1-1"));
    assert_eq!(rpm_version(root, &format!("{plain}-absent")), None);
    assert!(backend.inventory().unwrap().updates.is_empty());
    assert!(!backend.reboot_required().unwrap());
}

#[test]
fn real_dnf_security_update_in_an_install_root() {
    real_rpm_manager(PackageManager::Dnf, "dnf");
}

#[test]
fn real_zypper_security_update_in_an_install_root() {
    real_rpm_manager(PackageManager::Zypper, "zypper");
}
