//! Enrollment and check-ins against a test-only stand-in for the patch-manager listeners:
//! real TLS 1.3, a web listener (CA download + enrollment) and an agent listener that
//! requires a client certificate from the CA. HTTP/1.1 is spoken by hand (one request per
//! connection), which is all the agent needs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agent::checkin::Agent;
use agent::enroll::{enroll, CaPin, EnrollOptions};
use agent::proto::{self, ApiError, CheckIn, CheckInResponse, EnrollRequest, EnrollResponse};
use agent::state::StateDir;
use agent::AgentError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

struct FakeServer {
    web_url: String,
    ca_pem: String,
    ca_fingerprint: String,
    checkins: Arc<Mutex<Vec<CheckIn>>>,
    /// Answer the next check-in with `send_inventory: true` (once).
    ask_inventory: Arc<AtomicBool>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn new_ca() -> Pki {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    Pki { ca, ca_key }
}

fn server_config(pki: &Pki, client_auth: bool) -> rustls::ServerConfig {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &pki.ca, &pki.ca_key).unwrap();
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap();
    let builder = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(pki.ca.der().to_vec())).unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(chain, key).unwrap()
}

type Handler = Arc<dyn Fn(&str, &str, &[u8]) -> (u16, String) + Send + Sync>;

/// Accept loop: TLS handshake, one request, one JSON response.
async fn serve(listener: TcpListener, tls: rustls::ServerConfig, handler: Handler) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let Ok((tcp, _)) = listener.accept().await else { return };
        let acceptor = acceptor.clone();
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let Ok(mut stream) = acceptor.accept(tcp).await else { return };
            let Some((method, path, body)) = read_request(&mut stream).await else { return };
            let (status, json) = handler(&method, &path, &body);
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                json.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(json.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let len: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, buf[head_end..head_end + len].to_vec()))
}

fn api_error(status: u16, code: &str, message: &str) -> (u16, String) {
    (status, serde_json::to_string(&ApiError { code: code.into(), message: message.into() }).unwrap())
}

