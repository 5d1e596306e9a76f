//! `/hosts`: the host table. Filters and the page number live in the query string, so a
//! filtered view is a shareable link; filtering and pagination happen on the server.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

use super::components::{encode, CountBadge, ErrorBox, Layout, OnlineBadge, Pager};
use super::format;
use super::ids;
use crate::api::dto::{HostSummary, StatusFilter};
use crate::api::hosts::list_hosts;

/// The host-list view state, as read from / written to the URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ListQuery {
    search: String,
    status: StatusFilter,
    security_only: bool,
    reboot_only: bool,
    page: u32,
}

impl ListQuery {
    fn from_params(p: &ParamsMap) -> ListQuery {
        let flag = |k: &str| matches!(p.get(k).as_deref(), Some("1" | "true" | "on"));
        ListQuery {
            search: p.get("search").unwrap_or_default(),
            status: match p.get("status").as_deref() {
                Some("online") => StatusFilter::Online,
                Some("offline") => StatusFilter::Offline,
                _ => StatusFilter::All,
            },
            security_only: flag("security"),
            reboot_only: flag("reboot"),
            page: p.get("page").and_then(|v| v.parse().ok()).filter(|&n| n >= 1).unwrap_or(1),
        }
    }

    fn href(&self) -> String {
        let mut parts = Vec::new();
        if !self.search.is_empty() {
            parts.push(format!("search={}", encode(&self.search)));
        }
        match self.status {
            StatusFilter::All => {}
            StatusFilter::Online => parts.push("status=online".into()),
            StatusFilter::Offline => parts.push("status=offline".into()),
        }
        if self.security_only {
            parts.push("security=1".into());
        }
        if self.reboot_only {
            parts.push("reboot=1".into());
        }
        if self.page > 1 {
            parts.push(format!("page={}", self.page));
        }
        if parts.is_empty() { ids::ROUTE_HOSTS.to_string() } else { format!("{}?{}", ids::ROUTE_HOSTS, parts.join("&")) }
    }
}

fn status_value(s: StatusFilter) -> &'static str {
    match s {
        StatusFilter::All => "all",
        StatusFilter::Online => "online",
        StatusFilter::Offline => "offline",
    }
}

