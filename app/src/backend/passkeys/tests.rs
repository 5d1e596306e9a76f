//! Every WebAuthn refusal, driven by webauthn-authenticator-rs soft passkeys against the real
//! relying party of a `TestEnv` (public_url `https://localhost:8443`).
//!
//! `SoftPasskey::new(true)` reports user verification (it has no real UV). It keeps no
//! resident credentials and returns no user handle, so the passwordless tests give it the
//! credential id in the allow-list and put the user handle into its answer, as a browser with
//! a discoverable credential would; neither is covered by the signature.

use sha2::{Digest, Sha256};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::{AuthenticatorBackendHashedClientData, WebauthnAuthenticator};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

use super::*;
use crate::backend::sessions::testenv::TestEnv;
use crate::backend::{mfa, user_admin};

const NOW: i64 = 1_700_000_000;
const ORIGIN: &str = "https://localhost:8443";
const PW: &str = "a-long-enough-password";

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

async fn user(env: &TestEnv, name: &str) -> User {
    users::create_admin(&env.state, &Actor::Cli, name, PW, NOW).await.unwrap()
}

/// Registers a new soft passkey for `u`; returns it with its credential id.
async fn register(env: &TestEnv, u: &User, binding: &str, name: &str) -> (SoftPasskey, Vec<u8>, PasskeyInfo) {
    let st = &env.state;
    let options = begin_registration(st, u, binding, name, NOW).await.unwrap();
    let ccr: CreationChallengeResponse = serde_json::from_str(&options).unwrap();
    let mut sp = SoftPasskey::new(true);
    let reg = sp.do_registration(origin(), ccr).unwrap();
    let cred_id = reg.raw_id.clone();
    let (info, _) = finish_registration(st, u, binding, &serde_json::to_string(&reg).unwrap(), Some("192.0.2.1"), NOW)
        .await
        .unwrap();
    (sp, cred_id, info)
}

/// An assertion over `options` (JSON from a begin function) by a well-behaved client.
fn assert_ok(sp: &mut SoftPasskey, options: &str) -> String {
    let rcr: RequestChallengeResponse = serde_json::from_str(options).unwrap();
    serde_json::to_string(&sp.do_authentication(origin(), rcr).unwrap()).unwrap()
}

/// An assertion whose client data names `client_origin` and whose authenticator data is made
/// for `rp_id`: what a phishing page (or a broken client) would send.
fn assert_as(sp: &mut SoftPasskey, options: &str, client_origin: &str, rp_id: &str) -> String {
    let rcr: RequestChallengeResponse = serde_json::from_str(options).unwrap();
    let mut opts = rcr.public_key;
    opts.rp_id = rp_id.to_string();
    let client_data = json!({
        "type": "webauthn.get",
        "challenge": B64.encode(&opts.challenge),
        "origin": client_origin,
        "crossOrigin": false,
    })
    .to_string()
    .into_bytes();
    let hash = Sha256::digest(&client_data).to_vec();
    let mut cred = AuthenticatorBackendHashedClientData::perform_auth(sp, hash, opts, 60_000).unwrap();
    cred.response.client_data_json = client_data;
    serde_json::to_string(&cred).unwrap()
}

/// A passwordless assertion: the authenticator finds `cred_id` and returns `handle`.
fn assert_discoverable(sp: &mut SoftPasskey, options: &str, cred_id: &[u8], handle: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(options).unwrap();
    assert_eq!(v.pointer("/publicKey/allowCredentials").unwrap(), &json!([]), "no allow-list in a discoverable request");
    assert!(v.get("mediation").is_none(), "modal, not conditional");
    v["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": B64.encode(cred_id) }]);
    let rcr: RequestChallengeResponse = serde_json::from_value(v).unwrap();
    let mut cred = sp.do_authentication(origin(), rcr).unwrap();
    cred.response.user_handle = Some(Uuid::parse_str(handle).unwrap().as_bytes().to_vec());
    serde_json::to_string(&cred).unwrap()
}

