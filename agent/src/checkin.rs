//! `pm-agent run`: check in over mTLS, forever or once.
//!
//! A cycle is one check-in, plus an immediate second one when the server asks for the
//! inventory it did not get. Between cycles: the server's interval ±10 %; after a failure:
//! exponential backoff. Facts and inventory are collected fresh for every check-in.
//!
//! Jobs in a check-in response go to [`crate::jobs`], which runs them next to this loop (and
//! long-polls for more between check-ins); after a job the next check-in happens at once so
//! the server sees the new inventory.

use std::sync::Arc;
use std::time::Duration;

use crate::ack::{InventoryAck, Next};
use crate::backoff::{self, Backoff};
use crate::config::{AgentConfig, LocalSettings};
use crate::error::{AgentError, Result};
use crate::facts::{self, FactSources};
use crate::jobs::Jobs;
use crate::pkg::{self, PackageBackend};
use crate::proto::{self, CheckIn, CheckInResponse, HostFacts, Inventory};
use crate::state::StateDir;
use crate::{http, tls};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Facts and inventory as collected right now (inventory `Err` when the package manager failed).
pub struct Snapshot {
    pub facts: HostFacts,
    pub inventory: Result<Inventory>,
}

/// Everything a running agent needs, loaded once from the state dir.
pub struct Agent {
    state: StateDir,
    config: AgentConfig,
    client: reqwest::Client,
    checkin_url: String,
    collector: Arc<Collector>,
}

/// Collects facts and inventory (blocking work).
pub struct Collector {
    sources: FactSources,
    /// `Err`: what detection looked for (reported on every check-in, not fatal).
    backend: std::result::Result<Box<dyn PackageBackend>, String>,
}

impl Collector {
    pub fn new(settings: &LocalSettings) -> Collector {
        let backend = pkg::from_settings(settings).map_err(|e| match e {
            AgentError::NoPackageManager(looked_for) => looked_for,
            other => other.to_string(),
        });
        Collector { sources: FactSources::from_settings(settings), backend }
    }

    pub fn collect(&self) -> Snapshot {
        let facts = facts::collect(&self.sources);
        let inventory = match &self.backend {
            Ok(backend) => backend.inventory(),
            Err(looked_for) => Err(AgentError::NoPackageManager(looked_for.clone())),
        };
        Snapshot { facts, inventory }
    }
}

/// Outcome of one successful cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub response: CheckInResponse,
    /// Check-ins done in this cycle (1, or 2 when the server asked for the inventory).
    pub checkins: u32,
    /// Whether the inventory went out in this cycle.
    pub inventory_sent: bool,
}