#[component]
pub fn HostsPage() -> impl IntoView {
    let query_map = use_query_map();
    let query = Memo::new(move |_| ListQuery::from_params(&query_map.read()));
    let hosts = Resource::new(
        move || query.get(),
        |q| list_hosts(q.search, q.status, q.security_only, q.reboot_only, q.page),
    );

    // Form fields; kept in step with the URL (back/forward navigation).
    let search = RwSignal::new(query.get_untracked().search);
    let status = RwSignal::new(status_value(query.get_untracked().status).to_string());
    let security_only = RwSignal::new(query.get_untracked().security_only);
    let reboot_only = RwSignal::new(query.get_untracked().reboot_only);
    Effect::new(move |_| {
        let q = query.get();
        search.set(q.search);
        status.set(status_value(q.status).to_string());
        security_only.set(q.security_only);
        reboot_only.set(q.reboot_only);
    });

    let navigate = use_navigate();
    let apply = move || {
        let q = ListQuery {
            search: search.get_untracked().trim().to_string(),
            status: ListQuery::from_params(&ParamsMap::from_iter([("status".to_string(), status.get_untracked())])).status,
            security_only: security_only.get_untracked(),
            reboot_only: reboot_only.get_untracked(),
            page: 1,
        };
        navigate(&q.href(), Default::default());
    };
    let apply_submit = apply.clone();
    let apply_status = apply.clone();
    let apply_security = apply.clone();
    let apply_reboot = apply;

    view! {
        <Title text="Hosts · Patch Manager"/>
        <Layout title="Hosts">
            <form class="toolbar" on:submit=move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); apply_submit(); }>
                <input
                    id=ids::HOSTS_SEARCH
                    class="search"
                    type="search"
                    placeholder="Search hostname, OS or kernel"
                    bind:value=search
                />
                <select id=ids::HOSTS_STATUS bind:value=status on:change=move |_| apply_status()>
                    <option value="all">"All statuses"</option>
                    <option value="online">"Online"</option>
                    <option value="offline">"Offline"</option>
                </select>
                <label class="check">
                    <input id=ids::HOSTS_SECURITY_ONLY type="checkbox" bind:checked=security_only on:change=move |_| apply_security()/>
                    "Security updates only"
                </label>
                <label class="check">
                    <input id=ids::HOSTS_REBOOT_ONLY type="checkbox" bind:checked=reboot_only on:change=move |_| apply_reboot()/>
                    "Reboot required only"
                </label>
                <button id=ids::HOSTS_APPLY type="submit" class="btn btn-primary">"Apply"</button>
            </form>
            <Transition fallback=|| view! { <p class="muted">"Loading hosts…"</p> }>
                {move || Suspend::new(async move {
                    match hosts.await {
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        Ok(page) => {
                            let q = query.get_untracked();
                            let total = page.total;
                            view! {
                                <div class="card">
                                    <p class="table-meta"><span id=ids::HOSTS_TOTAL>{total}</span>" hosts"</p>
                                    <HostTable hosts=page.items/>
                                    <Pager
                                        page=page.page
                                        per_page=page.per_page
                                        total=total
                                        href=move |n| ListQuery { page: n, ..q.clone() }.href()
                                    />
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </Layout>
    }
}

#[component]
fn HostTable(hosts: Vec<HostSummary>) -> impl IntoView {
    if hosts.is_empty() {
        return view! {
            <div class="empty">
                "No hosts match. Enroll one from " <a href="/enroll">"Enroll a host"</a> "."
            </div>
        }
        .into_any();
    }
    view! {
        <table id=ids::HOSTS_TABLE class="table">
            <thead>
                <tr>
                    <th>"Status"</th>
                    <th>"Hostname"</th>
                    <th>"OS"</th>
                    <th>"Kernel"</th>
                    <th class="num">"Pending"</th>
                    <th class="num">"Security"</th>
                    <th>"Reboot"</th>
                    <th>"Last seen"</th>
                </tr>
            </thead>
            <tbody>
                {hosts.into_iter().map(|h| {
                    let row_id = format!("{}{}", ids::HOST_ROW_PREFIX, h.hostname);
                    view! {
                        <tr id=row_id data-host-id=h.id.clone()>
                            <td class="col-status"><OnlineBadge online=h.online/></td>
                            <td><a class="host-link" href=format!("/hosts/{}", h.id)>{h.hostname}</a></td>
                            <td>{h.os_pretty_name}</td>
                            <td class="mono">{h.kernel}</td>
                            <td class="num col-pending"><CountBadge count=h.pending_updates class="badge-pending"/></td>
                            <td class="num col-security"><CountBadge count=h.security_updates class="badge-security"/></td>
                            <td class="col-reboot">
                                {if h.reboot_required {
                                    view! { <span class="badge badge-reboot">"reboot required"</span> }.into_any()
                                } else {
                                    view! { <span class="muted">"—"</span> }.into_any()
                                }}
                            </td>
                            <td class="muted">{format::datetime_opt(h.last_seen)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trips_through_the_url() {
        let q = ListQuery {
            search: "web 01&x".into(),
            status: StatusFilter::Offline,
            security_only: true,
            reboot_only: false,
            page: 3,
        };
        assert_eq!(q.href(), "/hosts?search=web%2001%26x&status=offline&security=1&page=3");
        let params = ParamsMap::from_iter([
            ("search".to_string(), "web 01&x".to_string()),
            ("status".to_string(), "offline".to_string()),
            ("security".to_string(), "1".to_string()),
            ("page".to_string(), "3".to_string()),
        ]);
        assert_eq!(ListQuery::from_params(&params), q);
        assert_eq!(ListQuery::default().href(), "/hosts");
    }
}
