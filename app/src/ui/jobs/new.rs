//! `/jobs/new`: the new-job form. Targets (hosts and groups) come from the server, cut to
//! the caller's scope; "Preview" shows, per host, what would change from which version to
//! which (from the stored inventories); "Create job" validates everything again on the
//! server and opens the job's page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::dto::GroupRef;
use crate::api::job_dto::{
    HookInfo, JobMode, JobPreview, NewJob, RebootChoice, ScheduleKind, ScopeKind, TargetHost,
};
use crate::api::jobs::{job_targets, CreateJob, PreviewJob};
use crate::ui::components::{ErrorBox, Layout};
use crate::ui::{format, ids};

/// Package names typed into a text field: separated by spaces, commas or new lines.
fn names(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn number(text: &str) -> u32 {
    text.trim().parse().unwrap_or(0)
}

/// Every field of the form, as signals.
#[derive(Clone, Copy)]
struct Form {
    title: RwSignal<String>,
    hosts: RwSignal<Vec<String>>,
    groups: RwSignal<Vec<String>>,
    mode: RwSignal<String>,
    scope: RwSignal<String>,
    packages: RwSignal<String>,
    exclude: RwSignal<String>,
    schedule: RwSignal<String>,
    at: RwSignal<String>,
    window: RwSignal<String>,
    start_within: RwSignal<String>,
    canary: RwSignal<String>,
    batch: RwSignal<String>,
    batch_percent: RwSignal<bool>,
    max_concurrent: RwSignal<String>,
    threshold: RwSignal<String>,
    reboot: RwSignal<String>,
    pre: RwSignal<Vec<String>>,
    post: RwSignal<Vec<String>>,
}

impl Form {
    fn new(preselect: Option<String>) -> Form {
        Form {
            title: RwSignal::new(String::new()),
            hosts: RwSignal::new(preselect.into_iter().collect()),
            groups: RwSignal::new(Vec::new()),
            mode: RwSignal::new("apply".into()),
            scope: RwSignal::new("all".into()),
            packages: RwSignal::new(String::new()),
            exclude: RwSignal::new(String::new()),
            schedule: RwSignal::new("now".into()),
            at: RwSignal::new(String::new()),
            window: RwSignal::new("Sun 02:00-04:00 Europe/Berlin".into()),
            start_within: RwSignal::new("240".into()),
            canary: RwSignal::new("1".into()),
            batch: RwSignal::new("25".into()),
            batch_percent: RwSignal::new(true),
            max_concurrent: RwSignal::new("5".into()),
            threshold: RwSignal::new("0".into()),
            reboot: RwSignal::new("never".into()),
            pre: RwSignal::new(Vec::new()),
            post: RwSignal::new(Vec::new()),
        }
    }

    fn job(&self) -> NewJob {
        NewJob {
            title: self.title.get_untracked(),
            host_ids: self.hosts.get_untracked(),
            group_ids: self.groups.get_untracked(),
            mode: if self.mode.get_untracked() == "dry_run" { JobMode::DryRun } else { JobMode::Apply },
            scope: match self.scope.get_untracked().as_str() {
                "security" => ScopeKind::Security,
                "packages" => ScopeKind::Packages,
                _ => ScopeKind::All,
            },
            packages: names(&self.packages.get_untracked()),
            exclude: names(&self.exclude.get_untracked()),
            schedule: match self.schedule.get_untracked().as_str() {
                "at" => ScheduleKind::At,
                "window" => ScheduleKind::Window,
                _ => ScheduleKind::Now,
            },
            at: self.at.get_untracked(),
            window: self.window.get_untracked(),
            start_within_mins: number(&self.start_within.get_untracked()),
            canary: number(&self.canary.get_untracked()),
            batch_size: number(&self.batch.get_untracked()),
            batch_percent: self.batch_percent.get_untracked(),
            max_concurrent: number(&self.max_concurrent.get_untracked()),
            failure_threshold: number(&self.threshold.get_untracked()),
            reboot: match self.reboot.get_untracked().as_str() {
                "if_required" => RebootChoice::IfRequired,
                "always" => RebootChoice::Always,
                _ => RebootChoice::Never,
            },
            pre_hook_ids: self.pre.get_untracked(),
            post_hook_ids: self.post.get_untracked(),
        }
    }
}

/// A checkbox that adds `value` to / removes it from `chosen`.
#[component]
fn Check(value: String, label: String, chosen: RwSignal<Vec<String>>, #[prop(optional)] data_name: String) -> impl IntoView {
    let (v1, v2) = (value.clone(), value.clone());
    view! {
        <label class="check">
            <input
                type="checkbox"
                value=value
                data-name=data_name
                prop:checked=move || chosen.with(|c| c.contains(&v1))
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    chosen.update(|c| {
                        c.retain(|x| x != &v2);
                        if on {
                            c.push(v2.clone());
                        }
                    });
                }
            />
            {label}
        </label>
    }
}

