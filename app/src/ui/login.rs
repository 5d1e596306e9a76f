//! `/login`: password, then a TOTP code, or TOTP enrolment when the account has no factor.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

use super::components::go_to;
use super::ids;
use crate::api::auth::{BeginTotpEnrolment, ConfirmTotpEnrolment, Login, VerifyTotp};
use crate::api::dto::LoginStep;
use crate::api::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Password,
    Totp,
    EnrolTotp,
}

fn error_text(result: Option<Result<impl Sized, AppError>>) -> Option<String> {
    match result {
        Some(Err(e)) => Some(e.message),
        _ => None,
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let verify = ServerAction::<VerifyTotp>::new();
    let begin = ServerAction::<BeginTotpEnrolment>::new();
    let confirm = ServerAction::<ConfirmTotpEnrolment>::new();
    let stage = RwSignal::new(Stage::Password);

    Effect::new(move |_| {
        if let Some(Ok(step)) = login.value().get() {
            match step {
                LoginStep::Totp => stage.set(Stage::Totp),
                LoginStep::EnrollTotp => {
                    stage.set(Stage::EnrolTotp);
                    begin.dispatch(BeginTotpEnrolment {});
                }
                LoginStep::Done => go_to(ids::ROUTE_HOSTS),
            }
        }
    });
    Effect::new(move |_| {
        if matches!(verify.value().get(), Some(Ok(()))) || matches!(confirm.value().get(), Some(Ok(()))) {
            go_to(ids::ROUTE_HOSTS);
        }
    });

    let password_form = move || {
        view! {
            <ActionForm action=login>
                <div id=ids::LOGIN_FORM class="form-stack">
                    <label class="field">
                        <span>"Username"</span>
                        <input id=ids::LOGIN_USERNAME type="text" name="username" autocomplete="username" required autofocus/>
                    </label>
                    <label class="field">
                        <span>"Password"</span>
                        <input id=ids::LOGIN_PASSWORD type="password" name="password" autocomplete="current-password" required/>
                    </label>
                    {move || error_text(login.value().get()).map(|m| view! { <div id=ids::LOGIN_ERROR class="alert alert-error">{m}</div> })}
                    <button id=ids::LOGIN_SUBMIT type="submit" class="btn btn-primary btn-block" disabled=move || login.pending().get()>
                        "Sign in"
                    </button>
                </div>
            </ActionForm>
        }
    };

    let totp_form = move || {
        view! {
            <p class="muted">"Enter the 6-digit code from your authenticator app."</p>
            <ActionForm action=verify>
                <div id=ids::TOTP_FORM class="form-stack">
                    <label class="field">
                        <span>"Authentication code"</span>
                        <input id=ids::TOTP_CODE type="text" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" required autofocus/>
                    </label>
                    {move || error_text(verify.value().get()).map(|m| view! { <div id=ids::LOGIN_ERROR class="alert alert-error">{m}</div> })}
                    <button id=ids::TOTP_SUBMIT type="submit" class="btn btn-primary btn-block" disabled=move || verify.pending().get()>
                        "Verify"
                    </button>
                </div>
            </ActionForm>
        }
    };

    let enrol_form = move || {
        view! {
            <p class="muted">
                "Two-factor authentication is required. Scan the QR code with an authenticator app "
                "(or enter the secret by hand), then enter the code it shows."
            </p>
            {move || match begin.value().get() {
                None => view! { <p class="muted">"Preparing…"</p> }.into_any(),
                Some(Err(e)) => view! { <div id=ids::LOGIN_ERROR class="alert alert-error">{e.message}</div> }.into_any(),
                Some(Ok(enrolment)) => view! {
                    <div class="totp-enrol">
                        <img id=ids::TOTP_QR class="qr" alt="TOTP QR code" src=format!("data:image/png;base64,{}", enrolment.qr_png_base64)/>
                        <div class="secret">
                            <span class="muted">"Secret"</span>
                            <code id=ids::TOTP_SECRET>{enrolment.secret}</code>
                        </div>
                    </div>
                }.into_any(),
            }}
            <ActionForm action=confirm>
                <div id=ids::TOTP_ENROL_FORM class="form-stack">
                    <label class="field">
                        <span>"Code from the app"</span>
                        <input id=ids::TOTP_ENROL_CODE type="text" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" required/>
                    </label>
                    {move || error_text(confirm.value().get()).map(|m| view! { <div id=ids::LOGIN_ERROR class="alert alert-error">{m}</div> })}
                    <button id=ids::TOTP_ENROL_SUBMIT type="submit" class="btn btn-primary btn-block" disabled=move || confirm.pending().get()>
                        "Confirm and sign in"
                    </button>
                </div>
            </ActionForm>
        }
    };

    view! {
        <Title text="Sign in · Patch Manager"/>
        <div class="auth-page">
            <div class="auth-card">
                <div class="auth-brand">
                    <span class="brand-mark">"PM"</span>
                    <span class="brand-name">"Patch Manager"</span>
                </div>
                <h1>"Sign in"</h1>
                {move || match stage.get() {
                    Stage::Password => password_form().into_any(),
                    Stage::Totp => totp_form().into_any(),
                    Stage::EnrolTotp => enrol_form().into_any(),
                }}
            </div>
        </div>
    }
}
