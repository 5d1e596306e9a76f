//! `/groups` (Admin): host groups, the unit of an Operator's scope.

use leptos::prelude::*;
use leptos_meta::Title;

use super::components::{ErrorBox, Layout};
use super::ids;
use crate::api::dto::GroupInfo;
use crate::api::groups::{list_groups, CreateGroup, DeleteGroup, RenameGroup};

#[component]
pub fn GroupsPage() -> impl IntoView {
    let create = ServerAction::<CreateGroup>::new();
    let rename = ServerAction::<RenameGroup>::new();
    let delete = ServerAction::<DeleteGroup>::new();
    let groups = Resource::new(
        move || (create.version().get(), rename.version().get(), delete.version().get()),
        |_| list_groups(),
    );
    let name = RwSignal::new(String::new());
    let on_create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        create.dispatch(CreateGroup { name: name.get_untracked() });
    };
    Effect::new(move |_| {
        if matches!(create.value().get(), Some(Ok(_))) {
            name.set(String::new());
        }
    });
    let error = Memo::new(move |_| {
        [
            create.value().get().and_then(|r| r.err()),
            rename.value().get().and_then(Result::err),
            delete.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    });

    view! {
        <Title text="Host groups · Patch Manager"/>
        <Layout title="Host groups">
            <section class="card">
                <h2>"New group"</h2>
                <form id=ids::GROUP_FORM class="form-row" on:submit=on_create>
                    <label class="field grow">
                        <span>"Name"</span>
                        <input id=ids::GROUP_NAME type="text" required maxlength="64" placeholder="e.g. web servers" bind:value=name/>
                    </label>
                    <button id=ids::GROUP_SUBMIT type="submit" class="btn btn-primary" disabled=move || create.pending().get()>
                        "Create group"
                    </button>
                </form>
                {move || error.get().map(|e| view! { <ErrorBox error=e/> })}
            </section>
            <section class="card">
                <h2>"Groups"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading groups…"</p> }>
                    {move || Suspend::new(async move {
                        match groups.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(list) if list.is_empty() => view! { <div class="empty">"No groups yet."</div> }.into_any(),
                            Ok(list) => view! {
                                <table id=ids::GROUPS_TABLE class="table table-compact">
                                    <thead><tr><th>"Name"</th><th>"Hosts"</th><th></th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|g| view! { <GroupRow group=g rename delete/> }).collect_view()}
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
fn GroupRow(group: GroupInfo, rename: ServerAction<RenameGroup>, delete: ServerAction<DeleteGroup>) -> impl IntoView {
    let new_name = RwSignal::new(group.name.clone());
    let (id_r, id_d) = (group.id.clone(), group.id.clone());
    let name = group.name.clone();
    view! {
        <tr data-group-id=group.id.clone() data-group-name=group.name.clone()>
            <td>
                <form class="form-row" on:submit=move |ev: leptos::ev::SubmitEvent| {
                    ev.prevent_default();
                    rename.dispatch(RenameGroup { id: id_r.clone(), name: new_name.get_untracked() });
                }>
                    <input class="group-rename" type="text" maxlength="64" bind:value=new_name/>
                    <button type="submit" class="btn btn-secondary btn-small">"Rename"</button>
                </form>
            </td>
            <td>{group.host_count}</td>
            <td>
                <button class="btn btn-secondary btn-small delete-group" on:click=move |_| {
                    let ok = window().confirm_with_message(&format!("Delete the group {name}? Its hosts stay enrolled.")).unwrap_or(false);
                    if ok {
                        delete.dispatch(DeleteGroup { id: id_d.clone() });
                    }
                }>"Delete"</button>
            </td>
        </tr>
    }
}