async fn failure_reasons(env: &TestEnv) -> Vec<String> {
    audit::list_by_action(&env.state.db, "login.failure")
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let d: serde_json::Value = serde_json::from_str(&r.details).unwrap();
            d["reason"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn relying_party_comes_from_public_url() {
    let rp = RelyingParty::new("https://pm.example:8443").unwrap();
    assert_eq!(rp.rp_id, "pm.example");
    assert_eq!(rp.origin.as_str(), "https://pm.example:8443/");
    assert!(RelyingParty::new("https://192.0.2.1:8443").is_err(), "no RP ID for an IP address");
    assert!(RelyingParty::new("not a url").is_err());
}

#[tokio::test]
async fn several_passkeys_second_factor_rename_and_list() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = user(&env, "alice").await;
    let (mut laptop, _, first) = register(&env, &u, "session:s1", "Laptop").await;
    let (mut key, _, second) = register(&env, &u, "session:s1", "  YubiKey  ").await;
    assert_eq!(second.name, "YubiKey");
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();
    assert_eq!(u.passkeys, 2);
    assert!(u.has_factor());

    // Second factor with either key; the allow-list names both.
    for sp in [&mut laptop, &mut key] {
        let options = begin_authentication(st, &u, "pending:p1", NOW).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&options).unwrap();
        assert_eq!(v.pointer("/publicKey/allowCredentials").and_then(|a| a.as_array()).map(Vec::len), Some(2));
        assert_eq!(v.pointer("/publicKey/userVerification").and_then(|a| a.as_str()), Some("required"));
        assert_eq!(v.pointer("/publicKey/rpId").and_then(|a| a.as_str()), Some("localhost"));
        finish_authentication(st, &u, "pending:p1", &assert_ok(sp, &options), Some("192.0.2.2"), NOW + 5).await.unwrap();
    }
    let listed = list(&st.db, &u.id).await.unwrap();
    assert_eq!(listed.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Laptop", "YubiKey"]);
    assert!(listed.iter().all(|p| p.last_used_at == Some(NOW + 5)));

    rename(st, &u, &first.id, "Work laptop", Some("192.0.2.3"), NOW).await.unwrap();
    assert_eq!(list(&st.db, &u.id).await.unwrap()[0].name, "Work laptop");
    assert_eq!(rename(st, &u, &first.id, "", None, NOW).await.unwrap_err().code(), "invalid_input");
    assert_eq!(rename(st, &u, &first.id, &"x".repeat(65), None, NOW).await.unwrap_err().code(), "invalid_input");
    // Someone else's passkey is "not found".
    let other = user(&env, "bob").await;
    assert_eq!(rename(st, &other, &first.id, "mine now", None, NOW).await.unwrap_err().code(), "not_found");
    assert_eq!(remove(st, &other, &first.id, None, NOW).await.unwrap_err().code(), "not_found");
    // A passkey registration needs a name.
    assert_eq!(begin_registration(st, &u, "session:s1", " ", NOW).await.unwrap_err().code(), "invalid_input");

    assert_eq!(audit::list_by_action(&st.db, "mfa.passkey.add").await.unwrap().len(), 2);
    let renamed = audit::list_by_action(&st.db, "mfa.passkey.rename").await.unwrap();
    assert_eq!((renamed.len(), renamed[0].source_ip.as_deref()), (1, Some("192.0.2.3")));
    // The first factor came with recovery codes; the second did not replace them.
    assert_eq!(audit::list_by_action(&st.db, "mfa.recovery.generate").await.unwrap().len(), 1);
    assert_eq!(recovery::remaining(&st.db, &u.id).await.unwrap(), 10);
    assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
    env.finish().await;
}

#[tokio::test]
async fn wrong_origin_and_wrong_rp_id_are_refused() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = user(&env, "carol").await;
    let (mut sp, _, _) = register(&env, &u, "session:s1", "Laptop").await;
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();

    // A phishing page on another origin relays our challenge.
    let options = begin_authentication(st, &u, "pending:p1", NOW).await.unwrap();
    let phished = assert_as(&mut sp, &options, "https://evil.example", "localhost");
    let e = finish_authentication(st, &u, "pending:p1", &phished, Some("198.51.100.9"), NOW).await.unwrap_err();
    assert_eq!(e.code(), "passkey_invalid");
    // Same host, other port: another origin too.
    let options = begin_authentication(st, &u, "pending:p1", NOW).await.unwrap();
    let other_port = assert_as(&mut sp, &options, "https://localhost:9443", "localhost");
    assert!(finish_authentication(st, &u, "pending:p1", &other_port, None, NOW).await.is_err());

    // Right origin in the client data, but the authenticator signed for another RP ID.
    let options = begin_authentication(st, &u, "pending:p1", NOW).await.unwrap();
    let other_rp = assert_as(&mut sp, &options, ORIGIN, "evil.example");
    assert_eq!(finish_authentication(st, &u, "pending:p1", &other_rp, None, NOW).await.unwrap_err().code(), "passkey_invalid");

    // The same well-formed assertion as a control: accepted.
    let options = begin_authentication(st, &u, "pending:p1", NOW).await.unwrap();
    let good = assert_as(&mut sp, &options, ORIGIN, "localhost");
    finish_authentication(st, &u, "pending:p1", &good, None, NOW).await.unwrap();

    let reasons = failure_reasons(&env).await;
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons[0].contains("Origin"), "{reasons:?}");
    assert!(reasons[2].contains("RPID") || reasons[2].contains("Rp"), "{reasons:?}");
    let rows = audit::list_by_action(&st.db, "login.failure").await.unwrap();
    assert_eq!(rows[0].source_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(rows[0].target, u.target());
    env.finish().await;
}

