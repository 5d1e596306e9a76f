//! `kill -9` of the agent while dnf runs on an install root, with a fake dnf that locks the
//! way dnf 4 does (see `agent::jobs::lock`): no lock at all while it resolves, then its PID
//! in `ROOT/var/lib/dnf/rpmdb_lock.pid` (no kernel lock) around the transaction. The agent
//! uses dnf's default lock files. The restarted agent must wait for the orphaned dnf through
//! both phases and then report what the rpm database shows.

use std::path::PathBuf;

use agent::proto::jobs::JobState;
use agent::proto::PackageManager;

use super::{change_of, spec, upgraded, Host};
use crate::server::start;

/// Installed (`rpm -qa --qf` fields: name, epoch, version, release, arch) and candidates.
const RPMDB: &str = "bash\t0\t5.1.8\t6.el9\tx86_64\nopenssl\t1\t3.0.7\t24.el9\tx86_64\n";
const CANDIDATES: &str = "openssl\t1\t3.0.7\t25.el9_3\tx86_64\n";

/// Prints the candidates newer than what is installed, as `repoquery --qf` / the `Upgrading:`
/// table of `--assumeno`.
const PENDING: &str = r#"pending() { awk -F'\t' -v fmt="$1" 'NR==FNR { cur[$1]=$2":"$3"-"$4; next }
  ($1 in cur) && cur[$1] != $2":"$3"-"$4 {
    evr = ($2 == "0" ? "" : $2":") $3"-"$4
    if (fmt == "qf") printf "%s\t%s\t%s\t%s\t%s\tpmtest\n", $1, $5, $2, $3, $4
    else printf " %s %s %s pmtest 1.0 M\n", $1, $5, evr }' "$D/rpmdb" "$D/candidates"; }
"#;

const DNF: &str = r#"
trap '' PIPE
root=/; prev=
for a in "$@"; do [ "$prev" = "--installroot" ] && root=$a; prev=$a; done
case " $* " in
  *" repoquery "*) pending qf; exit 0 ;;
  *" --assumeno "*)
    printf 'Dependencies resolved.\n====\n Package Arch Version Repository Size\n====\nUpgrading:\n'
    pending table
    printf '\nTransaction Summary\n'
    echo "Operation aborted." >&2
    exit 1 ;;
esac
echo "$*" >> "$D/apply.log"
echo "Dependencies resolved."
sleep 0.5
: > "$D/apply-started"
# Resolving, checking signatures: dnf holds no lock here.
sleep "$(cat "$D/unlocked-sleep")"
mkdir -p "$root/var/lib/dnf"
printf %s $$ > "$root/var/lib/dnf/rpmdb_lock.pid"
: > "$D/locked"
echo "Running transaction"
sleep "$(cat "$D/locked-sleep")"
awk -F'\t' -v OFS='\t' 'NR==FNR { up[$1]=$0; next } ($1 in up) { $0=up[$1] } { print }' "$D/candidates" "$D/rpmdb" > "$D/rpmdb.new"
mv "$D/rpmdb.new" "$D/rpmdb"
rm -f "$root/var/lib/dnf/rpmdb_lock.pid"
: > "$D/apply-done"
echo "Complete!"
"#;

const RPM: &str = r#"
case " $* " in
  *" --eval "*) echo /var/lib/rpm/.rpm.lock; exit 0 ;;
esac
cat "$D/rpmdb"
"#;

/// Writes the fake dnf and rpm next to the other fakes; returns them and the install root.
fn install_fake_dnf(host: &Host) -> (PathBuf, PathBuf, PathBuf) {
    let d = format!("D={:?}\n", host.fake("").display().to_string().trim_end_matches('/'));
    let dnf = host.fake("dnf");
    let rpm = host.fake("rpm");
    crate::pkg_support::write_script(&dnf, &format!("#!/bin/sh\n{d}{PENDING}{DNF}"));
    crate::pkg_support::write_script(&rpm, &format!("#!/bin/sh\n{d}{RPM}"));
    std::fs::write(host.fake("rpmdb"), RPMDB).unwrap();
    std::fs::write(host.fake("candidates"), CANDIDATES).unwrap();
    let root = host.fake("root");
    std::fs::create_dir_all(&root).unwrap();
    (dnf, rpm, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_dnf_runs_it_waits_for_dnf_and_reports_what_changed() {
    let server = start().await;
    let mut host = Host::enroll(&server).await;
    let (dnf, rpm, root) = install_fake_dnf(&host);
    host.use_rpm_manager(PackageManager::Dnf, &root, &[("dnf", &dnf), ("rpm", &rpm)]);
    std::fs::write(host.fake("unlocked-sleep"), "3").unwrap();
    std::fs::write(host.fake("locked-sleep"), "2").unwrap();
    host.start(None);
    server.jobs.dispatch(server.jobs.sign(&spec("job-dnf-crash")));
    host.wait("dnf to start", 60, || host.fake("apply-started").exists().then_some(())).await;
    host.kill9();
    assert!(!host.fake("locked").exists(), "killed too late: dnf already holds its lock");
    host.start(None);
    let event = host.terminal(&server, "job-dnf-crash", 60).await;

    // Reported only after the orphaned dnf finished.
    assert!(host.fake("apply-done").exists(), "reported while dnf was still running\n{}", host.logs());
    assert_eq!(event.state, JobState::Interrupted, "{event:?}");
    assert_eq!(change_of(&event, "openssl"), upgraded("1:3.0.7-24.el9", "1:3.0.7-25.el9_3"));
    assert_eq!(change_of(&event, "bash"), None);
    let reason = &event.result.as_ref().unwrap().reason;
    assert!(reason.contains("while the package manager was running; 1 package(s) changed"), "{reason}");
    // It waited for the run itself while dnf held no lock, then also for dnf's PID file at
    // its default place in the install root.
    let logs = host.logs();
    assert!(logs.contains("of an earlier agent is still running"), "{logs}");
    let pid_file = root.join("var/lib/dnf/rpmdb_lock.pid");
    assert!(logs.contains(&format!("{} names running process", pid_file.display())), "{logs}");
    assert!(!pid_file.exists());
    assert_eq!(host.applies(), 1);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(server.jobs.terminal_reports("job-dnf-crash").len(), 1);
}
