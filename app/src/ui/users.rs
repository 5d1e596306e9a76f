//! `/users` (Admin): invite people (one-time link), change role and host groups, disable,
//! reset MFA, delete. Every button goes to a server function that re-checks the caller.

use leptos::prelude::*;
use leptos_meta::Title;

use super::components::{ErrorBox, GroupPicker, Layout};
use super::format;
use super::ids;
use crate::api::dto::{Role, UserInfo};
use crate::api::groups::list_groups;
use crate::api::users::{list_users, DeleteUser, InviteUser, ResetUserMfa, SetUserDisabled, SetUserGroups, SetUserRole};

fn role_label(r: &Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Operator => "operator",
    }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let invite = ServerAction::<InviteUser>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_groups = ServerAction::<SetUserGroups>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let reset_mfa = ServerAction::<ResetUserMfa>::new();
    let delete = ServerAction::<DeleteUser>::new();
    let version = move || {
        (
            invite.version().get(),
            set_role.version().get(),
            set_groups.version().get(),
            set_disabled.version().get(),
            reset_mfa.version().get(),
            delete.version().get(),
        )
    };
    let users = Resource::new(version, |_| list_users());
    let groups = Resource::new(|| (), |_| list_groups());

    // The last failure of any row action, shown above the table.
    let row_error = Memo::new(move |_| {
        [
            set_role.value().get().and_then(Result::err),
            set_groups.value().get().and_then(Result::err),
            set_disabled.value().get().and_then(Result::err),
            reset_mfa.value().get().and_then(Result::err),
            delete.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    });

    let username = RwSignal::new(String::new());
    let role = RwSignal::new("operator".to_string());
    let chosen = RwSignal::new(Vec::<String>::new());
    let on_invite = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let role = if role.get_untracked() == "admin" { Role::Admin } else { Role::Operator };
        invite.dispatch(InviteUser { username: username.get_untracked(), role, group_ids: chosen.get_untracked() });
    };

    view! {
        <Title text="Users · Patch Manager"/>
        <Layout title="Users">
            <section class="card">
                <h2>"Invite a user"</h2>
                <p class="muted">
                    "The new user gets a one-time link (valid 72 hours) to set a password; at first sign-in they must enrol a second factor. Operators see only the hosts in their groups."
                </p>
                <form id=ids::INVITE_FORM class="form-stack" on:submit=on_invite>
                    <div class="form-row">
                        <label class="field grow">
                            <span>"Username"</span>
                            <input id=ids::INVITE_USERNAME type="text" required maxlength="64" bind:value=username/>
                        </label>
                        <label class="field">
                            <span>"Role"</span>
                            <select id=ids::INVITE_ROLE bind:value=role>
                                <option value="operator">"Operator"</option>
                                <option value="admin">"Admin"</option>
                            </select>
                        </label>
                    </div>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            match groups.await {
                                Ok(list) => view! { <GroupPicker id=ids::INVITE_GROUPS groups=list chosen=chosen/> }.into_any(),
                                Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            }
                        })}
                    </Transition>
                    <div>
                        <button id=ids::INVITE_SUBMIT type="submit" class="btn btn-primary" disabled=move || invite.pending().get()>
                            "Create invitation"
                        </button>
                    </div>
                </form>
                {move || match invite.value().get() {
                    None => None,
                    Some(Err(e)) => Some(view! { <ErrorBox error=e/> }.into_any()),
                    Some(Ok(created)) => Some(view! {
                        <div class="new-token">
                            <div class="alert alert-ok">
                                "Invitation for " <strong>{created.user.username}</strong>
                                " created. Send this link to them; it is shown only once and expires "
                                {format::datetime(created.expires_at)} "."
                            </div>
                            <pre id=ids::INVITE_LINK class="break">{created.link}</pre>
                        </div>
                    }.into_any()),
                }}
            </section>

            <section class="card">
                <h2>"Accounts"</h2>
                {move || row_error.get().map(|e| view! { <ErrorBox error=e/> })}
                <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
                    {move || Suspend::new(async move {
                        let all_groups = groups.await.unwrap_or_default();
                        match users.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(list) => view! {
                                <table id=ids::USERS_TABLE class="table table-compact">
                                    <thead>
                                        <tr><th>"User"</th><th>"Role"</th><th>"State"</th><th>"Second factor"</th><th>"Groups"</th><th>"Created"</th><th></th></tr>
                                    </thead>
                                    <tbody>
                                        {list.into_iter().map(|u| view! {
                                            <UserRow user=u all_groups=all_groups.clone() set_role set_groups set_disabled reset_mfa delete/>
                                        }).collect_view()}
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
fn UserRow(
    user: UserInfo,
    all_groups: Vec<crate::api::dto::GroupInfo>,
    set_role: ServerAction<SetUserRole>,
    set_groups: ServerAction<SetUserGroups>,
    set_disabled: ServerAction<SetUserDisabled>,
    reset_mfa: ServerAction<ResetUserMfa>,
    delete: ServerAction<DeleteUser>,
) -> impl IntoView {
    let id = user.id.clone();
    let state = if user.disabled {
        ("disabled", "badge badge-offline")
    } else if user.invited {
        ("invited", "badge badge-pending")
    } else {
        ("active", "badge badge-online")
    };
    let chosen = RwSignal::new(user.groups.iter().map(|g| g.id.clone()).collect::<Vec<_>>());
    let editing = RwSignal::new(false);
    let group_names = user.groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>().join(", ");
    let role_value = role_label(&user.role);
    let (id_role, id_dis, id_mfa, id_del, id_groups) = (id.clone(), id.clone(), id.clone(), id.clone(), id.clone());
    let disabled = user.disabled;
    let username = user.username.clone();
    view! {
        <tr id=format!("{}{}", ids::USER_ROW_PREFIX, user.username) data-user-id=id.clone()>
            <td><strong>{user.username.clone()}</strong></td>
            <td>
                <select
                    class="role-select"
                    prop:value=role_value
                    on:change=move |ev| {
                        let role = if event_target_value(&ev) == "admin" { Role::Admin } else { Role::Operator };
                        set_role.dispatch(SetUserRole { id: id_role.clone(), role });
                    }
                >
                    <option value="operator" selected=role_value == "operator">"Operator"</option>
                    <option value="admin" selected=role_value == "admin">"Admin"</option>
                </select>
            </td>
            <td><span class=state.1>{state.0}</span></td>
            <td>{match (user.totp_enrolled, user.passkeys) {
                (false, 0) => "none yet".to_string(),
                (true, 0) => "TOTP".to_string(),
                (false, n) => format!("{n} passkey(s)"),
                (true, n) => format!("TOTP, {n} passkey(s)"),
            }}</td>
            <td>
                {move || if editing.get() {
                    let id_groups = id_groups.clone();
                    view! {
                        <div class="form-stack">
                            <GroupPicker id="" groups=all_groups.clone() chosen=chosen/>
                            <button class="btn btn-primary btn-small save-groups" on:click=move |_| {
                                set_groups.dispatch(SetUserGroups { id: id_groups.clone(), group_ids: chosen.get_untracked() });
                                editing.set(false);
                            }>"Save groups"</button>
                        </div>
                    }.into_any()
                } else {
                    let names = if group_names.is_empty() { "—".to_string() } else { group_names.clone() };
                    view! {
                        <span class="group-names">{names}</span>" "
                        <button class="btn btn-secondary btn-small edit-groups" on:click=move |_| editing.set(true)>"Edit"</button>
                    }.into_any()
                }}
            </td>
            <td class="muted">{format::datetime(user.created_at)}</td>
            <td class="actions">
                <button class="btn btn-secondary btn-small toggle-disabled" on:click=move |_| {
                    set_disabled.dispatch(SetUserDisabled { id: id_dis.clone(), disabled: !disabled });
                }>{if disabled { "Enable" } else { "Disable" }}</button>
                <button class="btn btn-secondary btn-small reset-mfa" on:click=move |_| {
                    reset_mfa.dispatch(ResetUserMfa { id: id_mfa.clone() });
                }>"Reset MFA"</button>
                <button class="btn btn-secondary btn-small delete-user" on:click=move |_| {
                    let ok = window().confirm_with_message(&format!("Delete the account {username}?")).unwrap_or(false);
                    if ok {
                        delete.dispatch(DeleteUser { id: id_del.clone() });
                    }
                }>"Delete"</button>
            </td>
        </tr>
    }
}
