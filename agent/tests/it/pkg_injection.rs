//! Package names never become options, paths or shell code: fake package managers record
//! their argv, and the tests check that hostile names (in the request, or printed by the
//! package manager itself) never reach it and that the real argv are exactly the expected ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent::config::{Commands, LocalSettings};
use agent::pkg::{from_settings, PackageBackend, PatchRequest};
use agent::proto::jobs::PatchScope;
use agent::proto::PackageManager;
use agent::AgentError;

use crate::pkg_support::{calls, clear_calls, fake};

const HOSTILE: &[&str] = &[
    "-y",
    "--allow-downgrades",
    "-oAPT::Get::AllowUnauthenticated=1",
    "--setopt=gpgcheck=0",
    "/tmp/evil.deb",
    "./evil.rpm",
    "evil.rpm",
    "../evil",
    "open*",
    "lib?",
    "lib[ab]",
    "openssl=1.0",
    "openssl>1",
    "openssl-",
    "a;reboot",
    "$(reboot)",
    "`id`",
    "a|b",
    "a&&b",
    "a b",
    "a\nb",
    "a\tb",
    "",
    "x\u{0}",
    "~user",
    "{a,b}",
];

const APT_SIM: &str = "\
Inst openssl [3.0.11-1] (3.0.13-1 Debian-Security:12/stable-security [amd64])
Inst -oAPT::Get::AllowUnauthenticated=1 [1] (2 Debian-Security:12/stable-security [all])
Inst $(reboot) [1] (2 Debian-Security:12/stable-security [all])
Inst libheld [1] (2 Debian-Security:12/stable-security [all])
Inst tzdata [2024a-0] (2024a-1 Debian:12/stable-updates [all])
Inst libc6:i386 [2.36-9] (2.36-10 Debian-Security:12/stable-security [i386])
";

const APT_ENV: &[&str] =
    &["DEBIAN_FRONTEND", "NEEDRESTART_MODE", "NEEDRESTART_SUSPEND", "APT_LISTCHANGES_FRONTEND", "LC_ALL"];

fn settings(manager: PackageManager, commands: Commands, root: Option<&str>) -> LocalSettings {
    LocalSettings {
        manager: Some(manager),
        package_root: root.map(PathBuf::from),
        lock_timeout_secs: Some(7),
        apply_timeout_secs: Some(60),
        commands,
        ..LocalSettings::default()
    }
}

fn apt_backend(dir: &Path) -> Box<dyn PackageBackend> {
    let sim = format!(
        "for a in \"$@\"; do case \"$a\" in -s) sim=1;; update) upd=1;; esac; done\n\
         if [ -n \"$upd\" ]; then echo 'Reading package lists...'; exit 0; fi\n\
         if [ -n \"$sim\" ]; then cat <<'X'\n{APT_SIM}X\nexit 0; fi\necho 'Setting up openssl'\n"
    );
    let commands = Commands {
        apt_get: Some(fake(dir, "apt-get", APT_ENV, &sim)),
        apt_mark: Some(fake(dir, "apt-mark", &[], "echo libheld")),
        dpkg_query: Some(fake(
            dir,
            "dpkg-query",
            &[],
            "printf 'openssl\\t3.0.11-1\\tamd64\\tii \\nlibheld\\t1\\tall\\tii \\nlibc6\\t2.36-9\\ti386\\tii \\nbash\\t5.2\\tamd64\\tii \\n'",
        )),
        ..Commands::default()
    };
    from_settings(&settings(PackageManager::Apt, commands, None)).unwrap()
}

const DNF_TABLE: &str = "\
Dependencies resolved.
 Package        Arch     Version            Repository   Size
Upgrading:
 openssl        x86_64   1:3.0.7-25.el9_3   baseos       1.2 M

Transaction Summary
";

