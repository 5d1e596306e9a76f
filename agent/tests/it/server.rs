//! A test-only stand-in for the patch-manager listeners: real TLS 1.3, a web listener (CA
//! download + enrollment) and an agent listener that requires a client certificate from the
//! CA. HTTP/1.1 is spoken by hand (one request per connection), which is all the agent needs.
//!
//! The agent listener speaks the job contract (`agent::proto::jobs`) the way the real server
//! must: jobs are delivered (check-in response and/or long poll) until the host
//! acknowledges them (a `Received` answered, or a terminal report); `Received` is answered
//! `proceed` unless the job was cancelled; the first terminal report is recorded, repeats
//! get `duplicate: true`. Knobs let a test make it forget acknowledgements or fail reports.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::proto::jobs::{
    JobEvent, JobEventResponse, JobPoll, JobPollResponse, JobSpec, SignedJob, JOBS_POLL_PATH, JOB_EVENT_PATH,
    JOB_SIGNATURE_CONTEXT,
};
use agent::proto::{self, ApiError, CheckIn, CheckInResponse, EnrollRequest, EnrollResponse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const HOST_ID: &str = "host-1";

pub struct Pki {
    pub ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

pub struct FakeServer {
    pub web_url: String,
    pub ca_pem: String,
    pub ca_fingerprint: String,
    pub checkins: Arc<Mutex<Vec<CheckIn>>>,
    /// Answer the next check-in with `send_inventory: true` (once).
    pub ask_inventory: Arc<AtomicBool>,
    pub jobs: Arc<FakeJobs>,
}

/// How jobs reach the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    CheckIn,
    Poll,
    Both,
}

pub struct FakeJobs {
    signer: Ed25519KeyPair,
    pub state: Mutex<JobsState>,
}

pub struct JobsState {
    pub delivery: Delivery,
    /// Signed jobs in dispatch order.
    pub dispatched: Vec<SignedJob>,
    /// Job ids the host acknowledged (not delivered again unless `keep_delivering`).
    pub acked: HashSet<String>,
    pub cancelled: HashSet<String>,
    /// Every event that got a 2xx answer, in order.
    pub events: Vec<JobEvent>,
    /// Terminal reports answered with 503 (not recorded).
    pub rejected_terminal: Vec<JobEvent>,
    /// The first recorded terminal event per job.
    pub terminal: HashMap<String, JobEvent>,
    /// Answer this many terminal reports with 503 before accepting one.
    pub fail_terminal: u32,
    /// Keep delivering acknowledged jobs (a server that lost its state).
    pub keep_delivering: bool,
    pub polls: u32,
}

impl FakeJobs {
    fn new() -> FakeJobs {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        FakeJobs {
            signer: Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap(),
            state: Mutex::new(JobsState {
                delivery: Delivery::Both,
                dispatched: Vec::new(),
                acked: HashSet::new(),
                cancelled: HashSet::new(),
                events: Vec::new(),
                rejected_terminal: Vec::new(),
                terminal: HashMap::new(),
                fail_terminal: 0,
                keep_delivering: false,
                polls: 0,
            }),
        }
    }

    pub fn public_key_b64(&self) -> String {
        B64.encode(self.signer.public_key().as_ref())
    }

    /// Signed like the server's `JobSigner::sign`.
    pub fn sign(&self, spec: &JobSpec) -> SignedJob {
        sign_with(&self.signer, spec)
    }

    pub fn dispatch(&self, signed: SignedJob) {
        self.state.lock().unwrap().dispatched.push(signed);
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, JobsState> {
        self.state.lock().unwrap()
    }

    /// Events of one job, in order.
    pub fn events_of(&self, job_id: &str) -> Vec<JobEvent> {
        self.lock().events.iter().filter(|e| e.job_id == job_id).cloned().collect()
    }

    /// Terminal events of one job that reached the server (accepted ones and duplicates).
    pub fn terminal_reports(&self, job_id: &str) -> Vec<JobEvent> {
        self.events_of(job_id).into_iter().filter(|e| e.state.is_terminal()).collect()
    }

    pub fn terminal_of(&self, job_id: &str) -> Option<JobEvent> {
        self.lock().terminal.get(job_id).cloned()
    }

    fn deliverable(&self, via: Delivery) -> Vec<SignedJob> {
        let st = self.lock();
        if st.delivery != Delivery::Both && st.delivery != via {
            return Vec::new();
        }
        st.dispatched
            .iter()
            .filter(|s| {
                let id = job_id_of(s);
                st.keep_delivering || !(st.acked.contains(&id) || st.terminal.contains_key(&id))
            })
            .cloned()
            .collect()
    }

    fn on_event(&self, event: JobEvent) -> (u16, String) {
        let mut st = self.lock();
        let id = event.job_id.clone();
        let answer = if event.state.is_terminal() {
            if st.fail_terminal > 0 {
                st.fail_terminal -= 1;
                st.rejected_terminal.push(event);
                return api_error(503, "unavailable", "try again later");
            }
            st.acked.insert(id.clone());
            // Like the server: a repeat is a duplicate, `proceed` telling whether the stored
            // end is the same state.
            match st.terminal.get(&id) {
                Some(stored) => JobEventResponse { proceed: stored.state == event.state, duplicate: true },
                None => {
                    st.terminal.insert(id, event.clone());
                    JobEventResponse { proceed: true, duplicate: false }
                }
            }
        } else if event.state == proto::jobs::JobState::Received {
            st.acked.insert(id.clone());
            let finished = st.terminal.contains_key(&id);
            JobEventResponse { proceed: !st.cancelled.contains(&id) && !finished, duplicate: finished }
        } else {
            JobEventResponse { proceed: true, duplicate: false }
        };
        st.events.push(event);
        (200, serde_json::to_string(&answer).unwrap())
    }
}

pub fn sign_with(pair: &Ed25519KeyPair, spec: &JobSpec) -> SignedJob {
    let bytes = serde_json::to_vec(spec).unwrap();
    let mut message = JOB_SIGNATURE_CONTEXT.to_vec();
    message.extend_from_slice(&bytes);
    SignedJob {
        spec_b64: B64.encode(&bytes),
        signature_b64: B64.encode(pair.sign(&message).as_ref()),
        key_id: agent::jobs::verify::key_id_of(pair.public_key().as_ref()),
    }
}

pub fn job_id_of(signed: &SignedJob) -> String {
    let bytes = B64.decode(&signed.spec_b64).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    value["job_id"].as_str().unwrap_or_default().to_string()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn new_ca() -> Pki {
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

type Reply = Pin<Box<dyn Future<Output = (u16, String)> + Send>>;
type Handler = Arc<dyn Fn(String, String, Vec<u8>) -> Reply + Send + Sync>;

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
            let (status, json) = handler(method, path, body).await;
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

pub fn api_error(status: u16, code: &str, message: &str) -> (u16, String) {
    (status, serde_json::to_string(&ApiError { code: code.into(), message: message.into() }).unwrap())
}

pub async fn start() -> FakeServer {
    let pki = Arc::new(new_ca());
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web_url = format!("https://127.0.0.1:{}", web.local_addr().unwrap().port());
    let agent_url = format!("https://localhost:{}", agent_listener.local_addr().unwrap().port());
    let ca_pem = pki.ca.pem();
    let checkins = Arc::new(Mutex::new(Vec::new()));
    let ask_inventory = Arc::new(AtomicBool::new(false));
    let jobs = Arc::new(FakeJobs::new());

    let web_handler: Handler = {
        let pki = Arc::clone(&pki);
        let job_key = jobs.public_key_b64();
        Arc::new(move |method, path, body| {
            let reply = match (method.as_str(), path.as_str()) {
                ("GET", proto::CA_PATH) => (200, pki.ca.pem()),
                ("POST", proto::ENROLL_PATH) => enroll(&pki, &body, &agent_url, &job_key),
                _ => api_error(404, "not_found", "not found"),
            };
            Box::pin(async move { reply })
        })
    };
    let agent_handler: Handler = {
        let checkins = Arc::clone(&checkins);
        let ask_inventory = Arc::clone(&ask_inventory);
        let jobs = Arc::clone(&jobs);
        Arc::new(move |method, path, body| {
            let checkins = Arc::clone(&checkins);
            let ask_inventory = Arc::clone(&ask_inventory);
            let jobs = Arc::clone(&jobs);
            Box::pin(async move {
                match (method.as_str(), path.as_str()) {
                    ("POST", proto::CHECKIN_PATH) => {
                        let Ok(checkin) = serde_json::from_slice::<CheckIn>(&body) else {
                            return api_error(400, "bad_request", "invalid JSON");
                        };
                        let send_inventory = checkin.inventory.is_none() && ask_inventory.swap(false, Ordering::SeqCst);
                        checkins.lock().unwrap().push(checkin);
                        let jobs = jobs.deliverable(Delivery::CheckIn);
                        let resp = CheckInResponse { send_inventory, next_checkin_seconds: 1, jobs };
                        (200, serde_json::to_string(&resp).unwrap())
                    }
                    ("POST", JOBS_POLL_PATH) => {
                        let Ok(poll) = serde_json::from_slice::<JobPoll>(&body) else {
                            return api_error(400, "bad_request", "invalid JSON");
                        };
                        jobs.lock().polls += 1;
                        // Holds the poll (up to a second here) until a job is there.
                        let mut waited = Duration::ZERO;
                        let hold = Duration::from_secs(poll.wait_secs.min(1));
                        loop {
                            let ready = jobs.deliverable(Delivery::Poll);
                            if !ready.is_empty() || waited >= hold {
                                return (200, serde_json::to_string(&JobPollResponse { jobs: ready }).unwrap());
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            waited += Duration::from_millis(50);
                        }
                    }
                    ("POST", JOB_EVENT_PATH) => match serde_json::from_slice::<JobEvent>(&body) {
                        Ok(event) => jobs.on_event(event),
                        Err(_) => api_error(400, "bad_request", "invalid JSON"),
                    },
                    _ => api_error(404, "not_found", "not found"),
                }
            })
        })
    };
    tokio::spawn(serve(web, server_config(&pki, false), web_handler));
    tokio::spawn(serve(agent_listener, server_config(&pki, true), agent_handler));
    FakeServer { web_url, ca_fingerprint: agent::tls::fingerprint(pki.ca.der()), ca_pem, checkins, ask_inventory, jobs }
}

fn enroll(pki: &Pki, body: &[u8], agent_url: &str, job_key: &str) -> (u16, String) {
    let Ok(req) = serde_json::from_slice::<EnrollRequest>(body) else {
        return api_error(400, "bad_request", "invalid JSON");
    };
    if req.token != "good-token" {
        return api_error(401, "token_invalid", "enrollment token is invalid or expired");
    }
    let csr = rcgen::CertificateSigningRequestParams::from_pem(&req.csr_pem).unwrap();
    let cert = csr.signed_by(&pki.ca, &pki.ca_key).unwrap();
    let resp = EnrollResponse {
        host_id: HOST_ID.into(),
        cert_pem: cert.pem(),
        ca_pem: pki.ca.pem(),
        agent_url: agent_url.to_string(),
        job_signing_key: job_key.to_string(),
    };
    (200, serde_json::to_string(&resp).unwrap())
}