#[tokio::test]
async fn another_sessions_challenge_is_refused() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = user(&env, "dave").await;
    let (mut sp, _, _) = register(&env, &u, "session:s1", "Laptop").await;
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();

    // Login A starts a ceremony; login B (same user, other pending token) starts its own.
    let options_a = begin_authentication(st, &u, "pending:A", NOW).await.unwrap();
    let _options_b = begin_authentication(st, &u, "pending:B", NOW).await.unwrap();
    let for_a = assert_ok(&mut sp, &options_a);
    // B presents the answer to A's challenge: B's own challenge does not match.
    assert_eq!(finish_authentication(st, &u, "pending:B", &for_a, None, NOW).await.unwrap_err().code(), "passkey_invalid");
    // A third party with no ceremony at all.
    assert!(finish_authentication(st, &u, "pending:C", &for_a, None, NOW).await.is_err());
    // Another user cannot finish with this binding's ceremony either.
    let mallory = user(&env, "mallory").await;
    assert!(finish_authentication(st, &mallory, "pending:A", &for_a, None, NOW).await.is_err());
    // A's ceremony was consumed by that attempt (single use, whoever tried).
    assert!(finish_authentication(st, &u, "pending:A", &for_a, None, NOW).await.is_err());

    // Registration: a response to session 1's challenge is refused for session 2.
    let options = begin_registration(st, &u, "session:1", "Phone", NOW).await.unwrap();
    begin_registration(st, &u, "session:2", "Tablet", NOW).await.unwrap();
    let ccr: CreationChallengeResponse = serde_json::from_str(&options).unwrap();
    let reg = serde_json::to_string(&SoftPasskey::new(true).do_registration(origin(), ccr).unwrap()).unwrap();
    assert_eq!(finish_registration(st, &u, "session:2", &reg, None, NOW).await.unwrap_err().code(), "passkey_invalid");
    assert_eq!(list(&st.db, &u.id).await.unwrap().len(), 1);
    // Expired ceremony.
    let options = begin_authentication(st, &u, "pending:D", NOW).await.unwrap();
    let late = assert_ok(&mut sp, &options);
    let e = finish_authentication(st, &u, "pending:D", &late, None, NOW + ceremony::TTL_SECS).await.unwrap_err();
    assert_eq!(e.code(), "passkey_invalid");
    // Garbage is bad input and changes nothing.
    let options = begin_authentication(st, &u, "pending:E", NOW).await.unwrap();
    assert_eq!(finish_authentication(st, &u, "pending:E", "{not json", None, NOW).await.unwrap_err().code(), "invalid_input");
    finish_authentication(st, &u, "pending:E", &assert_ok(&mut sp, &options), None, NOW).await.unwrap();

    assert_eq!(audit::list_by_action(&st.db, "mfa.passkey.add_failure").await.unwrap().len(), 1);
    assert!(failure_reasons(&env).await.iter().any(|r| r == "no_ceremony"));
    env.finish().await;
}