#[component]
pub fn NewJobPage() -> impl IntoView {
    let query = use_query_map();
    let form = Form::new(query.read_untracked().get("host").filter(|h| !h.is_empty()));
    let options = Resource::new(|| (), |_| job_targets());
    let preview = ServerAction::<PreviewJob>::new();
    let create = ServerAction::<CreateJob>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = create.value().get() {
            navigate(&format!("{}/{}", ids::ROUTE_JOBS, id), Default::default());
        }
    });
    // The answer of the last button pressed decides which error is shown.
    let last_was_create = RwSignal::new(false);
    let error = Memo::new(move |_| {
        let create_err = create.value().get().and_then(Result::err);
        let preview_err = preview.value().get().and_then(Result::err);
        if last_was_create.get() { create_err } else { preview_err }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        last_was_create.set(true);
        create.dispatch(CreateJob { job: form.job() });
    };

    view! {
        <Title text="New patch job · Patch Manager"/>
        <Layout title="New patch job">
            <p class="breadcrumb"><a href=ids::ROUTE_JOBS>"← All jobs"</a></p>
            <form id=ids::JOB_FORM class="form-stack" on:submit=on_submit>
                <section class="card form-stack">
                    <h2>"Targets"</h2>
                    <Transition fallback=|| view! { <p class="muted">"Loading hosts…"</p> }>
                        {move || Suspend::new(async move {
                            match options.await {
                                Err(e) => view! { <ErrorBox error=e/> }.into_any(),
                                Ok(o) => view! { <Targets hosts=o.hosts truncated=o.truncated groups=o.groups form/> }.into_any(),
                            }
                        })}
                    </Transition>
                </section>

                <section class="card form-stack">
                    <h2>"What"</h2>
                    <div class="form-row">
                        <label class="field grow">
                            <span>"Title (optional)"</span>
                            <input id=ids::JOB_TITLE type="text" maxlength="120" bind:value=form.title/>
                        </label>
                        <label class="field">
                            <span>"Mode"</span>
                            <select id=ids::JOB_MODE bind:value=form.mode>
                                <option value="apply">"Apply updates"</option>
                                <option value="dry_run">"Dry run (report only)"</option>
                            </select>
                        </label>
                        <label class="field">
                            <span>"Updates"</span>
                            <select id=ids::JOB_SCOPE bind:value=form.scope>
                                <option value="all">"All pending updates"</option>
                                <option value="security">"Security updates only"</option>
                                <option value="packages">"Named packages"</option>
                            </select>
                        </label>
                    </div>
                    <div class="form-row">
                        <label class="field grow">
                            <span>"Packages (for named packages; separated by spaces)"</span>
                            <input id=ids::JOB_PACKAGES type="text" placeholder="openssl libssl3" bind:value=form.packages/>
                        </label>
                        <label class="field grow">
                            <span>"Never touch (exclusions)"</span>
                            <input id=ids::JOB_EXCLUDE type="text" placeholder="postgresql-15" bind:value=form.exclude/>
                        </label>
                    </div>
                </section>

                <section class="card form-stack">
                    <h2>"When and how fast"</h2>
                    <div class="form-row">
                        <label class="field">
                            <span>"Start"</span>
                            <select id=ids::JOB_SCHEDULE bind:value=form.schedule>
                                <option value="now">"Now"</option>
                                <option value="at">"At a time"</option>
                                <option value="window">"In a maintenance window"</option>
                            </select>
                        </label>
                        <label class="field grow">
                            <span>"Time (YYYY-MM-DD HH:MM, optional zone)"</span>
                            <input id=ids::JOB_AT type="text" placeholder="2030-01-31 02:00 Europe/Berlin" bind:value=form.at/>
                        </label>
                        <label class="field grow">
                            <span>"Window (days, HH:MM-HH:MM, zone)"</span>
                            <input id=ids::JOB_WINDOW type="text" bind:value=form.window/>
                        </label>
                        <label class="field">
                            <span>"Hosts must start within (min)"</span>
                            <input id=ids::JOB_START_WITHIN type="number" min="1" bind:value=form.start_within/>
                        </label>
                    </div>
                    <div class="form-row">
                        <label class="field">
                            <span>"Canary hosts"</span>
                            <input id=ids::JOB_CANARY type="number" min="0" bind:value=form.canary/>
                        </label>
                        <label class="field">
                            <span>"Then batches of"</span>
                            <input id=ids::JOB_BATCH type="number" min="1" bind:value=form.batch/>
                        </label>
                        <label class="check">
                            <input id=ids::JOB_BATCH_PERCENT type="checkbox" bind:checked=form.batch_percent/>
                            "% of the hosts"
                        </label>
                        <label class="field">
                            <span>"At most at once"</span>
                            <input id=ids::JOB_MAX_CONCURRENT type="number" min="1" bind:value=form.max_concurrent/>
                        </label>
                        <label class="field">
                            <span>"Halt when failures in a wave exceed (%)"</span>
                            <input id=ids::JOB_THRESHOLD type="number" min="0" max="100" bind:value=form.threshold/>
                        </label>
                        <label class="field">
                            <span>"Reboot"</span>
                            <select id=ids::JOB_REBOOT bind:value=form.reboot>
                                <option value="never">"Never"</option>
                                <option value="if_required">"If required"</option>
                                <option value="always">"Always"</option>
                            </select>
                        </label>
                    </div>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let hooks = options.await.map(|o| o.hooks).unwrap_or_default();
                            view! { <Hooks hooks form/> }
                        })}
                    </Transition>
                </section>

                <section class="card form-stack">
                    <div class="actions">
                        <button
                            id=ids::JOB_PREVIEW_BUTTON
                            type="button"
                            class="btn btn-secondary"
                            disabled=move || preview.pending().get()
                            on:click=move |_| {
                                last_was_create.set(false);
                                preview.dispatch(PreviewJob { job: form.job() });
                            }
                        >
                            "Preview changes"
                        </button>
                        <button id=ids::JOB_SUBMIT type="submit" class="btn btn-primary" disabled=move || create.pending().get()>
                            "Create job"
                        </button>
                    </div>
                    {move || error.get().map(|e| view! { <div id=ids::JOB_ERROR><ErrorBox error=e/></div> })}
                    {move || preview.value().get().and_then(Result::ok).map(|p| view! { <Preview preview=p/> })}
                </section>
            </form>
        </Layout>
    }
    .into_any()
}

