//! Login, second factor, first-run setup and logout.
//!
//! Flow: `login` checks the password and sets the short-lived `pm_pending` cookie (a signed
//! "password OK" token naming the next stage). Then either `verify_totp` (TOTP enrolled) or
//! `begin_totp_enrolment` + `confirm_totp_enrolment` (no factor yet) complete the login: they
//! set `pm_access` + `pm_refresh` and clear `pm_pending`.

use leptos::prelude::*;

use super::dto::{LoginStep, Me, TotpEnrolment};
use super::error::AppError;

#[cfg(feature = "ssr")]
pub use super::ctx::{require_admin, require_user};

/// Password step.
#[server(endpoint = "auth/login")]
pub async fn login(username: String, password: String) -> Result<LoginStep, AppError> {
    super::ctx::respond(imp::login(&username, &password).await)
}

/// TOTP step for an enrolled user; completes the login.
#[server(endpoint = "auth/totp_verify")]
pub async fn verify_totp(code: String) -> Result<(), AppError> {
    super::ctx::respond(imp::verify_totp(&code).await)
}

/// Starts (or restarts) TOTP enrolment for a user without a second factor.
#[server(endpoint = "auth/totp_begin")]
pub async fn begin_totp_enrolment() -> Result<TotpEnrolment, AppError> {
    super::ctx::respond(imp::begin_totp_enrolment().await)
}

/// Confirms the enrolment with a first code; completes the login.
#[server(endpoint = "auth/totp_confirm")]
pub async fn confirm_totp_enrolment(code: String) -> Result<(), AppError> {
    super::ctx::respond(imp::confirm_totp_enrolment(&code).await)
}

/// First run: creates the first admin with the one-time setup token printed by `serve`.
#[server(endpoint = "auth/setup")]
pub async fn setup_admin(token: String, username: String, password: String) -> Result<(), AppError> {
    super::ctx::respond(imp::setup_admin(&token, &username, &password).await)
}

/// Ends the session (server side) and clears the cookies.
#[server(endpoint = "auth/logout")]
pub async fn logout() -> Result<(), AppError> {
    super::ctx::respond(imp::logout().await)
}

/// The signed-in user, or `None`.
#[server(endpoint = "auth/me")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    Ok(super::ctx::caller().await.ok().map(|c| c.principal.me()))
}

/// The invited user sets their password with the one-time link's token.
#[server(endpoint = "auth/accept_invitation")]
pub async fn accept_invitation(token: String, password: String, password2: String) -> Result<(), AppError> {
    super::ctx::respond(imp::accept_invitation(&token, &password, &password2).await)
}

/// The signed-in user changes their password; every session of theirs ends, this one too.
#[server(endpoint = "account/password")]
pub async fn change_password(current: String, new: String, new2: String) -> Result<(), AppError> {
    super::ctx::respond(imp::change_password(&current, &new, &new2).await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AppError, LoginStep, TotpEnrolment};
    use crate::backend::state::AppState;
    use crate::backend::users::{self, User};
    use crate::backend::{mfa, sessions};

    const STAGE_TOTP: &str = "totp";
    const STAGE_ENROLL_TOTP: &str = "enroll_totp";

    pub async fn login(username: &str, password: &str) -> Result<LoginStep, AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let user = users::check_password(&state, username.trim(), password, ip.as_deref(), ctx::now()).await?;
        let pending = sessions::issue_pending(&state.keys, &user, ctx::now())?;
        ctx::set_cookie(ctx::PENDING_COOKIE, &pending, ctx::PENDING_MAX_AGE)?;
        Ok(if user.totp_enrolled { LoginStep::Totp } else { LoginStep::EnrollTotp })
    }

    pub async fn verify_totp(code: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let user = pending_user(&state, STAGE_TOTP).await?;
        mfa::verify_totp(&state, &user, code.trim(), ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, ip.as_deref()).await
    }

    pub async fn begin_totp_enrolment() -> Result<TotpEnrolment, AppError> {
        let state = ctx::state()?;
        let user = pending_user(&state, STAGE_ENROLL_TOTP).await?;
        Ok(mfa::begin_totp(&state, &user, ctx::now()).await?)
    }

    pub async fn confirm_totp_enrolment(code: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let user = pending_user(&state, STAGE_ENROLL_TOTP).await?;
        mfa::confirm_totp(&state, &user, code.trim(), ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, ip.as_deref()).await
    }

    pub async fn setup_admin(token: &str, username: &str, password: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        sessions::setup_admin(&state, token.trim(), username.trim(), password, ip.as_deref(), ctx::now()).await?;
        Ok(())
    }

    fn same(a: &str, b: &str) -> Result<(), AppError> {
        if a == b {
            Ok(())
        } else {
            Err(AppError::new(422, "password_mismatch", "the passwords do not match"))
        }
    }

    pub async fn accept_invitation(token: &str, password: &str, password2: &str) -> Result<(), AppError> {
        same(password, password2)?;
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        Ok(crate::backend::user_admin::accept_invitation(&state, token, password, ip.as_deref(), ctx::now()).await?)
    }

    pub async fn change_password(current: &str, new: &str, new2: &str) -> Result<(), AppError> {
        same(new, new2)?;
        let caller = ctx::caller().await?;
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let user = users::user_by_id(&state.db, &caller.principal.user_id).await?;
        crate::backend::user_admin::change_password(&state, &user, current, new, ip.as_deref(), ctx::now()).await?;
        ctx::clear_cookie(ctx::ACCESS_COOKIE)?;
        ctx::clear_cookie(ctx::REFRESH_COOKIE)?;
        Ok(())
    }

    pub async fn logout() -> Result<(), AppError> {
        let state = ctx::state()?;
        // A stale or missing session still gets its cookies cleared.
        if let Ok(principal) = ctx::require_user() {
            sessions::end(&state, &principal, ctx::now()).await?;
        }
        ctx::clear_cookie(ctx::ACCESS_COOKIE)?;
        ctx::clear_cookie(ctx::REFRESH_COOKIE)?;
        ctx::clear_cookie(ctx::PENDING_COOKIE)?;
        Ok(())
    }

    /// The user whose password step succeeded, if the pending token is valid for `stage`.
    async fn pending_user(state: &AppState, stage: &str) -> Result<User, AppError> {
        let token = ctx::cookie(ctx::PENDING_COOKIE).ok_or_else(AppError::unauthenticated)?;
        let (user_id, got_stage) =
            sessions::verify_pending(&state.keys, &token, ctx::now()).map_err(|_| AppError::unauthenticated())?;
        if got_stage != stage {
            return Err(AppError::new(409, "wrong_stage", "this login step is not expected now"));
        }
        let user = users::user_by_id(&state.db, &user_id).await.map_err(|_| AppError::unauthenticated())?;
        if user.disabled {
            return Err(AppError::unauthenticated());
        }
        Ok(user)
    }

    /// Second factor done: start the session and swap the cookies.
    async fn finish(state: &AppState, user: &User, ip: Option<&str>) -> Result<(), AppError> {
        let tokens = sessions::start(state, user, ip, ctx::now()).await?;
        ctx::set_cookie(ctx::ACCESS_COOKIE, &tokens.access, tokens.access_max_age)?;
        ctx::set_cookie(ctx::REFRESH_COOKIE, &tokens.refresh, tokens.refresh_max_age)?;
        ctx::clear_cookie(ctx::PENDING_COOKIE)?;
        Ok(())
    }
}
