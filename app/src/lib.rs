//! Leptos UI, server functions and the privileged backend.
//!
//! # Layout
//! - `ui`: pages and components (SSR + hydration); `ui::shell` is the HTML document,
//!   `ui::App` the router.
//! - `api`: `#[server]` functions (thin adapters to the backend) and the view types they exchange.
//! - `backend` (feature `ssr` only): database, identity, PKI, hosts, audit. Never in the WASM.
pub mod api;
pub mod ui;
#[cfg(feature = "ssr")]
pub mod backend;

/// WASM entry point, called by the hydration script once the module has loaded.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(ui::App);
}
