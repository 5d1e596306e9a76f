//! The accept loop shared by both listeners: TCP accept -> TLS handshake (with a timeout)
//! -> HTTP/1.1 or HTTP/2 (hyper-util auto builder) serving an axum `Router`.
//!
//! Every request carries a [`ConnInfo`] extension: the peer address and, on the agent
//! listener, the serial of the verified client certificate.
//!
//! Shutdown order: the loop stops accepting when the watch flips, open connections get a
//! graceful shutdown (in-flight requests finish), and the loop returns once they are gone or
//! [`DRAIN_TIMEOUT`] passed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// A TLS handshake must complete within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1 request headers must arrive within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for open connections.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-connection facts, inserted into every request's extensions.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote_addr: SocketAddr,
    /// Lowercase hex serial of the verified client certificate (agent listener only).
    pub peer_serial: Option<String>,
}

impl ConnInfo {
    pub fn ip(&self) -> String {
        self.remote_addr.ip().to_string()
    }
}

/// Serves `router` on `listener` until `shutdown` becomes true.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, router: Router, mut shutdown: watch::Receiver<bool>) {
    let acceptor = TlsAcceptor::from(tls);
    let mut conns = JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => continue,
            accepted = listener.accept() => {
                let (tcp, remote_addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let router = router.clone();
                let shutdown = shutdown.clone();
                conns.spawn(async move {
                    serve_connection(acceptor, tcp, remote_addr, router, shutdown).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(remaining = conns.len(), "connections did not drain in time; aborting them");
        conns.shutdown().await;
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    remote_addr: SocketAddr,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(peer = %remote_addr, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %remote_addr, "TLS handshake timed out");
            return;
        }
    };
    let peer_serial = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|ee| crate::tls::serial_of(ee.as_ref()));
    let info = ConnInfo { remote_addr, peer_serial };
    let svc = router.map_request(move |mut req: axum::extract::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        // The app crate cannot see `ConnInfo`; server functions read the peer address for the
        // audit log from axum's own `ConnectInfo`.
        req.extensions_mut().insert(axum::extract::ConnectInfo(info.remote_addr));
        req
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(peer = %remote_addr, error = %e, "connection ended with error");
            }
        }
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Middleware of both routers: audit rows appended while serving a request record its peer
/// address unless the code names one (`app::backend::audit::with_request_ip`).
pub async fn scope_source_ip(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let ip = req.extensions().get::<ConnInfo>().map(ConnInfo::ip);
    app::backend::audit::with_request_ip(ip, next.run(req)).await
}

/// Resolves once the shutdown flag is set (or its sender is gone). The watch guard is
/// dropped inside, so callers can await further while holding this future's output.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
