//! Patch jobs: what the new-job form can choose from, the instant preview, creation, the
//! fleet's job list, one job (polled by the job page for live progress), a host's full
//! result, cancel / resume / run a dry run for real, and a host's job history. Any
//! signed-in user; everything is cut to the caller's host groups in the backend.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::dto::Page;
use super::error::AppError;
use super::job_dto::{HostJobRow, JobDetail, JobHostResult, JobPreview, JobSummary, NewJob, TargetOptions};

/// Rows per page of the job list.
pub const JOBS_PER_PAGE: u32 = 50;
/// Jobs shown in a host's history.
pub const HOST_HISTORY_LIMIT: i64 = 50;

#[server(endpoint = "jobs/targets")]
pub async fn job_targets() -> Result<TargetOptions, AppError> {
    super::ctx::respond(imp::targets().await)
}

// JSON body: lists (hosts, groups, packages) must arrive even when empty.
#[server(endpoint = "jobs/preview", input = Json)]
pub async fn preview_job(job: NewJob) -> Result<JobPreview, AppError> {
    super::ctx::respond(imp::preview(job).await)
}

/// Creates the job; returns its id.
#[server(endpoint = "jobs/create", input = Json)]
pub async fn create_job(job: NewJob) -> Result<String, AppError> {
    super::ctx::respond(imp::create(job).await)
}

#[server(endpoint = "jobs/list")]
pub async fn list_jobs(page: u32) -> Result<Page<JobSummary>, AppError> {
    super::ctx::respond(imp::list(page).await)
}

#[server(endpoint = "jobs/get")]
pub async fn get_job(id: String) -> Result<JobDetail, AppError> {
    super::ctx::respond(imp::get(&id).await)
}

/// One host's changes and complete command output.
#[server(endpoint = "jobs/host_result")]
pub async fn get_job_host_result(job_id: String, host_id: String) -> Result<JobHostResult, AppError> {
    super::ctx::respond(imp::host_result(&job_id, &host_id).await)
}

#[server(endpoint = "jobs/cancel")]
pub async fn cancel_job(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::cancel(&id).await)
}

#[server(endpoint = "jobs/cancel_host")]
pub async fn cancel_job_host(job_id: String, host_id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::cancel_host(&job_id, &host_id).await)
}

#[server(endpoint = "jobs/resume")]
pub async fn resume_job(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::resume(&id).await)
}

/// Starts a finished dry run for real; returns the new job's id.
#[server(endpoint = "jobs/run_for_real")]
pub async fn run_job_for_real(id: String) -> Result<String, AppError> {
    super::ctx::respond(imp::run_for_real(&id).await)
}

#[server(endpoint = "jobs/for_host")]
pub async fn host_jobs(host_id: String) -> Result<Vec<HostJobRow>, AppError> {
    super::ctx::respond(imp::for_host(&host_id).await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AppError, HostJobRow, JobDetail, JobHostResult, JobPreview, JobSummary, NewJob, Page, TargetOptions};
    use super::{HOST_HISTORY_LIMIT, JOBS_PER_PAGE};
    use crate::backend::jobs::{control, create, preview as preview_mod, queries, targets as targets_mod};

    pub async fn targets() -> Result<TargetOptions, AppError> {
        let caller = ctx::caller().await?;
        Ok(targets_mod::options(&ctx::state()?.db, &caller.scope()).await?)
    }

    pub async fn preview(job: NewJob) -> Result<JobPreview, AppError> {
        let caller = ctx::caller().await?;
        Ok(preview_mod::preview(&ctx::state()?.db, &caller.scope(), &job, ctx::now()).await?)
    }

    pub async fn create(job: NewJob) -> Result<String, AppError> {
        let caller = ctx::caller().await?;
        Ok(create::create(&ctx::state()?.db, &caller.actor(), &caller.scope(), &job, ctx::now()).await?)
    }

    pub async fn list(page: u32) -> Result<Page<JobSummary>, AppError> {
        let caller = ctx::caller().await?;
        Ok(queries::list(&ctx::state()?.db, &caller.scope(), page.max(1), JOBS_PER_PAGE).await?)
    }

    pub async fn get(id: &str) -> Result<JobDetail, AppError> {
        let caller = ctx::caller().await?;
        Ok(queries::get(&ctx::state()?.db, &caller, id, ctx::now()).await?)
    }

    pub async fn host_result(job_id: &str, host_id: &str) -> Result<JobHostResult, AppError> {
        let caller = ctx::caller().await?;
        Ok(queries::host_result(&ctx::state()?.db, &caller.scope(), job_id, host_id).await?)
    }

    pub async fn cancel(id: &str) -> Result<(), AppError> {
        let caller = ctx::caller().await?;
        Ok(control::cancel(&ctx::state()?.db, &caller, id, ctx::now()).await?)
    }

    pub async fn cancel_host(job_id: &str, host_id: &str) -> Result<(), AppError> {
        let caller = ctx::caller().await?;
        Ok(control::cancel_host(&ctx::state()?.db, &caller, job_id, host_id, ctx::now()).await?)
    }

    pub async fn resume(id: &str) -> Result<(), AppError> {
        let caller = ctx::caller().await?;
        Ok(control::resume(&ctx::state()?.db, &caller, id, ctx::now()).await?)
    }

    pub async fn run_for_real(id: &str) -> Result<String, AppError> {
        let caller = ctx::caller().await?;
        Ok(control::run_for_real(&ctx::state()?.db, &caller, id, ctx::now()).await?)
    }

    pub async fn for_host(host_id: &str) -> Result<Vec<HostJobRow>, AppError> {
        let caller = ctx::caller().await?;
        Ok(queries::host_history(&ctx::state()?.db, &caller.scope(), host_id, HOST_HISTORY_LIMIT).await?)
    }
}
