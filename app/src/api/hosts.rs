//! Host list, host detail, installed packages and pending updates (any signed-in user).

use leptos::prelude::*;

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

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::super::dto::HostQuery;
    use super::{AppError, HostDetail, HostSummary, PackageRow, Page, StatusFilter, UpdateRow};
    use super::{HOSTS_PER_PAGE, PACKAGES_PER_PAGE};
    use crate::backend::{hosts, inventory};

    pub async fn list_hosts(
        search: String,
        status: StatusFilter,
        security_only: bool,
        reboot_only: bool,
        page: u32,
    ) -> Result<Page<HostSummary>, AppError> {
        ctx::require_user()?;
        let state = ctx::state()?;
        let query = HostQuery {
            search: search.trim().to_string(),
            status,
            security_only,
            reboot_only,
            page: page.max(1),
            per_page: HOSTS_PER_PAGE,
        };
        Ok(hosts::list(&state.db, &query, state.settings.offline_after_secs, ctx::now()).await?)
    }

    pub async fn get_host(id: &str) -> Result<HostDetail, AppError> {
        ctx::require_user()?;
        let state = ctx::state()?;
        Ok(hosts::get(&state.db, id, state.settings.offline_after_secs, ctx::now()).await?)
    }

    pub async fn host_packages(id: &str, search: &str, page: u32) -> Result<Page<PackageRow>, AppError> {
        ctx::require_user()?;
        let state = ctx::state()?;
        Ok(inventory::installed(&state.db, id, search.trim(), page.max(1), PACKAGES_PER_PAGE).await?)
    }

    pub async fn host_updates(id: &str) -> Result<Vec<UpdateRow>, AppError> {
        ctx::require_user()?;
        let state = ctx::state()?;
        Ok(inventory::updates(&state.db, id).await?)
    }
}
