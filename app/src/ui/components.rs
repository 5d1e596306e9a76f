//! Shared building blocks: page layout with navigation, badges, error box, pager.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_location;

use super::ids;
use crate::api::auth::{current_user, Logout};
use crate::api::dto::Role;
use crate::api::error::AppError;

/// Full page load (used after login/logout so every resource starts from the new cookies).
pub fn go_to(path: &str) {
    // Only ever called from event handlers and effects, which run in the browser.
    let _ = window().location().set_href(path);
}

/// Authenticated page frame: sidebar navigation, top bar with the user and logout.
#[component]
pub fn Layout(#[prop(into)] title: String, children: Children) -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    let logout_action = ServerAction::<Logout>::new();
    Effect::new(move |_| {
        if logout_action.value().get().is_some() {
            go_to(ids::ROUTE_LOGIN);
        }
    });
    let location = use_location();
    let nav_class = move |prefix: &'static str| {
        if location.pathname.get().starts_with(prefix) { "nav-link active" } else { "nav-link" }
    };
    view! {
        <div class="app">
            <aside class="sidebar">
                <a class="brand" href="/hosts">
                    <span class="brand-mark">"PM"</span>
                    <span class="brand-name">"Patch Manager"</span>
                </a>
                <nav class="nav">
                    <A href="/hosts" attr:class=move || nav_class("/hosts")>"Hosts"</A>
                    <A href="/jobs" attr:class=move || nav_class("/jobs")>"Patch jobs"</A>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let is_admin = matches!(me.await, Ok(Some(m)) if m.role == Role::Admin);
                            is_admin.then(|| view! {
                                <A href="/enroll" attr:class=move || nav_class("/enroll")>"Enroll a host"</A>
                                <A href="/groups" attr:class=move || nav_class("/groups")>"Host groups"</A>
                                <A href="/users" attr:class=move || nav_class("/users")>"Users"</A>
                                <A href="/hooks" attr:class=move || nav_class("/hooks")>"Hooks"</A>
                            })
                        })}
                    </Transition>
                </nav>
            </aside>
            <div class="main">
                <header class="topbar">
                    <h1 class="page-title">{title}</h1>
                    <div class="topbar-user">
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                match me.await {
                                    Ok(Some(m)) => {
                                        let role = match m.role { Role::Admin => "admin", Role::Operator => "operator" };
                                        view! {
                                            <a id=ids::NAV_USER class="user" href="/account">{m.username}</a>
                                            <span class="badge badge-muted">{role}</span>
                                        }.into_any()
                                    }
                                    _ => ().into_any(),
                                }
                            })}
                        </Transition>
                        <button
                            id=ids::LOGOUT_BUTTON
                            class="btn btn-secondary btn-small"
                            on:click=move |_| { logout_action.dispatch(Logout {}); }
                        >
                            "Log out"
                        </button>
                    </div>
                </header>
                <main class="content">{children()}</main>
            </div>
        </div>
    }
}

/// An error from a server function. Without a session, the browser is sent to the login page.
#[component]
pub fn ErrorBox(error: AppError) -> impl IntoView {
    if error.is_unauthenticated() {
        Effect::new(move |_| go_to(ids::ROUTE_LOGIN));
        view! {
            <div class="alert alert-error">
                "Your session has ended. " <a href="/login">"Log in again"</a>
            </div>
        }
        .into_any()
    } else {
        view! { <div class="alert alert-error" data-code=error.code.clone()>{error.message.clone()}</div> }.into_any()
    }
}

#[component]
pub fn OnlineBadge(online: bool) -> impl IntoView {
    if online {
        view! { <span class="badge badge-online">"online"</span> }
    } else {
        view! { <span class="badge badge-offline">"offline"</span> }
    }
}

#[component]
pub fn CountBadge(count: i64, #[prop(into)] class: String) -> impl IntoView {
    let class = if count > 0 { format!("badge {class}") } else { "badge badge-muted".to_string() };
    view! { <span class=class>{count}</span> }
}

/// Previous/next links and "page x of y"; `href` builds the link for a page number.
#[component]
pub fn Pager(page: u32, per_page: u32, total: i64, href: impl Fn(u32) -> String + 'static) -> impl IntoView {
    let per_page = i64::from(per_page.max(1));
    let pages = ((total + per_page - 1) / per_page).max(1) as u32;
    let page = page.clamp(1, pages);
    let prev = (page > 1).then(|| href(page - 1));
    let next = (page < pages).then(|| href(page + 1));
    view! {
        <div class="pager">
            {match prev {
                Some(h) => view! { <A href=h attr:id=ids::PAGE_PREV attr:class="btn btn-secondary btn-small">"← Previous"</A> }.into_any(),
                None => view! { <span class="btn btn-secondary btn-small disabled">"← Previous"</span> }.into_any(),
            }}
            <span id=ids::PAGE_INFO class="pager-info">{format!("Page {page} of {pages} · {total} total")}</span>
            {match next {
                Some(h) => view! { <A href=h attr:id=ids::PAGE_NEXT attr:class="btn btn-secondary btn-small">"Next →"</A> }.into_any(),
                None => view! { <span class="btn btn-secondary btn-small disabled">"Next →"</span> }.into_any(),
            }}
        </div>
    }
}

/// Percent-encodes a query-string value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Checkboxes for choosing host groups; `chosen` holds the selected group ids.
#[component]
pub fn GroupPicker(
    #[prop(into)] id: String,
    groups: Vec<crate::api::dto::GroupInfo>,
    chosen: RwSignal<Vec<String>>,
) -> impl IntoView {
    if groups.is_empty() {
        return view! { <p class="muted">"No host groups yet: create them on the Groups page."</p> }.into_any();
    }
    view! {
        <fieldset id=id class="group-picker">
            <legend>"Host groups"</legend>
            {groups.into_iter().map(|g| {
                let gid = g.id.clone();
                let gid2 = g.id.clone();
                view! {
                    <label class="check">
                        <input
                            type="checkbox"
                            value=g.id.clone()
                            data-group-name=g.name.clone()
                            prop:checked=move || chosen.with(|c| c.contains(&gid))
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                chosen.update(|c| {
                                    c.retain(|x| x != &gid2);
                                    if on {
                                        c.push(gid2.clone());
                                    }
                                });
                            }
                        />
                        {g.name}
                    </label>
                }
            }).collect_view()}
        </fieldset>
    }
    .into_any()
}
