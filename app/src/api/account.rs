//! The signed-in user's own second factors: passkeys (add, rename, remove), TOTP for a user
//! who signed up with a passkey, and recovery codes. Every function needs a full session;
//! WebAuthn ceremonies started here are bound to that session.

use leptos::prelude::*;

use super::dto::{AccountFactors, PasskeyInfo, TotpEnrolment};
use super::error::AppError;

/// Passkeys, TOTP status and the number of unused recovery codes.
#[server(endpoint = "account/factors")]
pub async fn my_factors() -> Result<AccountFactors, AppError> {
    super::ctx::respond(imp::factors().await)
}

/// Starts adding a passkey called `name`: the `navigator.credentials.create` options (JSON).
#[server(endpoint = "account/passkey_begin")]
pub async fn add_passkey_begin(name: String) -> Result<String, AppError> {
    super::ctx::respond(imp::add_begin(&name).await)
}

/// Finishes adding a passkey with the authenticator's response (JSON).
#[server(endpoint = "account/passkey_finish")]
pub async fn add_passkey_finish(credential: String) -> Result<PasskeyInfo, AppError> {
    super::ctx::respond(imp::add_finish(&credential).await)
}

#[server(endpoint = "account/passkey_rename")]
pub async fn rename_passkey(id: String, name: String) -> Result<(), AppError> {
    super::ctx::respond(imp::rename(&id, &name).await)
}

/// Refused with `last_factor` for the account's only factor.
#[server(endpoint = "account/passkey_remove")]
pub async fn remove_passkey(id: String) -> Result<(), AppError> {
    super::ctx::respond(imp::remove(&id).await)
}

/// A fresh set of recovery codes (the old ones stop working); shown once.
#[server(endpoint = "account/recovery_regenerate")]
pub async fn regenerate_recovery_codes() -> Result<Vec<String>, AppError> {
    super::ctx::respond(imp::regenerate().await)
}

/// TOTP enrolment from the account page (for a user whose first factor was a passkey).
#[server(endpoint = "account/totp_begin")]
pub async fn account_totp_begin() -> Result<TotpEnrolment, AppError> {
    super::ctx::respond(imp::totp_begin().await)
}

/// Confirms it; returns new recovery codes when the user had none left (else empty).
#[server(endpoint = "account/totp_confirm")]
pub async fn account_totp_confirm(code: String) -> Result<Vec<String>, AppError> {
    super::ctx::respond(imp::totp_confirm(&code).await)
}

#[cfg(feature = "ssr")]
mod imp {
    use super::super::ctx;
    use super::{AccountFactors, AppError, PasskeyInfo, TotpEnrolment};
    use crate::backend::access::Caller;
    use crate::backend::state::AppState;
    use crate::backend::users::{self, User};
    use crate::backend::{mfa, passkeys, recovery};

    /// The verified caller as a `User`, and the binding of WebAuthn ceremonies to their session.
    async fn me() -> Result<(AppState, User, String), AppError> {
        let Caller { principal } = ctx::caller().await?;
        let state = ctx::state()?;
        let user = users::user_by_id(&state.db, &principal.user_id).await?;
        Ok((state, user, format!("session:{}", principal.session_id)))
    }

    pub async fn factors() -> Result<AccountFactors, AppError> {
        let (state, user, _) = me().await?;
        Ok(AccountFactors {
            totp_enrolled: user.totp_enrolled,
            passkeys: passkeys::list(&state.db, &user.id).await?,
            recovery_codes_left: recovery::remaining(&state.db, &user.id).await?,
            passkeys_available: state.webauthn.is_some(),
        })
    }

    pub async fn add_begin(name: &str) -> Result<String, AppError> {
        let (state, user, binding) = me().await?;
        Ok(passkeys::begin_registration(&state, &user, &binding, name, ctx::now()).await?)
    }

    pub async fn add_finish(credential: &str) -> Result<PasskeyInfo, AppError> {
        let (state, user, binding) = me().await?;
        let ip = ctx::client_ip();
        let (info, _) = passkeys::finish_registration(&state, &user, &binding, credential, ip.as_deref(), ctx::now()).await?;
        Ok(info)
    }

    pub async fn rename(id: &str, name: &str) -> Result<(), AppError> {
        let (state, user, _) = me().await?;
        Ok(passkeys::rename(&state, &user, id, name, ctx::client_ip().as_deref(), ctx::now()).await?)
    }

    pub async fn remove(id: &str) -> Result<(), AppError> {
        let (state, user, _) = me().await?;
        Ok(passkeys::remove(&state, &user, id, ctx::client_ip().as_deref(), ctx::now()).await?)
    }

    pub async fn regenerate() -> Result<Vec<String>, AppError> {
        let (state, user, _) = me().await?;
        Ok(recovery::regenerate(&state, &user, ctx::client_ip().as_deref(), ctx::now()).await?)
    }

    pub async fn totp_begin() -> Result<TotpEnrolment, AppError> {
        let (state, user, _) = me().await?;
        Ok(mfa::begin_totp(&state, &user, ctx::now()).await?)
    }

    pub async fn totp_confirm(code: &str) -> Result<Vec<String>, AppError> {
        let (state, user, _) = me().await?;
        let codes = mfa::confirm_totp(&state, &user, code.trim(), ctx::client_ip().as_deref(), ctx::now()).await?;
        Ok(codes.unwrap_or_default())
    }
}
