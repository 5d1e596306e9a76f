//! The backend's one error type. Status mapping lives in the server (one map per listener);
//! here every variant carries a stable `code()` and a client-safe `public_message()`.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("not found")]
    NotFound,
    /// Bad input; the message is safe to show (never echoes secrets).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Unique/foreign-key constraint or state conflict; `code` names it.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Missing or wrong credentials (password, token, TOTP, certificate).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// Authenticated but not allowed.
    #[error("forbidden")]
    Forbidden,
    /// Too many attempts.
    #[error("rate limited")]
    RateLimited,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("crypto error: {0}")]
    Crypto(String),
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl BackendError {
    /// Stable machine-readable code sent to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Invalid(_) => "invalid_input",
            Self::Conflict(c) => c,
            Self::Unauthorized(c) => c,
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Db(_) | Self::Migrate(_) | Self::Crypto(_) | Self::Io(_) | Self::Internal(_) => "internal",
        }
    }

    /// Message safe to send to a client: internal details are never included.
    pub fn public_message(&self) -> String {
        match self {
            Self::NotFound => "not found".into(),
            Self::Invalid(m) => m.clone(),
            Self::Conflict(c) => format!("conflict: {c}"),
            Self::Unauthorized(_) => "authentication failed".into(),
            Self::Forbidden => "forbidden".into(),
            Self::RateLimited => "too many attempts, try again later".into(),
            _ => "internal error".into(),
        }
    }

    pub fn is_internal(&self) -> bool {
        self.code() == "internal"
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
