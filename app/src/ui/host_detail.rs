//! `/hosts/:id`: facts, pending updates, patch-job history, installed packages (search +
//! pagination in the URL).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use super::components::{encode, ErrorBox, GroupPicker, Layout, OnlineBadge, Pager};
use super::format;
use super::ids;
use crate::api::auth::current_user;
use crate::api::dto::{GroupRef, HostDetail, Role, UpdateRow};
use crate::api::groups::list_groups;
use crate::api::hosts::{get_host, host_packages, host_updates, RevokeHost, SetHostGroups};
use crate::api::job_dto::HostJobRow;
use crate::api::jobs::host_jobs;
use super::jobs::{host_state_class, mode_label, StatusBadge};

fn packages_href(host_id: &str, search: &str, page: u32) -> String {
    let mut parts = Vec::new();
    if !search.is_empty() {
        parts.push(format!("q={}", encode(search)));
    }
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    let base = format!("{}/{}", ids::ROUTE_HOSTS, encode(host_id));
    if parts.is_empty() { base } else { format!("{base}?{}", parts.join("&")) }
}

#[component]
pub fn HostDetailPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let host_id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let pkg_search = Memo::new(move |_| query.read().get("q").unwrap_or_default());
    let pkg_page = Memo::new(move |_| query.read().get("page").and_then(|p| p.parse::<u32>().ok()).filter(|&n| n >= 1).unwrap_or(1));

    let host = Resource::new(move || host_id.get(), get_host);
    let updates = Resource::new(move || host_id.get(), host_updates);
    let history = Resource::new(move || host_id.get(), host_jobs);
    let packages = Resource::new(
        move || (host_id.get(), pkg_search.get(), pkg_page.get()),
        |(id, search, page)| host_packages(id, search, page),
    );

    let search_input = RwSignal::new(pkg_search.get_untracked());
    Effect::new(move |_| search_input.set(pkg_search.get()));
    let navigate = use_navigate();
    let on_search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        navigate(&packages_href(&host_id.get_untracked(), search_input.get_untracked().trim(), 1), Default::default());
    };

    view! {
        <Title text="Host · Patch Manager"/>
        <Layout title="Host">
            <p class="breadcrumb"><a href="/hosts">"← All hosts"</a></p>
            <Suspense fallback=|| view! { <p class="muted">"Loading host…"</p> }>
                {move || Suspend::new(async move {
                    match host.await {
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        Ok(h) => {
                            let id = h.summary.id.clone();
                            let groups = h.groups.clone();
                            let cert = (h.cert_serial.clone(), h.cert_not_after);
                            view! {
                                <Facts host=h/>
                                <HostGroups host_id=id.clone() current=groups/>
                                <HostCertificate host_id=id serial=cert.0 not_after=cert.1/>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>

            <section class="card">
                <h2>"Pending updates"</h2>
                <Suspense fallback=|| view! { <p class="muted">"Loading updates…"</p> }>
                    {move || Suspend::new(async move {
                        match updates.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(rows) => view! { <UpdatesTable rows=rows/> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>

            <section class="card">
                <div class="host-head">
                    <h2>"Patch jobs"</h2>
                    <a id=ids::HOST_NEW_JOB class="btn btn-primary btn-small" href=move || format!("{}?host={}", ids::ROUTE_JOB_NEW, encode(&host_id.get()))>
                        "Patch this host"
                    </a>
                </div>
                <Suspense fallback=|| view! { <p class="muted">"Loading jobs…"</p> }>
                    {move || Suspend::new(async move {
                        match history.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(rows) => view! { <JobHistory rows=rows/> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>

            <section class="card">
                <h2>"Installed packages"</h2>
                <form class="toolbar" on:submit=on_search>
                    <input id=ids::PACKAGES_SEARCH class="search" type="search" placeholder="Search packages" bind:value=search_input/>
                    <button type="submit" class="btn btn-primary">"Search"</button>
                </form>
                <Transition fallback=|| view! { <p class="muted">"Loading packages…"</p> }>
                    {move || Suspend::new(async move {
                        match packages.await {
                            Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                            Ok(page) => {
                                let id = host_id.get_untracked();
                                let search = pkg_search.get_untracked();
                                view! {
                                    <table id=ids::PACKAGES_TABLE class="table table-compact">
                                        <thead><tr><th>"Package"</th><th>"Version"</th><th>"Arch"</th></tr></thead>
                                        <tbody>
                                            {page.items.into_iter().map(|p| view! {
                                                <tr><td class="mono">{p.name}</td><td class="mono">{p.version}</td><td>{p.arch}</td></tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                    <Pager
                                        page=page.page
                                        per_page=page.per_page
                                        total=page.total
                                        href=move |n| packages_href(&id, &search, n)
                                    />
                                }.into_any()
                            }
                        }
                    })}
                </Transition>
            </section>
        </Layout>
    }
}

#[component]
fn Facts(host: HostDetail) -> impl IntoView {
    let s = host.summary;
    let os_id = format!("{} {}", host.os_id, host.os_version_id);
    view! {
        <section class="card">
            <div class="host-head">
                <h2 id=ids::HOST_HOSTNAME>{s.hostname}</h2>
                <span id=ids::HOST_STATUS><OnlineBadge online=s.online/></span>
                {s.reboot_required.then(|| view! { <span class="badge badge-reboot">"reboot required"</span> })}
            </div>
            <div class="stats">
                <div class="stat">
                    <span class="stat-value" id=ids::INSTALLED_COUNT>{host.installed_count}</span>
                    <span class="stat-label">"installed packages"</span>
                </div>
                <div class="stat">
                    <span class="stat-value" id=ids::PENDING_COUNT>{s.pending_updates}</span>
                    <span class="stat-label">"pending updates"</span>
                </div>
                <div class="stat">
                    <span class="stat-value stat-security" id=ids::SECURITY_COUNT>{s.security_updates}</span>
                    <span class="stat-label">"security updates"</span>
                </div>
            </div>
            <dl class="facts">
                <dt>"Operating system"</dt><dd>{s.os_pretty_name}</dd>
                <dt>"ID / VERSION_ID"</dt><dd class="mono">{os_id}</dd>
                <dt>"Kernel"</dt><dd class="mono">{s.kernel}</dd>
                <dt>"Architecture"</dt><dd>{s.arch}</dd>
                <dt>"Uptime"</dt><dd>{format::duration(host.uptime_seconds)}</dd>
                <dt>"Package manager"</dt><dd>{host.package_manager}</dd>
                <dt>"Agent version"</dt><dd>{host.agent_version}</dd>
                <dt>"Last seen"</dt><dd>{format::datetime_opt(s.last_seen)}</dd>
                <dt>"Enrolled"</dt><dd>{format::datetime(host.enrolled_at)}</dd>
                <dt>"Host id"</dt><dd class="mono">{s.id}</dd>
            </dl>
        </section>
    }
}

/// The host's client certificate, and revoking it (Admins, and Operators for their groups'
/// hosts): the agent is refused from its next request and needs a new enrollment token.
#[component]
fn HostCertificate(host_id: String, serial: String, not_after: i64) -> impl IntoView {
    let revoke = ServerAction::<RevokeHost>::new();
    let host_id = StoredValue::new(host_id);
    let confirming = RwSignal::new(false);
    let revoked = move || matches!(revoke.value().get(), Some(Ok(_)));
    let had_cert = !serial.is_empty();
    view! {
        <section class="card">
            <h2>"Certificate"</h2>
            <dl class="facts">
                <dt>"Serial"</dt><dd class="mono" id=ids::HOST_CERT_SERIAL>{serial}</dd>
                <dt>"Status"</dt>
                <dd id=ids::HOST_CERT_STATUS>
                    {move || if revoked() || !had_cert {
                        view! { <span class="badge badge-offline">"revoked: enroll the host again to reconnect"</span> }.into_any()
                    } else {
                        view! { <span>"valid until " {format::datetime(not_after)}</span> }.into_any()
                    }}
                </dd>
            </dl>
            {move || revoke.value().get().and_then(Result::err).map(|e| view! { <ErrorBox error=e/> })}
            <Show when=move || had_cert && !revoked()>
                <Show
                    when=move || confirming.get()
                    fallback=move || view! {
                        <button id=ids::HOST_REVOKE class="btn btn-danger btn-small" on:click=move |_| confirming.set(true)>
                            "Revoke certificate…"
                        </button>
                    }
                >
                    {
                        view! {
                            <p>"The agent on this host will be refused from its next request on. Revoke?"</p>
                            <button
                                id=ids::HOST_REVOKE_CONFIRM
                                class="btn btn-danger btn-small"
                                disabled=move || revoke.pending().get()
                                on:click=move |_| { revoke.dispatch(RevokeHost { id: host_id.get_value() }); }
                            >"Yes, revoke"</button>
                            " "
                            <button class="btn btn-secondary btn-small" on:click=move |_| confirming.set(false)>"Keep it"</button>
                        }
                    }
                </Show>
            </Show>
        </section>
    }
}

/// The host's groups; Admins can change them here.
#[component]
fn HostGroups(host_id: String, current: Vec<GroupRef>) -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    let all = Resource::new(|| (), |_| list_groups());
    let save = ServerAction::<SetHostGroups>::new();
    let chosen = RwSignal::new(current.iter().map(|g| g.id.clone()).collect::<Vec<_>>());
    let editing = RwSignal::new(false);
    let names = RwSignal::new(current.iter().map(|g| g.name.clone()).collect::<Vec<_>>());
    Effect::new(move |_| {
        if matches!(save.value().get(), Some(Ok(()))) {
            editing.set(false);
        }
    });
    view! {
        <section class="card">
            <h2>"Host groups"</h2>
            <p id=ids::HOST_GROUPS>
                {move || {
                    let n = names.get();
                    if n.is_empty() { "In no group (only Admins see this host).".to_string() } else { n.join(", ") }
                }}
            </p>
            {move || save.value().get().and_then(Result::err).map(|e| view! { <ErrorBox error=e/> })}
            <Transition fallback=|| ()>
                {move || {
                    let host_id = host_id.clone();
                    Suspend::new(async move {
                        let admin = matches!(me.await, Ok(Some(m)) if m.role == Role::Admin);
                        if !admin {
                            return ().into_any();
                        }
                        let groups = all.await.unwrap_or_default();
                        let lookup = groups.clone();
                        view! {
                            <Show
                                when=move || editing.get()
                                fallback=move || view! {
                                    <button id=ids::HOST_GROUPS_EDIT class="btn btn-secondary btn-small" on:click=move |_| editing.set(true)>
                                        "Change groups"
                                    </button>
                                }
                            >
                                <GroupPicker id="host-group-picker" groups=groups.clone() chosen=chosen/>
                                <button id=ids::HOST_GROUPS_SAVE class="btn btn-primary btn-small" on:click={
                                    let host_id = host_id.clone();
                                    let lookup = lookup.clone();
                                    move |_| {
                                        let ids_now = chosen.get_untracked();
                                        names.set(lookup.iter().filter(|g| ids_now.contains(&g.id)).map(|g| g.name.clone()).collect());
                                        save.dispatch(SetHostGroups { id: host_id.clone(), group_ids: ids_now });
                                    }
                                }>"Save"</button>
                            </Show>
                        }.into_any()
                    })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn UpdatesTable(rows: Vec<UpdateRow>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <div class="empty">"No pending updates."</div> }.into_any();
    }
    view! {
        <table id=ids::UPDATES_TABLE class="table table-compact">
            <thead>
                <tr><th>"Package"</th><th>"Installed"</th><th>"Candidate"</th><th>"Arch"</th><th>"Source"</th><th></th></tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|u| view! {
                    <tr class=if u.security { "row-security" } else { "" }>
                        <td class="mono">{u.name}</td>
                        <td class="mono">{u.current_version}</td>
                        <td class="mono">{u.candidate_version}</td>
                        <td>{u.arch}</td>
                        <td class="muted">{u.source}</td>
                        <td>{u.security.then(|| view! { <span class="badge badge-security">"security"</span> })}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn JobHistory(rows: Vec<HostJobRow>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <div class="empty">"No patch jobs for this host yet."</div> }.into_any();
    }
    view! {
        <table id=ids::HOST_JOBS class="table table-compact">
            <thead>
                <tr><th>"Job"</th><th>"Mode"</th><th>"Job status"</th><th>"This host"</th><th class="num">"Changes"</th><th>"Reason"</th><th>"Created"</th></tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|r| {
                    let state = if r.state.is_terminal() && r.reboot_state == "pending" { "rebooting" } else { r.state.label() };
                    let name = if r.title.is_empty() { format!("Job {}", r.job_id.chars().take(8).collect::<String>()) } else { r.title.clone() };
                    view! {
                        <tr data-job-id=r.job_id.clone()>
                            <td><a href=format!("{}/{}", ids::ROUTE_JOBS, r.job_id)>{name}</a></td>
                            <td>{mode_label(r.mode)}</td>
                            <td><StatusBadge status=r.status/></td>
                            <td><span class=host_state_class(state)>{state}</span></td>
                            <td class="num">{r.change_count}</td>
                            <td class="muted">{r.reason}</td>
                            <td class="muted">{format::datetime(r.created_at)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
