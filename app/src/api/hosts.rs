//! Host list, host detail, installed packages and pending updates (any signed-in user, cut
//! to their scope), and a host's group memberships (Admin).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

use super::dto::{HostDetail, HostSummary, PackageRow, Page, StatusFilter, UpdateRow};
use super::error::AppError;

/// Rows per page of the host list.
pub const HOSTS_PER_PAGE: u32 = 50;
/// Rows per page of a host's installed packages.
pub const PACKAGES_PER_PAGE: u32 = 100;

#[server(endpoint = "hosts/list")]
pub async fn list_hosts(
    search: String,
    status: StatusFilter,
    security_only: bool,
    reboot_only: bool,
    page: u32,
) -> Result<Page<HostSummary>, AppError> {
    super::ctx::respond(imp::list_hosts(search, status, security_only, reboot_only, page).await)
}

#[server(endpoint = "hosts/get")]
pub async fn get_host(id: String) -> Result<HostDetail, AppError> {
    super::ctx::respond(imp::get_host(&id).await)
}

#[server(endpoint = "hosts/packages")]
pub async fn host_packages(id: String, search: String, page: u32) -> Result<Page<PackageRow>, AppError> {
    super::ctx::respond(imp::host_packages(&id, &search, page).await)
}

#[server(endpoint = "hosts/updates")]
pub async fn host_updates(id: String) -> Result<Vec<UpdateRow>, AppError> {
    super::ctx::respond(imp::host_updates(&id).await)
}

/// Replaces the groups a host belongs to (Admin).
// JSON body: a URL-encoded empty list would not arrive at all.
#[server(endpoint = "hosts/set_groups", input = Json)]
pub async fn set_host_groups(id: String, group_ids: Vec<String>) -> Result<(), AppError> {
    super::ctx::respond(imp::set_host_groups(&id, group_ids).await)
}

/// Revokes the host's certificates (Admins, or Operators for hosts of their groups): the
/// agent is refused from its next request on and must be enrolled again. The revoked serials.
#[server(endpoint = "hosts/revoke")]
pub async fn revoke_host(id: String) -> Result<Vec<String>, AppError> {
    super::ctx::respond(imp::revoke_host(&id).await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::super::dto::HostQuery;
    use super::{AppError, HostDetail, HostSummary, PackageRow, Page, StatusFilter, UpdateRow};
    use super::{HOSTS_PER_PAGE, PACKAGES_PER_PAGE};
    use crate::backend::state::AppState;
    use crate::backend::{groups, hosts, inventory};

    /// The state, once the caller may see host `id` (404 otherwise, as for a missing host).
    async fn in_scope(id: &str) -> Result<AppState, AppError> {
        let caller = ctx::caller().await?;
        let state = ctx::state()?;
        let mut conn = state.db.pool.acquire().await.map_err(crate::backend::error::BackendError::from)?;
        caller.scope().check_host(&mut conn, id).await?;
        Ok(state)
    }

    pub async fn set_host_groups(id: &str, group_ids: Vec<String>) -> Result<(), AppError> {
        let caller = ctx::require_admin().await?;
        let state = ctx::state()?;
        Ok(groups::set_host_groups(&state.db, &caller.actor(), id, &group_ids, ctx::now()).await?)
    }

    pub async fn revoke_host(id: &str) -> Result<Vec<String>, AppError> {
        let caller = ctx::caller().await?;
        let state = ctx::state()?;
        Ok(crate::backend::certs::revoke_host(&state.db, &state.certs, &caller.actor(), &caller.scope(), id, ctx::now())
            .await?)
    }

    pub async fn list_hosts(
        search: String,
        status: StatusFilter,
        security_only: bool,
        reboot_only: bool,
        page: u32,
    ) -> Result<Page<HostSummary>, AppError> {
        let caller = ctx::caller().await?;
        let state = ctx::state()?;
        let query = HostQuery {
            search: search.trim().to_string(),
            status,
            security_only,
            reboot_only,
            page: page.max(1),
            per_page: HOSTS_PER_PAGE,
        };
        Ok(hosts::list(&state.db, &caller.scope(), &query, state.settings.offline_after_secs, ctx::now()).await?)
    }

    pub async fn get_host(id: &str) -> Result<HostDetail, AppError> {
        let caller = ctx::caller().await?;
        let state = ctx::state()?;
        Ok(hosts::get(&state.db, &caller.scope(), id, state.settings.offline_after_secs, ctx::now()).await?)
    }

    pub async fn host_packages(id: &str, search: &str, page: u32) -> Result<Page<PackageRow>, AppError> {
        let state = in_scope(id).await?;
        Ok(inventory::installed(&state.db, id, search.trim(), page.max(1), PACKAGES_PER_PAGE).await?)
    }

    pub async fn host_updates(id: &str) -> Result<Vec<UpdateRow>, AppError> {
        let state = in_scope(id).await?;
        Ok(inventory::updates(&state.db, id).await?)
    }
}
