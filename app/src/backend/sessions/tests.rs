use super::*;
use crate::backend::sessions::testenv::TestEnv;
use crate::backend::{mfa, users};

const NOW: i64 = 1_700_000_000;
const PW: &str = "a-long-enough-password";

async fn admin(env: &TestEnv, name: &str) -> User {
    users::create_admin(&env.state, &Actor::Cli, name, PW, NOW).await.unwrap()
}

async fn session_rows(env: &TestEnv, family: &str) -> Vec<(Option<i64>, Option<i64>)> {
    sqlx::query("SELECT rotated_at, revoked_at FROM sessions WHERE family_id = $1 ORDER BY created_at, id")
        .bind(family)
        .fetch_all(&env.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get("rotated_at").unwrap(), r.try_get("revoked_at").unwrap()))
        .collect()
}

#[tokio::test]
async fn start_refresh_rotate_end() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = admin(&env, "alice").await;
    let t = start(st, &u, Some("192.0.2.1"), NOW).await.unwrap();
    assert!(t.refresh.starts_with(REFRESH_PREFIX));
    assert_eq!(t.access_max_age, 900);
    assert_eq!(t.refresh_max_age, 3600);
    assert!(!format!("{t:?}").contains(&t.refresh));
    let p = verify_access(&st.keys, &t.access, NOW).unwrap();
    assert_eq!(p.user_id, u.id);
    assert_eq!(p.me().username, "alice");
    // The refresh token is stored hashed only.
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE refresh_hash = $1")
        .bind(&t.refresh)
        .fetch_one(&st.db.pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(stored, 0);

    let (p2, t2) = refresh(st, &t.refresh, Some("192.0.2.1"), NOW + 600).await.unwrap().into_rotated().unwrap();
    assert_eq!(p2, p);
    assert_ne!(t2.refresh, t.refresh);
    assert_eq!(verify_access(&st.keys, &t2.access, NOW + 600).unwrap().session_id, p.session_id);
    let (_, t3) = refresh(st, &t2.refresh, None, NOW + 1200).await.unwrap().into_rotated().unwrap();

    end(st, &p, NOW + 1300).await.unwrap();
    assert_eq!(refresh(st, &t3.refresh, None, NOW + 1400).await.unwrap_err().code(), "invalid_refresh");
    assert!(session_rows(&env, &p.session_id).await.iter().all(|(_, revoked)| revoked.is_some()));

    let success = audit::list_by_action(&st.db, "login.success").await.unwrap();
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].source_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(audit::list_by_action(&st.db, "logout").await.unwrap().len(), 1);
    assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
    env.finish().await;
}

#[tokio::test]
async fn reuse_revokes_family() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = admin(&env, "bob").await;
    // Another session of the same user must survive.
    let other = start(st, &u, None, NOW).await.unwrap();
    let t = start(st, &u, None, NOW).await.unwrap();
    let (p, t2) = refresh(st, &t.refresh, None, NOW + 10).await.unwrap().into_rotated().unwrap();
    // Replaying the rotated token: refused, and the successor dies with the family.
    assert_eq!(refresh(st, &t.refresh, Some("198.51.100.7"), NOW + 20).await.unwrap_err().code(), "invalid_refresh");
    assert_eq!(refresh(st, &t2.refresh, None, NOW + 30).await.unwrap_err().code(), "invalid_refresh");
    assert!(session_rows(&env, &p.session_id).await.iter().all(|(_, revoked)| revoked.is_some()));
    refresh(st, &other.refresh, None, NOW + 40).await.unwrap();

    let reuse = audit::list_by_action(&st.db, "session.refresh_reuse").await.unwrap();
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0].source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(reuse[0].target, format!("user:{}", u.id));
    assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
    env.finish().await;
}

#[tokio::test]
async fn concurrent_refresh_exactly_one_wins() {
    let env = TestEnv::new().await;
    let st = env.state.clone();
    let u = admin(&env, "carol").await;
    for round in 0..3 {
        let t = start(&st, &u, None, NOW).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (st, tok) = (st.clone(), t.refresh.clone());
            tasks.push(tokio::spawn(async move { refresh(&st, &tok, None, NOW + 5).await }));
        }
        let (mut wins, mut joined) = (0, 0);
        let mut successor = None;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Refreshed::Rotated(_, t) => {
                    wins += 1;
                    successor = Some(t.refresh);
                }
                Refreshed::Joined { principal, access, .. } => {
                    joined += 1;
                    assert_eq!(verify_access(&st.keys, &access, NOW + 5).unwrap(), principal);
                }
            }
        }
        assert_eq!((wins, joined), (1, 3), "round {round}");
        // Exactly one live successor: the family did not fork, and was not revoked.
        let rows = sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND rotated_at IS NULL")
            .bind(&u.id)
            .fetch_one(&st.db.pool)
            .await
            .unwrap();
        let live: i64 = rows.try_get("n").unwrap();
        assert_eq!(live, 1, "round {round}");
        // Past the grace window the old token is a replay: the family dies, successor included.
        let late = NOW + 5 + RACE_GRACE_SECS;
        assert_eq!(refresh(&st, &t.refresh, None, late).await.unwrap_err().code(), "invalid_refresh");
        let succ = successor.unwrap();
        assert_eq!(refresh(&st, &succ, None, late).await.unwrap_err().code(), "invalid_refresh");
    }
    assert_eq!(audit::list_by_action(&st.db, "session.refresh_reuse").await.unwrap().len(), 3);
    assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
    env.finish().await;
}

