//! Web listener: session gate and security headers.

use crate::common::TestServer;

fn no_redirect_client(srv: &TestServer) -> reqwest::Client {
    let cfg = crate::common::client_config(srv.roots(), None, &[&rustls::version::TLS13], true);
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", srv.web_addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn pages_without_session_redirect_to_login() {
    let srv = TestServer::start().await;
    let c = no_redirect_client(&srv);
    for path in ["/", "/hosts", "/enroll"] {
        let resp = c.get(srv.web_url(path)).send().await.expect("GET");
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers().get("location").and_then(|v| v.to_str().ok()), Some("/login"), "{path}");
    }
    // A stale refresh cookie does not help, and gets cleared.
    let resp = c.get(srv.web_url("/hosts")).header("cookie", "pm_refresh=bogus").send().await.expect("GET");
    assert_eq!(resp.status(), 303);
    assert!(resp.headers().get_all("set-cookie").iter().count() >= 1);
    srv.stop().await;
}

#[tokio::test]
async fn json_api_without_session_is_401() {
    let srv = TestServer::start().await;
    let resp = no_redirect_client(&srv).get(srv.web_url("/api/v1/hosts")).send().await.expect("GET");
    assert_eq!(resp.status(), 401);
    let err: agent::proto::ApiError = resp.json().await.expect("ApiError");
    assert_eq!(err.code, "not_logged_in");
    srv.stop().await;
}

#[tokio::test]
async fn login_page_renders_with_csp_nonce_and_security_headers() {
    let srv = TestServer::start().await;
    let resp = no_redirect_client(&srv).get(srv.web_url("/login")).send().await.expect("GET");
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h.get("strict-transport-security").is_some());
    assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
    assert!(h.get("referrer-policy").is_some());
    let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).expect("CSP").to_string();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("'wasm-unsafe-eval'"));
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
    let nonce = csp.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("nonce in CSP").to_string();
    let html = resp.text().await.expect("html");
    // Every inline script carries this response's nonce (Leptos' hydration loader is one).
    let mut inline = 0;
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap_or("");
        if open.contains("src=") {
            continue;
        }
        assert!(open.contains(&format!("nonce=\"{nonce}\"")), "inline script without nonce: <script{open}>");
        inline += 1;
    }
    assert!(inline >= 1, "expected Leptos' inline hydration script in: {html}");
    srv.stop().await;
}

#[tokio::test]
async fn pkg_files_are_public_and_gzipped() {
    let srv = TestServer::start().await;
    let resp = no_redirect_client(&srv)
        .get(srv.web_url("/pkg/patch_manager.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some("gzip"));
    srv.stop().await;
}

fn set_cookies(resp: &reqwest::Response) -> Vec<String> {
    resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies
        .iter()
        .filter_map(|c| c.split(';').next())
        .filter_map(|p| p.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

#[tokio::test]
async fn session_gate_accepts_access_and_rotates_refresh() {
    use app::backend::audit::Actor;
    use app::backend::db::now_unix;
    use app::backend::{sessions, users};

    let srv = TestServer::start().await;
    let now = now_unix();
    let user = users::create_admin(&srv.state, &Actor::Cli, "admin", "correct horse battery staple", now)
        .await
        .expect("admin");
    let tokens = sessions::start(&srv.state, &user, None, now).await.expect("session");
    let c = no_redirect_client(&srv);

    // Valid access token: the page renders.
    let resp = c
        .get(srv.web_url("/hosts"))
        .header("cookie", format!("pm_access={}", tokens.access))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);

    // Garbage access token + valid refresh token: transparent rotation, new cookies set.
    let resp = c
        .get(srv.web_url("/hosts"))
        .header("cookie", format!("pm_access=garbage; pm_refresh={}", tokens.refresh))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let sc = set_cookies(&resp);
    let new_access = cookie_value(&sc, "pm_access").expect("new access cookie");
    let new_refresh = cookie_value(&sc, "pm_refresh").expect("new refresh cookie");
    assert_ne!(new_refresh, tokens.refresh);
    assert!(sc.iter().all(|c| c.contains("HttpOnly") && c.contains("Secure") && c.contains("SameSite=Strict")));
    assert!(sessions::verify_access(&srv.state.keys, &new_access, now_unix()).is_ok());

    // The same old token again at once (a browser's parallel requests racing the rotation):
    // let in with a fresh access cookie only; the family is not forked, not revoked.
    let resp = c
        .get(srv.web_url("/hosts"))
        .header("cookie", format!("pm_access=garbage; pm_refresh={}", tokens.refresh))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let sc = set_cookies(&resp);
    assert!(cookie_value(&sc, "pm_access").is_some());
    assert!(cookie_value(&sc, "pm_refresh").is_none(), "{sc:?}");

    // Later (past the race grace), the rotated-out refresh token is a replay: the family is
    // revoked and it is back to /login.
    sqlx::query("UPDATE sessions SET rotated_at = rotated_at - 60 WHERE rotated_at IS NOT NULL")
        .execute(&srv.state.db.pool)
        .await
        .expect("backdate rotation");
    let resp = c
        .get(srv.web_url("/hosts"))
        .header("cookie", format!("pm_refresh={}", tokens.refresh))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 303);
    let resp =
        c.get(srv.web_url("/hosts")).header("cookie", format!("pm_refresh={new_refresh}")).send().await.expect("GET");
    assert_eq!(resp.status(), 303, "reuse of an old refresh token revokes the whole family");
    srv.stop().await;
}

/// The audit log must name the source address of a failed UI login (server functions run
/// behind our own accept loop, which has to hand them the peer address).
#[tokio::test]
async fn failed_ui_login_is_audited_with_source_ip() {
    let srv = TestServer::start().await;
    let resp = no_redirect_client(&srv)
        .post(srv.web_url("/api/auth/login"))
        .header("origin", srv.web_url(""))
        .form(&[("username", "nobody"), ("password", "wrong-password-123")])
        .send()
        .await
        .expect("POST login");
    assert_eq!(resp.status(), 401);
    let rows = app::backend::audit::list_by_action(&srv.state.db, "login.failure").await.expect("audit");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].source_ip.as_deref(), Some("127.0.0.1"));
    srv.stop().await;
}
