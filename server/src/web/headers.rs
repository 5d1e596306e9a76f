//! Security headers on every web response, and the per-request CSP nonce.
//!
//! Leptos inlines a small module script that loads and hydrates the WASM, plus streamed
//! `<script>` chunks for resources. With leptos' `nonce` feature those tags carry the nonce
//! we generate here (provided to the renderer from the request extensions, see
//! `web::leptos_context`), so `script-src` needs no `'unsafe-inline'`.
//! `'wasm-unsafe-eval'` is required to instantiate the WebAssembly module.
//! Styles keep `'unsafe-inline'` (style attributes cannot carry nonces); scripts are what
//! matters for XSS.

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The nonce of this request's `Content-Security-Policy`.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

pub async fn security_headers(mut req: Request, next: Next) -> Response {
    // 122 random bits from the OS RNG; hex is a valid CSP nonce alphabet.
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    let is_static = req.uri().path().starts_with("/pkg/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(&nonce)) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    // Pages and API answers are per-user; only the hashed-by-build static bundle may be cached.
    if !is_static && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
