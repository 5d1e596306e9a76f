//! WebAuthn ceremonies over real HTTPS against the real router: passkey as first factor at
//! enrolment, passwordless login, password + passkey, recovery codes, removal, and the
//! refusals (no session, another origin, another browser's challenge, the last factor).
//! The authenticator is a webauthn-authenticator-rs soft passkey; the server's relying party
//! is `https://localhost:8443` (the test server's public_url).

use std::collections::BTreeMap;

use app::backend::audit::{self, Actor};
use app::backend::db::now_unix;
use app::backend::users;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::common::TestServer;

const RP_ORIGIN: &str = "https://localhost:8443";
const PW: &str = "correct horse battery staple";

/// A browser: one TLS client plus a cookie jar fed by `Set-Cookie`.
struct Browser<'a> {
    srv: &'a TestServer,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
    origin: String,
}

impl<'a> Browser<'a> {
    fn new(srv: &'a TestServer) -> Browser<'a> {
        Browser { srv, client: srv.web_client(), cookies: BTreeMap::new(), origin: srv.web_url("") }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.client.post(self.srv.web_url(path)).header("origin", &self.origin).form(form);
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status().as_u16();
        for sc in resp.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let pair = sc.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || sc.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn ok(&mut self, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, body) = self.post(path, form).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

fn code(v: &Value) -> &str {
    v.get("code").and_then(Value::as_str).unwrap_or("")
}

fn origin() -> Url {
    Url::parse(RP_ORIGIN).expect("origin")
}

fn register(sp: &mut SoftPasskey, options: &Value) -> String {
    let ccr: CreationChallengeResponse = serde_json::from_str(options.as_str().expect("options text")).expect("ccr");
    serde_json::to_string(&sp.do_registration(origin(), ccr).expect("registration")).expect("json")
}

fn authenticate(sp: &mut SoftPasskey, options: &Value) -> String {
    let rcr: RequestChallengeResponse = serde_json::from_str(options.as_str().expect("options text")).expect("rcr");
    serde_json::to_string(&sp.do_authentication(origin(), rcr).expect("assertion")).expect("json")
}

/// As a browser with a discoverable credential answers (see the backend tests' module docs).
fn discover(sp: &mut SoftPasskey, options: &Value, cred_id: &[u8], user_id: &str) -> String {
    let mut v: Value = serde_json::from_str(options.as_str().expect("options text")).expect("json");
    v["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": B64.encode(cred_id) }]);
    let rcr: RequestChallengeResponse = serde_json::from_value(v).expect("rcr");
    let mut cred = sp.do_authentication(origin(), rcr).expect("assertion");
    cred.response.user_handle = Some(uuid::Uuid::parse_str(user_id).expect("uuid").as_bytes().to_vec());
    serde_json::to_string(&cred).expect("json")
}

async fn methods(srv: &TestServer) -> Vec<String> {
    audit::list_by_action(&srv.state.db, "login.success")
        .await
        .expect("audit")
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.details).ok()?.get("method")?.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn passkey_enrolment_passwordless_second_factor_recovery_and_removal() {
    let srv = TestServer::start().await;
    let user = users::create_admin(&srv.state, &Actor::Cli, "kim", PW, now_unix()).await.expect("user");
    let mut sp = SoftPasskey::new(true);

    // Password, then a passkey as the first factor: signed in, with recovery codes.
    let mut b = Browser::new(&srv);
    assert_eq!(b.ok("/api/auth/login", &[("username", "kim"), ("password", PW)]).await, json!("Enrol"));
    // Without the factor, nothing else is reachable.
    let (status, body) = b.post("/api/account/factors", &[]).await;
    assert_eq!((status, code(&body)), (401, "unauthenticated"));
    let options = b.ok("/api/auth/passkey_enrol_begin", &[("name", "Laptop")]).await;
    let reg = register(&mut sp, &options);
    let cred_id = B64.decode(serde_json::from_str::<Value>(&reg).expect("reg")["rawId"].as_str().expect("rawId")).expect("b64");
    let codes = b.ok("/api/auth/passkey_enrol_finish", &[("credential", &reg)]).await;
    let codes: Vec<String> = serde_json::from_value(codes).expect("codes");
    assert_eq!(codes.len(), 10);
    assert!(b.cookies.contains_key("pm_access") && b.cookies.contains_key("pm_refresh"));
    assert!(!b.cookies.contains_key("pm_pending"), "the pending cookie is replaced by the session");
    let factors = b.ok("/api/account/factors", &[]).await;
    assert_eq!(factors["passkeys"][0]["name"], "Laptop");
    assert_eq!(factors["recovery_codes_left"], 10);
    assert_eq!(factors["totp_enrolled"], false);
    // The only factor cannot be removed.
    let id = factors["passkeys"][0]["id"].as_str().expect("id").to_string();
    let (status, body) = b.post("/api/account/passkey_remove", &[("id", &id)]).await;
    assert_eq!((status, code(&body)), (409, "last_factor"));
    b.ok("/api/auth/logout", &[]).await;

    // Passwordless.
    let mut b = Browser::new(&srv);
    let options = b.ok("/api/auth/passwordless_begin", &[]).await;
    assert!(b.cookies.contains_key("pm_webauthn"));
    let answer = discover(&mut sp, &options, &cred_id, &user.id);
    b.ok("/api/auth/passwordless_finish", &[("credential", &answer)]).await;
    assert!(!b.cookies.contains_key("pm_webauthn"));
    assert_eq!(b.ok("/api/auth/me", &[]).await["username"], "kim");
    // The same answer again: refused (the challenge is spent, the ceremony cookie gone).
    let (status, _) = b.post("/api/auth/passwordless_finish", &[("credential", &answer)]).await;
    assert_eq!(status, 401);

    // Another browser's challenge: B presents the answer to A's.
    let mut a = Browser::new(&srv);
    let mut other = Browser::new(&srv);
    let options_a = a.ok("/api/auth/passwordless_begin", &[]).await;
    other.ok("/api/auth/passwordless_begin", &[]).await;
    let for_a = discover(&mut sp, &options_a, &cred_id, &user.id);
    let (status, body) = other.post("/api/auth/passwordless_finish", &[("credential", &for_a)]).await;
    assert_eq!((status, code(&body)), (401, "passkey_invalid"));
    assert!(!other.cookies.contains_key("pm_access"));

    // Password + passkey as the second factor.
    let mut b = Browser::new(&srv);
    let step = b.ok("/api/auth/login", &[("username", "kim"), ("password", PW)]).await;
    assert_eq!(step, json!({ "SecondFactor": { "totp": false, "passkey": true } }));
    // The enrolment steps are closed to a user who has a factor.
    let (status, body) = b.post("/api/auth/passkey_enrol_begin", &[("name", "sneaky")]).await;
    assert_eq!((status, code(&body)), (409, "wrong_stage"));
    let options = b.ok("/api/auth/passkey_begin", &[]).await;
    b.ok("/api/auth/passkey_finish", &[("credential", &authenticate(&mut sp, &options))]).await;
    assert!(b.cookies.contains_key("pm_access"));

    // Adding a second passkey from the account page (bound to this session), then removing the
    // first: it no longer signs anyone in.
    let mut second = SoftPasskey::new(true);
    let options = b.ok("/api/account/passkey_begin", &[("name", "YubiKey")]).await;
    let added = b.ok("/api/account/passkey_finish", &[("credential", &register(&mut second, &options))]).await;
    assert_eq!(added["name"], "YubiKey");
    b.ok("/api/account/passkey_rename", &[("id", added["id"].as_str().expect("id")), ("name", "Blue key")]).await;
    b.ok("/api/account/passkey_remove", &[("id", &id)]).await;
    let factors = b.ok("/api/account/factors", &[]).await;
    assert_eq!(factors["passkeys"].as_array().map(Vec::len), Some(1));
    assert_eq!(factors["passkeys"][0]["name"], "Blue key");
    let mut c = Browser::new(&srv);
    let options = c.ok("/api/auth/passwordless_begin", &[]).await;
    let (status, _) = c.post("/api/auth/passwordless_finish", &[("credential", &discover(&mut sp, &options, &cred_id, &user.id))]).await;
    assert_eq!(status, 401, "a removed passkey must not sign in");

    // A recovery code instead of the factor, once.
    for (i, expect) in [(0, 200), (0, 401)] {
        let mut r = Browser::new(&srv);
        r.ok("/api/auth/login", &[("username", "kim"), ("password", PW)]).await;
        let (status, body) = r.post("/api/auth/recovery_login", &[("code", &codes[i])]).await;
        assert_eq!(status, expect, "{body}");
    }

    assert_eq!(methods(&srv).await, ["password+passkey", "passkey", "password+passkey", "password+recovery_code"]);
    for action in ["mfa.passkey.add", "mfa.passkey.remove", "mfa.passkey.rename", "mfa.recovery.generate", "mfa.recovery.use"] {
        let rows = audit::list_by_action(&srv.state.db, action).await.expect("audit");
        assert!(!rows.is_empty(), "{action}");
        assert!(rows.iter().all(|r| r.source_ip.as_deref() == Some("127.0.0.1")), "{action}: {rows:?}");
    }
    let failures = audit::list_by_action(&srv.state.db, "login.failure").await.expect("audit");
    assert!(failures.iter().any(|f| f.details.contains("\"passkey\"")), "{failures:?}");
    assert!(failures.iter().any(|f| f.details.contains("recovery_code")), "{failures:?}");
    assert_eq!(audit::verify(&srv.state.db).await.expect("verify").first_bad_seq, None);
    srv.stop().await;
}

#[tokio::test]
async fn ceremonies_refuse_other_origins_and_missing_sessions() {
    let srv = TestServer::start().await;
    users::create_admin(&srv.state, &Actor::Cli, "lee", PW, now_unix()).await.expect("user");
    let mut sp = SoftPasskey::new(true);
    let mut b = Browser::new(&srv);
    b.ok("/api/auth/login", &[("username", "lee"), ("password", PW)]).await;
    let options = b.ok("/api/auth/passkey_enrol_begin", &[("name", "Laptop")]).await;
    b.ok("/api/auth/passkey_enrol_finish", &[("credential", &register(&mut sp, &options))]).await;
    let count = || srv.count("SELECT COUNT(*) FROM user_passkeys");
    assert_eq!(count().await, 1);

    // From another origin: refused before anything runs, even with a valid session.
    let mut evil = Browser { origin: "https://evil.example".into(), ..Browser::new(&srv) };
    evil.cookies = b.cookies.clone();
    for path in ["/api/account/passkey_begin", "/api/auth/passwordless_begin", "/api/account/recovery_regenerate"] {
        let (status, body) = evil.post(path, &[("name", "evil")]).await;
        assert_eq!((status, code(&body)), (403, "cross_origin"), "{path}");
    }
    assert_eq!(srv.count("SELECT COUNT(*) FROM webauthn_ceremonies").await, 0);

    // Without a session: nothing on the account side.
    let mut anon = Browser::new(&srv);
    for path in ["/api/account/passkey_begin", "/api/account/passkey_finish", "/api/account/passkey_remove", "/api/account/factors"] {
        let (status, body) = anon.post(path, &[("name", "x"), ("credential", "{}"), ("id", "x")]).await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{path}");
    }
    // Second-factor steps without a pending login; passwordless finish without its cookie.
    for path in ["/api/auth/passkey_begin", "/api/auth/passkey_finish", "/api/auth/recovery_login", "/api/auth/passwordless_finish"] {
        let (status, body) = anon.post(path, &[("credential", "{}"), ("code", "x")]).await;
        assert_eq!((status, code(&body)), (401, "unauthenticated"), "{path}");
    }
    // A registration answer meant for session 1 is refused in session 2 of the same user.
    let mut s2 = Browser::new(&srv);
    s2.ok("/api/auth/login", &[("username", "lee"), ("password", PW)]).await;
    let options = s2.ok("/api/auth/passkey_begin", &[]).await;
    s2.ok("/api/auth/passkey_finish", &[("credential", &authenticate(&mut sp, &options))]).await;
    let options = b.ok("/api/account/passkey_begin", &[("name", "Phone")]).await;
    s2.ok("/api/account/passkey_begin", &[("name", "Tablet")]).await;
    let for_b = register(&mut SoftPasskey::new(true), &options);
    let (status, body) = s2.post("/api/account/passkey_finish", &[("credential", &for_b)]).await;
    assert_eq!((status, code(&body)), (401, "passkey_invalid"));
    // Malformed answers are bad input.
    let (status, body) = b.post("/api/account/passkey_finish", &[("credential", "not json")]).await;
    assert_eq!((status, code(&body)), (422, "invalid_input"));
    assert_eq!(count().await, 1, "nothing was added");
    srv.stop().await;
}
