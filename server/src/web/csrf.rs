//! CSRF defence for every state-changing request (server functions and REST alike): a
//! request whose method is not GET/HEAD/OPTIONS passes only when the browser says it comes
//! from our own origin: `Sec-Fetch-Site: same-origin`, or, from a client that does not send
//! fetch metadata, an `Origin` equal to `https://` + the request's own authority. Neither
//! header, a foreign origin, or `Origin: null` is refused with 403 `cross_origin`.
//!
//! Exempt: the agents' enrollment endpoint, which carries no cookie and is authorised by its
//! one-time token alone. Mutations are never reachable by GET (server functions are POST;
//! the permission matrix test checks it), so the safe methods need no check.

use axum::extract::Request;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::WebError;

const EXEMPT: &[&str] = &[agent::proto::ENROLL_PATH];

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The decision, apart from the middleware plumbing (unit-tested below).
pub fn allowed(method: &Method, path: &str, authority: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>) -> bool {
    if is_safe(method) || EXEMPT.contains(&path) {
        return true;
    }
    if let Some(site) = fetch_site {
        return site.eq_ignore_ascii_case("same-origin");
    }
    match (origin, authority) {
        (Some(origin), Some(authority)) => origin.eq_ignore_ascii_case(&format!("https://{authority}")),
        _ => false,
    }
}

pub async fn same_origin_only(req: Request, next: Next) -> Response {
    let h = req.headers();
    let text = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    // HTTP/2 carries the authority in the URI, HTTP/1.1 in the Host header.
    let authority = req.uri().authority().map(|a| a.as_str().to_owned()).or_else(|| text(header::HOST).map(str::to_owned));
    let ok = allowed(req.method(), req.uri().path(), authority.as_deref(), text(header::ORIGIN), text(header::HeaderName::from_static("sec-fetch-site")));
    if ok {
        next.run(req).await
    } else {
        tracing::warn!(target: "security", path = %req.uri().path(), origin = text(header::ORIGIN).unwrap_or("-"), "cross-origin state change refused");
        WebError::CrossOrigin.into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const HOST: Option<&str> = Some("pm.example:8443");

    #[test]
    fn decisions() {
        let post = Method::POST;
        assert!(allowed(&Method::GET, "/hosts", HOST, None, None));
        assert!(allowed(&post, "/api/auth/login", HOST, None, Some("same-origin")));
        assert!(allowed(&post, "/api/auth/login", HOST, Some("https://pm.example:8443"), None));
        assert!(allowed(&post, agent::proto::ENROLL_PATH, HOST, None, None));
        // Refusals.
        assert!(!allowed(&post, "/api/auth/login", HOST, None, None));
        assert!(!allowed(&post, "/api/auth/login", HOST, None, Some("cross-site")));
        assert!(!allowed(&post, "/api/auth/login", HOST, None, Some("same-site")));
        assert!(!allowed(&post, "/api/auth/login", HOST, Some("https://pm.example:8443"), Some("cross-site")));
        assert!(!allowed(&post, "/api/auth/login", HOST, Some("https://evil.example"), None));
        assert!(!allowed(&post, "/api/auth/login", HOST, Some("http://pm.example:8443"), None));
        assert!(!allowed(&post, "/api/auth/login", HOST, Some("null"), None));
        assert!(!allowed(&Method::DELETE, "/api/v1/hosts/x", HOST, Some("https://pm.example:8443.evil"), None));
        assert!(!allowed(&post, "/api/auth/login", None, Some("https://pm.example:8443"), None));
    }
}
