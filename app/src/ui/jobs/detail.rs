//! `/jobs/:id`: one job. Per-host states change live: the hydrated page re-reads the job
//! every two seconds (a `Transition` keeps the current table on screen meanwhile) until
//! the job is finished and no host is still working or rebooting. A host's full output and
//! its package changes open below the table.

use std::time::Duration;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

use super::{counts_text, host_state_class, job_name, mode_label, poll_tick, StatusBadge};
use crate::api::job_dto::{
    HostJobState, JobDetail, JobHostResult, JobHostRow, RebootChoice, ScheduleKind, ScopeKind,
};
use crate::api::jobs::{get_job, get_job_host_result, CancelJob, CancelJobHost, ResumeJob, RunJobForReal};
use crate::ui::components::{ErrorBox, Layout};
use crate::ui::{format, ids};

/// How often the page re-reads a job that is still moving.
pub const POLL_MILLIS: u64 = 2000;

/// Nothing will change any more without a person acting.
fn settled(d: &JobDetail) -> bool {
    let c = &d.summary.counts;
    d.summary.status.is_finished() && c.dispatched + c.received + c.running + c.rebooting == 0
}

fn scope_text(d: &JobDetail) -> String {
    match d.scope {
        ScopeKind::All => "all pending updates".into(),
        ScopeKind::Security => "security updates only".into(),
        ScopeKind::Packages => format!("packages: {}", d.packages.join(", ")),
    }
}

fn schedule_text(d: &JobDetail) -> String {
    match d.schedule {
        ScheduleKind::Now => "now".into(),
        ScheduleKind::At => format!("at {}", format::datetime(d.start_at)),
        ScheduleKind::Window => match d.window_next {
            Some((s, e)) => format!("window {} (next: {} to {})", d.window, format::datetime(s), format::datetime(e)),
            None => format!("window {}", d.window),
        },
    }
}

fn reboot_text(r: RebootChoice) -> &'static str {
    match r {
        RebootChoice::Never => "never",
        RebootChoice::IfRequired => "if required",
        RebootChoice::Always => "always",
    }
}

#[component]
pub fn JobDetailPage() -> impl IntoView {
    let params = use_params_map();
    let job_id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let cancel = ServerAction::<CancelJob>::new();
    let resume = ServerAction::<ResumeJob>::new();
    let cancel_host = ServerAction::<CancelJobHost>::new();
    let run_real = ServerAction::<RunJobForReal>::new();

    // Live progress: the browser bumps `tick` while the job still moves.
    let live = RwSignal::new(true);
    let tick = poll_tick(Duration::from_millis(POLL_MILLIS), live);
    let job = Resource::new(
        move || (job_id.get(), tick.get(), cancel.version().get(), resume.version().get(), cancel_host.version().get()),
        |(id, ..)| get_job(id),
    );
    Effect::new(move |_| {
        if let Some(Ok(d)) = job.get() {
            live.set(!settled(&d));
        }
    });
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = run_real.value().get() {
            navigate(&format!("{}/{}", ids::ROUTE_JOBS, id), Default::default());
        }
    });
    let selected = RwSignal::new(None::<String>);
    let action_error = Memo::new(move |_| {
        [
            cancel.value().get().and_then(Result::err),
            resume.value().get().and_then(Result::err),
            cancel_host.value().get().and_then(Result::err),
            run_real.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
    });

    view! {
        <Title text="Patch job · Patch Manager"/>
        <Layout title="Patch job">
            <p class="breadcrumb"><a href=ids::ROUTE_JOBS>"← All jobs"</a></p>
            {move || action_error.get().map(|e| view! { <ErrorBox error=e/> })}
            <Transition fallback=|| view! { <p class="muted">"Loading job…"</p> }>
                {move || Suspend::new(async move {
                    match job.await {
                        Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                        Ok(d) => view! {
                            <Header detail=d.clone() cancel resume run_real/>
                            <HostTable job_id=d.summary.id.clone() hosts=d.hosts.clone() can_cancel=d.can_cancel selected cancel_host/>
                        }.into_any(),
                    }
                })}
            </Transition>
            <HostOutput job_id=job_id selected job/>
        </Layout>
    }
}

