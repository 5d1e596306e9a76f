//! `/invite?token=...`: an invited user sets their password (then signs in and enrols a
//! second factor), and `/account`: the signed-in user changes their password.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::components::{go_to, Layout};
use super::ids;
use crate::api::auth::{AcceptInvitation, ChangePassword};

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

#[component]
pub fn AccountPage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let current = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let new2 = RwSignal::new(String::new());
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        change.dispatch(ChangePassword { current: current.get_untracked(), new: new.get_untracked(), new2: new2.get_untracked() });
    };
    Effect::new(move |_| {
        // Every session ended with the change, this one too: sign in again.
        if matches!(change.value().get(), Some(Ok(()))) {
            go_to(ids::ROUTE_LOGIN);
        }
    });
    view! {
        <Title text="Account · Patch Manager"/>
        <Layout title="Account">
            <section class="card">
                <h2>"Change password"</h2>
                <p class="muted">"Changing your password signs you out everywhere, including here."</p>
                <form id=ids::PASSWORD_FORM class="form-stack narrow" on:submit=on_submit>
                    <label class="field">
                        <span>"Current password"</span>
                        <input id=ids::PASSWORD_CURRENT type="password" autocomplete="current-password" required bind:value=current/>
                    </label>
                    <label class="field">
                        <span>"New password (at least 12 characters)"</span>
                        <input id=ids::PASSWORD_NEW type="password" autocomplete="new-password" minlength="12" required bind:value=new/>
                    </label>
                    <label class="field">
                        <span>"Repeat new password"</span>
                        <input id=ids::PASSWORD_NEW2 type="password" autocomplete="new-password" minlength="12" required bind:value=new2/>
                    </label>
                    {move || change.value().get().and_then(Result::err).map(|e| view! {
                        <div id=ids::PASSWORD_ERROR class="alert alert-error">{e.message}</div>
                    })}
                    <div>
                        <button id=ids::PASSWORD_SUBMIT type="submit" class="btn btn-primary" disabled=move || change.pending().get()>
                            "Change password"
                        </button>
                    </div>
                </form>
            </section>
        </Layout>
    }
}