#[component]
fn Targets(hosts: Vec<TargetHost>, truncated: bool, groups: Vec<GroupRef>, form: Form) -> impl IntoView {
    let filter = RwSignal::new(String::new());
    let hosts = StoredValue::new(hosts);
    view! {
        <div class="form-row">
            <label class="field grow">
                <span>"Filter hosts"</span>
                <input id=ids::JOB_HOST_FILTER type="search" placeholder="hostname" bind:value=filter/>
            </label>
        </div>
        <fieldset id=ids::JOB_HOSTS class="group-picker">
            <legend>"Hosts"</legend>
            {move || {
                let f = filter.get().to_lowercase();
                hosts.with_value(|hs| {
                    hs.iter()
                        .filter(|h| f.is_empty() || h.hostname.to_lowercase().contains(&f))
                        .map(|h| {
                            let label = format!("{} ({} pending, {} security)", h.hostname, h.pending_updates, h.security_updates);
                            view! { <Check value=h.id.clone() label chosen=form.hosts data_name=h.hostname.clone()/> }
                        })
                        .collect_view()
                })
            }}
        </fieldset>
        {truncated.then(|| view! { <p class="muted">"More hosts exist than are listed: use groups or the filter."</p> })}
        {if groups.is_empty() {
            view! { <p class="muted">"No host groups to choose from."</p> }.into_any()
        } else {
            view! {
                <fieldset id=ids::JOB_GROUPS class="group-picker">
                    <legend>"Host groups (every host in them)"</legend>
                    {groups.into_iter().map(|g| view! { <Check value=g.id label=g.name.clone() chosen=form.groups data_name=g.name/> }).collect_view()}
                </fieldset>
            }.into_any()
        }}
    }
}