#[tokio::test]
async fn replayed_assertion_is_refused() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = user(&env, "erin").await;
    let (mut sp, _, _) = register(&env, &u, "session:s1", "Laptop").await;
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();
    let options = begin_authentication(st, &u, "pending:p", NOW).await.unwrap();
    let answer = assert_ok(&mut sp, &options);
    finish_authentication(st, &u, "pending:p", &answer, None, NOW).await.unwrap();
    // The same answer again: its ceremony is spent.
    assert_eq!(finish_authentication(st, &u, "pending:p", &answer, None, NOW).await.unwrap_err().code(), "passkey_invalid");
    // ... and against a fresh ceremony its challenge is the old one.
    begin_authentication(st, &u, "pending:p", NOW + 1).await.unwrap();
    assert_eq!(finish_authentication(st, &u, "pending:p", &answer, None, NOW + 1).await.unwrap_err().code(), "passkey_invalid");
    let reasons = failure_reasons(&env).await;
    assert_eq!(reasons[0], "no_ceremony");
    assert!(reasons[1].contains("Challenge"), "{reasons:?}");
    env.finish().await;
}

#[tokio::test]
async fn cloned_authenticator_counter_regression_is_refused() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = user(&env, "frank").await;
    let (mut sp, _, info) = register(&env, &u, "session:s1", "Laptop").await;
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();
    // Two logins start; the authenticator answers X (counter 1), then Y (counter 2). Y is
    // finished first, as a clone of the key would be used while the original lags behind.
    let x = begin_authentication(st, &u, "pending:X", NOW).await.unwrap();
    let y = begin_authentication(st, &u, "pending:Y", NOW).await.unwrap();
    let answer_x = assert_ok(&mut sp, &x);
    let answer_y = assert_ok(&mut sp, &y);
    finish_authentication(st, &u, "pending:Y", &answer_y, None, NOW).await.unwrap();
    // X's ceremony snapshot still holds counter 0, so webauthn-rs alone would accept it.
    let e = finish_authentication(st, &u, "pending:X", &answer_x, Some("203.0.113.5"), NOW).await.unwrap_err();
    assert_eq!(e.code(), "passkey_invalid");
    let row = sqlx::query("SELECT sign_count FROM user_passkeys WHERE id = $1").bind(&info.id).fetch_one(&st.db.pool).await.unwrap();
    assert_eq!(row.try_get::<i64, _>("sign_count").unwrap(), 2);
    let rows = audit::list_by_action(&st.db, "login.failure").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].details.contains("counter_regression"), "{}", rows[0].details);
    assert_eq!(rows[0].source_ip.as_deref(), Some("203.0.113.5"));

    // Passwordless: the stored counter is checked at finish time too.
    let d1 = begin_discoverable(st, "browser:1", NOW).await.unwrap();
    let d2 = begin_discoverable(st, "browser:2", NOW).await.unwrap();
    let cred_id = sqlx::query("SELECT credential_id FROM user_passkeys WHERE id = $1").bind(&info.id).fetch_one(&st.db.pool).await.unwrap();
    let cred_id = B64.decode(cred_id.try_get::<String, _>("credential_id").unwrap()).unwrap();
    let a1 = assert_discoverable(&mut sp, &d1, &cred_id, &u.id);
    let a2 = assert_discoverable(&mut sp, &d2, &cred_id, &u.id);
    finish_discoverable(st, "browser:2", &a2, None, NOW).await.unwrap();
    assert_eq!(finish_discoverable(st, "browser:1", &a1, None, NOW).await.unwrap_err().code(), "passkey_invalid");
    assert_eq!(failure_reasons(&env).await.iter().filter(|r| *r == "counter_regression").count(), 2);
    env.finish().await;
}