async fn start() -> FakeServer {
    let pki = Arc::new(new_ca());
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_url = format!("https://127.0.0.1:{}", web.local_addr().unwrap().port());
    let agent_url = format!("https://localhost:{}", agent_listener.local_addr().unwrap().port());
    let ca_pem = pki.ca.pem();
    let checkins = Arc::new(Mutex::new(Vec::new()));
    let ask_inventory = Arc::new(AtomicBool::new(false));

    let web_handler: Handler = {
        let pki = Arc::clone(&pki);
        Arc::new(move |method, path, body| match (method, path) {
            ("GET", proto::CA_PATH) => (200, pki.ca.pem()),
            ("POST", proto::ENROLL_PATH) => {
                let Ok(req) = serde_json::from_slice::<EnrollRequest>(body) else {
                    return api_error(400, "bad_request", "invalid JSON");
                };
                if req.token != "good-token" {
                    return api_error(401, "token_invalid", "enrollment token is invalid or expired");
                }
                let csr = rcgen::CertificateSigningRequestParams::from_pem(&req.csr_pem).unwrap();
                let cert = csr.signed_by(&pki.ca, &pki.ca_key).unwrap();
                let resp = EnrollResponse {
                    host_id: "host-1".into(),
                    cert_pem: cert.pem(),
                    ca_pem: pki.ca.pem(),
                    agent_url: agent_url.clone(),
                    job_signing_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
                };
                (200, serde_json::to_string(&resp).unwrap())
            }
            _ => api_error(404, "not_found", "not found"),
        })
    };
    let agent_handler: Handler = {
        let checkins = Arc::clone(&checkins);
        let ask_inventory = Arc::clone(&ask_inventory);
        Arc::new(move |method, path, body| {
            if (method, path) != ("POST", proto::CHECKIN_PATH) {
                return api_error(404, "not_found", "not found");
            }
            let Ok(checkin) = serde_json::from_slice::<CheckIn>(body) else {
                return api_error(400, "bad_request", "invalid JSON");
            };
            let send_inventory = checkin.inventory.is_none() && ask_inventory.swap(false, Ordering::SeqCst);
            checkins.lock().unwrap().push(checkin);
            let resp = CheckInResponse { send_inventory, next_checkin_seconds: 1, jobs: vec![] };
            (200, serde_json::to_string(&resp).unwrap())
        })
    };
    tokio::spawn(serve(web, server_config(&pki, false), web_handler));
    tokio::spawn(serve(agent_listener, server_config(&pki, true), agent_handler));
    FakeServer { web_url, ca_fingerprint: agent::tls::fingerprint(pki.ca.der()), ca_pem, checkins, ask_inventory }
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Points the enrolled agent at fake package tools and an os-release fixture.
fn add_overrides(state: &StateDir, dir: &Path) {
    let dpkg =
        script(dir, "dpkg-query", "printf 'bash\\t5.2.15-2+b2\\tamd64\\tii \\nlibssl3\\t3.0.11-1\\tamd64\\tii \\n'\n");
    let apt = script(
        dir,
        "apt-get",
        "echo 'Inst libssl3 [3.0.11-1] (3.0.13-1 Debian-Security:12/stable-security [amd64])'\n",
    );
    let os_release = dir.join("os-release");
    std::fs::write(&os_release, "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")
        .unwrap();
    let mut text = std::fs::read_to_string(state.config_path()).unwrap();
    text.push_str(&format!(
        "os_release_path = {:?}\nreboot_required_path = {:?}\n[commands]\napt_get = {apt:?}\ndpkg_query = {dpkg:?}\n",
        os_release.display().to_string(),
        dir.join("reboot-required").display().to_string(),
    ));
    std::fs::write(state.config_path(), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_by_fingerprint_then_check_in_over_mtls() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "good-token".into(),
        ca: CaPin::Fingerprint(server.ca_fingerprint.to_uppercase().replace("SHA256", "sha256")),
        state_dir: state.root().to_path_buf(),
    };
    let enrolled = enroll(&opts).await.unwrap();
    assert_eq!(enrolled.host_id, "host-1");
    let mode = |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(state.key_path()), 0o600);
    assert_eq!(std::fs::read_to_string(state.ca_path()).unwrap(), server.ca_pem);
    add_overrides(&state, dir.path());

    let agent = Agent::load(state.clone()).unwrap();
    // First check-in carries the inventory.
    let report = agent.cycle().await.unwrap();
    assert_eq!((report.checkins, report.inventory_sent), (1, true));
    assert_eq!(report.response.next_checkin_seconds, 1);
    {
        let checkins = server.checkins.lock().unwrap();
        let first = &checkins[0];
        assert_eq!(first.facts.os_id, "debian");
        assert!(!first.facts.reboot_required);
        let inv = first.inventory.as_ref().unwrap();
        assert_eq!(inv.installed.len(), 2);
        assert_eq!(inv.updates.len(), 1);
        assert!(inv.updates[0].security);
        assert_eq!(first.inventory_digest, inv.digest());
    }
    // Unchanged inventory: digest only.
    let report = agent.cycle().await.unwrap();
    assert_eq!((report.checkins, report.inventory_sent), (1, false));
    assert!(server.checkins.lock().unwrap()[1].inventory.is_none());

    // The server lost it: the agent sends it again right away, in the same cycle.
    server.ask_inventory.store(true, Ordering::SeqCst);
    let report = agent.cycle().await.unwrap();
    assert_eq!((report.checkins, report.inventory_sent), (2, true));
    let checkins = server.checkins.lock().unwrap();
    assert_eq!(checkins.len(), 4);
    assert!(checkins[2].inventory.is_none());
    assert!(checkins[3].inventory.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_fingerprint_is_refused_before_anything_is_sent() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "good-token".into(),
        ca: CaPin::Fingerprint(format!("sha256:{}", "00".repeat(32))),
        state_dir: dir.path().join("state"),
    };
    let err = enroll(&opts).await.unwrap_err();
    assert!(matches!(err, AgentError::FingerprintMismatch { .. }), "{err}");
    assert!(err.to_string().contains("fingerprint mismatch"));
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_shows_the_server_message() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "stale-token".into(),
        ca: CaPin::File(ca_file),
        state_dir: dir.path().join("state"),
    };
    let err = enroll(&opts).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "server refused the request (HTTP 401, token_invalid): enrollment token is invalid or expired"
    );
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_cert_from_another_ca_is_rejected() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, new_ca().ca.pem()).unwrap();
    let opts = EnrollOptions {
        server: server.web_url.clone(),
        token: "good-token".into(),
        ca: CaPin::File(other),
        state_dir: dir.path().join("state"),
    };
    let err = enroll(&opts).await.unwrap_err();
    assert!(matches!(err, AgentError::Transport { .. }), "{err}");
    let chain = agent::checkin::error_chain(&err);
    assert!(chain.contains("UnknownIssuer") || chain.contains("certificate"), "{chain}");
    assert!(!dir.path().join("state").exists());
}
