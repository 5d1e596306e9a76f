//! Leptos pages and components (server-rendered, then hydrated). No SQL, no crypto: data
//! comes only through the server functions in `crate::api`.
//!
//! # Layout
//! - `ids`: element ids and routes shared with the Playwright suite.
//! - `components`: page frame with navigation, badges, error box, pager.
//! - `format`: deterministic time and duration formatting.
//! - `login`, `setup`: sign-in (password, then TOTP, passkey or recovery code; enrolment of a
//!   first factor; passwordless with a passkey) and first-run setup.
//! - `webauthn`: `navigator.credentials` calls for passkeys (hydrated page only).
//! - `account`: the user's own passkeys, TOTP, recovery codes and password.
//! - `hosts`, `host_detail`: host table and one host's facts, updates and packages.
//! - `enroll`: enrollment tokens and the agent command.
//! - `users`, `groups` (Admin), `invite` (invitation acceptance), `account` (own factors,
//!   recovery codes, password).
//! - `jobs`: patch jobs (list, new-job form with preview, live job page); `hooks` (Admin):
//!   pre/post-commands.

pub mod account;
pub mod components;
pub mod enroll;
pub mod format;
pub mod groups;
pub mod hooks;
pub mod host_detail;
pub mod hosts;
pub mod ids;
pub mod invite;
pub mod jobs;
pub mod login;
pub mod setup;
pub mod users;
pub mod webauthn;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Redirect, Route, Router, Routes};
use leptos_router::path;

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, after hydration: the end-to-end tests wait for this
    // attribute before they click anything.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute(ids::HYDRATED_ATTR, "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/patch_manager.css"/>
        <Title text="Patch Manager"/>
        <Router>
            <Routes fallback=|| view! { <NotFound/> }>
                <Route path=path!("/") view=|| view! { <Redirect path=ids::ROUTE_HOSTS/> }/>
                <Route path=path!("/login") view=login::LoginPage/>
                <Route path=path!("/setup") view=setup::SetupPage/>
                <Route path=path!("/hosts") view=hosts::HostsPage/>
                <Route path=path!("/hosts/:id") view=host_detail::HostDetailPage/>
                <Route path=path!("/enroll") view=enroll::EnrollPage/>
                <Route path=path!("/users") view=users::UsersPage/>
                <Route path=path!("/groups") view=groups::GroupsPage/>
                <Route path=path!("/invite") view=invite::InvitePage/>
                <Route path=path!("/account") view=account::AccountPage/>
                // Declared before `/jobs/:id`: the first matching route wins.
                <Route path=path!("/jobs/new") view=jobs::new::NewJobPage/>
                <Route path=path!("/jobs/:id") view=jobs::detail::JobDetailPage/>
                <Route path=path!("/jobs") view=jobs::list::JobsPage/>
                <Route path=path!("/hooks") view=hooks::HooksPage/>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        res.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <div class="auth-page">
            <div class="auth-card">
                <h1>"Page not found"</h1>
                <p><a href="/hosts">"Go to the host list"</a></p>
            </div>
        </div>
    }
}
