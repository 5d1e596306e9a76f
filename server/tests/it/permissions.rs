//! The permission matrix: every server function the app registers (read from server_fn's own
//! registry, so a new one cannot be forgotten) × {anonymous, half-logged-in, Operator of
//! group A, Operator of group B, Admin}, over real HTTPS against the real router. Plus the CSRF
//! refusals and the scope of host data.

use std::collections::BTreeMap;

use app::backend::audit::Actor;
use app::backend::db::now_unix;
use app::backend::{groups, sessions, users};
use serde_json::{json, Value};

use server::web::RestAccess;

use crate::common::TestServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    HalfLoggedIn,
    OperatorA,
    OperatorB,
    Admin,
}

const EVERYONE: [Who; 5] = [Who::Anonymous, Who::HalfLoggedIn, Who::OperatorA, Who::OperatorB, Who::Admin];

/// Who may call a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Reachable without a session (login steps, setup, invitation, logout, me).
    Public,
    /// Any fully signed-in user; data cut to their scope.
    User,
    /// Admins only.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Form(Vec<(&'static str, String)>),
    Json(Value),
}

struct Fixture {
    host_a: String,
    host_b: String,
    cookies: BTreeMap<&'static str, String>,
}

/// The expected gate and a well-formed body (so arguments never fail before authorization)
/// of every server function. A function missing here fails the test.
fn matrix(f: &Fixture) -> BTreeMap<&'static str, (Gate, Body)> {
    use Body::{Form, Json};
    use Gate::*;
    let s = |v: &str| v.to_string();
    let host = f.host_a.clone();
    BTreeMap::from([
        ("/api/auth/login", (Public, Form(vec![("username", s("nobody")), ("password", s("wrong-password-x"))]))),
        ("/api/auth/totp_verify", (Public, Form(vec![("code", s("000000"))]))),
        ("/api/auth/totp_begin", (Public, Form(vec![]))),
        ("/api/auth/totp_confirm", (Public, Form(vec![("code", s("000000"))]))),
        ("/api/auth/setup", (Public, Form(vec![("token", s("bogus")), ("username", s("x")), ("password", s("y"))]))),
        ("/api/auth/logout", (Public, Form(vec![]))),
        ("/api/auth/passkey_begin", (Public, Form(vec![]))),
        ("/api/auth/passkey_finish", (Public, Form(vec![("credential", s("{}"))]))),
        ("/api/auth/passkey_enrol_begin", (Public, Form(vec![("name", s("matrix key"))]))),
        ("/api/auth/passkey_enrol_finish", (Public, Form(vec![("credential", s("{}"))]))),
        ("/api/auth/passwordless_begin", (Public, Form(vec![]))),
        ("/api/auth/passwordless_finish", (Public, Form(vec![("credential", s("{}"))]))),
        ("/api/auth/recovery_login", (Public, Form(vec![("code", s("aaaa-bbbb-cccc-dddd"))]))),
        ("/api/account/factors", (User, Form(vec![]))),
        ("/api/account/passkey_begin", (User, Form(vec![("name", s("matrix key"))]))),
        ("/api/account/passkey_finish", (User, Form(vec![("credential", s("{}"))]))),
        ("/api/account/passkey_rename", (User, Form(vec![("id", s("no-such-passkey")), ("name", s("x"))]))),
        ("/api/account/passkey_remove", (User, Form(vec![("id", s("no-such-passkey"))]))),
        ("/api/account/recovery_regenerate", (User, Form(vec![]))),
        ("/api/account/totp_begin", (User, Form(vec![]))),
        ("/api/account/totp_confirm", (User, Form(vec![("code", s("000000"))]))),
        ("/api/auth/me", (Public, Form(vec![]))),
        (
            "/api/auth/accept_invitation",
            (Public, Form(vec![("token", s("pminv_bogus")), ("password", s("long-enough-pass")), ("password2", s("long-enough-pass"))])),
        ),
        (
            "/api/account/password",
            (User, Form(vec![("current", s("not-my-password")), ("new", s("another-long-pass")), ("new2", s("another-long-pass"))])),
        ),
        (
            "/api/hosts/list",
            (
                User,
                Form(vec![
                    ("search", s("")),
                    ("status", s("All")),
                    ("security_only", s("false")),
                    ("reboot_only", s("false")),
                    ("page", s("1")),
                ]),
            ),
        ),
        ("/api/hosts/get", (User, Form(vec![("id", host.clone())]))),
        ("/api/hosts/packages", (User, Form(vec![("id", host.clone()), ("search", s("")), ("page", s("1"))]))),
        ("/api/hosts/updates", (User, Form(vec![("id", host.clone())]))),
        // Operators revoke their groups' hosts only (404 otherwise, tested below).
        ("/api/hosts/revoke", (User, Form(vec![("id", s("no-such-host"))]))),
        ("/api/groups/mine", (User, Form(vec![]))),
        ("/api/hosts/set_groups", (Admin, Json(json!({ "id": "no-such-host", "group_ids": [] })))),
        ("/api/enroll/create", (Admin, Form(vec![("note", s("matrix")), ("validity_secs", s("0")), ("group_id", s(""))]))),
        ("/api/enroll/list", (Admin, Form(vec![]))),
        ("/api/groups/list", (Admin, Form(vec![]))),
        ("/api/groups/create", (Admin, Form(vec![("name", s("matrix group"))]))),
        ("/api/groups/rename", (Admin, Form(vec![("id", s("no-such-group")), ("name", s("x"))]))),
        ("/api/groups/delete", (Admin, Form(vec![("id", s("no-such-group"))]))),
        ("/api/users/list", (Admin, Form(vec![]))),
        ("/api/users/invite", (Admin, Json(json!({ "username": "matrix-invitee", "role": "Operator", "group_ids": [] })))),
        ("/api/users/set_role", (Admin, Form(vec![("id", s("no-such-user")), ("role", s("Operator"))]))),
        ("/api/users/set_groups", (Admin, Json(json!({ "id": "no-such-user", "group_ids": [] })))),
        ("/api/users/set_disabled", (Admin, Form(vec![("id", s("no-such-user")), ("disabled", s("true"))]))),
        ("/api/users/delete", (Admin, Form(vec![("id", s("no-such-user"))]))),
        ("/api/users/reset_mfa", (Admin, Form(vec![("id", s("no-such-user"))]))),
        // Patch jobs: any user, cut to their groups (Operator B gets 422 for host A).
        ("/api/jobs/targets", (User, Form(vec![]))),
        ("/api/jobs/preview", (User, Json(json!({ "job": crate::jobs::job_for(&[&host]) })))),
        ("/api/jobs/create", (User, Json(json!({ "job": crate::jobs::job_for(&[&host]) })))),
        ("/api/jobs/list", (User, Form(vec![("page", s("1"))]))),
        ("/api/jobs/get", (User, Form(vec![("id", s("no-such-job"))]))),
        ("/api/jobs/host_result", (User, Form(vec![("job_id", s("no-such-job")), ("host_id", host.clone())]))),
        ("/api/jobs/cancel", (User, Form(vec![("id", s("no-such-job"))]))),
        ("/api/jobs/cancel_host", (User, Form(vec![("job_id", s("no-such-job")), ("host_id", host.clone())]))),
        ("/api/jobs/resume", (User, Form(vec![("id", s("no-such-job"))]))),
        ("/api/jobs/run_for_real", (User, Form(vec![("id", s("no-such-job"))]))),
        ("/api/jobs/for_host", (User, Form(vec![("host_id", host.clone())]))),
        // Hooks: everyone may list them (to choose); only Admins change them.
        ("/api/hooks/list", (User, Form(vec![]))),
        ("/api/hooks/create", (Admin, Json(json!({ "name": "matrix hook", "argv": ["/bin/true"], "timeout_secs": 5 })))),
        ("/api/hooks/update", (Admin, Json(json!({ "id": "no-such-hook", "name": "x", "argv": ["/bin/true"], "timeout_secs": 5 })))),
        ("/api/hooks/delete", (Admin, Form(vec![("id", s("no-such-hook"))]))),
    ])
}