#[tokio::test]
async fn idle_absolute_and_disabled() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = admin(&env, "dave").await;

    // Idle more than 1 h.
    let t = start(st, &u, None, NOW).await.unwrap();
    assert_eq!(refresh(st, &t.refresh, None, NOW + REFRESH_IDLE_SECS).await.unwrap_err().code(), "invalid_refresh");
    let t = start(st, &u, None, NOW).await.unwrap();
    refresh(st, &t.refresh, None, NOW + REFRESH_IDLE_SECS - 1).await.unwrap();

    // Sliding up to, never beyond, 12 h from login; the cookie max-age shrinks at the end.
    let mut tok = start(st, &u, None, NOW).await.unwrap().refresh;
    let mut at = NOW;
    loop {
        at += 3000;
        match refresh(st, &tok, None, at).await {
            Ok(Refreshed::Joined { .. }) => panic!("no concurrent request here"),
            Ok(Refreshed::Rotated(_, t)) => {
                assert!(at < NOW + SESSION_MAX_SECS);
                assert_eq!(t.refresh_max_age, REFRESH_IDLE_SECS.min(NOW + SESSION_MAX_SECS - at));
                tok = t.refresh;
            }
            Err(e) => {
                assert_eq!(e.code(), "invalid_refresh");
                assert!(at >= NOW + SESSION_MAX_SECS);
                break;
            }
        }
    }

    // Disabled user: refresh refused.
    let t = start(st, &u, None, NOW).await.unwrap();
    sqlx::query("UPDATE users SET disabled = 1 WHERE id = $1").bind(&u.id).execute(&st.db.pool).await.unwrap();
    assert_eq!(refresh(st, &t.refresh, None, NOW + 10).await.unwrap_err().code(), "invalid_refresh");
    let disabled = users::user_by_id(&st.db, &u.id).await.unwrap();
    assert!(start(st, &disabled, None, NOW).await.is_err());

    // Garbage.
    assert_eq!(refresh(st, "pmrt_nope", None, NOW).await.unwrap_err().code(), "invalid_refresh");
    assert_eq!(refresh(st, "nope", None, NOW).await.unwrap_err().code(), "invalid_refresh");
    env.finish().await;
}

/// The whole login as the web layer drives it: password -> pending token -> TOTP enrolment ->
/// next login with TOTP -> session.
#[tokio::test]
async fn login_flow_end_to_end() {
    let env = TestEnv::new().await;
    let st = &env.state;
    admin(&env, "erin").await;

    let u = users::check_password(st, "erin", PW, Some("192.0.2.3"), NOW).await.unwrap();
    let pending = issue_pending(&st.keys, &u, NOW).unwrap();
    let (uid, stage) = verify_pending(&st.keys, &pending, NOW + 1).unwrap();
    assert_eq!(stage, STAGE_ENROLL_TOTP);
    let u = users::user_by_id(&st.db, &uid).await.unwrap();
    let e = mfa::begin_totp(st, &u, NOW + 2).await.unwrap();
    let secret = totp_rs::Secret::Encoded(e.secret).to_bytes().unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).unwrap();
    mfa::confirm_totp(st, &u, &totp.generate((NOW + 3) as u64), Some("192.0.2.3"), NOW + 3).await.unwrap();
    start(st, &u, Some("192.0.2.3"), NOW + 3).await.unwrap();

    // Next login: stage totp.
    let later = NOW + 3600;
    let u = users::check_password(st, "erin", PW, Some("192.0.2.3"), later).await.unwrap();
    assert!(u.totp_enrolled);
    let pending = issue_pending(&st.keys, &u, later).unwrap();
    assert_eq!(verify_pending(&st.keys, &pending, later).unwrap().1, STAGE_TOTP);
    // The pending token is no access token.
    assert!(verify_access(&st.keys, &pending, later).is_err());
    mfa::verify_totp(st, &u, &totp.generate(later as u64), Some("192.0.2.3"), later).await.unwrap();
    let t = start(st, &u, Some("192.0.2.3"), later).await.unwrap();
    let p = verify_access(&st.keys, &t.access, later).unwrap();
    assert_eq!(p.role, Role::Admin);

    let actions: Vec<String> = audit::list(&st.db, 100, 0).await.unwrap().into_iter().rev().map(|r| r.action).collect();
    assert_eq!(
        actions,
        ["jwt_key.rotate", "user.create", "mfa.totp.begin", "mfa.totp.enroll", "mfa.recovery.generate", "login.success", "login.success"]
    );
    assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
    env.finish().await;
}
