//! What changed between two snapshots of installed packages (a job's before and after).
//!
//! Packages are keyed by name and architecture. Several versions of one key can be installed
//! at once (RPM install-only packages such as kernels): versions that disappeared pair up
//! with versions that appeared (in order), the rest are plain installs or removals.

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::jobs::PackageChange;
use crate::proto::InstalledPackage;

/// Changes from `before` to `after`, sorted by name, architecture, then versions.
pub fn diff(before: &[InstalledPackage], after: &[InstalledPackage]) -> Vec<PackageChange> {
    let index = |packages: &[InstalledPackage]| {
        let mut map: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for p in packages {
            map.entry((p.name.clone(), p.arch.clone())).or_default().insert(p.version.clone());
        }
        map
    };
    let (old, new) = (index(before), index(after));
    let empty = BTreeSet::new();
    let keys: BTreeSet<&(String, String)> = old.keys().chain(new.keys()).collect();
    let mut changes = Vec::new();
    for key in keys {
        let (was, is) = (old.get(key).unwrap_or(&empty), new.get(key).unwrap_or(&empty));
        let gone: Vec<&String> = was.difference(is).collect();
        let came: Vec<&String> = is.difference(was).collect();
        for i in 0..gone.len().max(came.len()) {
            changes.push(PackageChange {
                name: key.0.clone(),
                arch: key.1.clone(),
                before: gone.get(i).map(|v| (*v).clone()),
                after: came.get(i).map(|v| (*v).clone()),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, version: &str, arch: &str) -> InstalledPackage {
        InstalledPackage { name: name.into(), version: version.into(), arch: arch.into() }
    }

    fn change(name: &str, arch: &str, before: Option<&str>, after: Option<&str>) -> PackageChange {
        PackageChange {
            name: name.into(),
            arch: arch.into(),
            before: before.map(Into::into),
            after: after.map(Into::into),
        }
    }

    #[test]
    fn upgrades_installs_removals_and_install_only_packages() {
        let before = [
            p("openssl", "3.0.11", "amd64"),
            p("libc6", "2.36-9", "amd64"),
            p("libc6", "2.36-9", "i386"),
            p("old", "1.0", "all"),
            p("kernel-core", "5.14.0-1.el9", "x86_64"),
            p("same", "1", "all"),
        ];
        let after = [
            p("same", "1", "all"),
            p("openssl", "3.0.13", "amd64"),
            p("libc6", "2.36-9", "amd64"),
            p("libc6", "2.36-10", "i386"),
            p("new", "0.1", "all"),
            p("kernel-core", "5.14.0-1.el9", "x86_64"),
            p("kernel-core", "5.14.0-2.el9", "x86_64"),
        ];
        assert_eq!(
            diff(&before, &after),
            vec![
                change("kernel-core", "x86_64", None, Some("5.14.0-2.el9")),
                change("libc6", "i386", Some("2.36-9"), Some("2.36-10")),
                change("new", "all", None, Some("0.1")),
                change("old", "all", Some("1.0"), None),
                change("openssl", "amd64", Some("3.0.11"), Some("3.0.13")),
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }
}