#[component]
fn Header(
    detail: JobDetail,
    cancel: ServerAction<CancelJob>,
    resume: ServerAction<ResumeJob>,
    run_real: ServerAction<RunJobForReal>,
) -> impl IntoView {
    let d = detail;
    let s = &d.summary;
    let id = s.id.clone();
    let (id_c, id_r, id_f) = (id.clone(), id.clone(), id.clone());
    let hooks = |hs: &[crate::api::job_dto::HookRef]| {
        if hs.is_empty() { "none".to_string() } else { hs.iter().map(|h| h.name.clone()).collect::<Vec<_>>().join(", ") }
    };
    let rollout = format!(
        "canary {} host(s), then batches of {}{}, at most {} at once, halt above {}% failures",
        d.canary,
        d.batch_size,
        if d.batch_percent { "%" } else { " hosts" },
        d.max_concurrent,
        d.failure_threshold
    );
    view! {
        <section class="card">
            <div class="host-head">
                <h2>{job_name(s)}</h2>
                <span id=ids::JOB_STATUS><StatusBadge status=s.status/></span>
                <span class="badge badge-muted">{mode_label(s.mode)}</span>
            </div>
            {(!d.halt_reason.is_empty()).then(|| view! {
                <div id=ids::JOB_HALT_REASON class="alert alert-error">"Halted: " {d.halt_reason.clone()}</div>
            })}
            <p id=ids::JOB_COUNTS class="table-meta">
                {counts_text(&s.counts)} " · wave " {(s.current_wave + 1).min(s.wave_count)} " of " {s.wave_count}
            </p>
            <dl class="facts">
                <dt>"Updates"</dt><dd>{scope_text(&d)}</dd>
                <dt>"Never touch"</dt><dd class="mono">{if d.exclude.is_empty() { "—".to_string() } else { d.exclude.join(", ") }}</dd>
                <dt>"Schedule"</dt><dd>{schedule_text(&d)}</dd>
                <dt>"Rollout"</dt><dd>{rollout}</dd>
                <dt>"Reboot"</dt><dd>{reboot_text(d.reboot)}</dd>
                <dt>"Before"</dt><dd>{hooks(&d.pre_hooks)}</dd>
                <dt>"After"</dt><dd>{hooks(&d.post_hooks)}</dd>
                <dt>"Created"</dt><dd>{format!("{} by {}", format::datetime(s.created_at), s.created_by)}</dd>
                {d.source_job_id.clone().map(|src| view! {
                    <dt>"From dry run"</dt><dd><a href=format!("{}/{}", ids::ROUTE_JOBS, src)>"view the dry run"</a></dd>
                })}
            </dl>
            <div class="actions">
                {d.can_resume.then(|| view! {
                    <button id=ids::JOB_RESUME class="btn btn-primary" on:click=move |_| { resume.dispatch(ResumeJob { id: id_r.clone() }); }>
                        "Resume with the next wave"
                    </button>
                })}
                {d.can_run_for_real.then(|| view! {
                    <button id=ids::JOB_RUN_FOR_REAL class="btn btn-primary" on:click=move |_| { run_real.dispatch(RunJobForReal { id: id_f.clone() }); }>
                        "Run this for real"
                    </button>
                })}
                {d.can_cancel.then(|| view! {
                    <button id=ids::JOB_CANCEL class="btn btn-secondary" on:click=move |_| {
                        let ok = window().confirm_with_message("Cancel this job? Hosts that have not started will not start.").unwrap_or(false);
                        if ok {
                            cancel.dispatch(CancelJob { id: id_c.clone() });
                        }
                    }>"Cancel job"</button>
                })}
            </div>
        </section>
    }
    .into_any()
}