fn dnf_backend(dir: &Path) -> Box<dyn PackageBackend> {
    let body = format!(
        "for a in \"$@\"; do [ \"$a\" = --assumeno ] && {{ cat <<'X'\n{DNF_TABLE}X\necho 'Operation aborted.' >&2; exit 1; }}; done\n\
         echo Complete!\n"
    );
    let commands = Commands {
        dnf: Some(fake(dir, "dnf", &["LC_ALL"], &body)),
        rpm: Some(fake(
            dir,
            "rpm",
            &[],
            "printf 'openssl\\t1\\t3.0.7\\t24.el9\\tx86_64\\nbash\\t0\\t5.1\\t1\\tx86_64\\n'",
        )),
        ..Commands::default()
    };
    from_settings(&settings(PackageManager::Dnf, commands, Some("/r"))).unwrap()
}

const ZYPPER_PATCH_SUMMARY: &str = r#"<?xml version='1.0'?>
<stream><install-summary><to-upgrade>
<solvable type="package" name="openssl" edition="3.0.8-2" arch="x86_64" edition-old="3.0.8-1" arch-old="x86_64"/>
<solvable type="package" name="tzdata" edition="2024a-1" arch="noarch" edition-old="2023c-1" arch-old="noarch"/>
<solvable type="package" name="-oEvil" edition="2-1" arch="noarch" edition-old="1-1" arch-old="noarch"/>
</to-upgrade></install-summary></stream>"#;

const ZYPPER_UPDATE_SUMMARY: &str = r#"<?xml version='1.0'?>
<stream><install-summary><to-upgrade>
<solvable type="package" name="openssl" edition="3.0.8-2" arch="x86_64" edition-old="3.0.8-1" arch-old="x86_64"/>
</to-upgrade></install-summary></stream>"#;