fn client(srv: &TestServer) -> reqwest::Client {
    let cfg = crate::common::client_config(srv.roots(), None, &[&rustls::version::TLS13], true);
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", srv.web_addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn call(srv: &TestServer, path: &str, body: &Body, cookie: Option<&str>, origin: Option<&str>) -> (u16, Value) {
    let mut req = client(srv).post(srv.web_url(path));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req = match body {
        Body::Form(pairs) => req.form(pairs),
        Body::Json(v) => req.json(v),
    };
    let resp = req.send().await.expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn code(v: &Value) -> &str {
    v.get("code").and_then(Value::as_str).unwrap_or("")
}

async fn fixture(srv: &TestServer) -> Fixture {
    let st = &srv.state;
    let now = now_unix();
    let pw = "correct horse battery staple";
    let admin = users::create_admin(st, &Actor::Cli, "admin", pw, now).await.expect("admin");
    let ga = groups::create(&st.db, &Actor::Cli, "group A", now).await.expect("group A");
    let gb = groups::create(&st.db, &Actor::Cli, "group B", now).await.expect("group B");
    let (a, _) = srv.enroll(&srv.create_token().await).await;
    let (b, _) = srv.enroll(&srv.create_token().await).await;
    groups::set_host_groups(&st.db, &Actor::Cli, &a.host_id, std::slice::from_ref(&ga.id), now).await.expect("host A");
    groups::set_host_groups(&st.db, &Actor::Cli, &b.host_id, std::slice::from_ref(&gb.id), now).await.expect("host B");
    let mut cookies = BTreeMap::new();
    for (name, group) in [("op-a", &ga.id), ("op-b", &gb.id)] {
        let inv = app::backend::user_admin::invite(st, &admin.actor(), name, app::api::dto::Role::Operator, std::slice::from_ref(group), now)
            .await
            .expect("invite");
        let token = inv.link.split("token=").nth(1).expect("token").to_string();
        app::backend::user_admin::accept_invitation(st, &token, pw, None, now).await.expect("accept");
        let user = users::user_by_name(&st.db, name).await.expect("operator");
        let t = sessions::start(st, &user, None, now).await.expect("session");
        cookies.insert(name, format!("pm_access={}", t.access));
    }
    let t = sessions::start(st, &admin, None, now).await.expect("admin session");
    cookies.insert("admin", format!("pm_access={}", t.access));
    // Password accepted, second factor not yet: only the pending cookie.
    let pending = sessions::issue_pending(&st.keys, &admin, now).expect("pending");
    cookies.insert("half", format!("pm_pending={pending}"));
    Fixture { host_a: a.host_id, host_b: b.host_id, cookies }
}

impl Fixture {
    fn cookie(&self, who: Who) -> Option<&str> {
        let key = match who {
            Who::Anonymous => return None,
            Who::HalfLoggedIn => "half",
            Who::OperatorA => "op-a",
            Who::OperatorB => "op-b",
            Who::Admin => "admin",
        };
        self.cookies.get(key).map(String::as_str)
    }
}

#[tokio::test]
async fn every_server_function_enforces_its_gate() {
    let srv = TestServer::start().await;
    let f = fixture(&srv).await;
    let origin = srv.web_url("");
    let table = matrix(&f);

    let registered: Vec<(String, String)> =
        server_fn::axum::server_fn_paths().map(|(p, m)| (p.to_string(), m.to_string())).collect();
    assert!(registered.len() >= table.len(), "registry incomplete: {registered:?}");
    for (path, method) in &registered {
        assert!(table.contains_key(path.as_str()), "server function {path} has no row in the permission matrix");
        assert_eq!(method, "POST", "{path}: mutations must never be reachable by GET");
    }
    for path in table.keys() {
        assert!(registered.iter().any(|(p, _)| p == path), "matrix row {path} names no registered function");
    }

    // Host data is cut to the caller's groups: host A is group A's, host B is group B's.
    let get = |id: &str| Body::Form(vec![("id", id.to_string())]);
    for (who, id, expected) in [
        (Who::OperatorA, &f.host_a, 200),
        (Who::OperatorA, &f.host_b, 404),
        (Who::OperatorB, &f.host_a, 404),
        (Who::OperatorB, &f.host_b, 200),
        (Who::Admin, &f.host_a, 200),
        (Who::Admin, &f.host_b, 200),
    ] {
        for path in ["/api/hosts/get", "/api/hosts/updates"] {
            let (status, answer) = call(&srv, path, &get(id), f.cookie(who), Some(&origin)).await;
            assert_eq!(status, expected, "{path} {id} as {who:?}: {answer}");
        }
    }
    let list = &table["/api/hosts/list"].1;
    for (who, total) in [(Who::OperatorA, 1), (Who::OperatorB, 1), (Who::Admin, 2)] {
        let (status, answer) = call(&srv, "/api/hosts/list", list, f.cookie(who), Some(&origin)).await;
        assert_eq!(status, 200);
        assert_eq!(answer["total"], total, "{who:?}: {answer}");
    }
    let (_, answer) = call(&srv, "/api/hosts/list", list, f.cookie(Who::OperatorA), Some(&origin)).await;
    assert_eq!(answer["items"][0]["id"], Value::String(f.host_a.clone()));

    let mut cells = 0;
    // Logout ends the caller's session: its row runs after all the others.
    const LOGOUT: &str = "/api/auth/logout";
    for (path, (gate, body)) in table.iter().filter(|(p, _)| **p != LOGOUT).chain(table.get_key_value(LOGOUT)) {
        // The Admin goes last on each row: its calls may change state.
        for who in EVERYONE {
            let (status, answer) = call(&srv, path, body, f.cookie(who), Some(&origin)).await;
            let signed_in = matches!(who, Who::OperatorA | Who::OperatorB | Who::Admin);
            let unauth = status == 401 && code(&answer) == "unauthenticated";
            match gate {
                Gate::Public => assert!(status != 403, "{path} as {who:?}: {status} {answer}"),
                Gate::User if !signed_in => assert!(unauth, "{path} as {who:?} must be refused: {status} {answer}"),
                Gate::User => assert!(!unauth && status != 403, "{path} as {who:?} must pass the gate: {status} {answer}"),
                Gate::Admin if !signed_in => assert!(unauth, "{path} as {who:?} must be refused: {status} {answer}"),
                Gate::Admin if who != Who::Admin => {
                    assert_eq!((status, code(&answer)), (403, "forbidden"), "{path} as {who:?}: {answer}")
                }
                Gate::Admin => assert!(!unauth && status != 403, "{path} as Admin must pass: {status} {answer}"),
            }
            cells += 1;
        }
    }
    assert_eq!(cells, table.len() * EVERYONE.len());

    srv.stop().await;
}

/// Who may open a page. Pages outside the public ones need a full session (the gate answers
/// `303 /login` otherwise); an Operator opening an Admin page gets the `forbidden` error of
/// the server functions behind it, none of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageGate {
    Public,
    User,
    Admin,
}