impl Agent {
    pub fn load(state: StateDir) -> Result<Agent> {
        let config = AgentConfig::load(&state.config_path())?;
        let tls = tls::mtls(
            &state.read(&state.ca_path())?,
            &state.read(&state.cert_path())?,
            &state.read(&state.key_path())?,
        )?;
        let client = http::client(tls, TIMEOUT)?;
        let checkin_url = http::join(&config.agent_url, proto::CHECKIN_PATH)?;
        let collector = Arc::new(Collector::new(&config.local()));
        Ok(Agent { state, config, client, checkin_url, collector })
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The mTLS client for the agent listener.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The job machinery for this agent (not started).
    pub fn jobs(&self) -> Result<Jobs> {
        Jobs::new(&self.state, &self.config, self.client.clone())
    }

    /// One cycle. Errors when a check-in failed (the caller backs off).
    pub async fn cycle(&self) -> Result<CycleReport> {
        self.cycle_beside(None).await
    }

    /// One cycle next to the job machinery: an inventory read while a job may have been
    /// changing packages is not sent (it could mix the states before and after a
    /// transaction); the check-in after the job carries the new one.
    #[tracing::instrument(skip_all, fields(host_id = %self.config.host_id))]
    pub async fn cycle_beside(&self, jobs: Option<&Jobs>) -> Result<CycleReport> {
        let mut ack = InventoryAck::load(&self.state);
        let mut checkins = 0;
        let mut inventory_sent = false;
        loop {
            let collector = Arc::clone(&self.collector);
            let mark = jobs.map(Jobs::flux_mark);
            let snapshot = tokio::task::spawn_blocking(move || collector.collect())
                .await
                .map_err(|e| AgentError::Command { program: "inventory".into(), message: e.to_string() })?;
            let in_flux = jobs.zip(mark).is_some_and(|(jobs, mark)| !jobs.quiet_since(mark));
            let (body, sent) = if in_flux {
                tracing::debug!("a job is changing packages: checking in without the inventory");
                facts_only(snapshot.facts, &ack)
            } else {
                build_checkin(snapshot, &ack)
            };
            let response: CheckInResponse = http::post_json(&self.client, &self.checkin_url, &body).await?;
            checkins += 1;
            inventory_sent |= sent.is_some();
            let next = ack.on_response(sent.as_deref(), response.send_inventory);
            ack.save(&self.state)?;
            tracing::info!(
                inventory_sent = sent.is_some(),
                send_inventory = response.send_inventory,
                next_checkin_seconds = response.next_checkin_seconds,
                "checked in"
            );
            if next == Next::Done || checkins >= 2 {
                return Ok(CycleReport { response, checkins, inventory_sent });
            }
        }
    }
}

/// The check-in body and, when it carries the inventory, that inventory's digest.
///
/// When the package manager failed, the body reports the digest the server already holds
/// (so it keeps its last good inventory instead of asking for one we cannot produce).
pub fn build_checkin(snapshot: Snapshot, ack: &InventoryAck) -> (CheckIn, Option<String>) {
    match snapshot.inventory {
        Ok(inventory) => {
            let digest = inventory.digest();
            let send = ack.should_send(&digest);
            let body = CheckIn {
                facts: snapshot.facts,
                inventory_digest: digest.clone(),
                inventory: send.then_some(inventory),
            };
            (body, send.then_some(digest))
        }
        Err(e) => {
            tracing::warn!(error = %e, "inventory collection failed; checking in with facts only");
            facts_only(snapshot.facts, ack)
        }
    }
}

/// A check-in without the inventory, naming the digest the server already holds.
fn facts_only(facts: HostFacts, ack: &InventoryAck) -> (CheckIn, Option<String>) {
    let digest = ack.acked().unwrap_or_default().to_string();
    (CheckIn { facts, inventory_digest: digest, inventory: None }, None)
}

/// The foreground loop. With `once`: one cycle, its error is returned.
pub async fn run(state: StateDir, once: bool) -> Result<()> {
    let agent = Agent::load(state)?;
    if once {
        return agent.cycle().await.map(|_| ());
    }
    tracing::info!(agent_url = %agent.config.agent_url, host_id = %agent.config.host_id, "pm-agent running");
    // Registered once: a signal that arrives during a check-in is not lost.
    let mut shutdown = Shutdown::new();
    let jobs = agent.jobs()?;
    jobs.start(agent.client.clone(), http::join(&agent.config.agent_url, proto::jobs::JOBS_POLL_PATH)?);
    let mut backoff = Backoff::default();
    loop {
        let delay = match agent.cycle_beside(Some(&jobs)).await {
            Ok(report) => {
                backoff.reset();
                jobs.offer(report.response.jobs);
                backoff::checkin_interval(report.response.next_checkin_seconds, agent.config.checkin_interval_secs)
            }
            Err(e) => {
                let delay = backoff.fail();
                tracing::warn!(error = %error_chain(&e), failures = backoff.failures(), retry_in_secs = delay.as_secs(), transient = e.is_transient(), "check-in failed");
                delay
            }
        };
        let delay = backoff::jitter(delay, &mut rand::thread_rng());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = jobs.finished() => {}
            () = shutdown.signalled() => {
                if jobs.is_busy() {
                    // Stopping now would leave the job `interrupted`; a second signal (or
                    // systemd's stop timeout) stops it anyway.
                    tracing::warn!("a job is running: finishing it before shutting down (signal again to stop now)");
                    tokio::select! {
                        () = jobs.idle() => {}
                        () = shutdown.signalled() => {}
                    }
                }
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// The error and its sources, `: `-separated (reqwest hides the TLS reason in a source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// SIGTERM or Ctrl-C.
struct Shutdown {
    term: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    fn new() -> Shutdown {
        use tokio::signal::unix::{signal, SignalKind};
        Shutdown { term: signal(SignalKind::terminate()).ok() }
    }

    async fn signalled(&mut self) {
        match self.term.as_mut() {
            Some(term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{InstalledPackage, PackageManager};

    fn inventory(version: &str) -> Inventory {
        Inventory {
            manager: PackageManager::Apt,
            installed: vec![InstalledPackage { name: "bash".into(), version: version.into(), arch: "amd64".into() }],
            updates: vec![],
        }
    }

    #[test]
    fn inventory_travels_only_when_changed() {
        let inv = inventory("5.2");
        let digest = inv.digest();
        let (body, sent) = build_checkin(
            Snapshot { facts: HostFacts::default(), inventory: Ok(inv.clone()) },
            &InventoryAck::default(),
        );
        assert_eq!(body.inventory.as_ref(), Some(&inv));
        assert_eq!(sent.as_deref(), Some(digest.as_str()));

        let acked = InventoryAck::new(Some(digest.clone()));
        let (body, sent) = build_checkin(Snapshot { facts: HostFacts::default(), inventory: Ok(inv) }, &acked);
        assert_eq!(body.inventory, None);
        assert_eq!(body.inventory_digest, digest);
        assert_eq!(sent, None);

        let changed = inventory("5.3");
        let (body, sent) =
            build_checkin(Snapshot { facts: HostFacts::default(), inventory: Ok(changed.clone()) }, &acked);
        assert_eq!(body.inventory, Some(changed));
        assert!(sent.is_some());
    }

    #[test]
    fn failed_inventory_reports_the_acked_digest() {
        let acked = InventoryAck::new(Some("d0".into()));
        let failed = Err(AgentError::NoPackageManager("x".into()));
        let (body, sent) = build_checkin(Snapshot { facts: HostFacts::default(), inventory: failed }, &acked);
        assert_eq!(body.inventory_digest, "d0");
        assert_eq!(body.inventory, None);
        assert_eq!(sent, None);
    }
}
