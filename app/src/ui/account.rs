//! `/account`: the signed-in user's own security: passkeys (add, rename, remove), TOTP
//! status (and enrolment for a user who started with a passkey), recovery codes, password.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;

use super::components::{go_to, ErrorBox, Layout};
use super::format::{datetime, datetime_opt};
use super::login::RecoveryCodes;
use super::{ids, webauthn};
use crate::api::account::{
    my_factors, add_passkey_begin, add_passkey_finish, AccountTotpBegin, AccountTotpConfirm, RegenerateRecoveryCodes,
    RemovePasskey, RenamePasskey,
};
use crate::api::auth::ChangePassword;
use crate::api::dto::{AccountFactors, PasskeyInfo};

#[component]
pub fn AccountPage() -> impl IntoView {
    let rename = ServerAction::<RenamePasskey>::new();
    let remove = ServerAction::<RemovePasskey>::new();
    let regenerate = ServerAction::<RegenerateRecoveryCodes>::new();
    let totp_confirm = ServerAction::<AccountTotpConfirm>::new();
    // Bumped after every change so the factor list is fetched again.
    let version = RwSignal::new(0u32);
    let factors = Resource::new(
        move || (version.get(), rename.version().get(), remove.version().get(), regenerate.version().get(), totp_confirm.version().get()),
        |_| my_factors(),
    );
    view! {
        <Title text="Account · Patch Manager"/>
        <Layout title="Account">
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match factors.await {
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        Ok(f) => view! { <Factors f version rename remove regenerate totp_confirm/> }.into_any(),
                    }
                })}
            </Transition>
            <PasswordSection/>
        </Layout>
    }
}

#[component]
fn Factors(
    f: AccountFactors,
    version: RwSignal<u32>,
    rename: ServerAction<RenamePasskey>,
    remove: ServerAction<RemovePasskey>,
    regenerate: ServerAction<RegenerateRecoveryCodes>,
    totp_confirm: ServerAction<AccountTotpConfirm>,
) -> impl IntoView {
    let AccountFactors { totp_enrolled, passkeys, recovery_codes_left, passkeys_available } = f;
    view! {
        <section class="card">
            <h2>"Passkeys and security keys"</h2>
            <p class="muted">"Use a passkey as your second factor after the password, or to sign in without one."</p>
            {move || remove.value().get().and_then(Result::err).map(|e| view! {
                <div id=ids::PASSKEY_ERROR class="alert alert-error" data-code=e.code.clone()>{e.message}</div>
            })}
            {move || rename.value().get().and_then(Result::err).map(|e| view! {
                <div id=ids::PASSKEY_ERROR class="alert alert-error" data-code=e.code.clone()>{e.message}</div>
            })}
            <table id=ids::PASSKEYS_TABLE class="table">
                <thead><tr><th>"Name"</th><th>"Added"</th><th>"Last used"</th><th></th></tr></thead>
                <tbody>
                    {passkeys.into_iter().map(|p| view! { <PasskeyRow p rename remove/> }).collect_view()}
                </tbody>
            </table>
            {if passkeys_available {
                view! { <AddPasskey version/> }.into_any()
            } else {
                view! { <p class="muted">"Passkeys need the server's public_url to name a host (not an IP address)."</p> }.into_any()
            }}
        </section>
        <section class="card">
            <h2>"Authenticator app (TOTP)"</h2>
            {if totp_enrolled {
                view! { <p id=ids::TOTP_STATUS data-enrolled="true">"Enrolled."</p> }.into_any()
            } else {
                view! {
                    <p id=ids::TOTP_STATUS data-enrolled="false">"Not enrolled."</p>
                    <AccountTotp confirm=totp_confirm/>
                }.into_any()
            }}
        </section>
        <section class="card">
            <h2>"Recovery codes"</h2>
            <p>
                <span id=ids::RECOVERY_LEFT>{recovery_codes_left}</span>
                " unused recovery codes. Each signs you in once instead of your second factor."
            </p>
            {move || match regenerate.value().get() {
                Some(Ok(codes)) => view! { <RecoveryCodes codes/> }.into_any(),
                Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
                None => ().into_any(),
            }}
            <button
                id=ids::RECOVERY_REGENERATE
                type="button"
                class="btn btn-secondary"
                disabled=move || regenerate.pending().get()
                on:click=move |_| { regenerate.dispatch(RegenerateRecoveryCodes {}); }
            >
                "Make new recovery codes"
            </button>
        </section>
    }
}

