//! Scheduler, agent-event and access tests of the job backend with a controlled clock, on the
//! engine named by `PM_TEST_DATABASE` (both in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access;
mod events;
mod rollout;

use std::collections::BTreeMap;

use agent::proto::jobs::{JobEvent, JobEventResponse, JobResult, JobSpec, JobState, PackageChange, SignedJob, JOB_SIGNATURE_CONTEXT};
use agent::proto::CheckIn;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};
use sqlx::Row;

use super::{create, dispatch, results, scheduler};
use crate::api::job_dto::{JobMode, NewJob, RebootChoice, ScheduleKind, ScopeKind};
use crate::backend::access::Scope;
use crate::backend::audit::Actor;
use crate::backend::db::Db;
use crate::backend::hosts::{self, tests as host_tests};
use crate::backend::state::AppState;
use crate::backend::testkit::{test_db, TestDb};

/// 2027-01-15 08:00:00 UTC.
pub(super) const NOW: i64 = 1_800_000_000;

pub(super) struct Fx {
    pub tdb: TestDb,
    pub state: AppState,
}

impl Fx {
    pub async fn new() -> Fx {
        let tdb = test_db().await;
        let state = tdb.state(NOW).await;
        Fx { tdb, state }
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// An apt host with 3 security and 2 other pending updates, booted as `boot-1`.
    pub async fn host(&self, id: &str) {
        host_tests::add_host(self.db(), id, id).await;
        self.checkin(id, "boot-1", NOW).await;
    }

    pub async fn checkin(&self, id: &str, boot_id: &str, now: i64) -> agent::proto::CheckInResponse {
        let mut facts = host_tests::facts(id, false);
        facts.boot_id = boot_id.into();
        let inv = host_tests::inventory(10, 3);
        let c = CheckIn { facts, inventory_digest: inv.digest(), inventory: Some(inv) };
        hosts::record_checkin(self.db(), id, &c, 60, now).await.unwrap()
    }

    pub async fn finish(self) {
        let Fx { tdb, state } = self;
        drop(state);
        tdb.cleanup().await;
    }
}

/// Every host in one wave, 10 at once, no halting threshold effects (0 %).
pub(super) fn new_job(hosts: &[&str]) -> NewJob {
    NewJob {
        title: "test".into(),
        host_ids: hosts.iter().map(|h| h.to_string()).collect(),
        group_ids: vec![],
        mode: JobMode::Apply,
        scope: ScopeKind::All,
        packages: vec![],
        exclude: vec![],
        schedule: ScheduleKind::Now,
        at: String::new(),
        window: String::new(),
        start_within_mins: 60,
        canary: 0,
        batch_size: 100,
        batch_percent: true,
        max_concurrent: 10,
        failure_threshold: 0,
        reboot: RebootChoice::Never,
        pre_hook_ids: vec![],
        post_hook_ids: vec![],
    }
}

pub(super) fn admin() -> Actor {
    Actor::User { id: "u-admin".into(), username: "admin".into() }
}

pub(super) async fn create_job(fx: &Fx, req: &NewJob, now: i64) -> String {
    create::create(fx.db(), &admin(), &Scope::All, req, now).await.unwrap()
}

/// host id -> state of its part of the job.
pub(super) async fn states(db: &Db, job: &str) -> BTreeMap<String, String> {
    sqlx::query("SELECT host_id, state FROM job_hosts WHERE job_id = $1")
        .bind(job)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("host_id").unwrap(), r.try_get("state").unwrap()))
        .collect()
}

pub(super) async fn job_state(db: &Db, job: &str) -> (String, i64) {
    let r = sqlx::query("SELECT state, current_wave FROM jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.unwrap();
    (r.try_get("state").unwrap(), r.try_get("current_wave").unwrap())
}

pub(super) async fn in_flight(db: &Db, job: &str) -> i64 {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM job_hosts WHERE job_id = $1 \
         AND (state IN ('dispatched', 'received', 'running') OR reboot_state = 'pending')",
    )
    .bind(job)
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .try_get("n")
    .unwrap()
}

pub(super) fn result(reboot_pending: bool) -> JobResult {
    JobResult {
        reason: "ok".into(),
        changes: vec![PackageChange {
            name: "pkg00000".into(),
            arch: "amd64".into(),
            before: Some("1.0".into()),
            after: Some("1.0+1".into()),
        }],
        output: "Setting up pkg00000 (1.0+1) ...\n".into(),
        started_at: NOW,
        finished_at: NOW + 5,
        reboot_pending,
    }
}

pub(super) async fn event(db: &Db, host: &str, job: &str, state: JobState, now: i64) -> crate::backend::error::Result<JobEventResponse> {
    let result = state.is_terminal().then(|| result(false));
    results::record(db, host, &JobEvent { job_id: job.into(), state, at: now, result }, now).await
}

/// The agent's whole part: Received (must be allowed), Running, then `last`.
pub(super) async fn run_host(db: &Db, host: &str, job: &str, last: JobState, now: i64) {
    assert!(event(db, host, job, JobState::Received, now).await.unwrap().proceed, "{host} may start");
    event(db, host, job, JobState::Running, now).await.unwrap();
    let r = event(db, host, job, last, now).await.unwrap();
    assert!(!r.duplicate);
}

/// Verifies a delivered job the way the agent does and returns its spec.
pub(super) fn verify(state: &AppState, signed: &SignedJob) -> JobSpec {
    let public = B64.decode(state.job_signer.public_key_b64()).unwrap();
    let bytes = B64.decode(&signed.spec_b64).unwrap();
    let sig = B64.decode(&signed.signature_b64).unwrap();
    let mut msg = JOB_SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(&bytes);
    UnparsedPublicKey::new(&ED25519, &public).verify(&msg, &sig).expect("signature verifies");
    serde_json::from_slice(&bytes).unwrap()
}

pub(super) async fn tick(state: &AppState, now: i64) -> scheduler::TickReport {
    scheduler::tick(state, now).await.unwrap()
}

pub(super) async fn pending(state: &AppState, host: &str, now: i64) -> Vec<JobSpec> {
    dispatch::pending_for_host(&state.db, host, now).await.unwrap().iter().map(|s| verify(state, s)).collect()
}
