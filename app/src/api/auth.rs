//! Login, second factor, first-run setup and logout.
//!
//! Flow: `login` checks the password and sets the short-lived `pm_pending` cookie (a signed
//! "password OK" token naming the next stage). A user with a factor finishes with
//! `verify_totp`, `passkey_begin` + `passkey_finish`, or `recovery_login`; a user without one
//! may only enrol one: `begin_totp_enrolment` + `confirm_totp_enrolment`, or
//! `passkey_enrol_begin` + `passkey_enrol_finish` (both return the recovery codes made with a
//! first factor, shown once). Each completion sets `pm_access` + `pm_refresh` and clears
//! `pm_pending`. Passwordless: `passwordless_begin` + `passwordless_finish` (a discoverable
//! passkey with user verification), bound to the browser by the `pm_webauthn` cookie.
//!
//! WebAuthn options and responses cross the wire as JSON text (webauthn-rs' own format, with
//! base64url byte strings); `ui::webauthn` turns them into `navigator.credentials` calls.

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

/// Confirms the enrolment with a first code; completes the login. Returns the new recovery
/// codes (empty when the user still has unused ones).
#[server(endpoint = "auth/totp_confirm")]
pub async fn confirm_totp_enrolment(code: String) -> Result<Vec<String>, AppError> {
    super::ctx::respond(imp::confirm_totp_enrolment(&code).await)
}

/// Passkey as the second factor: the `navigator.credentials.get` options (JSON).
#[server(endpoint = "auth/passkey_begin")]
pub async fn passkey_begin() -> Result<String, AppError> {
    super::ctx::respond(imp::passkey_begin().await)
}

/// Passkey as the second factor: the assertion (JSON); completes the login.
#[server(endpoint = "auth/passkey_finish")]
pub async fn passkey_finish(credential: String) -> Result<(), AppError> {
    super::ctx::respond(imp::passkey_finish(&credential).await)
}

/// A passkey as the first factor of a user without one: `navigator.credentials.create` options.
#[server(endpoint = "auth/passkey_enrol_begin")]
pub async fn passkey_enrol_begin(name: String) -> Result<String, AppError> {
    super::ctx::respond(imp::passkey_enrol_begin(&name).await)
}

/// Finishes the passkey enrolment; completes the login and returns the new recovery codes.
#[server(endpoint = "auth/passkey_enrol_finish")]
pub async fn passkey_enrol_finish(credential: String) -> Result<Vec<String>, AppError> {
    super::ctx::respond(imp::passkey_enrol_finish(&credential).await)
}

/// Passwordless login, step 1: options for a discoverable credential (no user named).
#[server(endpoint = "auth/passwordless_begin")]
pub async fn passwordless_begin() -> Result<String, AppError> {
    super::ctx::respond(imp::passwordless_begin().await)
}

/// Passwordless login, step 2: the assertion (JSON); starts the session.
#[server(endpoint = "auth/passwordless_finish")]
pub async fn passwordless_finish(credential: String) -> Result<(), AppError> {
    super::ctx::respond(imp::passwordless_finish(&credential).await)
}