#[component]
fn PasskeyRow(p: PasskeyInfo, rename: ServerAction<RenamePasskey>, remove: ServerAction<RemovePasskey>) -> impl IntoView {
    let editing = RwSignal::new(false);
    let new_name = RwSignal::new(p.name.clone());
    let (id_rename, id_remove) = (p.id.clone(), p.id.clone());
    let last_used = datetime_opt(p.last_used_at);
    view! {
        <tr class="passkey-row" data-passkey-name=p.name.clone()>
            <td class="passkey-name">
                {move || if editing.get() {
                    view! { <input class="passkey-rename-input" type="text" maxlength="64" bind:value=new_name/> }.into_any()
                } else {
                    view! { <span>{new_name.get_untracked()}</span> }.into_any()
                }}
            </td>
            <td>{datetime(p.created_at)}</td>
            <td class="passkey-last-used">{last_used}</td>
            <td class="actions">
                {move || if editing.get() {
                    let id = id_rename.clone();
                    view! {
                        <button type="button" class="btn btn-primary btn-small passkey-rename-save" on:click=move |_| {
                            rename.dispatch(RenamePasskey { id: id.clone(), name: new_name.get_untracked() });
                            editing.set(false);
                        }>"Save"</button>
                    }.into_any()
                } else {
                    view! {
                        <button type="button" class="btn btn-secondary btn-small passkey-rename" on:click=move |_| editing.set(true)>"Rename"</button>
                    }.into_any()
                }}
                <button type="button" class="btn btn-danger btn-small passkey-remove" on:click=move |_| {
                    remove.dispatch(RemovePasskey { id: id_remove.clone() });
                }>"Remove"</button>
            </td>
        </tr>
    }
}

#[component]
fn AddPasskey(version: RwSignal<u32>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        error.set(None);
        let chosen = name.get_untracked();
        spawn_local(async move {
            let outcome = async {
                let options = add_passkey_begin(chosen).await.map_err(|e| e.message)?;
                let credential = webauthn::create(&options).await?;
                add_passkey_finish(credential).await.map_err(|e| e.message)
            }
            .await;
            busy.set(false);
            match outcome {
                Ok(_) => {
                    name.set(String::new());
                    version.update(|v| *v += 1);
                }
                Err(m) => error.set(Some(m)),
            }
        });
    };
    view! {
        <form id=ids::PASSKEY_FORM class="form-inline" on:submit=on_submit>
            <label class="field">
                <span>"Name"</span>
                <input id=ids::PASSKEY_NAME type="text" maxlength="64" placeholder="e.g. Laptop, YubiKey" required bind:value=name/>
            </label>
            <button id=ids::PASSKEY_ADD type="submit" class="btn btn-primary" disabled=move || busy.get()>"Add a passkey"</button>
        </form>
        {move || error.get().map(|m| view! { <div id=ids::PASSKEY_ERROR class="alert alert-error">{m}</div> })}
    }
}

#[component]
fn AccountTotp(confirm: ServerAction<AccountTotpConfirm>) -> impl IntoView {
    let begin = ServerAction::<AccountTotpBegin>::new();
    let code = RwSignal::new(String::new());
    view! {
        {move || match begin.value().get() {
            None => view! {
                <button id=ids::ACCOUNT_TOTP_BEGIN type="button" class="btn btn-secondary" on:click=move |_| { begin.dispatch(AccountTotpBegin {}); }>
                    "Set up an authenticator app"
                </button>
            }.into_any(),
            Some(Err(e)) => view! { <ErrorBox error=e/> }.into_any(),
            Some(Ok(enrolment)) => view! {
                <div class="totp-enrol">
                    <img id=ids::TOTP_QR class="qr" alt="TOTP QR code" src=format!("data:image/png;base64,{}", enrolment.qr_png_base64)/>
                    <div class="secret">
                        <span class="muted">"Secret"</span>
                        <code id=ids::TOTP_SECRET>{enrolment.secret}</code>
                    </div>
                </div>
                <form class="form-inline" on:submit=move |ev: leptos::ev::SubmitEvent| {
                    ev.prevent_default();
                    confirm.dispatch(AccountTotpConfirm { code: code.get_untracked() });
                }>
                    <input id=ids::TOTP_ENROL_CODE type="text" inputmode="numeric" maxlength="6" required bind:value=code/>
                    <button id=ids::TOTP_ENROL_SUBMIT type="submit" class="btn btn-primary">"Confirm"</button>
                </form>
            }.into_any(),
        }}
        {move || confirm.value().get().and_then(Result::err).map(|e| view! { <ErrorBox error=e/> })}
    }
}

#[component]
fn PasswordSection() -> impl IntoView {
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
    }
}