#[component]
fn Hooks(hooks: Vec<HookInfo>, form: Form) -> impl IntoView {
    if hooks.is_empty() {
        return view! { <p class="muted">"No pre/post-commands defined (an Admin defines them on the Hooks page)."</p> }.into_any();
    }
    let pick = move |id: &'static str, legend: &'static str, chosen: RwSignal<Vec<String>>, hooks: &[HookInfo]| {
        let boxes = hooks
            .iter()
            .map(|h| view! { <Check value=h.id.clone() label=format!("{} ({})", h.name, h.argv.join(" ")) chosen data_name=h.name.clone()/> })
            .collect_view();
        view! { <fieldset id=id class="group-picker"><legend>{legend}</legend>{boxes}</fieldset> }
    };
    view! {
        {pick(ids::JOB_PRE_HOOKS, "Before updating, run", form.pre, &hooks)}
        {pick(ids::JOB_POST_HOOKS, "After updating, run", form.post, &hooks)}
    }
    .into_any()
}

#[component]
fn Preview(preview: JobPreview) -> impl IntoView {
    let waves = preview.waves.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" → ");
    let listed = preview.hosts.len() as i64;
    view! {
        <div id=ids::JOB_PREVIEW class="form-stack">
            <p>
                <strong>{preview.total_hosts}</strong>" hosts in waves of " <span class="mono">{waves}</span>
                "; " <strong>{preview.total_changes}</strong>" package changes on the hosts listed."
                {preview.window_next.map(|(s, e)| format!(" Next window: {} to {}.", format::datetime(s), format::datetime(e)))}
                {(listed < preview.total_hosts).then(|| format!(" Showing the first {listed} hosts."))}
            </p>
            <p class="muted">"From each host's last inventory; a dry run shows the agents' exact plan."</p>
            {preview.hosts.into_iter().map(|h| view! {
                <div class="preview-host" data-host=h.hostname.clone()>
                    <h3>{h.hostname.clone()} <span class="muted">{format!(" {} · {} changes", h.package_manager, h.changes.len())}</span></h3>
                    {if h.changes.is_empty() {
                        view! { <p class="muted">"Nothing to update."</p> }.into_any()
                    } else {
                        view! {
                            <table class="table table-compact">
                                <thead><tr><th>"Package"</th><th>"Arch"</th><th>"From"</th><th>"To"</th><th></th></tr></thead>
                                <tbody>
                                    {h.changes.into_iter().map(|c| view! {
                                        <tr class=if c.security { "row-security" } else { "" }>
                                            <td class="mono">{c.name}</td><td>{c.arch}</td>
                                            <td class="mono">{c.from}</td><td class="mono">{c.to}</td>
                                            <td>{c.security.then(|| view! { <span class="badge badge-security">"security"</span> })}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }}
                </div>
            }).collect_view()}
        </div>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lists_split_on_spaces_and_commas() {
        assert_eq!(names(" openssl, libssl3\nbash "), ["openssl", "libssl3", "bash"]);
        assert!(names("  ").is_empty());
        assert_eq!(number(" 12 "), 12);
        assert_eq!(number("x"), 0);
    }
}
