//! Both listeners speak TLS 1.3 only.

use crate::common::{client_config, tls_connect, TestServer};

#[tokio::test]
async fn tls12_client_refused_on_web_listener() {
    let srv = TestServer::start().await;
    let cfg = client_config(srv.roots(), None, &[&rustls::version::TLS12], true);
    assert!(tls_connect(cfg, srv.web_addr).await.is_err(), "TLS 1.2 handshake must fail");
    // The same client offering TLS 1.3 succeeds, so the refusal is about the version.
    let cfg = client_config(srv.roots(), None, &[&rustls::version::TLS13], true);
    let s = tls_connect(cfg, srv.web_addr).await.expect("TLS 1.3 handshake");
    assert_eq!(s.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    srv.stop().await;
}

#[tokio::test]
async fn tls12_client_refused_on_agent_listener() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (resp, key) = srv.enroll(&token).await;
    let id = crate::common::identity(&resp.cert_pem, &key);
    let cfg = client_config(srv.roots(), Some(id), &[&rustls::version::TLS12], false);
    assert!(tls_connect(cfg, srv.agent_addr).await.is_err(), "TLS 1.2 handshake must fail");
    srv.stop().await;
}

#[tokio::test]
async fn web_listener_negotiates_h2() {
    let srv = TestServer::start().await;
    let resp = srv.web_client().get(srv.web_url(agent::proto::CA_PATH)).send().await.expect("GET ca.pem");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    srv.stop().await;
}
