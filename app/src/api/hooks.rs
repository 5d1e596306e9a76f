//! Pre/post-command hooks: every signed-in user may list them (to choose some for a job);
//! only Admins create, change or delete them.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::error::AppError;
use super::job_dto::HookInfo;

#[server(endpoint = "hooks/list")]
pub async fn list_hooks() -> Result<Vec<HookInfo>, AppError> {
    super::ctx::respond(imp::list().await)
}

// JSON body: argv is a list whose elements may contain anything but control characters.
#[server(endpoint = "hooks/create", input = Json)]
pub async fn create_hook(name: String, argv: Vec<String>, timeout_secs: u64) -> Result<HookInfo, AppError> {
    super::ctx::respond(imp::create(&name, &argv, timeout_secs).await)
}

#[server(endpoint = "hooks/update", input = Json)]
pub async fn update_hook(id: String, name: String, argv: Vec<String>, timeout_secs: u64) -> Result<(), AppError> {
    super::ctx::respond(imp::update(&id, &name, &argv, timeout_secs).await)
}

#[server(endpoint = "hooks/delete")]
pub async fn delete_hook(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::delete(&id).await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AppError, HookInfo};
    use crate::backend::jobs::hooks;

    pub async fn list() -> Result<Vec<HookInfo>, AppError> {
        ctx::caller().await?;
        Ok(hooks::list(&ctx::state()?.db).await?)
    }

    pub async fn create(name: &str, argv: &[String], timeout_secs: u64) -> Result<HookInfo, AppError> {
        let caller = ctx::require_admin().await?;
        Ok(hooks::create(&ctx::state()?.db, &caller.actor(), name, argv, timeout_secs, ctx::now()).await?)
    }

    pub async fn update(id: &str, name: &str, argv: &[String], timeout_secs: u64) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(hooks::update(&ctx::state()?.db, &caller.actor(), id, name, argv, timeout_secs, ctx::now()).await?)
    }

    pub async fn delete(id: &str) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(hooks::delete(&ctx::state()?.db, &caller.actor(), id, ctx::now()).await?)
    }
}
