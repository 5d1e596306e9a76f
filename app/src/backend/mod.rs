//! Privileged core (compiled only with the `ssr` feature; never part of the WASM).
//!
//! # Layout
//! - `db`: pool over SQLite/PostgreSQL, migrations, portable-SQL rules.
//! - `error`: the one backend error enum with stable codes.
//! - `audit`: hash-chained audit log; `Actor` passed into every mutation.
//! - `state`: `AppState`, what every handler and server function gets.
//! - `ca`, `certs`: internal CA (rcgen) and the host-certificate registry (serials, revocation).
//! - `enrollment`: one-time enrollment tokens and CSR signing.
//! - `job_signing`: the Ed25519 key that signs patch jobs (pinned by agents at enrollment).
//! - `jobs`: patch jobs (creation, scheduler, dispatch, agent results, hooks).
//! - `hosts`, `inventory`: check-ins, facts, installed packages and pending updates.
//! - `users`, `passwords`, `mfa`, `sessions`: identity (Argon2id, TOTP, EdDSA JWT, refresh tokens).
//! - `passkeys`: WebAuthn passkeys/security keys (second factor and passwordless login);
//!   `recovery`: one-time recovery codes for a lost factor.
//! - `access`: the caller re-checked per request, and the host scope (Admin: all; Operator: their groups).
//! - `groups`: host groups; `user_admin`: invitations, roles, disabling, MFA reset (Admin only).

pub mod access;
pub mod audit;
pub mod ca;
pub mod certs;
pub mod db;
pub mod enrollment;
pub mod error;
pub mod groups;
pub mod hosts;
pub mod job_signing;
pub mod jobs;
pub mod inventory;
pub mod mfa;
pub mod passkeys;
pub mod passwords;
pub mod recovery;
pub mod sessions;
pub mod state;
pub mod user_admin;
pub mod users;
#[cfg(test)]
pub mod testkit;
