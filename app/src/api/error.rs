//! The one error type every server function returns. It crosses the wire as JSON, so the
//! browser sees the same stable `code` the backend chose and only a client-safe message.
//!
//! The HTTP status travels separately: `status` is not serialised; on the server,
//! `api::ctx::respond` puts it on the response (the same map as the server's listeners:
//! 401, 403, 404, 409, 422, 429, 500).

use std::fmt;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppError {
    /// Stable machine-readable code (`invalid_credentials`, `not_found`, `internal`, ...).
    pub code: String,
    /// Safe to show to the user; never contains internal details or secrets.
    pub message: String,
    /// HTTP status of the response carrying this error (server side only).
    #[serde(skip, default = "internal_status")]
    pub status: u16,
}

fn internal_status() -> u16 {
    500
}

/// Code of the error returned when there is no (valid) session.
pub const UNAUTHENTICATED: &str = "unauthenticated";

impl AppError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError { code: code.into(), message: message.into(), status }
    }

    pub fn internal() -> AppError {
        AppError::new(500, "internal", "internal error")
    }

    pub fn unauthenticated() -> AppError {
        AppError::new(401, UNAUTHENTICATED, "please log in")
    }

    pub fn forbidden() -> AppError {
        AppError::new(403, "forbidden", "forbidden")
    }

    pub fn is_unauthenticated(&self) -> bool {
        self.code == UNAUTHENTICATED
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        // Transport and (de)serialisation failures: keep the text generic.
        match value {
            ServerFnErrorErr::Request(_) => AppError::new(500, "request_failed", "the server could not be reached"),
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => {
                AppError::new(400, "bad_request", "invalid request")
            }
            _ => AppError::new(500, "request_failed", "request failed"),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<crate::backend::error::BackendError> for AppError {
    fn from(err: crate::backend::error::BackendError) -> Self {
        use crate::backend::error::BackendError as E;
        let status = match &err {
            E::NotFound => 404,
            E::Invalid(_) => 422,
            E::Conflict(_) => 409,
            E::Unauthorized(_) => 401,
            E::Forbidden => 403,
            E::RateLimited => 429,
            E::Db(_) | E::Migrate(_) | E::Crypto(_) | E::Io(_) | E::Internal(_) => 500,
        };
        if status == 500 {
            // The detail stays in the server log; the client gets the stable code only.
            tracing::error!(error = %err, "server function failed");
        }
        AppError::new(status, err.code(), err.public_message())
    }
}

#[cfg(all(test, feature = "ssr"))]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn status_does_not_cross_the_wire() {
        let e = AppError::unauthenticated();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"code":"unauthenticated","message":"please log in"}"#);
        let back: AppError = serde_json::from_str(&json).unwrap();
        assert_eq!(back.code, e.code);
        assert_eq!(back.status, 500);
    }

    #[test]
    fn backend_errors_keep_their_code_and_hide_internals() {
        use crate::backend::error::BackendError;
        let e = AppError::from(BackendError::Unauthorized("invalid_totp"));
        assert_eq!((e.status, e.code.as_str(), e.message.as_str()), (401, "invalid_totp", "authentication failed"));
        let e = AppError::from(BackendError::Internal("disk on fire at /var/lib".into()));
        assert_eq!((e.status, e.code.as_str(), e.message.as_str()), (500, "internal", "internal error"));
    }
}
