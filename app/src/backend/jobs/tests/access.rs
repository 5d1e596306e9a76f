//! Validation and the scope cut: an Operator targets and sees only their groups' hosts;
//! refused requests write nothing.

use super::*;
use crate::api::dto::Role;
use crate::backend::access::Caller;
use crate::backend::groups;
use crate::backend::jobs::{control, preview, queries};
use crate::backend::sessions::Principal;

fn operator() -> Caller {
    Caller {
        principal: Principal { user_id: "u-op".into(), username: "op".into(), role: Role::Operator, session_id: "s".into() },
    }
}

async fn count_jobs(db: &Db) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM jobs").fetch_one(&db.pool).await.unwrap().try_get("n").unwrap()
}

fn msg(e: crate::backend::error::BackendError) -> String {
    match e {
        crate::backend::error::BackendError::Invalid(m) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_write_nothing() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    let base = new_job(&["h1"]);
    let err = |f: fn(&mut NewJob)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let cases: Vec<(NewJob, &str)> = vec![
        (err(|r| r.host_ids.clear()), "no target hosts"),
        (err(|r| r.host_ids = vec!["nope".into()]), "does not exist or is outside your host groups"),
        (err(|r| r.group_ids = vec!["nope".into()]), "does not exist or is not assigned to you"),
        (err(|r| r.max_concurrent = 0), "M must be 1"),
        (err(|r| r.batch_size = 0), "percent must be 1 to 100"),
        (err(|r| { r.batch_percent = false; r.batch_size = 0 }), "batch size must be 1"),
        (err(|r| r.failure_threshold = 101), "failure threshold"),
        (err(|r| r.scope = ScopeKind::Packages), "name at least one package"),
        (err(|r| { r.scope = ScopeKind::Packages; r.packages = vec!["-oAPT::X=1".into()] }), "'-oAPT::X=1': package name must not start with '-'"),
        (err(|r| { r.scope = ScopeKind::Packages; r.packages = vec!["NetworkManager".into()] }), "'NetworkManager'"),
        (err(|r| r.exclude = vec!["openssl*".into()]), "excluded package: 'openssl*'"),
        (err(|r| { r.scope = ScopeKind::Packages; r.packages = vec!["bash".into()]; r.exclude = vec!["bash".into()] }), "also excluded"),
        (err(|r| { r.schedule = ScheduleKind::Window; r.window = "Sun 02:00-04:00 Mars/Base".into() }), "unknown time zone"),
        (err(|r| { r.schedule = ScheduleKind::At; r.at = "2020-01-01 00:00".into() }), "in the past"),
        (err(|r| r.pre_hook_ids = vec!["nope".into()]), "unknown pre/post-command"),
        (err(|r| r.title = "x".repeat(121)), "title"),
        (err(|r| r.start_within_mins = 100_000), "start within"),
    ];
    for (req, expected) in cases {
        let e = create::create(fx.db(), &admin(), &Scope::All, &req, NOW).await.unwrap_err();
        let m = msg(e);
        assert!(m.contains(expected), "expected '{expected}' in '{m}'");
    }
    assert_eq!(count_jobs(fx.db()).await, 0);
    assert!(crate::backend::audit::list_by_action(fx.db(), "job.create").await.unwrap().is_empty());
    fx.finish().await;
}

#[tokio::test]
async fn preview_lists_what_would_change_per_host() {
    let fx = Fx::new().await;
    fx.host("h1").await;
    fx.host("h2").await;
    let mut req = new_job(&["h1", "h2"]);
    req.scope = ScopeKind::Security;
    req.exclude = vec!["pkg00001".into()];
    req.canary = 1;
    req.batch_size = 50;
    let p = preview::preview(fx.db(), &Scope::All, &req, NOW).await.unwrap();
    assert_eq!(p.total_hosts, 2);
    assert_eq!(p.waves, vec![1, 1]);
    // 3 security updates (pkg00000..2) minus the excluded one.
    let h1 = &p.hosts[0];
    assert_eq!(h1.hostname, "h1");
    assert_eq!(h1.changes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["pkg00000", "pkg00002"]);
    assert_eq!((h1.changes[0].from.as_str(), h1.changes[0].to.as_str()), ("1.0", "1.0+1"));
    assert_eq!(p.total_changes, 4);
    assert_eq!(count_jobs(fx.db()).await, 0, "a preview writes nothing");
    req.schedule = ScheduleKind::Window;
    req.window = "daily 09:00-10:00 UTC".into();
    let p = preview::preview(fx.db(), &Scope::All, &req, NOW).await.unwrap();
    assert_eq!(p.window_next, Some((NOW + 3600, NOW + 7200)));
    fx.finish().await;
}

#[tokio::test]
async fn operators_target_and_see_only_their_groups() {
    let fx = Fx::new().await;
    for h in ["a1", "a2", "b1"] {
        fx.host(h).await;
    }
    let db = fx.db();
    let ga = groups::create(db, &Actor::Cli, "A", NOW).await.unwrap();
    let gb = groups::create(db, &Actor::Cli, "B", NOW).await.unwrap();
    for (h, g) in [("a1", &ga.id), ("a2", &ga.id), ("b1", &gb.id)] {
        groups::set_host_groups(db, &Actor::Cli, h, std::slice::from_ref(g), NOW).await.unwrap();
    }
    let mut tx = db.begin().await.unwrap();
    crate::backend::users::insert_user(&mut tx, &Actor::Cli, "op", "!", Role::Operator, None, NOW).await.unwrap();
    tx.commit().await.unwrap();
    let op_id: String = sqlx::query("SELECT id FROM users WHERE username = 'op'").fetch_one(&db.pool).await.unwrap().try_get("id").unwrap();
    let mut tx = db.begin().await.unwrap();
    groups::set_user_groups(&mut tx, &Actor::Cli, &op_id, std::slice::from_ref(&ga.id), NOW).await.unwrap();
    tx.commit().await.unwrap();
    let op = Caller { principal: Principal { user_id: op_id.clone(), ..operator().principal } };
    let scope = op.scope();

    // Naming another group's host or group is refused like a missing one.
    let e = create::create(db, &op.actor(), &scope, &new_job(&["b1"]), NOW).await.unwrap_err();
    assert!(msg(e).contains("does not exist or is outside your host groups"));
    let mut by_group = new_job(&[]);
    by_group.group_ids = vec![gb.id.clone()];
    assert!(msg(create::create(db, &op.actor(), &scope, &by_group, NOW).await.unwrap_err()).contains("not assigned to you"));
    by_group.group_ids = vec![ga.id.clone()];
    let own = create::create(db, &op.actor(), &scope, &by_group, NOW).await.unwrap();
    assert_eq!(states(db, &own).await.keys().cloned().collect::<Vec<_>>(), ["a1", "a2"]);
    let opts = crate::backend::jobs::targets::options(db, &scope).await.unwrap();
    assert_eq!(opts.hosts.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a1", "a2"]);
    assert_eq!(opts.groups.len(), 1);

    // An Admin's job over both groups: the Operator sees only their part and cannot stop it.
    let mixed = create_job(&fx, &new_job(&["a1", "b1"]), NOW).await;
    let b_only = create_job(&fx, &new_job(&["b1"]), NOW).await;
    let d = queries::get(db, &op, &mixed, NOW).await.unwrap();
    assert_eq!(d.hosts.iter().map(|h| h.host_id.as_str()).collect::<Vec<_>>(), ["a1"]);
    assert_eq!(d.summary.counts.total(), 1);
    assert!(!d.can_cancel);
    assert_eq!(control::cancel(db, &op, &mixed, NOW).await.unwrap_err().code(), "forbidden");
    assert!(matches!(queries::get(db, &op, &b_only, NOW).await, Err(crate::backend::error::BackendError::NotFound)));
    assert!(matches!(control::cancel(db, &op, &b_only, NOW).await, Err(crate::backend::error::BackendError::NotFound)));
    assert!(queries::host_result(db, &scope, &mixed, "b1").await.is_err());
    assert!(queries::host_history(db, &scope, "b1", 10).await.is_err());
    assert_eq!(queries::host_history(db, &scope, "a1", 10).await.unwrap().len(), 2);
    let list = queries::list(db, &scope, 1, 50).await.unwrap();
    assert_eq!(list.total, 2);
    assert!(list.items.iter().all(|j| j.id != b_only));
    assert_eq!(queries::list(db, &Scope::All, 1, 50).await.unwrap().total, 3);
    // Their own job they may cancel.
    control::cancel(db, &op, &own, NOW).await.unwrap();
    fx.finish().await;
}