/// A one-time recovery code instead of the second factor; completes the login.
#[server(endpoint = "auth/recovery_login")]
pub async fn recovery_login(code: String) -> Result<(), AppError> {
    super::ctx::respond(imp::recovery_login(&code).await)
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
    use crate::backend::sessions::{sha256_hex, LoginMethod, STAGE_ENROL, STAGE_SECOND_FACTOR};
    use crate::backend::state::AppState;
    use crate::backend::users::{self, User};
    use crate::backend::{mfa, passkeys, recovery, sessions};

    /// Lifetime of the `pm_webauthn` cookie: the ceremony's own.
    const WEBAUTHN_MAX_AGE: i64 = passkeys::ceremony::TTL_SECS;
    /// Name of a passkey enrolled at login when the page sends none.
    const DEFAULT_PASSKEY_NAME: &str = "Passkey";

    pub async fn login(username: &str, password: &str) -> Result<LoginStep, AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let user = users::check_password(&state, username.trim(), password, ip.as_deref(), ctx::now()).await?;
        let pending = sessions::issue_pending(&state.keys, &user, ctx::now())?;
        ctx::set_cookie(ctx::PENDING_COOKIE, &pending, ctx::PENDING_MAX_AGE)?;
        Ok(if user.has_factor() {
            LoginStep::SecondFactor { totp: user.totp_enrolled, passkey: user.passkeys > 0 }
        } else {
            LoginStep::Enrol
        })
    }

    pub async fn verify_totp(code: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let (user, _) = pending_user(&state, STAGE_SECOND_FACTOR).await?;
        mfa::verify_totp(&state, &user, code.trim(), ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, LoginMethod::PasswordTotp, ip.as_deref()).await
    }

    pub async fn begin_totp_enrolment() -> Result<TotpEnrolment, AppError> {
        let state = ctx::state()?;
        let (user, _) = pending_user(&state, STAGE_ENROL).await?;
        Ok(mfa::begin_totp(&state, &user, ctx::now()).await?)
    }

    pub async fn confirm_totp_enrolment(code: &str) -> Result<Vec<String>, AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let (user, _) = pending_user(&state, STAGE_ENROL).await?;
        let codes = mfa::confirm_totp(&state, &user, code.trim(), ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, LoginMethod::PasswordTotp, ip.as_deref()).await?;
        Ok(codes.unwrap_or_default())
    }

    pub async fn passkey_begin() -> Result<String, AppError> {
        let state = ctx::state()?;
        let (user, binding) = pending_user(&state, STAGE_SECOND_FACTOR).await?;
        Ok(passkeys::begin_authentication(&state, &user, &binding, ctx::now()).await?)
    }

    pub async fn passkey_finish(credential: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let (user, binding) = pending_user(&state, STAGE_SECOND_FACTOR).await?;
        passkeys::finish_authentication(&state, &user, &binding, credential, ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, LoginMethod::PasswordPasskey, ip.as_deref()).await
    }

    pub async fn passkey_enrol_begin(name: &str) -> Result<String, AppError> {
        let state = ctx::state()?;
        let (user, binding) = pending_user(&state, STAGE_ENROL).await?;
        let name = if name.trim().is_empty() { DEFAULT_PASSKEY_NAME } else { name };
        Ok(passkeys::begin_registration(&state, &user, &binding, name, ctx::now()).await?)
    }

    pub async fn passkey_enrol_finish(credential: &str) -> Result<Vec<String>, AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let (user, binding) = pending_user(&state, STAGE_ENROL).await?;
        let (_, codes) = passkeys::finish_registration(&state, &user, &binding, credential, ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, LoginMethod::PasswordPasskey, ip.as_deref()).await?;
        Ok(codes.unwrap_or_default())
    }

    pub async fn passwordless_begin() -> Result<String, AppError> {
        let state = ctx::state()?;
        let token = sessions::random_token("pmwa_");
        let options = passkeys::begin_discoverable(&state, &browser_binding(&token), ctx::now()).await?;
        ctx::set_cookie(ctx::WEBAUTHN_COOKIE, &token, WEBAUTHN_MAX_AGE)?;
        Ok(options)
    }

    pub async fn passwordless_finish(credential: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let token = ctx::cookie(ctx::WEBAUTHN_COOKIE).ok_or_else(AppError::unauthenticated)?;
        ctx::clear_cookie(ctx::WEBAUTHN_COOKIE)?;
        let user = passkeys::finish_discoverable(&state, &browser_binding(&token), credential, ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, LoginMethod::Passkey, ip.as_deref()).await
    }

    pub async fn recovery_login(code: &str) -> Result<(), AppError> {
        let state = ctx::state()?;
        let ip = ctx::client_ip();
        let (user, _) = pending_user(&state, STAGE_SECOND_FACTOR).await?;
        recovery::use_code(&state, &user, code, ip.as_deref(), ctx::now()).await?;
        finish(&state, &user, LoginMethod::PasswordRecoveryCode, ip.as_deref()).await
    }

    fn browser_binding(token: &str) -> String {
        format!("browser:{}", sha256_hex(token))
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

    /// The user whose password step succeeded, if the pending token is valid for `stage`, and
    /// the binding of WebAuthn ceremonies to this pending login (the token's hash). The enrol
    /// stage ends once the user has a factor: a stale "no factor yet" token cannot add another
    /// factor with the password alone.
    async fn pending_user(state: &AppState, stage: &str) -> Result<(User, String), AppError> {
        let token = ctx::cookie(ctx::PENDING_COOKIE).ok_or_else(AppError::unauthenticated)?;
        let (user_id, got_stage) =
            sessions::verify_pending(&state.keys, &token, ctx::now()).map_err(|_| AppError::unauthenticated())?;
        let wrong_stage = || AppError::new(409, "wrong_stage", "this login step is not expected now");
        if got_stage != stage {
            return Err(wrong_stage());
        }
        let user = users::user_by_id(&state.db, &user_id).await.map_err(|_| AppError::unauthenticated())?;
        if user.disabled {
            return Err(AppError::unauthenticated());
        }
        if stage == STAGE_ENROL && user.has_factor() {
            return Err(wrong_stage());
        }
        Ok((user, format!("pending:{}", sha256_hex(&token))))
    }

    /// Second factor done: start the session and swap the cookies.
    async fn finish(state: &AppState, user: &User, method: LoginMethod, ip: Option<&str>) -> Result<(), AppError> {
        let tokens = sessions::start_login(state, user, method, ip, ctx::now()).await?;
        ctx::set_cookie(ctx::ACCESS_COOKIE, &tokens.access, tokens.access_max_age)?;
        ctx::set_cookie(ctx::REFRESH_COOKIE, &tokens.refresh, tokens.refresh_max_age)?;
        ctx::clear_cookie(ctx::PENDING_COOKIE)?;
        Ok(())
    }
}
