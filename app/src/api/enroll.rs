//! Enrollment tokens (admins only).

use leptos::prelude::*;

use super::dto::{NewEnrollToken, TokenList};
use super::error::AppError;

/// Creates a one-time token; `validity_secs` = 0 means the server default; a non-empty
/// `group_id` puts the enrolled host into that group.
#[server(endpoint = "enroll/create")]
pub async fn create_enroll_token(note: String, validity_secs: i64, group_id: String) -> Result<NewEnrollToken, AppError> {
    super::ctx::respond(imp::create_enroll_token(&note, validity_secs, &group_id).await)
}

/// All tokens (newest first) with the server's clock, so the page can tell which expired.
#[server(endpoint = "enroll/list")]
pub async fn list_enroll_tokens() -> Result<TokenList, AppError> {
    super::ctx::respond(imp::list_enroll_tokens().await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AppError, NewEnrollToken, TokenList};
    use crate::backend::enrollment;

    pub async fn create_enroll_token(note: &str, validity_secs: i64, group_id: &str) -> Result<NewEnrollToken, AppError> {
        let caller = ctx::require_admin().await?;
        let state = ctx::state()?;
        let ttl = (validity_secs > 0).then_some(validity_secs);
        let group = Some(group_id.trim()).filter(|g| !g.is_empty());
        Ok(enrollment::create_token(&state, &caller.actor(), note.trim(), ttl, group, ctx::now()).await?)
    }

    pub async fn list_enroll_tokens() -> Result<TokenList, AppError> {
        ctx::require_admin().await?;
        let state = ctx::state()?;
        let now = ctx::now();
        let tokens = enrollment::list_tokens(&state.db, now).await?;
        Ok(TokenList { now, tokens })
    }
}
