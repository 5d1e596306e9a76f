//! Router of the agent (mTLS) listener.
//!
//! Ordering rule: [`authorize`] runs before any body is read. The TLS verifier checked the
//! certificate at the handshake, but a keep-alive connection can outlive a revocation, so
//! every request re-checks the serial against the database (`certs::authorize_serial`).
//!
//! # Layout
//! - `errors`: the one error -> status map of this listener.
//! - `jobs`: the long poll for dispatched jobs and job events (`agent::proto::jobs`).

pub mod errors;
pub mod jobs;

use agent::proto::{CheckIn, CheckInResponse};
use app::backend::certs;
use app::backend::db::now_unix;
use app::backend::hosts;
use app::backend::state::AppState;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};

use self::errors::{AgentError, AgentJson};
use crate::listener::ConnInfo;

/// A full inventory of a large host is a few MiB of JSON.
pub const CHECKIN_BODY_LIMIT: usize = 32 * 1024 * 1024;
/// Upper bound for one request, body upload included (slow clients hold a connection slot).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The host a request was authorized for (from its certificate, never from the body).
#[derive(Debug, Clone)]
pub struct AuthedHost {
    pub host_id: String,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(agent::proto::CHECKIN_PATH, post(checkin))
        .route(agent::proto::jobs::JOBS_POLL_PATH, post(jobs::poll))
        .route(agent::proto::jobs::JOB_EVENT_PATH, post(jobs::event))
        .layer(DefaultBodyLimit::max(CHECKIN_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), authorize))
        .layer(axum::middleware::from_fn(request_timeout))
        .layer(axum::middleware::from_fn(crate::listener::scope_source_ip))
        .with_state(state)
}

async fn request_timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(res) => res,
        Err(_) => AgentError::Timeout.into_response(),
    }
}

pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let serial = req.extensions().get::<ConnInfo>().and_then(|c| c.peer_serial.clone());
    let Some(serial) = serial else {
        return AgentError::NoClientCert.into_response();
    };
    match certs::authorize_serial(&state.db, &serial, now_unix()).await {
        Ok(host_id) => {
            req.extensions_mut().insert(AuthedHost { host_id });
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(target: "security", serial = %serial, code = e.code(), "agent request refused");
            AgentError::from(e).into_response()
        }
    }
}

#[tracing::instrument(skip_all, fields(host_id = %host.host_id))]
async fn checkin(
    State(state): State<AppState>,
    Extension(host): Extension<AuthedHost>,
    AgentJson(body): AgentJson<CheckIn>,
) -> Result<Json<CheckInResponse>, AgentError> {
    let resp = hosts::record_checkin(&state.db, &host.host_id, &body, state.settings.checkin_interval_secs, now_unix())
        .await?;
    Ok(Json(resp))
}
