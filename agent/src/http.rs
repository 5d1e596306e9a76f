//! JSON over HTTPS with the agent's own rustls configs, and the server's error bodies
//! turned into [`AgentError::Server`].

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{AgentError, Result};
use crate::proto::ApiError;

/// A client that uses exactly `tls` (no system roots, no other TLS versions).
pub fn client(tls: rustls::ClientConfig, timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(15))
        .timeout(timeout)
        .user_agent(concat!("pm-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AgentError::Tls(format!("HTTP client: {e}")))
}

pub async fn post_json<B: Serialize, R: DeserializeOwned>(client: &reqwest::Client, url: &str, body: &B) -> Result<R> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|source| AgentError::Transport { url: url.to_string(), source })?;
    let response = check_status(response).await?;
    response.json().await.map_err(|e| AgentError::BadResponse { url: url.to_string(), message: e.to_string() })
}

pub async fn get_text(client: &reqwest::Client, url: &str) -> Result<String> {
    let response =
        client.get(url).send().await.map_err(|source| AgentError::Transport { url: url.to_string(), source })?;
    let response = check_status(response).await?;
    response.text().await.map_err(|e| AgentError::BadResponse { url: url.to_string(), message: e.to_string() })
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(server_error(status.as_u16(), status.canonical_reason(), &body))
}

/// The server's [`ApiError`] when the body is one; otherwise only the status (a proxy's or
/// load balancer's HTML page is not worth printing).
pub fn server_error(status: u16, reason: Option<&str>, body: &[u8]) -> AgentError {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => AgentError::Server { status, code: e.code, message: e.message },
        Err(_) => AgentError::Server {
            status,
            code: format!("http_{status}"),
            message: reason.unwrap_or("unexpected status").to_string(),
        },
    }
}

/// `base` without trailing `/` + `path`. Only https is accepted: every request of the agent
/// relies on TLS for authenticity.
pub fn join(base: &str, path: &str) -> Result<String> {
    let base = base.trim().trim_end_matches('/');
    if !base.starts_with("https://") || base.len() <= "https://".len() {
        return Err(AgentError::Usage(format!("server URL must start with https://, got {base:?}")));
    }
    Ok(format!("{base}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_decoded_and_other_bodies_are_not_echoed() {
        let body = br#"{"code":"token_invalid","message":"enrollment token is invalid or expired"}"#;
        let err = server_error(401, Some("Unauthorized"), body);
        assert_eq!(
            err.to_string(),
            "server refused the request (HTTP 401, token_invalid): enrollment token is invalid or expired"
        );
        let err = server_error(502, Some("Bad Gateway"), b"<html>secret internals</html>");
        assert!(!err.to_string().contains("secret"));
        assert!(err.is_transient());
        assert!(!server_error(401, None, b"").is_transient());
    }

    #[test]
    fn join_requires_https() {
        assert_eq!(join("https://pm:8443/", "/api/v1/enroll").unwrap(), "https://pm:8443/api/v1/enroll");
        assert!(join("http://pm:8443", "/x").is_err());
        assert!(join("https://", "/x").is_err());
    }
}
