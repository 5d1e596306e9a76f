//! The one error -> status map of the agent (mTLS) listener. Bodies are always
//! [`agent::proto::ApiError`]; internal error text is logged, never sent.

use agent::proto::ApiError;
use app::backend::error::BackendError;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// No verified client certificate on the connection (cannot happen through the mTLS
    /// listener; guards against mis-wiring).
    #[error("no client certificate")]
    NoClientCert,
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("unexpected JSON: {0}")]
    WrongShape(String),
    #[error("missing content type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("body read failed")]
    BodyRead,
    #[error("request timed out")]
    Timeout,
}

impl From<JsonRejection> for AgentError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => AgentError::WrongShape(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => AgentError::MalformedJson(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => AgentError::UnsupportedMediaType,
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AgentError::PayloadTooLarge
            }
            _ => AgentError::BodyRead,
        }
    }
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(ApiError { code: code.into(), message })).into_response()
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        match self {
            AgentError::Backend(e) => {
                let status = match &e {
                    BackendError::NotFound => StatusCode::NOT_FOUND,
                    BackendError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    BackendError::Conflict(_) => StatusCode::CONFLICT,
                    BackendError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                    BackendError::Forbidden => StatusCode::FORBIDDEN,
                    BackendError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                    BackendError::Db(_)
                    | BackendError::Migrate(_)
                    | BackendError::Crypto(_)
                    | BackendError::Io(_)
                    | BackendError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                };
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "agent request failed");
                    return body(status, "internal", "internal error".into());
                }
                body(status, e.code(), e.public_message())
            }
            AgentError::NoClientCert => {
                body(StatusCode::UNAUTHORIZED, "client_cert_required", "client certificate required".into())
            }
            AgentError::MalformedJson(m) => body(StatusCode::BAD_REQUEST, "malformed_json", m),
            AgentError::WrongShape(m) => body(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
            AgentError::UnsupportedMediaType => body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json".into(),
            ),
            AgentError::PayloadTooLarge => {
                body(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body too large".into())
            }
            AgentError::BodyRead => body(StatusCode::BAD_REQUEST, "bad_request", "could not read request body".into()),
            AgentError::Timeout => body(StatusCode::REQUEST_TIMEOUT, "timeout", "request timed out".into()),
        }
    }
}

/// `Json<T>` whose rejections go through [`AgentError`].
pub struct AgentJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for AgentJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AgentError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(AgentJson(v))
    }
}
