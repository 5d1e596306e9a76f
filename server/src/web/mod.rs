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
use axum::http::Method;
use axum::routing::{any, get, post, MethodRouter};
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

/// Who may call a REST route of this listener. Pages and server functions have registries
/// of their own (Leptos' route list, server_fn's); these routes are listed in [`rest_routes`],
/// the one table the router is built from and the permission-matrix test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestAccess {
    /// No session needed: the request carries its own proof (a one-time enrollment token)
    /// or asks for public data (the CA certificate). A session cookie grants nothing more.
    Open,
    /// A fully signed-in user (password and second factor); 401 otherwise.
    Session,
}

/// One REST route: its path (axum syntax), the only method it answers, who may call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRoute {
    pub path: &'static str,
    /// `None`: any method (the `/api/v1` catch-all, which answers 404 to signed-in users).
    pub method: Option<Method>,
    pub access: RestAccess,
}

/// Every REST route of the web listener with its handler. Add new routes here (and nowhere
/// else): the router is built from this table, the session gate applied by its `access`.
pub fn rest_routes() -> Vec<(RestRoute, MethodRouter<WebState>)> {
    let route = |path, method, access| RestRoute { path, method, access };
    vec![
        (
            route(agent::proto::ENROLL_PATH, Some(Method::POST), RestAccess::Open),
            post(enroll::enroll).layer(DefaultBodyLimit::max(enroll::ENROLL_BODY_LIMIT)),
        ),
        (route(agent::proto::CA_PATH, Some(Method::GET), RestAccess::Open), get(enroll::ca_pem)),
        (
            route("/api/v1/{*rest}", None, RestAccess::Session),
            any(|| async { WebError::Backend(app::backend::error::BackendError::NotFound) }),
        ),
    ]
}

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
    let mut gated = Router::<WebState>::new().leptos_routes_with_context(
        &web_state,
        routes,
        leptos_context(state.clone()),
        {
            let options = options.clone();
            move || app::ui::shell(options.clone())
        },
    );
    let mut public = Router::<WebState>::new();
    for (route, handler) in rest_routes() {
        match route.access {
            RestAccess::Open => public = public.route(route.path, handler),
            RestAccess::Session => gated = gated.route(route.path, handler),
        }
    }
    let gated = gated
        .layer(DefaultBodyLimit::max(SERVER_FN_BODY_LIMIT))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_session));

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
