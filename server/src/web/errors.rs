//! The one error -> HTTP status map of the web listener. Bodies are always
//! [`agent::proto::ApiError`]; internal error text is logged, never sent.

use agent::proto::ApiError;
use app::backend::error::BackendError;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The body is not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// JSON of the wrong shape (missing/unknown fields, wrong types).
    #[error("unexpected JSON: {0}")]
    WrongShape(String),
    #[error("missing content type")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("body read failed")]
    BodyRead,
    /// No valid session (API callers; pages get a redirect instead).
    #[error("not logged in")]
    NotLoggedIn,
    /// The request (including reading its body) took longer than the listener allows.
    #[error("request timed out")]
    Timeout,
    /// A state-changing request that does not come from our own origin (CSRF defence).
    #[error("cross-origin request refused")]
    CrossOrigin,
}

impl From<JsonRejection> for WebError {
    fn from(r: JsonRejection) -> Self {
        match r {
            // serde's messages name the field/position, never echo the value.
            JsonRejection::JsonDataError(e) => WebError::WrongShape(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => WebError::MalformedJson(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => WebError::UnsupportedMediaType,
            JsonRejection::BytesRejection(b) => b.into(),
            _ => WebError::BodyRead,
        }
    }
}

impl From<BytesRejection> for WebError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebError::PayloadTooLarge
        } else {
            WebError::BodyRead
        }
    }
}

fn body(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(ApiError { code: code.into(), message })).into_response()
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::Backend(e) => {
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
                    tracing::error!(error = %e, "request failed");
                    return body(status, "internal", "internal error".into());
                }
                body(status, e.code(), e.public_message())
            }
            WebError::MalformedJson(m) => body(StatusCode::BAD_REQUEST, "malformed_json", m),
            WebError::WrongShape(m) => body(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
            WebError::UnsupportedMediaType => body(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json".into(),
            ),
            WebError::PayloadTooLarge => {
                body(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body too large".into())
            }
            WebError::BodyRead => body(StatusCode::BAD_REQUEST, "bad_request", "could not read request body".into()),
            WebError::NotLoggedIn => body(StatusCode::UNAUTHORIZED, "not_logged_in", "login required".into()),
            WebError::Timeout => body(StatusCode::REQUEST_TIMEOUT, "timeout", "request timed out".into()),
            WebError::CrossOrigin => body(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "state-changing requests must come from this server's own pages".into(),
            ),
        }
    }
}

/// `Json<T>` whose rejections go through [`WebError`] (so they carry an `ApiError` body).
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let s = |e: WebError| e.into_response().status();
        assert_eq!(s(BackendError::NotFound.into()), StatusCode::NOT_FOUND);
        assert_eq!(s(BackendError::Invalid("x".into()).into()), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(s(BackendError::Conflict("dup").into()), StatusCode::CONFLICT);
        assert_eq!(s(BackendError::Unauthorized("token_invalid").into()), StatusCode::UNAUTHORIZED);
        assert_eq!(s(BackendError::Forbidden.into()), StatusCode::FORBIDDEN);
        assert_eq!(s(BackendError::RateLimited.into()), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(s(BackendError::Internal("secret detail".into()).into()), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(s(WebError::MalformedJson("x".into())), StatusCode::BAD_REQUEST);
        assert_eq!(s(WebError::WrongShape("x".into())), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
