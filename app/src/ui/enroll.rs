//! `/enroll` (admins): create a one-time enrollment token, show it once with the exact
//! agent command and the CA fingerprint; list existing tokens.

use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos_meta::Title;

use super::components::{ErrorBox, Layout};
use super::format;
use super::ids;
use crate::api::dto::{EnrollTokenInfo, NewEnrollToken};
use crate::api::enroll::{list_enroll_tokens, CreateEnrollToken};
use crate::api::groups::list_groups;

/// Copies the text of element `id` to the clipboard (browser only; best effort).
fn copy_element_text(id: &str) {
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::js_sys::{Function, Reflect};

    let Some(text) = document().get_element_by_id(id).and_then(|el| el.text_content()) else {
        return;
    };
    let clipboard = Reflect::get(&window().navigator_js(), &"clipboard".into()).ok();
    let write = clipboard.as_ref().and_then(|c| Reflect::get(c, &"writeText".into()).ok());
    if let (Some(clipboard), Some(write)) = (clipboard, write.and_then(|w| w.dyn_into::<Function>().ok())) {
        let _ = write.call1(&clipboard, &text.into());
    }
}

/// `window.navigator` without needing web-sys's `Navigator` feature.
trait NavigatorJs {
    fn navigator_js(&self) -> leptos::wasm_bindgen::JsValue;
}

impl NavigatorJs for leptos::web_sys::Window {
    fn navigator_js(&self) -> leptos::wasm_bindgen::JsValue {
        leptos::web_sys::js_sys::Reflect::get(self, &"navigator".into()).unwrap_or_default()
    }
}

#[component]
pub fn EnrollPage() -> impl IntoView {
    let create = ServerAction::<CreateEnrollToken>::new();
    let tokens = Resource::new(move || create.version().get(), |_| list_enroll_tokens());
    let groups = Resource::new(|| (), |_| list_groups());

    view! {
        <Title text="Enroll a host · Patch Manager"/>
        <Layout title="Enroll a host">
            <section class="card">
                <h2>"New enrollment token"</h2>
                <p class="muted">
                    "A token enrolls exactly one host and is shown only once. Run the command on the host as root."
                </p>
                <ActionForm action=create>
                    <div id=ids::ENROLL_FORM class="form-row">
                        <label class="field grow">
                            <span>"Note"</span>
                            <input id=ids::ENROLL_NOTE type="text" name="note" maxlength="200" placeholder="e.g. web-01 in rack 3"/>
                        </label>
                        <label class="field">
                            <span>"Valid for"</span>
                            <select id=ids::ENROLL_VALIDITY name="validity_secs">
                                <option value="3600" selected>"1 hour"</option>
                                <option value="86400">"1 day"</option>
                                <option value="604800">"7 days"</option>
                            </select>
                        </label>
                        <label class="field">
                            <span>"Host group"</span>
                            <select id=ids::ENROLL_GROUP name="group_id">
                                <option value="" selected>"(none)"</option>
                                <Transition fallback=|| ()>
                                    {move || Suspend::new(async move {
                                        groups.await.unwrap_or_default().into_iter().map(|g| view! {
                                            <option value=g.id>{g.name}</option>
                                        }).collect_view()
                                    })}
                                </Transition>
                            </select>
                        </label>
                        <button id=ids::ENROLL_SUBMIT type="submit" class="btn btn-primary" disabled=move || create.pending().get()>
                            "Create token"
                        </button>
                    </div>
                </ActionForm>
                {move || match create.value().get() {
                    None => None,
                    Some(Err(e)) => Some(view! { <ErrorBox error=e/> }.into_any()),
                    Some(Ok(created)) => Some(view! { <NewToken created=created/> }.into_any()),
                }}
            </section>

            <section class="card">
                <h2>"Tokens"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading tokens…"</p> }>
                    {move || Suspend::new(async move {
                        match tokens.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(list) => view! { <TokenTable now=list.now tokens=list.tokens/> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </Layout>
    }
}

#[component]
fn NewToken(created: NewEnrollToken) -> impl IntoView {
    let copied = RwSignal::new(false);
    view! {
        <div class="new-token">
            <div class="alert alert-ok">"Token created. Copy it now: it will not be shown again."</div>
            <dl class="facts">
                <dt>"Token"</dt><dd><code id=ids::ENROLL_TOKEN>{created.token}</code></dd>
                <dt>"Expires"</dt><dd>{format::datetime(created.info.expires_at)}</dd>
                <dt>"CA fingerprint"</dt><dd><code id=ids::CA_FINGERPRINT class="break">{created.ca_fingerprint}</code></dd>
            </dl>
            <div class="command">
                <div class="command-head">
                    <span>"Agent command"</span>
                    <button
                        id=ids::AGENT_COMMAND_COPY
                        type="button"
                        class="btn btn-secondary btn-small"
                        on:click=move |_| { copy_element_text(ids::AGENT_COMMAND); copied.set(true); }
                    >
                        {move || if copied.get() { "Copied" } else { "Copy" }}
                    </button>
                </div>
                <pre id=ids::AGENT_COMMAND>{created.agent_command}</pre>
            </div>
        </div>
    }
}

fn token_state(t: &EnrollTokenInfo, now: i64) -> (&'static str, &'static str) {
    if t.used_at.is_some() {
        ("used", "badge badge-muted")
    } else if t.expires_at <= now {
        ("expired", "badge badge-offline")
    } else {
        ("active", "badge badge-online")
    }
}

#[component]
fn TokenTable(now: i64, tokens: Vec<EnrollTokenInfo>) -> impl IntoView {
    if tokens.is_empty() {
        return view! { <div class="empty">"No tokens yet."</div> }.into_any();
    }
    view! {
        <table id=ids::TOKENS_TABLE class="table table-compact">
            <thead>
                <tr><th>"State"</th><th>"Note"</th><th>"Group"</th><th>"Created by"</th><th>"Created"</th><th>"Expires"</th><th>"Used"</th><th>"Host"</th></tr>
            </thead>
            <tbody>
                {tokens.into_iter().map(|t| {
                    let (label, class) = token_state(&t, now);
                    view! {
                        <tr data-token-id=t.id.clone()>
                            <td><span class=class>{label}</span></td>
                            <td>{t.note}</td>
                            <td>{t.group_name.unwrap_or_default()}</td>
                            <td>{t.created_by}</td>
                            <td class="muted">{format::datetime(t.created_at)}</td>
                            <td class="muted">{format::datetime(t.expires_at)}</td>
                            <td class="muted">{format::datetime_opt(t.used_at)}</td>
                            <td>{t.used_by_host.map(|h| view! { <a href=format!("/hosts/{h}")>"view host"</a> })}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