fn zypper_backend(dir: &Path) -> Box<dyn PackageBackend> {
    let state = dir.join("zypper-passes");
    let body = format!(
        "for a in \"$@\"; do case \"$a\" in --dry-run) dry=1;; patch) patch=1;; refresh) refresh=1;; esac; done\n\
         if [ -n \"$refresh\" ]; then exit 0; fi\n\
         if [ -n \"$dry\" ] && [ -n \"$patch\" ]; then cat <<'X'\n{ZYPPER_PATCH_SUMMARY}\nX\nexit 0; fi\n\
         if [ -n \"$dry\" ]; then cat <<'X'\n{ZYPPER_UPDATE_SUMMARY}\nX\nexit 0; fi\n\
         if [ -n \"$patch\" ] && [ ! -e '{state}' ]; then touch '{state}'; echo 'updated the update stack'; exit 103; fi\n\
         echo done\n",
        state = state.display()
    );
    let commands = Commands {
        zypper: Some(fake(dir, "zypper", &["ZYPP_LOCK_TIMEOUT", "ZYPP_LOGFILE", "PM_AGENT_PACKAGE_RUN"], &body)),
        rpm: Some(fake(
            dir,
            "rpm",
            &[],
            "printf 'openssl\\t0\\t3.0.8\\t1\\tx86_64\\ntzdata\\t0\\t2023c\\t1\\tnoarch\\n'",
        )),
        ..Commands::default()
    };
    from_settings(&settings(PackageManager::Zypper, commands, Some("/r"))).unwrap()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn apply(
    backend: &dyn PackageBackend,
    scope: &PatchScope,
    exclude: &[&str],
) -> (agent::pkg::ApplyOutcome, Vec<String>) {
    let exclude = strings(exclude);
    let mut lines = Vec::new();
    let outcome = backend.apply(PatchRequest { scope, exclude: &exclude }, &mut |l| lines.push(l.to_string())).unwrap();
    (outcome, lines)
}

#[test]
fn hostile_names_never_reach_any_package_manager() {
    let dir = tempfile::tempdir().unwrap();
    let backends = [apt_backend(dir.path()), dnf_backend(dir.path()), zypper_backend(dir.path())];
    for backend in &backends {
        for hostile in HOSTILE {
            let in_scope = PatchScope::Packages { names: vec!["openssl".into(), hostile.to_string()] };
            let excluded = [hostile.to_string()];
            for (scope, exclude) in
                [(&in_scope, &[][..]), (&PatchScope::All, &excluded[..]), (&PatchScope::Security, &excluded[..])]
            {
                let request = PatchRequest { scope, exclude };
                let err = backend.plan(request).unwrap_err();
                assert!(matches!(err, AgentError::Usage(_)), "{:?} {hostile:?}: {err}", backend.manager());
                let mut lines = Vec::new();
                let err = backend.apply(request, &mut |l| lines.push(l.to_string())).unwrap_err();
                assert!(matches!(err, AgentError::Usage(_)), "{:?} {hostile:?}: {err}", backend.manager());
                assert!(lines.is_empty());
            }
        }
    }
    assert!(calls(dir.path()).is_empty(), "a program ran: {:?}", calls(dir.path()));
}

#[test]
fn apt_argv_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let backend = apt_backend(dir.path());
    let install_opts = [
        "-y",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=7",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        "--no-remove",
    ];
    let env = [
        "DEBIAN_FRONTEND=noninteractive",
        "NEEDRESTART_MODE=a",
        "NEEDRESTART_SUSPEND=1",
        "APT_LISTCHANGES_FRONTEND=none",
        "LC_ALL=C",
    ];
    let call = |program: &str, args: &[&str], with_env: bool| {
        let mut v = vec![program.to_string()];
        v.extend(strings(args));
        if with_env {
            v.extend(strings(&env));
        }
        v
    };
    fn with(install_opts: &[&'static str], pre: &[&'static str], post: &[&'static str]) -> Vec<&'static str> {
        [pre, install_opts, post].concat()
    }
    let with = |pre: &[&'static str], post: &[&'static str]| with(&install_opts, pre, post);
    let refresh = call("apt-get", &["-q", "-o", "DPkg::Lock::Timeout=7", "update"], true);
    let showhold = call("apt-mark", &["showhold"], false);
    let sim_upgrade =
        call("apt-get", &with(&["-s", "-o", "Debug::NoLocking=1"], &["upgrade", "--with-new-pkgs"]), true);

    // Security: the security upgrades of the simulation, minus holds and non-names.
    let (outcome, lines) = apply(&*backend, &PatchScope::Security, &[]);
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        calls(dir.path()),
        vec![
            refresh.clone(),
            showhold.clone(),
            sim_upgrade.clone(),
            call("apt-get", &with(&[], &["install", "--only-upgrade", "--", "openssl", "libc6:i386"]), true),
        ]
    );
    assert!(
        lines.iter().any(|l| l.contains("\"-oAPT::Get::AllowUnauthenticated=1\": not a valid package name")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("\"$(reboot)\": not a valid package name")), "{lines:?}");
    assert!(lines.iter().any(|l| l == "skipping libheld: held by the package manager"), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("$ ") && l.ends_with("install --only-upgrade -- openssl libc6:i386")));
    assert!(lines.iter().any(|l| l == "Setting up openssl"), "{lines:?}");

    // All without exclusions: upgrade --with-new-pkgs (holds are apt's business).
    clear_calls(dir.path());
    let (outcome, _) = apply(&*backend, &PatchScope::All, &[]);
    assert!(outcome.success);
    assert_eq!(
        calls(dir.path()),
        vec![refresh.clone(), showhold.clone(), call("apt-get", &with(&[], &["upgrade", "--with-new-pkgs"]), true)]
    );

    // Packages: only installed, not held, not excluded names.
    clear_calls(dir.path());
    let scope = PatchScope::Packages { names: strings(&["openssl", "libheld", "nginx", "bash"]) };
    let (outcome, lines) = apply(&*backend, &scope, &["bash"]);
    assert!(outcome.success);
    let got = calls(dir.path());
    assert_eq!(
        got.last().unwrap(),
        &call("apt-get", &with(&[], &["install", "--only-upgrade", "--", "openssl"]), true)
    );
    assert!(lines.contains(&"skipping nginx: not installed".to_string()), "{lines:?}");
    assert!(lines.contains(&"skipping bash: excluded by the job".to_string()), "{lines:?}");

    // All with an exclusion that a dependency would drag in: simulated, refused, not run.
    clear_calls(dir.path());
    let (outcome, lines) = apply(&*backend, &PatchScope::All, &["tzdata"]);
    assert!(!outcome.success);
    assert!(outcome.summary.contains("excluded package(s) tzdata.all"), "{outcome:?}");
    assert!(lines.contains(&"skipping tzdata: excluded by the job".to_string()), "{lines:?}");
    let got = calls(dir.path());
    assert!(got.iter().skip(1).all(|c| c[0] != "apt-get" || c[1] == "-s"), "ran a real install: {got:?}");
    assert_eq!(
        got.last().unwrap(),
        &call(
            "apt-get",
            &with(&["-s", "-o", "Debug::NoLocking=1"], &["install", "--only-upgrade", "--", "openssl", "libc6:i386"]),
            true
        )
    );

    // Nothing selected: no install command at all.
    clear_calls(dir.path());
    let (outcome, _) = apply(&*backend, &PatchScope::Packages { names: strings(&["nginx"]) }, &[]);
    assert_eq!((outcome.success, outcome.summary.as_str()), (true, "nothing to upgrade"));
    assert!(calls(dir.path()).iter().all(|c| c[0] != "apt-get" || c.contains(&"update".to_string())));

    // plan = the same command simulated.
    clear_calls(dir.path());
    let scope = PatchScope::Packages { names: strings(&["openssl"]) };
    let plan = backend.plan(PatchRequest { scope: &scope, exclude: &[] }).unwrap();
    // The plan is the simulation as printed (data, never argv): all six lines of the fake.
    assert_eq!(plan.len(), 6, "{plan:?}");
    assert_eq!(
        calls(dir.path()).last().unwrap(),
        &call(
            "apt-get",
            &with(&["-s", "-o", "Debug::NoLocking=1"], &["install", "--only-upgrade", "--", "openssl"]),
            true
        )
    );
}

