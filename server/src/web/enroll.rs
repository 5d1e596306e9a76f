//! Public REST endpoints used by `pm-agent enroll`: the enrollment itself and the CA
//! certificate. Both are reachable without a session by design; the one-time token is the
//! credential for enrollment.

use agent::proto::{EnrollRequest, EnrollResponse};
use app::backend::db::now_unix;
use app::backend::enrollment;
use app::backend::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};

use super::errors::{ApiJson, WebError};
use crate::listener::ConnInfo;

/// Bodies larger than this are refused before parsing (a CSR is a few hundred bytes).
pub const ENROLL_BODY_LIMIT: usize = 64 * 1024;

#[tracing::instrument(skip_all, fields(peer = %conn.remote_addr))]
pub async fn enroll(
    State(state): State<AppState>,
    Extension(conn): Extension<ConnInfo>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, WebError> {
    let ip = conn.ip();
    let resp = enrollment::enroll(&state, &req, Some(&ip), now_unix()).await?;
    Ok(Json(resp))
}

pub async fn ca_pem(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/x-pem-file")], state.ca.cert_pem().to_string())
}
