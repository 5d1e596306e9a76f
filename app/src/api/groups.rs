//! Host groups (Admin; Operators get only the groups assigned to them from `my_groups`).

use leptos::prelude::*;

use super::dto::{GroupInfo, GroupRef};
use super::error::AppError;

#[server(endpoint = "groups/list")]
pub async fn list_groups() -> Result<Vec<GroupInfo>, AppError> {
    super::ctx::respond(imp::list().await)
}

#[server(endpoint = "groups/create")]
pub async fn create_group(name: String) -> Result<GroupInfo, AppError> {
    super::ctx::respond(imp::create(&name).await)
}

#[server(endpoint = "groups/rename")]
pub async fn rename_group(id: String, name: String) -> Result<(), AppError> {
    super::ctx::respond(imp::rename(&id, &name).await)
}

#[server(endpoint = "groups/delete")]
pub async fn delete_group(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::delete(&id).await)
}

/// The groups the caller may act on (every group for an Admin).
#[server(endpoint = "groups/mine")]
pub async fn my_groups() -> Result<Vec<GroupRef>, AppError> {
    super::ctx::respond(imp::mine().await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AppError, GroupInfo, GroupRef};
    use crate::backend::error::BackendError;
    use crate::backend::groups;

    pub async fn list() -> Result<Vec<GroupInfo>, AppError> {
        ctx::require_admin().await?;
        Ok(groups::list(&ctx::state()?.db).await?)
    }

    pub async fn create(name: &str) -> Result<GroupInfo, AppError> {
        let caller = ctx::require_admin().await?;
        Ok(groups::create(&ctx::state()?.db, &caller.actor(), name, ctx::now()).await?)
    }

    pub async fn rename(id: &str, name: &str) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(groups::rename(&ctx::state()?.db, &caller.actor(), id, name, ctx::now()).await?)
    }

    pub async fn delete(id: &str) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(groups::delete(&ctx::state()?.db, &caller.actor(), id, ctx::now()).await?)
    }

    pub async fn mine() -> Result<Vec<GroupRef>, AppError> {
        let caller = ctx::caller().await?;
        let state = ctx::state()?;
        if caller.is_admin() {
            return Ok(groups::list(&state.db).await?.into_iter().map(|g| GroupRef { id: g.id, name: g.name }).collect());
        }
        let mut conn = state.db.pool.acquire().await.map_err(BackendError::from)?;
        Ok(groups::of_user(&mut conn, &caller.principal.user_id).await?)
    }
}