#[test]
fn dnf_argv_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let backend = dnf_backend(dir.path());
    let rpm = strings(&[
        "rpm",
        "--root",
        "/r",
        "-qa",
        "--qf",
        "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n",
    ]);
    let dnf = |args: &[&str]| {
        [strings(&["dnf", "--installroot", "/r", "--refresh"]), strings(args), strings(&["LC_ALL=C"])].concat()
    };

    let (outcome, lines) = apply(&*backend, &PatchScope::Security, &["kernel-core", "openssl"]);
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        calls(dir.path()),
        vec![dnf(&["--exclude=kernel-core", "--exclude=openssl", "-y", "upgrade", "--security"])]
    );
    let shown = format!(
        "$ {} --installroot /r --refresh --exclude=kernel-core --exclude=openssl -y upgrade --security",
        dir.path().join("dnf").display()
    );
    assert_eq!(lines.first(), Some(&shown));

    clear_calls(dir.path());
    let (outcome, _) = apply(&*backend, &PatchScope::All, &[]);
    assert!(outcome.success);
    assert_eq!(calls(dir.path()), vec![dnf(&["-y", "upgrade"])]);

    clear_calls(dir.path());
    let scope = PatchScope::Packages { names: strings(&["openssl", "notinstalled", "bash"]) };
    let (outcome, lines) = apply(&*backend, &scope, &["bash"]);
    assert!(outcome.success);
    assert_eq!(calls(dir.path()), vec![rpm.clone(), dnf(&["--exclude=bash", "-y", "upgrade", "--", "openssl"])]);
    assert!(lines.contains(&"skipping notinstalled: not installed".to_string()));

    clear_calls(dir.path());
    let plan = backend.plan(PatchRequest { scope: &PatchScope::Security, exclude: &[] }).unwrap();
    assert_eq!(calls(dir.path()), vec![dnf(&["--assumeno", "upgrade", "--security"]), rpm]);
    assert_eq!(plan.len(), 1);
    assert_eq!(
        (plan[0].before.as_deref(), plan[0].after.as_deref()),
        (Some("1:3.0.7-24.el9"), Some("1:3.0.7-25.el9_3"))
    );
}

