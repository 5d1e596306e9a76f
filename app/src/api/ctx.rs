//! Request context for server functions (server only): the shared `AppState`, the request
//! head, the client address and cookie helpers. Everything here is plumbing; the rules live
//! in the backend.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use http::header::SET_COOKIE;
use http::request::Parts;
use http::HeaderValue;
use leptos::prelude::use_context;
use leptos_axum::ResponseOptions;

use super::error::AppError;
use crate::backend::access::{self, Caller};
use crate::backend::db::now_unix;
use crate::backend::sessions::{self, Principal};
use crate::backend::state::AppState;

pub use crate::backend::sessions::{ACCESS_COOKIE, PENDING_COOKIE, REFRESH_COOKIE, WEBAUTHN_COOKIE};
/// Lifetime of the "password OK, second factor pending" cookie (the token itself says 5 min).
pub const PENDING_MAX_AGE: i64 = 300;

pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server-function context");
        AppError::internal()
    })
}

fn parts() -> Result<Parts, AppError> {
    use_context::<Parts>().ok_or_else(|| {
        tracing::error!("request parts missing from the server-function context");
        AppError::internal()
    })
}

/// Puts the error's HTTP status on the response (server functions answer 401/404/422/...
/// instead of a blanket 500). Every server function returns through this.
pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        if let (Some(res), Ok(status)) = (use_context::<ResponseOptions>(), http::StatusCode::from_u16(e.status)) {
            res.set_status(status);
        }
    }
    result
}

pub fn now() -> i64 {
    now_unix()
}

/// Peer address, when the server's accept loop put `ConnectInfo<SocketAddr>` into the
/// request extensions (it is only used for the audit log).
pub fn client_ip() -> Option<String> {
    let parts = use_context::<Parts>()?;
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
}

/// Value of one request cookie.
pub fn cookie(name: &str) -> Option<String> {
    let parts = use_context::<Parts>()?;
    sessions::read_cookie(&parts.headers, name).map(str::to_owned)
}

fn append_set_cookie(value: String) -> Result<(), AppError> {
    let res = use_context::<ResponseOptions>().ok_or_else(|| {
        tracing::error!("ResponseOptions missing from the server-function context");
        AppError::internal()
    })?;
    let value = HeaderValue::from_str(&value).map_err(|_| AppError::internal())?;
    res.append_header(SET_COOKIE, value);
    Ok(())
}

pub fn set_cookie(name: &str, value: &str, max_age: i64) -> Result<(), AppError> {
    append_set_cookie(sessions::set_cookie(name, value, max_age))
}

pub fn clear_cookie(name: &str) -> Result<(), AppError> {
    append_set_cookie(sessions::clear_cookie(name))
}

/// The signed-in user of this request, or `unauthenticated`.
///
/// Verifies the `pm_access` cookie. When the access token had expired, the server's session
/// gate has already rotated the refresh token and rewritten this request's `Cookie` header, so
/// the fresh token is seen here. Refreshing is never done here: rotating the same refresh token
/// twice for one request would look like token theft and revoke the session family.
/// A `Principal` already placed in the request extensions by a server layer is used as is.
pub fn require_user() -> Result<Principal, AppError> {
    let parts = parts()?;
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok(principal.clone());
    }
    let state = state()?;
    let token = sessions::read_cookie(&parts.headers, ACCESS_COOKIE).ok_or_else(AppError::unauthenticated)?;
    sessions::verify_access(&state.keys, token, now()).map_err(|_| AppError::unauthenticated())
}

/// The verified caller: a valid access token whose session is still live, with the role as
/// it is in the database now (see `backend::access`). Every server function that reads or
/// changes anything calls this (or `require_admin`).
pub async fn caller() -> Result<Caller, AppError> {
    let principal = require_user()?;
    let state = state()?;
    let mut conn = state.db.pool.acquire().await.map_err(crate::backend::error::BackendError::from)?;
    access::resolve(&mut conn, principal, now()).await.map_err(|e| {
        if e.is_internal() {
            AppError::from(e)
        } else {
            AppError::unauthenticated()
        }
    })
}

/// `caller()`, refused with 403 unless the caller is an Admin.
pub async fn require_admin() -> Result<Caller, AppError> {
    let caller = caller().await?;
    caller.require_admin()?;
    Ok(caller)
}
