//! `/hooks` (Admin): pre/post-commands that jobs can run before and after updating. A hook
//! is a program and its arguments (one per line, no shell) with a timeout; Operators only
//! choose hooks by name on a job.

use leptos::prelude::*;
use leptos_meta::Title;

use super::components::{ErrorBox, Layout};
use super::{format, ids};
use crate::api::hooks::{list_hooks, CreateHook, DeleteHook, UpdateHook};
use crate::api::job_dto::HookInfo;

/// One argument per non-empty line (arguments may contain spaces).
fn argv(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[component]
pub fn HooksPage() -> impl IntoView {
    let create = ServerAction::<CreateHook>::new();
    let update = ServerAction::<UpdateHook>::new();
    let delete = ServerAction::<DeleteHook>::new();
    let hooks = Resource::new(
        move || (create.version().get(), update.version().get(), delete.version().get()),
        |_| list_hooks(),
    );
    let name = RwSignal::new(String::new());
    let args = RwSignal::new(String::new());
    let timeout = RwSignal::new("300".to_string());
    let on_create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        create.dispatch(CreateHook {
            name: name.get_untracked(),
            argv: argv(&args.get_untracked()),
            timeout_secs: timeout.get_untracked().trim().parse().unwrap_or(0),
        });
    };
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            name.set(String::new());
            args.set(String::new());
        }
    });
    let error = Memo::new(move |_| {
        [
            create.value().get().and_then(Result::err),
            update.value().get().and_then(Result::err),
            delete.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    });

    view! {
        <Title text="Hooks · Patch Manager"/>
        <Layout title="Pre/post-commands">
            <section class="card">
                <h2>"New hook"</h2>
                <p class="muted">
                    "Run by the agent before or after updating, without a shell: the program (an absolute path) on the first line, one argument per line after it. Jobs copy the command when they are created."
                </p>
                <form id=ids::HOOK_FORM class="form-stack" on:submit=on_create>
                    <div class="form-row">
                        <label class="field grow">
                            <span>"Name"</span>
                            <input id=ids::HOOK_NAME type="text" required maxlength="64" placeholder="e.g. drain load balancer" bind:value=name/>
                        </label>
                        <label class="field">
                            <span>"Timeout (seconds)"</span>
                            <input id=ids::HOOK_TIMEOUT type="number" min="1" bind:value=timeout/>
                        </label>
                    </div>
                    <label class="field">
                        <span>"Program and arguments (one per line)"</span>
                        <textarea id=ids::HOOK_ARGV rows="4" class="mono" placeholder="/usr/local/sbin/lb-drain\n--wait\n30" bind:value=args></textarea>
                    </label>
                    <div>
                        <button id=ids::HOOK_SUBMIT type="submit" class="btn btn-primary" disabled=move || create.pending().get()>"Create hook"</button>
                    </div>
                </form>
                {move || error.get().map(|e| view! { <ErrorBox error=e/> })}
            </section>
            <section class="card">
                <h2>"Hooks"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading hooks…"</p> }>
                    {move || Suspend::new(async move {
                        match hooks.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(list) if list.is_empty() => view! { <div class="empty">"No hooks yet."</div> }.into_any(),
                            Ok(list) => view! {
                                <table id=ids::HOOKS_TABLE class="table table-compact">
                                    <thead><tr><th>"Name"</th><th>"Command"</th><th>"Timeout"</th><th>"Changed"</th><th></th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|h| view! { <HookRow hook=h update delete/> }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </Layout>
    }
}

#[component]
fn HookRow(hook: HookInfo, update: ServerAction<UpdateHook>, delete: ServerAction<DeleteHook>) -> impl IntoView {
    let editing = RwSignal::new(false);
    let name = RwSignal::new(hook.name.clone());
    let args = RwSignal::new(hook.argv.join("\n"));
    let timeout = RwSignal::new(hook.timeout_secs.to_string());
    let (id_u, id_d, label) = (hook.id.clone(), hook.id.clone(), hook.name.clone());
    view! {
        <tr data-hook-name=hook.name.clone()>
            <td>{hook.name.clone()}</td>
            <td class="mono">{hook.argv.join(" ")}</td>
            <td>{format!("{} s", hook.timeout_secs)}</td>
            <td class="muted">{format::datetime(hook.updated_at)}</td>
            <td class="actions">
                <button class="btn btn-secondary btn-small" on:click=move |_| editing.update(|e| *e = !*e)>"Edit"</button>
                <button class="btn btn-secondary btn-small delete-hook" on:click=move |_| {
                    let ok = window().confirm_with_message(&format!("Delete the hook {label}? Jobs already created keep it.")).unwrap_or(false);
                    if ok {
                        delete.dispatch(DeleteHook { id: id_d.clone() });
                    }
                }>"Delete"</button>
            </td>
        </tr>
        <Show when=move || editing.get()>
            <EditRow id=id_u.clone() name timeout args editing update/>
        </Show>
    }
    .into_any()
}

#[component]
fn EditRow(
    id: String,
    name: RwSignal<String>,
    timeout: RwSignal<String>,
    args: RwSignal<String>,
    editing: RwSignal<bool>,
    update: ServerAction<UpdateHook>,
) -> impl IntoView {
    let id_u = id;
    view! {
            <tr>
                <td colspan="5">
                    <form class="form-stack" on:submit={
                        let id_u = id_u.clone();
                        move |ev: leptos::ev::SubmitEvent| {
                            ev.prevent_default();
                            update.dispatch(UpdateHook {
                                id: id_u.clone(),
                                name: name.get_untracked(),
                                argv: argv(&args.get_untracked()),
                                timeout_secs: timeout.get_untracked().trim().parse().unwrap_or(0),
                            });
                            editing.set(false);
                        }
                    }>
                        <div class="form-row">
                            <input type="text" maxlength="64" bind:value=name/>
                            <input type="number" min="1" bind:value=timeout/>
                        </div>
                        <textarea rows="4" class="mono" bind:value=args></textarea>
                        <div><button type="submit" class="btn btn-primary btn-small">"Save"</button></div>
                    </form>
                </td>
            </tr>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_argument_per_line() {
        assert_eq!(argv("/usr/bin/systemctl\n  restart \n\nmy service\n"), ["/usr/bin/systemctl", "restart", "my service"]);
    }
}
