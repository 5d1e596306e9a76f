//! Patch jobs in the browser: the fleet's job list, the new-job form with its instant
//! preview, and one job's page with live per-host progress (polled every two seconds from
//! the hydrated page) and each host's full output.
//!
//! # Layout
//! - `list`: `/jobs`; `new`: `/jobs/new` (`?host=<id>` preselects a host); `detail`: `/jobs/:id`.

pub mod detail;
pub mod list;
pub mod new;

use std::time::Duration;

use leptos::prelude::*;

use crate::api::job_dto::{JobMode, JobStatus, JobSummary, StateCounts};

/// A counter the browser bumps every `every` while `live` is true (resources that read it
/// refetch); nothing runs during server-side rendering, and the timer stops with the page.
pub fn poll_tick(every: Duration, live: RwSignal<bool>) -> RwSignal<u64> {
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(
            move || {
                if live.get_untracked() {
                    tick.update(|t| *t += 1);
                }
            },
            every,
        );
        if let Ok(h) = handle {
            on_cleanup(move || h.clear());
        }
    });
    tick
}

pub fn status_class(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Scheduled => "badge badge-muted",
        JobStatus::Running => "badge badge-info",
        JobStatus::Halted => "badge badge-bad",
        JobStatus::Completed => "badge badge-ok",
        JobStatus::Cancelled => "badge badge-offline",
    }
}

/// Badge class of a host's displayed state (`JobHostRow::display_state`).
pub fn host_state_class(display: &str) -> &'static str {
    match display {
        "succeeded" => "badge badge-ok",
        "failed" | "interrupted" => "badge badge-bad",
        "running" | "received" | "rebooting" => "badge badge-info",
        "skipped" | "cancelled" => "badge badge-offline",
        _ => "badge badge-muted",
    }
}

pub fn mode_label(m: JobMode) -> &'static str {
    match m {
        JobMode::Apply => "apply",
        JobMode::DryRun => "dry run",
    }
}

/// "Title" or, without one, the start of the id.
pub fn job_name(j: &JobSummary) -> String {
    if j.title.is_empty() {
        format!("Job {}", j.id.chars().take(8).collect::<String>())
    } else {
        j.title.clone()
    }
}

/// `2 succeeded · 1 failed · 3 queued` (only the non-zero states).
pub fn counts_text(c: &StateCounts) -> String {
    let parts = [
        (c.queued + c.dispatched, "queued"),
        (c.received + c.running, "running"),
        (c.rebooting, "rebooting"),
        (c.succeeded - c.rebooting.min(c.succeeded), "succeeded"),
        (c.failed, "failed"),
        (c.interrupted, "interrupted"),
        (c.skipped, "skipped"),
        (c.cancelled, "cancelled"),
    ];
    let text: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, l)| format!("{n} {l}")).collect();
    if text.is_empty() { "no hosts".into() } else { text.join(" · ") }
}

#[component]
pub fn StatusBadge(status: JobStatus) -> impl IntoView {
    view! { <span class=status_class(status) data-status=status.as_str()>{status.as_str()}</span> }
}