#[tokio::test]
async fn passwordless_login_and_removal() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let u = user(&env, "gina").await;
    let (mut sp, cred_id, info) = register(&env, &u, "session:s1", "Laptop").await;

    let options = begin_discoverable(st, "browser:b1", NOW).await.unwrap();
    let answer = assert_discoverable(&mut sp, &options, &cred_id, &u.id);
    let who = finish_discoverable(st, "browser:b1", &answer, Some("192.0.2.8"), NOW).await.unwrap();
    assert_eq!(who.id, u.id);
    // Replay: spent.
    assert!(finish_discoverable(st, "browser:b1", &answer, None, NOW).await.is_err());
    // The user handle must name the credential's owner.
    let other = user(&env, "hank").await;
    let options = begin_discoverable(st, "browser:b2", NOW).await.unwrap();
    let lying = assert_discoverable(&mut sp, &options, &cred_id, &other.id);
    assert_eq!(finish_discoverable(st, "browser:b2", &lying, None, NOW).await.unwrap_err().code(), "passkey_invalid");
    // Another browser's challenge.
    let options = begin_discoverable(st, "browser:b3", NOW).await.unwrap();
    begin_discoverable(st, "browser:b4", NOW).await.unwrap();
    let for_b3 = assert_discoverable(&mut sp, &options, &cred_id, &u.id);
    assert!(finish_discoverable(st, "browser:b4", &for_b3, None, NOW).await.is_err());

    // The only factor cannot be removed; with a second one it can.
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();
    assert_eq!(remove(st, &u, &info.id, None, NOW).await.unwrap_err().code(), "last_factor");
    let (_, _, spare) = register(&env, &u, "session:s1", "Spare").await;
    remove(st, &u, &info.id, Some("192.0.2.8"), NOW).await.unwrap();
    assert_eq!(list(&st.db, &u.id).await.unwrap().len(), 1);
    // The removed passkey no longer signs anyone in, passwordless or as a second factor.
    let options = begin_discoverable(st, "browser:b5", NOW).await.unwrap();
    let removed = assert_discoverable(&mut sp, &options, &cred_id, &u.id);
    assert_eq!(finish_discoverable(st, "browser:b5", &removed, None, NOW).await.unwrap_err().code(), "passkey_invalid");
    let options = begin_authentication(st, &u, "pending:p", NOW).await.unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&options).unwrap();
    v["publicKey"]["allowCredentials"] = json!([{ "type": "public-key", "id": B64.encode(&cred_id) }]);
    let rcr: RequestChallengeResponse = serde_json::from_value(v).unwrap();
    let stale = serde_json::to_string(&sp.do_authentication(origin(), rcr).unwrap()).unwrap();
    assert!(finish_authentication(st, &u, "pending:p", &stale, None, NOW).await.is_err());

    // With TOTP enrolled the last passkey may go.
    let e = mfa::begin_totp(st, &u, NOW).await.unwrap();
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, totp_rs::Secret::Encoded(e.secret).to_bytes().unwrap(), None, String::new()).unwrap();
    let codes = mfa::confirm_totp(st, &u, &totp.generate(NOW as u64), None, NOW).await.unwrap();
    assert!(codes.is_none(), "the passkey's recovery codes are still unused");
    remove(st, &u, &spare.id, None, NOW).await.unwrap();

    let removed = audit::list_by_action(&st.db, "mfa.passkey.remove").await.unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0].source_ip.as_deref(), Some("192.0.2.8"));
    assert_eq!(audit::verify(&st.db).await.unwrap().first_bad_seq, None);
    env.finish().await;
}

#[tokio::test]
async fn mfa_reset_clears_passkeys_codes_and_ceremonies() {
    let env = TestEnv::new().await;
    let st = &env.state;
    let admin = user(&env, "root").await;
    let u = user(&env, "ivan").await;
    let (mut sp, cred_id, _) = register(&env, &u, "session:s1", "Laptop").await;
    let u = users::user_by_id(&st.db, &u.id).await.unwrap();
    let pending = begin_discoverable(st, "browser:x", NOW).await.unwrap();
    begin_authentication(st, &u, "pending:p", NOW).await.unwrap();
    user_admin::reset_mfa(st, &admin.actor(), &u.id, NOW).await.unwrap();
    let after = users::user_by_id(&st.db, &u.id).await.unwrap();
    assert!(!after.has_factor());
    assert_eq!(recovery::remaining(&st.db, &u.id).await.unwrap(), 0);
    assert_eq!(
        sqlx::query("SELECT COUNT(*) AS n FROM webauthn_ceremonies WHERE user_id = $1")
            .bind(&u.id)
            .fetch_one(&st.db.pool)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap(),
        0
    );
    let answer = assert_discoverable(&mut sp, &pending, &cred_id, &u.id);
    assert!(finish_discoverable(st, "browser:x", &answer, None, NOW).await.is_err());
    let reset = audit::list_by_action(&st.db, "user.mfa_reset").await.unwrap();
    assert!(reset[0].details.contains("\"passkeys_removed\":1"), "{}", reset[0].details);
    env.finish().await;
}
