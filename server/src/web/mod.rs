//! The web listener's router: public enrollment endpoints, Leptos pages and server
//! functions behind the session gate, and the static front end.
//!
//! # Layout
//! - `errors`: the one error -> status map of this listener.
//! - `enroll`: `POST /api/v1/enroll`, `GET /api/v1/ca.pem`.
//! - `auth`: the session gate (access JWT, transparent refresh, redirect/401).
//! - `headers`: security headers and the CSP nonce.
//! - `csrf`: state-changing requests only from our own origin.

pub mod auth;
pub mod csrf;
pub mod enroll;
pub mod errors;
pub mod headers;

use std::path::Path;

use app::backend::state::AppState;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{any, get, post};
use axum::Router;
use leptos::prelude::{provide_context, use_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

use self::errors::WebError;
use self::headers::CspNonce;

/// JSON bodies of server functions are small forms.
pub const SERVER_FN_BODY_LIMIT: usize = 1024 * 1024;
/// Upper bound for producing a response head (handlers read their bodies within it). A
/// streamed page body is not cut off.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Router state: the backend plus what Leptos needs to render.
#[derive(Clone)]
pub struct WebState {
    pub app: AppState,
    pub leptos: LeptosOptions,
}

impl FromRef<WebState> for LeptosOptions {
    fn from_ref(s: &WebState) -> Self {
        s.leptos.clone()
    }
}

impl FromRef<WebState> for AppState {
    fn from_ref(s: &WebState) -> Self {
        s.app.clone()
    }
}

/// Built in code (no Cargo.toml metadata at run time): the bundle is `pkg/patch_manager*`.
pub fn leptos_options(site_dir: &Path) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("patch_manager")
        .site_root(site_dir.display().to_string())
        .site_pkg_dir("pkg")
        .build()
}

/// What every page render and server function gets: the backend state, and the CSP nonce
/// of this request so Leptos' inline scripts carry it.
fn leptos_context(state: AppState) -> impl Fn() + Clone + Send + Sync + 'static {
    move || {
        provide_context(state.clone());
        let nonce = use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<CspNonce>().cloned());
        if let Some(CspNonce(n)) = nonce {
            provide_context(leptos::nonce::Nonce::from_value(n));
        }
    }
}

pub fn router(state: AppState, site_dir: &Path) -> Router {
    let options = leptos_options(site_dir);
    let web_state = WebState { app: state.clone(), leptos: options.clone() };
    let routes = generate_route_list(app::ui::App);

    // Pages and server functions: session gate as a route layer, so it never runs for the
    // static fallback (the login page needs its CSS and WASM without a session).
    let gated = Router::<WebState>::new()
        .leptos_routes_with_context(&web_state, routes, leptos_context(state.clone()), {
            let options = options.clone();
            move || app::ui::shell(options.clone())
        })
        .route("/api/v1/{*rest}", any(|| async { WebError::Backend(app::backend::error::BackendError::NotFound) }))
        .layer(DefaultBodyLimit::max(SERVER_FN_BODY_LIMIT))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_session));

    let public = Router::<WebState>::new()
        .route(agent::proto::ENROLL_PATH, post(enroll::enroll).layer(DefaultBodyLimit::max(enroll::ENROLL_BODY_LIMIT)))
        .route(agent::proto::CA_PATH, get(enroll::ca_pem));

    let pkg = ServeDir::new(site_dir.join("pkg"));

    Router::new()
        .merge(public)
        .merge(gated)
        .nest_service("/pkg", tower::ServiceBuilder::new().layer(CompressionLayer::new().gzip(true)).service(pkg))
        .fallback(leptos_axum::file_and_error_handler_with_context::<WebState, _>(
            leptos_context(state),
            app::ui::shell,
        ))
        .layer(axum::middleware::from_fn(csrf::same_origin_only))
        .layer(axum::middleware::from_fn(crate::listener::scope_source_ip))
        .layer(axum::middleware::from_fn(request_timeout))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(web_state)
}

async fn request_timeout(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(res) => res,
        Err(_) => axum::response::IntoResponse::into_response(WebError::Timeout),
    }
}
