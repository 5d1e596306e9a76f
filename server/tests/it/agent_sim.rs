//! A hand-written agent for the job tests: it enrolls like `pm-agent`, checks in, long-polls
//! and posts job events over real mTLS (TLS 1.3, its own client certificate), and verifies
//! job signatures with the key pinned at enrollment, exactly per `agent::proto::jobs`.

use agent::proto::jobs::{
    JobEvent, JobEventResponse, JobPoll, JobPollResponse, JobResult, JobSpec, JobState, PackageChange, SignedJob,
    JOB_EVENT_PATH, JOB_SIGNATURE_CONTEXT, JOBS_POLL_PATH,
};
use agent::proto::{CheckInResponse, CHECKIN_PATH};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};

use crate::common::{http1_post, identity, sample_checkin, TestServer};

pub struct FakeAgent {
    pub host_id: String,
    pub hostname: String,
    cert_pem: String,
    key: rcgen::KeyPair,
    /// The job-signing public key pinned at enrollment (raw 32 bytes).
    job_key: Vec<u8>,
}

impl FakeAgent {
    pub async fn enroll(srv: &TestServer, hostname: &str) -> FakeAgent {
        let (resp, key) = srv.enroll(&srv.create_token().await).await;
        FakeAgent {
            host_id: resp.host_id,
            hostname: hostname.to_string(),
            cert_pem: resp.cert_pem,
            key,
            job_key: B64.decode(resp.job_signing_key).expect("job key"),
        }
    }

    /// Enrolls and checks in once (with the sample inventory, boot `boot-1`).
    pub async fn online(srv: &TestServer, hostname: &str) -> FakeAgent {
        let a = FakeAgent::enroll(srv, hostname).await;
        a.checkin(srv, "boot-1").await;
        a
    }

    /// A fresh mTLS connection presenting this host's certificate.
    pub async fn connect(&self, srv: &TestServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        srv.agent_connect(Some(identity(&self.cert_pem, &self.key))).await.expect("mTLS handshake")
    }

    /// POSTs JSON over a fresh mTLS connection; (status, body).
    pub async fn post(&self, srv: &TestServer, path: &str, body: &impl serde::Serialize) -> (u16, String) {
        let mut s = srv.agent_connect(Some(identity(&self.cert_pem, &self.key))).await.expect("mTLS handshake");
        http1_post(&mut s, path, &serde_json::to_string(body).expect("json")).await.expect("agent request")
    }

    pub async fn post_raw(&self, srv: &TestServer, path: &str, body: &str) -> (u16, String) {
        let mut s = srv.agent_connect(Some(identity(&self.cert_pem, &self.key))).await.expect("mTLS handshake");
        http1_post(&mut s, path, body).await.expect("agent request")
    }

    pub async fn checkin(&self, srv: &TestServer, boot_id: &str) -> CheckInResponse {
        let mut c = sample_checkin();
        c.facts.hostname = self.hostname.clone();
        c.facts.boot_id = boot_id.into();
        let (status, body) = self.post(srv, CHECKIN_PATH, &c).await;
        assert_eq!(status, 200, "check-in: {body}");
        serde_json::from_str(&body).expect("CheckInResponse")
    }

    pub async fn poll(&self, srv: &TestServer, wait_secs: u64) -> Vec<SignedJob> {
        let (status, body) = self.post(srv, JOBS_POLL_PATH, &JobPoll { wait_secs }).await;
        assert_eq!(status, 200, "poll: {body}");
        serde_json::from_str::<JobPollResponse>(&body).expect("JobPollResponse").jobs
    }

    /// Polls (short waits) until a job arrives, at most `secs` seconds.
    pub async fn wait_for_job(&self, srv: &TestServer, secs: u64) -> JobSpec {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(j) = self.poll(srv, 2).await.first() {
                return self.verify(j);
            }
            assert!(std::time::Instant::now() < deadline, "{}: no job within {secs} s", self.hostname);
        }
    }

    /// Checks the signature with the pinned key and that the spec is for this host.
    pub fn verify(&self, signed: &SignedJob) -> JobSpec {
        let bytes = B64.decode(&signed.spec_b64).expect("spec b64");
        let sig = B64.decode(&signed.signature_b64).expect("sig b64");
        let mut msg = JOB_SIGNATURE_CONTEXT.to_vec();
        msg.extend_from_slice(&bytes);
        UnparsedPublicKey::new(&ED25519, &self.job_key).verify(&msg, &sig).expect("job signature verifies");
        let spec: JobSpec = serde_json::from_slice(&bytes).expect("JobSpec");
        assert_eq!(spec.host_id, self.host_id, "a spec for another host");
        spec
    }

    pub async fn event(&self, srv: &TestServer, job_id: &str, state: JobState, result: Option<JobResult>) -> (u16, String) {
        let ev = JobEvent { job_id: job_id.into(), state, at: app::backend::db::now_unix(), result };
        self.post(srv, JOB_EVENT_PATH, &ev).await
    }

    /// An event that must be accepted (200).
    pub async fn report(&self, srv: &TestServer, job_id: &str, state: JobState, result: Option<JobResult>) -> JobEventResponse {
        let (status, body) = self.event(srv, job_id, state, result).await;
        assert_eq!(status, 200, "{} {state:?}: {body}", self.hostname);
        serde_json::from_str(&body).expect("JobEventResponse")
    }

    /// Received (must be allowed to proceed), Running, then `last` with an openssl upgrade.
    pub async fn run(&self, srv: &TestServer, job_id: &str, last: JobState, reboot_pending: bool) -> JobEventResponse {
        assert!(self.report(srv, job_id, JobState::Received, None).await.proceed, "{} may start", self.hostname);
        self.report(srv, job_id, JobState::Running, None).await;
        self.report(srv, job_id, last, Some(openssl_result(reboot_pending))).await
    }
}

pub fn openssl_result(reboot_pending: bool) -> JobResult {
    let now = app::backend::db::now_unix();
    JobResult {
        reason: "apt-get exited with 0".into(),
        changes: vec![PackageChange {
            name: "openssl".into(),
            arch: "amd64".into(),
            before: Some("3.0.11-1".into()),
            after: Some("3.0.15-1".into()),
        }],
        output: "Unpacking openssl (3.0.15-1) over (3.0.11-1) ...\nSetting up openssl (3.0.15-1) ...\n".into(),
        started_at: now - 3,
        finished_at: now,
        reboot_pending,
    }
}
