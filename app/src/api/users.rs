//! User management (Admin only): invite, role, groups, disable, delete, reset MFA.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::dto::{NewInvitation, Role, UserInfo};
use super::error::AppError;

#[server(endpoint = "users/list")]
pub async fn list_users() -> Result<Vec<UserInfo>, AppError> {
    super::ctx::respond(imp::list().await)
}

/// Creates the account and returns its one-time invitation link.
// JSON body: a URL-encoded empty list would not arrive at all.
#[server(endpoint = "users/invite", input = Json)]
pub async fn invite_user(username: String, role: Role, group_ids: Vec<String>) -> Result<NewInvitation, AppError> {
    super::ctx::respond(imp::invite(&username, role, group_ids).await)
}

#[server(endpoint = "users/set_role")]
pub async fn set_user_role(id: String, role: Role) -> Result<(), AppError> {
    super::ctx::respond(imp::set_role(&id, role).await)
}

// JSON body: a URL-encoded empty list would not arrive at all.
#[server(endpoint = "users/set_groups", input = Json)]
pub async fn set_user_groups(id: String, group_ids: Vec<String>) -> Result<(), AppError> {
    super::ctx::respond(imp::set_groups(&id, group_ids).await)
}

#[server(endpoint = "users/set_disabled")]
pub async fn set_user_disabled(id: String, disabled: bool) -> Result<(), AppError> {
    super::ctx::respond(imp::set_disabled(&id, disabled).await)
}

#[server(endpoint = "users/delete")]
pub async fn delete_user(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::delete(&id).await)
}

#[server(endpoint = "users/reset_mfa")]
pub async fn reset_user_mfa(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::reset_mfa(&id).await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AppError, NewInvitation, Role, UserInfo};
    use crate::backend::user_admin;

    pub async fn list() -> Result<Vec<UserInfo>, AppError> {
        ctx::require_admin().await?;
        Ok(user_admin::list(&ctx::state()?).await?)
    }

    pub async fn invite(username: &str, role: Role, group_ids: Vec<String>) -> Result<NewInvitation, AppError> {
        let caller = ctx::require_admin().await?;
        Ok(user_admin::invite(&ctx::state()?, &caller.actor(), username, role, &group_ids, ctx::now()).await?)
    }

    pub async fn set_role(id: &str, role: Role) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(user_admin::set_role(&ctx::state()?, &caller.actor(), id, role, ctx::now()).await?)
    }

    pub async fn set_groups(id: &str, group_ids: Vec<String>) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(user_admin::set_groups(&ctx::state()?, &caller.actor(), id, &group_ids, ctx::now()).await?)
    }

    pub async fn set_disabled(id: &str, disabled: bool) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(user_admin::set_disabled(&ctx::state()?, &caller.actor(), id, disabled, ctx::now()).await?)
    }

    pub async fn delete(id: &str) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(user_admin::delete(&ctx::state()?, &caller.actor(), id, ctx::now()).await?)
    }

    pub async fn reset_mfa(id: &str) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        Ok(user_admin::reset_mfa(&ctx::state()?, &caller.actor(), id, ctx::now()).await?)
    }
}