/// Every page of the app's route list (Leptos' own registry) with its gate; a page missing
/// here fails the test.
fn page_matrix() -> BTreeMap<&'static str, PageGate> {
    use PageGate::*;
    BTreeMap::from([
        ("/", User),
        ("/login", Public),
        ("/setup", Public),
        ("/invite", Public),
        ("/hosts", User),
        ("/hosts/{id}", User),
        ("/account", User),
        ("/jobs", User),
        ("/jobs/new", User),
        ("/jobs/{id}", User),
        ("/enroll", Admin),
        ("/users", Admin),
        ("/groups", Admin),
        // Operators read the hooks (they choose them for their jobs); changing them is refused.
        ("/hooks", User),
    ])
}

async fn get(srv: &TestServer, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut req = client(srv).get(srv.web_url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, location, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn every_page_and_rest_route_enforces_its_gate() {
    let srv = TestServer::start().await;
    let f = fixture(&srv).await;
    let origin = srv.web_url("");

    // Pages, from the route list the server registers.
    let pages = page_matrix();
    let listed: Vec<String> = leptos_axum::generate_route_list(app::ui::App).iter().map(|r| r.path().to_string()).collect();
    for path in &listed {
        assert!(pages.contains_key(path.as_str()), "page {path} has no row in the page matrix");
    }
    for path in pages.keys() {
        assert!(listed.iter().any(|p| p == path), "page matrix row {path} names no page");
    }
    let mut cells = 0;
    for (path, gate) in &pages {
        let concrete = path.replace("{id}", if path.starts_with("/hosts") { &f.host_a } else { "no-such-job" });
        for who in EVERYONE {
            let (status, location, body) = get(&srv, &concrete, f.cookie(who)).await;
            let signed_in = matches!(who, Who::OperatorA | Who::OperatorB | Who::Admin);
            let what = format!("GET {concrete} as {who:?}: {status} {location}");
            match gate {
                PageGate::Public => assert_eq!(status, 200, "{what}"),
                PageGate::User | PageGate::Admin if !signed_in => {
                    assert_eq!((status, location.as_str()), (303, "/login"), "{what}")
                }
                // Host A's page is Operator A's and the Admin's; to Operator B it does not exist
                // (like the unknown job id): 404, or the refusal in the streamed page.
                PageGate::User if *path == "/jobs/{id}" || (*path == "/hosts/{id}" && who == Who::OperatorB) => {
                    assert!(matches!(status, 200 | 404), "{what}");
                    assert!(body.contains(r#"data-code="not_found""#), "{what}: not found is shown");
                }
                PageGate::User => {
                    assert!(status == 200 || (status == 302 && *path == "/"), "{what}");
                    assert!(!body.contains(r#"data-code="forbidden""#), "{what}");
                    assert!(!body.contains(r#"data-code="not_found""#), "{what}");
                }
                PageGate::Admin if who == Who::Admin => {
                    assert_eq!(status, 200, "{what}");
                    assert!(!body.contains(r#"data-code="forbidden""#), "{what}");
                }
                PageGate::Admin => {
                    // The status is 403 when the refusal comes before the streamed page's head.
                    assert!(matches!(status, 200 | 403), "{what}");
                    assert!(body.contains(r#"data-code="forbidden""#), "{what}: the refusal is shown");
                }
            }
            cells += 1;
        }
    }
    assert_eq!(cells, pages.len() * EVERYONE.len());

    // REST routes, from the table the router is built from.
    let routes: Vec<_> = server::web::rest_routes().into_iter().map(|(r, _)| r).collect();
    assert!(!routes.is_empty());
    let csr = crate::common::csr_pem(&rcgen::KeyPair::generate().expect("key"));
    let enroll_body = json!({ "token": "pmet_not-a-real-token", "csr_pem": csr, "hostname": "matrix" });
    for route in &routes {
        let concrete = route.path.replace("{*rest}", "hosts");
        for who in EVERYONE {
            let cookie = f.cookie(who);
            let method = route.method.clone().unwrap_or(reqwest::Method::GET);
            let mut req = client(&srv).request(method.clone(), srv.web_url(&concrete)).header("origin", &origin);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            if method == reqwest::Method::POST {
                req = req.json(&enroll_body);
            }
            let resp = req.send().await.expect("REST call");
            let status = resp.status().as_u16();
            let answer: Value = serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null);
            let what = format!("{method} {concrete} as {who:?}: {status} {answer}");
            let signed_in = matches!(who, Who::OperatorA | Who::OperatorB | Who::Admin);
            match (route.access, route.path) {
                // The one-time token is the only proof; a session cookie adds nothing.
                (RestAccess::Open, agent::proto::ENROLL_PATH) => {
                    assert!(matches!(status, 400 | 401 | 403), "{what}");
                    assert_ne!(code(&answer), "", "{what}: a clear error code");
                }
                (RestAccess::Open, _) => assert_eq!(status, 200, "{what}"),
                (RestAccess::Session, _) if !signed_in => {
                    assert_eq!((status, code(&answer)), (401, "not_logged_in"), "{what}")
                }
                (RestAccess::Session, _) => assert_eq!(status, 404, "{what}"),
            }
            cells += 1;
        }
        // A route answers its own method only: no mutation by GET, no upload by POST to a GET.
        if let Some(method) = &route.method {
            let other = if *method == reqwest::Method::GET { reqwest::Method::POST } else { reqwest::Method::GET };
            let (status, _) = {
                let resp = client(&srv)
                    .request(other.clone(), srv.web_url(&concrete))
                    .header("origin", &origin)
                    .send()
                    .await
                    .expect("wrong method");
                (resp.status().as_u16(), ())
            };
            assert_eq!(status, 405, "{other} {concrete}");
        }
    }
    assert_eq!(cells, (pages.len() + routes.len()) * EVERYONE.len());

    srv.stop().await;
}

#[tokio::test]
async fn state_changes_from_another_origin_are_refused() {
    let srv = TestServer::start().await;
    let f = fixture(&srv).await;
    let admin = f.cookie(Who::Admin);
    let body = Body::Form(vec![("name", "csrf probe".to_string())]);
    let groups_before = srv.count("SELECT COUNT(*) FROM host_groups").await;

    for origin in [Some("https://evil.example"), Some("null"), Some("http://localhost"), None] {
        let (status, answer) = call(&srv, "/api/groups/create", &body, admin, origin).await;
        assert_eq!((status, code(&answer)), (403, "cross_origin"), "origin {origin:?}: {answer}");
    }
    // Fetch metadata wins over a matching Origin.
    let resp = client(&srv)
        .post(srv.web_url("/api/groups/create"))
        .header("origin", srv.web_url(""))
        .header("sec-fetch-site", "cross-site")
        .header("cookie", admin.unwrap_or_default())
        .form(&[("name", "csrf probe")])
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403);
    // Login CSRF too: a foreign page cannot sign the browser in.
    let login = Body::Form(vec![("username", "admin".into()), ("password", "correct horse battery staple".into())]);
    let (status, _) = call(&srv, "/api/auth/login", &login, None, Some("https://evil.example")).await;
    assert_eq!(status, 403);
    assert_eq!(srv.count("SELECT COUNT(*) FROM host_groups").await, groups_before, "nothing was created");

    // The same request from our own origin works.
    let (status, answer) = call(&srv, "/api/groups/create", &body, admin, Some(&srv.web_url(""))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(srv.count("SELECT COUNT(*) FROM host_groups").await, groups_before + 1);
    srv.stop().await;
}

#[tokio::test]
async fn revoked_or_disabled_users_lose_access_at_once() {
    let srv = TestServer::start().await;
    let f = fixture(&srv).await;
    let origin = srv.web_url("");
    let me = Body::Form(vec![]);
    let (status, answer) = call(&srv, "/api/groups/mine", &me, f.cookie(Who::OperatorA), Some(&origin)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer.as_array().map(Vec::len), Some(1));

    // The Admin disables operator A: their unexpired access token stops working immediately.
    let (_, list) = call(&srv, "/api/users/list", &me, f.cookie(Who::Admin), Some(&origin)).await;
    let op_a = list.as_array().expect("users").iter().find(|u| u["username"] == "op-a").expect("op-a")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let disable = Body::Form(vec![("id", op_a.clone()), ("disabled", "true".into())]);
    let (status, answer) = call(&srv, "/api/users/set_disabled", &disable, f.cookie(Who::Admin), Some(&origin)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(&srv, "/api/groups/mine", &me, f.cookie(Who::OperatorA), Some(&origin)).await;
    assert_eq!((status, code(&answer)), (401, "unauthenticated"));

    // Operator B promoted to Admin: the old token is revoked too (role change ends sessions).
    let (_, list) = call(&srv, "/api/users/list", &me, f.cookie(Who::Admin), Some(&origin)).await;
    let op_b = list.as_array().expect("users").iter().find(|u| u["username"] == "op-b").expect("op-b")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let promote = Body::Form(vec![("id", op_b), ("role", "Admin".into())]);
    let (status, _) = call(&srv, "/api/users/set_role", &promote, f.cookie(Who::Admin), Some(&origin)).await;
    assert_eq!(status, 200);
    let (status, _) = call(&srv, "/api/groups/mine", &me, f.cookie(Who::OperatorB), Some(&origin)).await;
    assert_eq!(status, 401);

    let audit = app::backend::audit::list_by_action(&srv.state.db, "user.disable").await.expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "user:admin");
    assert_eq!(audit[0].target, format!("user:{op_a}"));
    // Every row written while serving a request records where it came from.
    for action in ["user.disable", "user.role_change"] {
        let rows = app::backend::audit::list_by_action(&srv.state.db, action).await.expect("audit");
        assert_eq!(rows.len(), 1, "{action}");
        assert_eq!(rows[0].source_ip.as_deref(), Some("127.0.0.1"), "{action}");
    }
    assert_eq!(app::backend::audit::verify(&srv.state.db).await.expect("verify").first_bad_seq, None);
    srv.stop().await;
}

/// The scope cut for jobs over HTTPS: Operator A cannot target, see or stop host B's part;
/// hooks are Admin-only to change and anyone's to list.
#[tokio::test]
async fn operators_cannot_target_or_see_other_groups_hosts_in_jobs() {
    let srv = TestServer::start().await;
    let f = fixture(&srv).await;
    let origin = srv.web_url("");
    let job = |hosts: &[&String]| Body::Json(json!({ "job": crate::jobs::job_for(hosts) }));
    let (op_a, op_b, admin) = (f.cookie(Who::OperatorA), f.cookie(Who::OperatorB), f.cookie(Who::Admin));

    // Operator A names host B (alone or with A): refused, nothing written.
    for hosts in [vec![&f.host_b], vec![&f.host_a, &f.host_b]] {
        let (status, answer) = call(&srv, "/api/jobs/create", &job(&hosts), op_a, Some(&origin)).await;
        assert_eq!((status, code(&answer)), (422, "invalid_input"), "{answer}");
        let (status, _) = call(&srv, "/api/jobs/preview", &job(&hosts), op_a, Some(&origin)).await;
        assert_eq!(status, 422);
    }
    assert_eq!(srv.count("SELECT COUNT(*) FROM jobs").await, 0);
    let (_, targets) = call(&srv, "/api/jobs/targets", &Body::Form(vec![]), op_a, Some(&origin)).await;
    let ids: Vec<&str> = targets["hosts"].as_array().expect("hosts").iter().filter_map(|h| h["id"].as_str()).collect();
    assert_eq!(ids, [f.host_a.as_str()]);

    // The Admin's job over both hosts: each Operator sees only their own host's part.
    let (status, mixed) = call(&srv, "/api/jobs/create", &job(&[&f.host_a, &f.host_b]), admin, Some(&origin)).await;
    assert_eq!(status, 200, "{mixed}");
    let mixed = mixed.as_str().expect("id").to_string();
    for (who, cookie, mine) in [("A", op_a, &f.host_a), ("B", op_b, &f.host_b)] {
        let (status, d) = call(&srv, "/api/jobs/get", &Body::Form(vec![("id", mixed.clone())]), cookie, Some(&origin)).await;
        assert_eq!(status, 200, "{who}: {d}");
        let hosts: Vec<&str> = d["hosts"].as_array().expect("hosts").iter().filter_map(|h| h["host_id"].as_str()).collect();
        assert_eq!(hosts, [mine.as_str()], "operator {who}");
        assert_eq!(d["can_cancel"], false);
        let (status, answer) = call(&srv, "/api/jobs/cancel", &Body::Form(vec![("id", mixed.clone())]), cookie, Some(&origin)).await;
        assert_eq!((status, code(&answer)), (403, "forbidden"), "operator {who} must not stop the others' part");
    }
    let pair = |job: &str, host: &str| Body::Form(vec![("job_id", job.to_string()), ("host_id", host.to_string())]);
    let (status, _) = call(&srv, "/api/jobs/host_result", &pair(&mixed, &f.host_b), op_a, Some(&origin)).await;
    assert_eq!(status, 404);
    let (status, _) = call(&srv, "/api/jobs/cancel_host", &pair(&mixed, &f.host_b), op_a, Some(&origin)).await;
    assert_eq!(status, 404);
    let (status, _) = call(&srv, "/api/jobs/for_host", &Body::Form(vec![("host_id", f.host_b.clone())]), op_a, Some(&origin)).await;
    assert_eq!(status, 404);
    // Operator A may cancel their own host's part of it.
    let (status, answer) = call(&srv, "/api/jobs/cancel_host", &pair(&mixed, &f.host_a), op_a, Some(&origin)).await;
    assert_eq!(status, 200, "{answer}");

    // A job on host B only is invisible to Operator A, in the list too.
    let (_, b_only) = call(&srv, "/api/jobs/create", &job(&[&f.host_b]), op_b, Some(&origin)).await;
    let b_only = b_only.as_str().expect("id").to_string();
    let (status, _) = call(&srv, "/api/jobs/get", &Body::Form(vec![("id", b_only.clone())]), op_a, Some(&origin)).await;
    assert_eq!(status, 404);
    let page = Body::Form(vec![("page", "1".into())]);
    let (_, list) = call(&srv, "/api/jobs/list", &page, op_a, Some(&origin)).await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = call(&srv, "/api/jobs/list", &page, admin, Some(&origin)).await;
    assert_eq!(list["total"], 2, "{list}");
    // Operator B cancels their own job.
    let (status, _) = call(&srv, "/api/jobs/cancel", &Body::Form(vec![("id", b_only)]), op_b, Some(&origin)).await;
    assert_eq!(status, 200);

    // Hooks: an Operator can list but not define one; a job cannot name a missing hook.
    let hook = Body::Json(json!({ "name": "drain", "argv": ["/usr/local/sbin/drain"], "timeout_secs": 60 }));
    let (status, _) = call(&srv, "/api/hooks/create", &hook, op_a, Some(&origin)).await;
    assert_eq!(status, 403);
    let (status, created) = call(&srv, "/api/hooks/create", &hook, admin, Some(&origin)).await;
    assert_eq!(status, 200, "{created}");
    let (status, listed) = call(&srv, "/api/hooks/list", &Body::Form(vec![]), op_a, Some(&origin)).await;
    assert_eq!((status, listed[0]["name"].as_str()), (200, Some("drain")));
    let mut with_hook = crate::jobs::job_for(&[&f.host_a]);
    with_hook.pre_hook_ids = vec!["no-such-hook".into()];
    let (status, answer) = call(&srv, "/api/jobs/create", &Body::Json(json!({ "job": with_hook })), op_a, Some(&origin)).await;
    assert_eq!((status, code(&answer)), (422, "invalid_input"), "{answer}");
    with_hook.pre_hook_ids = vec![created["id"].as_str().expect("hook id").to_string()];
    let (status, answer) = call(&srv, "/api/jobs/create", &Body::Json(json!({ "job": with_hook })), op_a, Some(&origin)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(app::backend::audit::list_by_action(&srv.state.db, "hook.create").await.expect("audit")[0].actor, "user:admin");
    srv.stop().await;
}

#[tokio::test]
async fn revoking_a_host_is_scoped_audited_and_locks_the_agent_out() {
    let srv = TestServer::start().await;
    let f = fixture(&srv).await;
    let origin = srv.web_url("");
    let now = now_unix();
    // A third host, in group A, with an agent connection open (keep-alive).
    let (c, key) = srv.enroll(&srv.create_token().await).await;
    let group_a = groups::list(&srv.state.db).await.expect("groups").into_iter().find(|g| g.name == "group A").expect("A");
    groups::set_host_groups(&srv.state.db, &Actor::Cli, &c.host_id, &[group_a.id], now).await.expect("host C");
    let id = || crate::common::identity(&c.cert_pem, &key);
    let serial = app::backend::certs::serial_hex_of_der(id().0[0].as_ref()).expect("serial");
    let mut conn = srv.agent_connect(Some(id())).await.expect("handshake");
    let body = serde_json::to_string(&crate::common::sample_checkin()).expect("json");
    let (status, _) = crate::common::http1_post(&mut conn, agent::proto::CHECKIN_PATH, &body).await.expect("check-in");
    assert_eq!(status, 200);

    let revoke = Body::Form(vec![("id", c.host_id.clone())]);
    // Operator B cannot see host C: 404, as for a host that does not exist; nothing changes.
    let (status, answer) = call(&srv, "/api/hosts/revoke", &revoke, f.cookie(Who::OperatorB), Some(&origin)).await;
    assert_eq!((status, code(&answer)), (404, "not_found"), "{answer}");
    // From another origin, even Operator A is refused before anything happens.
    let (status, _) =
        call(&srv, "/api/hosts/revoke", &revoke, f.cookie(Who::OperatorA), Some("https://evil.example")).await;
    assert_eq!(status, 403);
    let (status, _) = crate::common::http1_post(&mut conn, agent::proto::CHECKIN_PATH, &body).await.expect("check-in");
    assert_eq!(status, 200, "the host still checks in");

    // Operator A revokes it: the serial is named, the audit row has the actor and source IP.
    let (status, answer) = call(&srv, "/api/hosts/revoke", &revoke, f.cookie(Who::OperatorA), Some(&origin)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, json!([serial.clone()]));
    let rows = app::backend::audit::list_by_action(&srv.state.db, "cert.revoke").await.expect("audit");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].target, format!("cert:{serial}"));
    assert_eq!(rows[0].actor, "user:op-a");
    assert_eq!(rows[0].source_ip.as_deref(), Some("127.0.0.1"));
    // Twice is a clear conflict, not a second audit row.
    let (status, answer) = call(&srv, "/api/hosts/revoke", &revoke, f.cookie(Who::Admin), Some(&origin)).await;
    assert_eq!((status, code(&answer)), (409, "already_revoked"), "{answer}");
    assert_eq!(app::backend::audit::list_by_action(&srv.state.db, "cert.revoke").await.expect("audit").len(), 1);

    // The open connection's next request is refused, and so is a new one.
    let (status, answer) = crate::common::http1_post(&mut conn, agent::proto::CHECKIN_PATH, &body).await.expect("answer");
    assert_eq!(status, 401, "{answer}");
    match srv.agent_connect(Some(id())).await {
        Err(_) => {}
        Ok(mut fresh) => {
            let refused = crate::common::http1_post(&mut fresh, agent::proto::CHECKIN_PATH, &body).await;
            assert!(refused.is_err() || refused.is_ok_and(|(s, _)| s == 401), "a new connection must be refused");
        }
    }
    // Host A's agent is untouched.
    let detail = app::backend::hosts::get(&srv.state.db, &app::backend::access::Scope::All, &f.host_a, 300, now_unix())
        .await
        .expect("host A");
    assert!(!detail.cert_serial.is_empty());
    srv.stop().await;
}
