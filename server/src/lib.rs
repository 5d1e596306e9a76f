//! `patch-manager`: the server binary's library (wiring, not business rules; those live in
//! `app::backend`).
//!
//! # Layout
//! - [`cli`]: clap definitions; [`commands`]: what each subcommand does.
//! - [`config`]: TOML file -> validated [`config::Config`].
//! - [`tls`]: rustls configs (TLS 1.3 only; agent mTLS verifier backed by the cert registry).
//! - [`listener`]: accept loop (TLS handshake timeout, HTTP/1.1 + HTTP/2, graceful shutdown).
//! - [`web`]: web listener router (enrollment API, Leptos pages/server fns, static files).
//! - [`agent_api`]: agent listener router (check-ins, job poll and events, per-request
//!   certificate re-check).
//! - [`run_with`]: starts both listeners and the background workers (certificate registry and
//!   JWT key refreshers, the job scheduler); used by `serve` and by
//!   the integration tests (which bind `127.0.0.1:0`).

pub mod agent_api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod listener;
pub mod tls;
pub mod private_files;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use app::backend::db::{now_unix, Db};
use app::backend::state::AppState;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;

/// A started server: where it listens, its state, and the task that ends after shutdown.
pub struct RunningServer {
    pub web_addr: SocketAddr,
    pub agent_addr: SocketAddr,
    pub state: AppState,
    pub join: JoinHandle<()>,
}

/// Connects to the database. The data dir is created first (mode 0700: it holds the CA key
/// and, by default, the SQLite file with password hashes and TOTP secrets); a SQLite file is
/// created 0600, and an existing one readable by others is made 0600.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    private_files::create_dir(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    if let Some(path) = private_files::sqlite_path(&config.database_url) {
        private_files::restrict_sqlite(&path).with_context(|| format!("database file {}", path.display()))?;
    }
    Db::connect(&config.database_url).await.context("connecting to the database")
}

/// Opens the database (migrating it), loads the CA, keys and certificate registry.
pub async fn init_state(config: &Config) -> anyhow::Result<AppState> {
    let db = open_db(config).await?;
    AppState::init(config.settings(), db, now_unix()).await.context("initialising server state")
}

/// Starts both listeners and the registry refresher; returns once they are bound.
/// Everything stops (connections drain gracefully) when `shutdown` completes.
pub async fn run_with(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunningServer> {
    let state = init_state(&config).await?;
    let now = now_unix();
    let web_tls = tls::web_server_config(&state, &config, now)?;
    let agent_tls = tls::agent_server_config(&state, &config, now)?;

    let web_listener =
        TcpListener::bind(config.web_listen).await.with_context(|| format!("binding {}", config.web_listen))?;
    let agent_listener =
        TcpListener::bind(config.agent_listen).await.with_context(|| format!("binding {}", config.agent_listen))?;
    let web_addr = web_listener.local_addr()?;
    let agent_addr = agent_listener.local_addr()?;

    let web_router = web::router(state.clone(), &config.site_dir);
    let agent_router = agent_api::router(state.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let web = tokio::spawn(listener::serve(web_listener, web_tls, web_router, stop_rx.clone()));
    let agent = tokio::spawn(listener::serve(agent_listener, agent_tls, agent_router, stop_rx.clone()));
    let refresher =
        tokio::spawn(refresh_registry(state.clone(), Duration::from_secs(config.cert_refresh_secs), stop_rx.clone()));
    let key_refresher = tokio::spawn(refresh_keys(state.clone(), stop_rx.clone()));
    let scheduler = tokio::spawn(run_scheduler(state.clone(), stop_rx));
    tracing::info!(%web_addr, %agent_addr, "listening");

    let hub = state.job_hub.clone();
    let join = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        // Long polls answer at once, so connections drain within the grace period.
        hub.close();
        let _ = stop_tx.send(true);
        for (name, task) in [
            ("web", web),
            ("agent", agent),
            ("registry refresher", refresher),
            ("key refresher", key_refresher),
            ("job scheduler", scheduler),
        ] {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "task failed");
            }
        }
    });
    Ok(RunningServer { web_addr, agent_addr, state, join })
}

/// Revocations made by other replicas (or the CLI) reach this process's TLS verifier within
/// one period. The per-request re-check does not depend on this.
async fn refresh_registry(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = listener::stopped(&mut stop) => return,
            _ = tick.tick() => {
                if let Err(e) = state.certs.refresh(&state.db).await {
                    tracing::warn!(error = %e, "certificate registry refresh failed");
                }
            }
        }
    }
}

/// Rotates the JWT signing key when it is due and picks up keys written by other replicas
/// (or `keys rotate`), well within their activation delay.
async fn refresh_keys(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(app::backend::sessions::KEY_REFRESH_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = listener::stopped(&mut stop) => return,
            _ = tick.tick() => {
                if let Err(e) = state.keys.refresh(&state.db, state.settings.jwt_rotation_secs, now_unix()).await {
                    tracing::warn!(error = %e, "JWT key refresh failed");
                }
            }
        }
    }
}

/// Replicas' clocks may disagree by this much when one wakes polls for another's dispatches.
const WAKE_SLACK_SECS: i64 = 5;

/// The job scheduler of this replica (see `app::backend::jobs::scheduler` for why several may
/// run on one database), and the watcher that wakes this replica's long polls for jobs other
/// replicas dispatched: one query per tick, whatever the number of waiting agents.
async fn run_scheduler(state: AppState, mut stop: watch::Receiver<bool>) {
    use app::backend::jobs::{dispatch, scheduler};
    let mut tick = tokio::time::interval(Duration::from_millis(scheduler::TICK_MILLIS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = now_unix();
    loop {
        tokio::select! {
            _ = listener::stopped(&mut stop) => return,
            _ = tick.tick() => {
                let now = now_unix();
                if let Err(e) = scheduler::tick(&state, now).await {
                    tracing::warn!(error = %e, "job scheduler tick failed");
                }
                if let Err(e) = dispatch::wake_recent(&state, since - WAKE_SLACK_SECS).await {
                    tracing::warn!(error = %e, "waking job polls failed");
                }
                since = now;
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
