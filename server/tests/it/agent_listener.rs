//! The agent (mTLS) listener: only certificates from our CA that the registry knows, that
//! are neither revoked nor expired; revocation also bites on open keep-alive connections.

use agent::proto::{ApiError, CheckInResponse, CHECKIN_PATH};
use app::api::dto::HostQuery;
use app::backend::audit::Actor;
use app::backend::ca::IssuedCert;
use app::backend::certs;
use app::backend::db::now_unix;
use app::backend::hosts;

use crate::common::{http1_post, identity, sample_checkin, TestServer};

fn checkin_body() -> String {
    serde_json::to_string(&sample_checkin()).expect("json")
}

/// A refused client certificate shows up at the first read/write after the handshake
/// (TLS 1.3 client auth completes after the client's Finished).
async fn assert_refused(
    srv: &TestServer,
    id: Option<(Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>)>,
) {
    match srv.agent_connect(id).await {
        Err(_) => {}
        Ok(mut s) => {
            let r = http1_post(&mut s, CHECKIN_PATH, &checkin_body()).await;
            assert!(r.is_err(), "request must fail, got {r:?}");
        }
    }
}

#[tokio::test]
async fn valid_enrolled_cert_accepted_and_host_recorded() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (resp, key) = srv.enroll(&token).await;
    let mut s = srv.agent_connect(Some(identity(&resp.cert_pem, &key))).await.expect("handshake");
    let (status, body) = http1_post(&mut s, CHECKIN_PATH, &checkin_body()).await.expect("check-in");
    assert_eq!(status, 200, "{body}");
    let r: CheckInResponse = serde_json::from_str(&body).expect("CheckInResponse");
    assert!(r.next_checkin_seconds > 0);
    let page = hosts::list(&srv.state.db, &app::backend::access::Scope::All, &HostQuery { page: 1, per_page: 50, ..Default::default() }, 300, now_unix())
        .await
        .expect("list");
    let h = page.items.iter().find(|h| h.id == resp.host_id).expect("host listed");
    assert!(h.online);
    assert_eq!(h.security_updates, 1);
    assert_eq!(h.os_pretty_name, "Debian GNU/Linux 12 (bookworm)");
    srv.stop().await;
}

#[tokio::test]
async fn no_client_cert_refused() {
    let srv = TestServer::start().await;
    assert_refused(&srv, None).await;
    srv.stop().await;
}

#[tokio::test]
async fn foreign_ca_cert_refused() {
    let srv = TestServer::start().await;
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("foreign CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).expect("leaf");
    assert_refused(&srv, Some(identity(&cert.pem(), &key))).await;
    srv.stop().await;
}

#[tokio::test]
async fn expired_cert_from_our_ca_refused() {
    let srv = TestServer::start().await;
    // A real host to own the certificate row.
    let token = srv.create_token().await;
    let (resp, _) = srv.enroll(&token).await;

    // Sign with the real CA key from the data dir, validity entirely in the past.
    let pki = srv.dir.path().join("data/pki");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(pki.join("ca.key")).expect("ca.key")).expect("ca key");
    let ca_params =
        rcgen::CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(pki.join("ca.pem")).expect("ca.pem"))
            .expect("ca params");
    let ca = ca_params.self_signed(&ca_key).expect("issuer");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, resp.host_id.clone());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42; 16]));
    let cert = params.signed_by(&key, &ca, &ca_key).expect("expired leaf");
    let serial = certs::serial_hex_of_der(cert.der()).expect("serial");

    // The registry and DB are told it is valid for years, so only the certificate's own
    // validity period can refuse it.
    let far = now_unix() + 10 * 365 * 86_400;
    let issued =
        IssuedCert { cert_pem: cert.pem(), serial_hex: serial.clone(), not_before: 1_577_836_800, not_after: far };
    let mut tx = srv.state.db.begin().await.expect("tx");
    certs::record_issued(&mut tx, &issued, &resp.host_id).await.expect("record");
    tx.commit().await.expect("commit");
    srv.state.certs.insert(&serial, &resp.host_id, far);

    assert_refused(&srv, Some(identity(&cert.pem(), &key))).await;
    srv.stop().await;
}

#[tokio::test]
async fn revoked_cert_refused_on_new_connection() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (resp, key) = srv.enroll(&token).await;
    let serial = certs::serial_hex_of_der(identity(&resp.cert_pem, &key).0[0].as_ref()).expect("serial");
    certs::revoke(&srv.state.db, &srv.state.certs, &Actor::Cli, &serial, now_unix()).await.expect("revoke");
    assert_refused(&srv, Some(identity(&resp.cert_pem, &key))).await;
    srv.stop().await;
}

#[tokio::test]
async fn revocation_applies_to_open_keepalive_connection() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (resp, key) = srv.enroll(&token).await;
    let id = identity(&resp.cert_pem, &key);
    let serial = certs::serial_hex_of_der(id.0[0].as_ref()).expect("serial");
    let mut s = srv.agent_connect(Some(id)).await.expect("handshake");
    let (status, _) = http1_post(&mut s, CHECKIN_PATH, &checkin_body()).await.expect("first check-in");
    assert_eq!(status, 200);

    certs::revoke(&srv.state.db, &srv.state.certs, &Actor::Cli, &serial, now_unix()).await.expect("revoke");

    // Same TLS connection (no new handshake): the per-request re-check must refuse it.
    let (status, body) = http1_post(&mut s, CHECKIN_PATH, &checkin_body()).await.expect("second request answered");
    assert_eq!(status, 401, "{body}");
    let err: ApiError = serde_json::from_str(&body).expect("ApiError");
    assert_eq!(err.code, "certificate_invalid");
    srv.stop().await;
}

#[tokio::test]
async fn bad_checkin_bodies_get_api_errors() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (resp, key) = srv.enroll(&token).await;
    let mut s = srv.agent_connect(Some(identity(&resp.cert_pem, &key))).await.expect("handshake");
    let (status, body) = http1_post(&mut s, CHECKIN_PATH, "{not json").await.expect("answer");
    assert_eq!(status, 400, "{body}");
    let err: ApiError = serde_json::from_str(&body).expect("ApiError");
    assert_eq!(err.code, "malformed_json");
    let (status, body) = http1_post(&mut s, CHECKIN_PATH, r#"{"facts":1}"#).await.expect("answer");
    assert_eq!(status, 422, "{body}");
    let err: ApiError = serde_json::from_str(&body).expect("ApiError");
    assert_eq!(err.code, "invalid_request");
    srv.stop().await;
}