#[component]
fn HostTable(
    job_id: String,
    hosts: Vec<JobHostRow>,
    can_cancel: bool,
    selected: RwSignal<Option<String>>,
    cancel_host: ServerAction<CancelJobHost>,
) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Hosts"</h2>
            <table id=ids::JOB_HOSTS_TABLE class="table table-compact">
                <thead>
                    <tr><th>"Host"</th><th>"Wave"</th><th>"State"</th><th class="num">"Changes"</th><th>"Reason"</th><th>"Started"</th><th>"Finished"</th><th></th></tr>
                </thead>
                <tbody>
                    {hosts.into_iter().map(|h| {
                        let display = h.display_state();
                        let host_id = h.host_id.clone();
                        let (out_id, cancel_id, job) = (h.host_id.clone(), h.host_id.clone(), job_id.clone());
                        let cancellable = can_cancel && matches!(h.state, HostJobState::Queued | HostJobState::Dispatched);
                        let row = view! {
                            <tr id=format!("{}{}", ids::JOB_HOST_ROW_PREFIX, h.hostname) data-state=display data-host-id=host_id.clone()>
                                <td><a href=format!("{}/{}", ids::ROUTE_HOSTS, host_id)>{h.hostname.clone()}</a></td>
                                <td>{h.wave + 1}</td>
                                <td class="col-state"><span class=host_state_class(display)>{display}</span></td>
                                <td class="num">{h.change_count}</td>
                                <td class="muted">{h.reason.clone()}</td>
                                <td class="muted">{format::datetime_opt(h.started_at)}</td>
                                <td class="muted">{format::datetime_opt(h.finished_at)}</td>
                                <td class="actions">
                                    {h.state.is_terminal().then(|| view! {
                                        <button class="btn btn-secondary btn-small show-output" on:click=move |_| selected.set(Some(out_id.clone()))>
                                            "Output"
                                        </button>
                                    })}
                                    {cancellable.then(|| view! {
                                        <button class="btn btn-secondary btn-small cancel-host" on:click=move |_| {
                                            cancel_host.dispatch(CancelJobHost { job_id: job.clone(), host_id: cancel_id.clone() });
                                        }>"Cancel"</button>
                                    })}
                                </td>
                            </tr>
                        };
                        row.into_any()
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}

/// The selected host's changes and complete output (re-read when its state changes).
#[component]
fn HostOutput(
    job_id: Memo<String>,
    selected: RwSignal<Option<String>>,
    job: Resource<Result<JobDetail, crate::api::error::AppError>>,
) -> impl IntoView {
    let state_of_selected = Memo::new(move |_| {
        let sel = selected.get()?;
        let d = job.get()?.ok()?;
        d.hosts.iter().find(|h| h.host_id == sel).map(|h| h.state)
    });
    let result = Resource::new(
        move || (job_id.get(), selected.get(), state_of_selected.get()),
        |(job, host, _)| async move {
            match host {
                Some(h) => get_job_host_result(job, h).await.map(Some),
                None => Ok(None),
            }
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match result.await {
                    Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(r)) => view! { <ResultView result=r/> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn ResultView(result: JobHostResult) -> impl IntoView {
    let r = result;
    view! {
        <section class="card" data-host-id=r.host_id.clone()>
            <h2>{format!("{}: {}", r.hostname, r.state.label())}</h2>
            {(!r.reason.is_empty()).then(|| view! { <p>{r.reason.clone()}</p> })}
            {if r.changes.is_empty() {
                view! { <p id=ids::JOB_HOST_CHANGES class="muted">"No package changed."</p> }.into_any()
            } else {
                view! {
                    <table id=ids::JOB_HOST_CHANGES class="table table-compact">
                        <thead><tr><th>"Package"</th><th>"Arch"</th><th>"Before"</th><th>"After"</th></tr></thead>
                        <tbody>
                            {r.changes.into_iter().map(|c| view! {
                                <tr>
                                    <td class="mono">{c.name}</td><td>{c.arch}</td>
                                    <td class="mono">{c.before.unwrap_or_else(|| "(not installed)".into())}</td>
                                    <td class="mono">{c.after.unwrap_or_else(|| "(removed)".into())}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
            <h3>"Output"</h3>
            <pre id=ids::JOB_HOST_OUTPUT class="output">{r.output}</pre>
        </section>
    }
    .into_any()
}
