//! `/login`: password, then the second factor (TOTP code, passkey or recovery code), or the
//! enrolment of a first factor (TOTP or passkey) when the account has none; or passwordless
//! with a passkey. Recovery codes made with a first factor are shown once before going on.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;

use super::components::go_to;
use super::{ids, webauthn};
use crate::api::auth::{
    passkey_begin, passkey_enrol_begin, passkey_enrol_finish, passkey_finish, passwordless_begin, passwordless_finish,
    BeginTotpEnrolment, ConfirmTotpEnrolment, Login, RecoveryLogin, VerifyTotp,
};
use crate::api::dto::LoginStep;
use crate::api::error::AppError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Password,
    SecondFactor { totp: bool, passkey: bool },
    Enrol,
    /// Signed in; the first factor came with these recovery codes.
    RecoveryCodes(Vec<String>),
}

fn error_text(result: Option<Result<impl Sized, AppError>>) -> Option<String> {
    match result {
        Some(Err(e)) => Some(e.message),
        _ => None,
    }
}

/// Signed in: show fresh recovery codes first, if any, else go to the hosts.
fn signed_in(stage: RwSignal<Stage>, codes: Vec<String>) {
    if codes.is_empty() {
        go_to(ids::ROUTE_HOSTS);
    } else {
        stage.set(Stage::RecoveryCodes(codes));
    }
}