#[test]
fn zypper_argv_per_scope() {
    let dir = tempfile::tempdir().unwrap();
    let backend = zypper_backend(dir.path());
    // zypper logs into the install root. The runs of a patch (not the queries and
    // simulations) carry the agent's pid, so a restarted agent can wait for them.
    let env = |marker: &str| {
        strings(&[
            "ZYPP_LOCK_TIMEOUT=7",
            "ZYPP_LOGFILE=/r/var/log/zypper.log",
            &format!("PM_AGENT_PACKAGE_RUN={marker}"),
        ])
    };
    let pid = std::process::id().to_string();
    let z =
        |args: &[&str]| [strings(&["zypper", "--non-interactive", "--root", "/r"]), strings(args), env(&pid)].concat();
    let zx = |args: &[&str]| {
        [strings(&["zypper", "--non-interactive", "--xmlout", "--root", "/r"]), strings(args), env("")].concat()
    };

    // Security: zypper patch; exit 103 (it updated itself) runs it again.
    let (outcome, lines) = apply(&*backend, &PatchScope::Security, &[]);
    assert!(outcome.success, "{outcome:?}");
    let patch = z(&["patch", "--category", "security", "--auto-agree-with-licenses"]);
    assert_eq!(calls(dir.path()), vec![z(&["refresh"]), patch.clone(), patch]);
    assert!(lines.iter().any(|l| l.contains("running the same command again")), "{lines:?}");

    // Security with an exclusion: the packages of the security patches minus the exclusion
    // (and minus what is no package name), simulated, then updated by name.
    clear_calls(dir.path());
    let (outcome, lines) = apply(&*backend, &PatchScope::Security, &["tzdata"]);
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(
        calls(dir.path()),
        vec![
            z(&["refresh"]),
            zx(&["patch", "--category", "security", "--auto-agree-with-licenses", "--dry-run"]),
            zx(&["update", "--auto-agree-with-licenses", "--dry-run", "--", "openssl"]),
            z(&["update", "--auto-agree-with-licenses", "--", "openssl"]),
        ]
    );
    assert!(lines.iter().any(|l| l.contains("\"-oEvil\": not a valid package name")), "{lines:?}");

    clear_calls(dir.path());
    let (outcome, _) = apply(&*backend, &PatchScope::All, &[]);
    assert!(outcome.success);
    assert_eq!(calls(dir.path()), vec![z(&["refresh"]), z(&["update", "--auto-agree-with-licenses"])]);

    clear_calls(dir.path());
    let scope = PatchScope::Packages { names: strings(&["openssl", "nginx"]) };
    let plan = backend.plan(PatchRequest { scope: &scope, exclude: &[] }).unwrap();
    assert_eq!(plan.len(), 1);
    let got = calls(dir.path());
    assert_eq!(got.last().unwrap(), &zx(&["update", "--auto-agree-with-licenses", "--dry-run", "--", "openssl"]));
}

#[test]
fn apply_timeout_kills_the_package_manager() {
    let dir = tempfile::tempdir().unwrap();
    let commands = Commands {
        dnf: Some(fake(dir.path(), "dnf", &[], "echo starting; sleep 30")),
        rpm: Some(fake(dir.path(), "rpm", &[], "true")),
        ..Commands::default()
    };
    let settings = LocalSettings { apply_timeout_secs: Some(1), ..settings(PackageManager::Dnf, commands, None) };
    let backend = from_settings(&settings).unwrap();
    let started = std::time::Instant::now();
    let (outcome, lines) = apply(&*backend, &PatchScope::All, &[]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!outcome.success);
    assert!(outcome.summary.contains("did not finish within 1 s"), "{outcome:?}");
    assert!(lines.contains(&"starting".to_string()));
}
