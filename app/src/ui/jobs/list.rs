//! `/jobs`: the fleet's patch jobs, newest first (an Operator sees the jobs touching their
//! groups, counted over their hosts only). While a job on the page is scheduled or running,
//! the list refreshes itself every few seconds.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::{counts_text, job_name, mode_label, poll_tick, StatusBadge};
use crate::api::job_dto::{JobStatus, JobSummary};
use crate::api::jobs::list_jobs;
use crate::ui::components::{ErrorBox, Layout, Pager};
use crate::ui::{format, ids};

/// How often the list refreshes while a job on it is scheduled or running.
pub const LIST_POLL_MILLIS: u64 = 3000;

#[component]
pub fn JobsPage() -> impl IntoView {
    let query = use_query_map();
    let page = Memo::new(move |_| query.read().get("page").and_then(|p| p.parse::<u32>().ok()).filter(|&n| n >= 1).unwrap_or(1));
    // Refreshed (without a reload) while any listed job still moves.
    let live = RwSignal::new(false);
    let tick = poll_tick(Duration::from_millis(LIST_POLL_MILLIS), live);
    let jobs = Resource::new(move || (page.get(), tick.get()), |(page, _)| list_jobs(page));
    Effect::new(move |_| {
        if let Some(Ok(p)) = jobs.get() {
            live.set(p.items.iter().any(|j| matches!(j.status, JobStatus::Scheduled | JobStatus::Running)));
        }
    });
    view! {
        <Title text="Patch jobs · Patch Manager"/>
        <Layout title="Patch jobs">
            <div class="toolbar">
                <a id=ids::NEW_JOB_LINK class="btn btn-primary" href=ids::ROUTE_JOB_NEW>"New patch job"</a>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading jobs…"</p> }>
                {move || Suspend::new(async move {
                    match jobs.await {
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        Ok(p) => view! {
                            <div class="card">
                                <JobTable jobs=p.items/>
                                <Pager page=p.page per_page=p.per_page total=p.total href=|n| format!("{}?page={n}", ids::ROUTE_JOBS)/>
                            </div>
                        }.into_any(),
                    }
                })}
            </Transition>
        </Layout>
    }
}

#[component]
fn JobTable(jobs: Vec<JobSummary>) -> impl IntoView {
    if jobs.is_empty() {
        return view! { <div class="empty">"No patch jobs yet."</div> }.into_any();
    }
    view! {
        <table id=ids::JOBS_TABLE class="table">
            <thead>
                <tr><th>"Job"</th><th>"Mode"</th><th>"Status"</th><th>"Hosts"</th><th>"Wave"</th><th>"Created by"</th><th>"Created"</th></tr>
            </thead>
            <tbody>
                {jobs.into_iter().map(|j| {
                    let wave = format!("{} of {}", (j.current_wave + 1).min(j.wave_count), j.wave_count);
                    view! {
                        <tr id=format!("{}{}", ids::JOB_ROW_PREFIX, j.id)>
                            <td><a class="host-link" href=format!("{}/{}", ids::ROUTE_JOBS, j.id)>{job_name(&j)}</a></td>
                            <td>{mode_label(j.mode)}</td>
                            <td><StatusBadge status=j.status/></td>
                            <td class="job-counts">{counts_text(&j.counts)}</td>
                            <td>{wave}</td>
                            <td>{j.created_by.clone()}</td>
                            <td class="muted">{format::datetime(j.created_at)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
