//! Testkit: the real server on 127.0.0.1:0 with a temp data dir, against the engine named
//! by `PM_TEST_DATABASE` (`sqlite` default, `postgres` = a fresh database on
//! `postgres://postgres@127.0.0.1:5432`, dropped afterwards), plus TLS clients.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use agent::proto::{EnrollRequest, EnrollResponse};
use app::backend::audit::Actor;
use app::backend::db::{now_unix, Db};
use app::backend::enrollment;
use app::backend::state::AppState;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use server::config::{Config, Overrides, RawConfig};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

fn pg_base() -> String {
    std::env::var("PM_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

pub fn is_postgres() -> bool {
    matches!(std::env::var("PM_TEST_DATABASE").as_deref(), Ok("postgres") | Ok("postgresql") | Ok("pg"))
}

pub struct TestServer {
    pub web_addr: SocketAddr,
    pub agent_addr: SocketAddr,
    pub state: AppState,
    pub dir: tempfile::TempDir,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<()>>,
    pg_name: Option<String>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut RawConfig)) -> TestServer {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let site_dir = dir.path().join("site");
        std::fs::create_dir_all(site_dir.join("pkg")).expect("site dir");
        std::fs::write(site_dir.join("pkg/patch_manager.js"), "export default function(){}\n".repeat(200))
            .expect("pkg file");
        let (database_url, pg_name) = if is_postgres() {
            let name = format!("pm_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin =
                sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base())).await.expect("connect to PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
            let _ = admin.close().await;
            (format!("{}/{name}", pg_base()), Some(name))
        } else {
            (Db::sqlite_url_for(&data_dir), None)
        };
        let mut raw = RawConfig {
            data_dir: Some(data_dir),
            web_listen: Some("127.0.0.1:0".into()),
            agent_listen: Some("127.0.0.1:0".into()),
            public_url: Some("https://localhost:8443".into()),
            agent_url: Some("https://localhost:8444".into()),
            site_dir: Some(site_dir),
            cert_refresh_secs: Some(1),
            // The minimum: no calibration run per test server (calibration has its own test).
            password_time_cost: Some(3),
            ..Default::default()
        };
        tweak(&mut raw);
        let overrides = Overrides { database_url: Some(database_url), ..Default::default() };
        let config = Config::from_raw(raw, &overrides).expect("config");
        Self::launch(config, dir, pg_name).await
    }

    async fn launch(config: Config, dir: tempfile::TempDir, pg_name: Option<String>) -> TestServer {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let running = server::run_with(config.clone(), async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("server starts");
        TestServer {
            web_addr: running.web_addr,
            agent_addr: running.agent_addr,
            state: running.state,
            dir,
            config,
            stop: Some(stop_tx),
            join: Some(running.join),
            pg_name,
        }
    }

    /// Stops this server gracefully and starts a new one on the same data dir and database
    /// (new ports): a server restart as an agent sees it.
    pub async fn restart(mut self) -> TestServer {
        let config = self.config.clone();
        let pg_name = self.pg_name.take();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        self.stop().await;
        Self::launch(config, dir, pg_name).await
    }

    /// Graceful shutdown; the PostgreSQL database is dropped by `Drop`.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(j) = self.join.take() {
            tokio::time::timeout(std::time::Duration::from_secs(20), j)
                .await
                .expect("graceful shutdown within 20 s")
                .expect("server task");
        }
        self.state.db.pool.close().await;
    }

    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.state.ca.cert_der().to_vec())
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der()).expect("CA as root");
        Arc::new(roots)
    }

    /// reqwest client for the web listener over TLS 1.3, trusting only the internal CA.
    pub fn web_client(&self) -> reqwest::Client {
        let cfg = client_config(self.roots(), None, &[&rustls::version::TLS13], true);
        reqwest::Client::builder()
            .use_preconfigured_tls(cfg)
            .resolve("localhost", self.web_addr)
            .build()
            .expect("reqwest client")
    }

    pub fn web_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.web_addr.port())
    }

    pub async fn create_token(&self) -> String {
        enrollment::create_token(&self.state, &Actor::Cli, "test", None, None, now_unix()).await.expect("token").token
    }

    /// Enrolls over HTTPS with an rcgen CSR; returns the response and the host's key.
    pub async fn enroll(&self, token: &str) -> (EnrollResponse, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let req = EnrollRequest { token: token.into(), csr_pem: csr_pem(&key), hostname: "web01".into() };
        let resp =
            self.web_client().post(self.web_url(agent::proto::ENROLL_PATH)).json(&req).send().await.expect("send");
        assert_eq!(resp.status(), 200, "enroll failed: {:?}", resp.text().await);
        (resp.json().await.expect("enroll response"), key)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = sqlx::query(sql).fetch_one(&self.state.db.pool).await.expect("count query");
        sqlx::Row::try_get::<i64, _>(&row, 0).expect("count")
    }

    /// Opens a TLS 1.3 connection to the agent listener presenting `identity` (if any).
    pub async fn agent_connect(
        &self,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> io::Result<TlsStream<TcpStream>> {
        let cfg = client_config(self.roots(), identity, &[&rustls::version::TLS13], false);
        tls_connect(cfg, self.agent_addr).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(&format!("{}/postgres", pg_base())).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

pub fn csr_pem(key: &rcgen::KeyPair) -> String {
    let params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.serialize_request(key).expect("csr").pem().expect("csr pem")
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn client_config(
    roots: Arc<RootCertStore>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: bool,
) -> ClientConfig {
    let b = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((chain, key)) => b.with_client_auth_cert(chain, key).expect("client cert"),
        None => b.with_no_client_auth(),
    };
    if alpn {
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    cfg
}

pub async fn tls_connect(cfg: ClientConfig, addr: SocketAddr) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").map_err(io::Error::other)?;
    TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await
}

/// PEM cert + rcgen key -> rustls identity.
pub fn identity(cert_pem: &str, key: &rcgen::KeyPair) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().expect("cert pem");
    let key = PrivateKeyDer::try_from(key.serialize_der()).expect("key der");
    (chain, key)
}

/// One HTTP/1.1 request on an existing (keep-alive) connection; returns status and body.
/// Any TLS alert (e.g. certificate refused) surfaces as an `Err`.
pub async fn http1_post(stream: &mut TlsStream<TcpStream>, path: &str, body: &str) -> io::Result<(u16, String)> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0);
    while buf.len() < header_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated body"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, String::from_utf8_lossy(&buf[header_end..header_end + len]).to_string()))
}

pub fn sample_checkin() -> agent::proto::CheckIn {
    use agent::proto::*;
    let inventory = Inventory {
        manager: PackageManager::Apt,
        installed: vec![
            InstalledPackage { name: "openssl".into(), version: "3.0.11-1".into(), arch: "amd64".into() },
            InstalledPackage { name: "bash".into(), version: "5.2.15-2".into(), arch: "amd64".into() },
        ],
        updates: vec![PendingUpdate {
            name: "openssl".into(),
            arch: "amd64".into(),
            current_version: "3.0.11-1".into(),
            candidate_version: "3.0.15-1".into(),
            source: "bookworm-security".into(),
            security: true,
        }],
    };
    CheckIn {
        facts: HostFacts {
            hostname: "web01".into(),
            os_id: "debian".into(),
            os_version_id: "12".into(),
            os_pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-18-amd64".into(),
            arch: "x86_64".into(),
            uptime_seconds: 1234,
            reboot_required: false,
            agent_version: "0.1.0".into(),
            boot_id: String::new(),
        },
        inventory_digest: inventory.digest(),
        inventory: Some(inventory),
    }
}
