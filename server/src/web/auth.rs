//! Session gate for pages and the JSON API.
//!
//! Order of checks: a valid `pm_access` JWT passes; otherwise a `pm_refresh` token is
//! rotated (`sessions::refresh`), the new cookies are set on the response and the request's
//! `Cookie` header is rewritten so the page or server function downstream sees the new access
//! token; otherwise pages get `303 /login` and `/api/v1/*` gets a 401 `ApiError`.
//! Server functions (`/api/<name>`) are never rejected here: each one checks auth itself
//! (login and setup functions must work without a session), but they do get the transparent
//! refresh.

use app::backend::db::now_unix;
use app::backend::sessions::{self, Refreshed, ACCESS_COOKIE, REFRESH_COOKIE};
use app::backend::state::AppState;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::errors::WebError;
use crate::listener::ConnInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathClass {
    /// Reachable without a session.
    Public,
    /// A Leptos server function: refreshed if possible, never rejected here.
    ServerFn,
    /// `/api/v1/*` JSON: 401 without a session.
    Api,
    /// An HTML page: 303 to /login without a session.
    Page,
}

pub fn classify(path: &str) -> PathClass {
    const PUBLIC: &[&str] = &["/login", "/setup", "/invite", "/favicon.ico", agent::proto::ENROLL_PATH, agent::proto::CA_PATH];
    if PUBLIC.contains(&path) || path.starts_with("/pkg/") {
        PathClass::Public
    } else if path.starts_with("/api/v1/") {
        PathClass::Api
    } else if path.starts_with("/api/") {
        PathClass::ServerFn
    } else {
        PathClass::Page
    }
}

pub async fn require_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let class = classify(req.uri().path());
    if class == PathClass::Public {
        return next.run(req).await;
    }
    let now = now_unix();
    if let Some(jwt) = sessions::read_cookie(req.headers(), ACCESS_COOKIE) {
        if sessions::verify_access(&state.keys, jwt, now).is_ok() {
            return next.run(req).await;
        }
    }
    let had_refresh = match sessions::read_cookie(req.headers(), REFRESH_COOKIE).map(str::to_owned) {
        Some(refresh) => {
            let ip = req.extensions().get::<ConnInfo>().map(ConnInfo::ip);
            match sessions::refresh(&state, &refresh, ip.as_deref(), now).await {
                Ok(Refreshed::Rotated(_principal, tokens)) => {
                    replace_session_cookies(req.headers_mut(), &tokens.access, Some(&tokens.refresh));
                    let mut res = next.run(req).await;
                    append_set_cookie(
                        res.headers_mut(),
                        &sessions::set_cookie(ACCESS_COOKIE, &tokens.access, tokens.access_max_age),
                    );
                    append_set_cookie(
                        res.headers_mut(),
                        &sessions::set_cookie(REFRESH_COOKIE, &tokens.refresh, tokens.refresh_max_age),
                    );
                    return res;
                }
                // A concurrent request rotated this token a moment ago: its response carries the
                // successor refresh cookie, so this one sets the access cookie only.
                Ok(Refreshed::Joined { access, access_max_age, .. }) => {
                    replace_session_cookies(req.headers_mut(), &access, None);
                    let mut res = next.run(req).await;
                    append_set_cookie(res.headers_mut(), &sessions::set_cookie(ACCESS_COOKIE, &access, access_max_age));
                    return res;
                }
                Err(e) => {
                    tracing::debug!(code = e.code(), "session refresh refused");
                    true
                }
            }
        }
        None => false,
    };
    let mut res = match class {
        PathClass::ServerFn | PathClass::Public => return next.run(req).await,
        PathClass::Api => WebError::NotLoggedIn.into_response(),
        PathClass::Page => Redirect::to("/login").into_response(),
    };
    if had_refresh {
        // A refused refresh token is dead (expired, rotated or revoked): stop sending it.
        append_set_cookie(res.headers_mut(), &sessions::clear_cookie(ACCESS_COOKIE));
        append_set_cookie(res.headers_mut(), &sessions::clear_cookie(REFRESH_COOKIE));
    }
    res
}

fn append_set_cookie(headers: &mut HeaderMap, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Rewrites the request's `Cookie` header(s) with the freshly rotated session tokens.
/// Rewrites the request's Cookie header so the page or server function sees the new access
/// token (and the new refresh token, when this request rotated it).
fn replace_session_cookies(headers: &mut HeaderMap, access: &str, refresh: Option<&str>) {
    let mut pairs: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            !p.is_empty() && name != ACCESS_COOKIE && (refresh.is_none() || name != REFRESH_COOKIE)
        })
        .map(str::to_owned)
        .collect();
    pairs.push(format!("{ACCESS_COOKIE}={access}"));
    if let Some(refresh) = refresh {
        pairs.push(format!("{REFRESH_COOKIE}={refresh}"));
    }
    headers.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&pairs.join("; ")) {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify("/login"), PathClass::Public);
        assert_eq!(classify("/setup"), PathClass::Public);
        assert_eq!(classify("/invite"), PathClass::Public);
        assert_eq!(classify("/pkg/patch_manager.wasm"), PathClass::Public);
        assert_eq!(classify("/api/v1/enroll"), PathClass::Public);
        assert_eq!(classify("/api/v1/ca.pem"), PathClass::Public);
        assert_eq!(classify("/api/v1/hosts"), PathClass::Api);
        assert_eq!(classify("/api/login123"), PathClass::ServerFn);
        assert_eq!(classify("/"), PathClass::Page);
        assert_eq!(classify("/hosts/abc"), PathClass::Page);
        assert_eq!(classify("/loginx"), PathClass::Page);
    }

    #[test]
    fn cookie_rewrite_replaces_only_session_cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; pm_access=old"));
        h.append(header::COOKIE, HeaderValue::from_static("pm_refresh=oldr; b=2"));
        let joined = h.clone();
        replace_session_cookies(&mut h, "new", Some("newr"));
        let v = h.get(header::COOKIE).unwrap().to_str().unwrap();
        assert_eq!(v, "a=1; b=2; pm_access=new; pm_refresh=newr");
        let mut h = joined;
        replace_session_cookies(&mut h, "new", None);
        let v = h.get(header::COOKIE).unwrap().to_str().unwrap();
        assert_eq!(v, "a=1; pm_refresh=oldr; b=2; pm_access=new");
    }
}