/// Runs one WebAuthn round trip (begin on the server, the browser's ceremony, finish on the
/// server) off the click handler, reporting failures in `error` and progress in `busy`.
fn passkey_flow<B, F, T>(busy: RwSignal<bool>, error: RwSignal<Option<String>>, create: bool, begin: B, finish: F, done: impl FnOnce(T) + 'static)
where
    B: std::future::Future<Output = Result<String, AppError>> + 'static,
    F: FnOnce(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, AppError>>>> + 'static,
    T: 'static,
{
    busy.set(true);
    error.set(None);
    spawn_local(async move {
        let outcome = async {
            let options = begin.await.map_err(|e| e.message)?;
            let credential = if create { webauthn::create(&options).await? } else { webauthn::get(&options).await? };
            finish(credential).await.map_err(|e| e.message)
        }
        .await;
        busy.set(false);
        match outcome {
            Ok(v) => done(v),
            Err(m) => error.set(Some(m)),
        }
    });
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let verify = ServerAction::<VerifyTotp>::new();
    let begin = ServerAction::<BeginTotpEnrolment>::new();
    let confirm = ServerAction::<ConfirmTotpEnrolment>::new();
    let recover = ServerAction::<RecoveryLogin>::new();
    let stage = RwSignal::new(Stage::Password);
    let show_recovery = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let passkey_error = RwSignal::new(None::<String>);

    Effect::new(move |_| {
        if let Some(Ok(step)) = login.value().get() {
            passkey_error.set(None);
            match step {
                LoginStep::SecondFactor { totp, passkey } => {
                    show_recovery.set(false);
                    stage.set(Stage::SecondFactor { totp, passkey });
                }
                LoginStep::Enrol => {
                    stage.set(Stage::Enrol);
                    begin.dispatch(BeginTotpEnrolment {});
                }
                LoginStep::Done => go_to(ids::ROUTE_HOSTS),
            }
        }
    });
    Effect::new(move |_| {
        if matches!(verify.value().get(), Some(Ok(()))) || matches!(recover.value().get(), Some(Ok(()))) {
            go_to(ids::ROUTE_HOSTS);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(codes)) = confirm.value().get() {
            signed_in(stage, codes);
        }
    });

    let passkey_error_box = move || {
        passkey_error.get().map(|m| view! { <div id=ids::LOGIN_ERROR class="alert alert-error">{m}</div> })
    };

    let passwordless = move |_| {
        passkey_flow(
            busy,
            passkey_error,
            false,
            passwordless_begin(),
            |cred| Box::pin(passwordless_finish(cred)),
            |()| go_to(ids::ROUTE_HOSTS),
        );
    };

    let password_form = move || {
        view! {
            <ActionForm action=login>
                <div id=ids::LOGIN_FORM class="form-stack">
                    <label class="field">
                        <span>"Username"</span>
                        <input id=ids::LOGIN_USERNAME type="text" name="username" autocomplete="username webauthn" required autofocus/>
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
            <div class="auth-divider"><span>"or"</span></div>
            {passkey_error_box}
            <button id=ids::PASSKEY_LOGIN type="button" class="btn btn-secondary btn-block" disabled=move || busy.get() on:click=passwordless>
                "Sign in with a passkey"
            </button>
        }
    };

    let use_passkey = move |_| {
        passkey_flow(busy, passkey_error, false, passkey_begin(), |cred| Box::pin(passkey_finish(cred)), |()| {
            go_to(ids::ROUTE_HOSTS)
        });
    };

    let recovery_form = move || {
        view! {
            <ActionForm action=recover>
                <div id=ids::RECOVERY_FORM class="form-stack">
                    <label class="field">
                        <span>"Recovery code"</span>
                        <input id=ids::RECOVERY_CODE type="text" name="code" autocomplete="off" placeholder="xxxx-xxxx-xxxx-xxxx" required/>
                    </label>
                    {move || error_text(recover.value().get()).map(|m| view! { <div id=ids::LOGIN_ERROR class="alert alert-error">{m}</div> })}
                    <button id=ids::RECOVERY_SUBMIT type="submit" class="btn btn-primary btn-block" disabled=move || recover.pending().get()>
                        "Use recovery code"
                    </button>
                </div>
            </ActionForm>
        }
    };

    let second_factor = move |totp: bool, passkey: bool| {
        view! {
            {passkey.then(|| view! {
                <p class="muted">"Confirm with your passkey or security key."</p>
                {passkey_error_box}
                <button id=ids::PASSKEY_SECOND_FACTOR type="button" class="btn btn-primary btn-block" disabled=move || busy.get() on:click=use_passkey>
                    "Use a passkey"
                </button>
            })}
            {(totp && passkey).then(|| view! { <div class="auth-divider"><span>"or"</span></div> })}
            {totp.then(|| view! {
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
            })}
            <p class="muted small">
                <a id=ids::RECOVERY_TOGGLE href="#" on:click=move |ev| { ev.prevent_default(); show_recovery.update(|v| *v = !*v); }>
                    "Lost your factor? Use a recovery code"
                </a>
            </p>
            {move || show_recovery.get().then(recovery_form)}
        }
    };

    let enrol_passkey = move |_| {
        passkey_flow(
            busy,
            passkey_error,
            true,
            passkey_enrol_begin(String::new()),
            |cred| Box::pin(passkey_enrol_finish(cred)),
            move |codes| signed_in(stage, codes),
        );
    };

    let enrol_form = move || {
        view! {
            <p class="muted">
                "Two-factor authentication is required. Register a passkey or security key, or scan the "
                "QR code with an authenticator app (or enter the secret by hand) and enter the code it shows."
            </p>
            {passkey_error_box}
            <button id=ids::PASSKEY_ENROL type="button" class="btn btn-secondary btn-block" disabled=move || busy.get() on:click=enrol_passkey>
                "Use a passkey"
            </button>
            <div class="auth-divider"><span>"or an authenticator app"</span></div>
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
                    Stage::SecondFactor { totp, passkey } => second_factor(totp, passkey).into_any(),
                    Stage::Enrol => enrol_form().into_any(),
                    Stage::RecoveryCodes(codes) => view! { <RecoveryCodes codes continue_to=ids::ROUTE_HOSTS/> }.into_any(),
                }}
            </div>
        </div>
    }
}

/// Freshly made recovery codes, shown once, with a button to go on.
#[component]
pub fn RecoveryCodes(codes: Vec<String>, #[prop(optional)] continue_to: Option<&'static str>) -> impl IntoView {
    view! {
        <div class="alert alert-ok">
            <p>
                <strong>"Save these recovery codes now."</strong>
                " Each one signs you in once if you lose your passkey or authenticator app. "
                "They are not shown again."
            </p>
            <ul id=ids::RECOVERY_CODES class="recovery-codes">
                {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
            </ul>
            {continue_to.map(|to| view! {
                <button id=ids::RECOVERY_CONTINUE type="button" class="btn btn-primary" on:click=move |_| go_to(to)>
                    "I have saved them, continue"
                </button>
            })}
        </div>
    }
}
