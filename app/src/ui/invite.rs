//! `/invite?token=...`: an invited user sets their password (then signs in and enrols a
//! second factor).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::ids;
use crate::api::auth::AcceptInvitation;

#[component]
pub fn InvitePage() -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let accept = ServerAction::<AcceptInvitation>::new();
    let password = RwSignal::new(String::new());
    let password2 = RwSignal::new(String::new());
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        accept.dispatch(AcceptInvitation { token: token(), password: password.get_untracked(), password2: password2.get_untracked() });
    };
    view! {
        <Title text="Accept invitation · Patch Manager"/>
        <div class="auth-page">
            <div class="auth-card">
                <div class="auth-brand">
                    <span class="brand-mark">"PM"</span>
                    <span class="brand-name">"Patch Manager"</span>
                </div>
                <h1>"Choose your password"</h1>
                <form id=ids::INVITE_ACCEPT_FORM class="form-stack" on:submit=on_submit>
                    <label class="field">
                        <span>"Password (at least 12 characters)"</span>
                        <input id=ids::INVITE_PASSWORD type="password" autocomplete="new-password" minlength="12" required bind:value=password/>
                    </label>
                    <label class="field">
                        <span>"Repeat password"</span>
                        <input id=ids::INVITE_PASSWORD2 type="password" autocomplete="new-password" minlength="12" required bind:value=password2/>
                    </label>
                    {move || match accept.value().get() {
                        Some(Err(e)) => Some(view! { <div id=ids::INVITE_ERROR class="alert alert-error">{e.message}</div> }.into_any()),
                        Some(Ok(())) => Some(view! {
                            <div id=ids::INVITE_DONE class="alert alert-ok">
                                "Password set. " <a href="/login">"Sign in"</a> " and enrol your second factor."
                            </div>
                        }.into_any()),
                        None => None,
                    }}
                    <button id=ids::INVITE_ACCEPT_SUBMIT type="submit" class="btn btn-primary btn-block" disabled=move || accept.pending().get()>
                        "Set password"
                    </button>
                </form>
            </div>
        </div>
    }
}
