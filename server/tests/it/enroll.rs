//! `POST /api/v1/enroll` on the web listener: one-time tokens, input validation, and no
//! side effects on failure.

use agent::proto::{ApiError, EnrollRequest, ENROLL_PATH};

use crate::common::{csr_pem, TestServer};

struct Counts {
    hosts: i64,
    certs: i64,
    used_tokens: i64,
}

async fn counts(srv: &TestServer) -> Counts {
    Counts {
        hosts: srv.count("SELECT COUNT(*) FROM hosts").await,
        certs: srv.count("SELECT COUNT(*) FROM certificates").await,
        used_tokens: srv.count("SELECT COUNT(*) FROM enroll_tokens WHERE used_at IS NOT NULL").await,
    }
}

async fn post_raw(srv: &TestServer, body: Vec<u8>) -> (u16, ApiError) {
    let resp = srv
        .web_client()
        .post(srv.web_url(ENROLL_PATH))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let err = serde_json::from_str(&text).unwrap_or_else(|e| panic!("ApiError body expected ({e}): {text}"));
    (status, err)
}

#[tokio::test]
async fn token_is_single_use_and_reuse_changes_nothing() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (first, _) = srv.enroll(&token).await;
    assert!(!first.host_id.is_empty());
    assert!(first.ca_pem.contains("BEGIN CERTIFICATE"));
    let before = counts(&srv).await;
    assert_eq!((before.hosts, before.certs, before.used_tokens), (1, 1, 1));

    let key = rcgen::KeyPair::generate().expect("key");
    let req = EnrollRequest { token: token.clone(), csr_pem: csr_pem(&key), hostname: "again".into() };
    let (status, err) = post_raw(&srv, serde_json::to_vec(&req).expect("json")).await;
    assert_eq!(status, 401, "{err:?}");
    assert!(!err.message.contains(&token), "error must not echo the token");
    let after = counts(&srv).await;
    assert_eq!((after.hosts, after.certs, after.used_tokens), (1, 1, 1));
    srv.stop().await;
}

#[tokio::test]
async fn concurrent_use_of_one_token_succeeds_exactly_once() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let client = srv.web_client();
    let url = srv.web_url(ENROLL_PATH);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let key = rcgen::KeyPair::generate().expect("key");
        let req = EnrollRequest { token: token.clone(), csr_pem: csr_pem(&key), hostname: format!("h{i}") };
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(
            async move { client.post(url).json(&req).send().await.expect("send").status().as_u16() },
        ));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
    let c = counts(&srv).await;
    assert_eq!((c.hosts, c.certs, c.used_tokens), (1, 1, 1));
    srv.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_without_side_effects() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;

    // Malformed CSR.
    let req = EnrollRequest {
        token: token.clone(),
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n".into(),
        hostname: "x".into(),
    };
    let (status, err) = post_raw(&srv, serde_json::to_vec(&req).expect("json")).await;
    assert!((400..500).contains(&status), "{status} {err:?}");
    assert_eq!(status, 422, "{err:?}");
    assert!(!err.message.is_empty());

    // Garbage JSON.
    let (status, err) = post_raw(&srv, b"{\"token\": ".to_vec()).await;
    assert_eq!(status, 400, "{err:?}");
    assert_eq!(err.code, "malformed_json");

    // Wrong shape (missing fields, unknown field).
    let (status, err) = post_raw(&srv, br#"{"token":"x"}"#.to_vec()).await;
    assert_eq!(status, 422, "{err:?}");
    assert_eq!(err.code, "invalid_request");
    let (status, _) = post_raw(&srv, br#"{"token":"x","csr_pem":"y","hostname":"z","admin":true}"#.to_vec()).await;
    assert_eq!(status, 422);

    // Oversized body (limit 64 KiB).
    let big = EnrollRequest { token: token.clone(), csr_pem: "A".repeat(200 * 1024), hostname: "x".into() };
    let (status, err) = post_raw(&srv, serde_json::to_vec(&big).expect("json")).await;
    assert_eq!(status, 413, "{err:?}");
    assert_eq!(err.code, "payload_too_large");

    let c = counts(&srv).await;
    assert_eq!((c.hosts, c.certs, c.used_tokens), (0, 0, 0));

    // The token was not consumed by any of the failures.
    let (ok, _) = srv.enroll(&token).await;
    assert!(!ok.host_id.is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn ca_pem_is_public() {
    let srv = TestServer::start().await;
    let resp = srv.web_client().get(srv.web_url(agent::proto::CA_PATH)).send().await.expect("GET");
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.expect("body");
    assert_eq!(text, srv.state.ca.cert_pem());
    srv.stop().await;
}
