//! The agent's error type. Messages are written for the operator running `pm-agent`.

use std::path::PathBuf;

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{context}: {path}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("not enrolled: {0} is missing (run `pm-agent enroll` first)")]
    NotEnrolled(PathBuf),
    #[error("invalid argument: {0}")]
    Usage(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("key or CSR generation failed: {0}")]
    KeyGen(String),
    #[error(
        "CA fingerprint mismatch: expected {expected}, the server presented {actual}; \
         refusing to enroll (wrong server or an interception attempt)"
    )]
    FingerprintMismatch { expected: String, actual: String },
    #[error("cannot reach {url}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error body ([`crate::proto::ApiError`]).
    #[error("server refused the request (HTTP {status}, {code}): {message}")]
    Server { status: u16, code: String, message: String },
    #[error("unexpected response from {url}: {message}")]
    BadResponse { url: String, message: String },
    #[error("command `{program}` failed: {message}")]
    Command { program: String, message: String },
    #[error("no supported package manager found (looked for: {0})")]
    NoPackageManager(String),
    #[error("job journal {path}: {message}")]
    Journal { path: PathBuf, message: String },
    /// A job step that could not run (the message goes into the job's result).
    #[error("{0}")]
    Job(String),
}

impl AgentError {
    pub(crate) fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io { context, path: path.into(), source }
    }

    /// True when retrying later can help (network down, server busy or restarting).
    pub fn is_transient(&self) -> bool {
        match self {
            AgentError::Transport { .. } | AgentError::BadResponse { .. } => true,
            AgentError::Server { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}
