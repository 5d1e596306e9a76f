//! `/setup?token=...`: creates the first admin with the one-time URL `serve` printed.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::components::go_to;
use super::ids;
use crate::api::auth::SetupAdmin;

#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let setup = ServerAction::<SetupAdmin>::new();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let password2 = RwSignal::new(String::new());
    let mismatch = RwSignal::new(false);

    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if password.get_untracked() != password2.get_untracked() {
            mismatch.set(true);
            return;
        }
        mismatch.set(false);
        setup.dispatch(SetupAdmin {
            token: token(),
            username: username.get_untracked(),
            password: password.get_untracked(),
        });
    };
    Effect::new(move |_| {
        if matches!(setup.value().get(), Some(Ok(()))) {
            go_to(ids::ROUTE_LOGIN);
        }
    });

    view! {
        <Title text="First-run setup · Patch Manager"/>
        <div class="auth-page">
            <div class="auth-card">
                <div class="auth-brand">
                    <span class="brand-mark">"PM"</span>
                    <span class="brand-name">"Patch Manager"</span>
                </div>
                <h1>"Create the first administrator"</h1>
                {move || token().is_empty().then(|| view! {
                    <div class="alert alert-error">
                        "This page needs the one-time setup link printed by " <code>"patch-manager serve"</code> "."
                    </div>
                })}
                <form id=ids::SETUP_FORM class="form-stack" on:submit=on_submit>
                    <label class="field">
                        <span>"Username"</span>
                        <input id=ids::SETUP_USERNAME type="text" autocomplete="username" required bind:value=username/>
                    </label>
                    <label class="field">
                        <span>"Password (at least 12 characters)"</span>
                        <input id=ids::SETUP_PASSWORD type="password" autocomplete="new-password" minlength="12" required bind:value=password/>
                    </label>
                    <label class="field">
                        <span>"Repeat password"</span>
                        <input id=ids::SETUP_PASSWORD2 type="password" autocomplete="new-password" minlength="12" required bind:value=password2/>
                    </label>
                    {move || mismatch.get().then(|| view! { <div id=ids::SETUP_ERROR class="alert alert-error">"The passwords do not match."</div> })}
                    {move || match setup.value().get() {
                        Some(Err(e)) => Some(view! { <div id=ids::SETUP_ERROR class="alert alert-error">{e.message}</div> }.into_any()),
                        Some(Ok(())) => Some(view! {
                            <div id=ids::SETUP_DONE class="alert alert-ok">
                                "Administrator created. " <a href="/login">"Continue to sign in"</a>
                            </div>
                        }.into_any()),
                        None => None,
                    }}
                    <button id=ids::SETUP_SUBMIT type="submit" class="btn btn-primary btn-block" disabled=move || setup.pending().get()>
                        "Create administrator"
                    </button>
                </form>
            </div>
        </div>
    }
}
