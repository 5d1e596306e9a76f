//! Job endpoints of the agent listener: the long poll for dispatched jobs and job events.
//! The host is always the certificate's (`AuthedHost`), never anything in the body.

use std::time::Duration;

use agent::proto::jobs::{JobEvent, JobEventResponse, JobPoll, JobPollResponse, MAX_POLL_WAIT_SECS};
use app::backend::db::now_unix;
use app::backend::jobs::{dispatch, results};
use app::backend::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};

use super::errors::{AgentError, AgentJson};
use super::AuthedHost;

/// Holds the request until a job is dispatched to this host (the scheduler, or the watcher
/// that notices other replicas' dispatches, pokes the hub), `wait_secs` pass (capped at
/// [`MAX_POLL_WAIT_SECS`]), or the server shuts down. An idle poll costs no database work.
#[tracing::instrument(skip_all, fields(host_id = %host.host_id))]
pub async fn poll(
    State(state): State<AppState>,
    Extension(host): Extension<AuthedHost>,
    AgentJson(body): AgentJson<JobPoll>,
) -> Result<Json<JobPollResponse>, AgentError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(body.wait_secs.min(MAX_POLL_WAIT_SECS));
    let hub = state.job_hub.clone();
    let sub = hub.subscribe(&host.host_id);
    loop {
        // Registered before the database is read, so a poke in between is not lost.
        let notified = sub.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let jobs = dispatch::pending_for_host(&state.db, &host.host_id, now_unix()).await?;
        if !jobs.is_empty() || hub.is_closed() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(JobPollResponse { jobs }));
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(Json(JobPollResponse::default())),
            _ = hub.closed() => return Ok(Json(JobPollResponse::default())),
        }
    }
}

#[tracing::instrument(skip_all, fields(host_id = %host.host_id))]
pub async fn event(
    State(state): State<AppState>,
    Extension(host): Extension<AuthedHost>,
    AgentJson(body): AgentJson<JobEvent>,
) -> Result<Json<JobEventResponse>, AgentError> {
    Ok(Json(results::record(&state.db, &host.host_id, &body, now_unix()).await?))
}
