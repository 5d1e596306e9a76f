//! Server functions (thin adapters to the backend) and the view types they exchange.
//!
//! # Layout
//! - `dto`: view types shared by the WASM front end and the server.
//! - `error`: `AppError`, the one error type of every server function (stable `code`).
//! - `auth`: login (password, TOTP, passkey, recovery code, passwordless), first-run setup,
//!   logout, `me`.
//! - `account`: the signed-in user's passkeys, TOTP and recovery codes.
//! - `hosts`: host list and detail, installed packages, pending updates.
//! - `enroll`: enrollment tokens (admin).
//! - `groups`, `users`: host groups and user management (admin).
//! - `jobs`, `job_dto`: patch jobs (preview, create, list, detail, cancel, resume, results);
//!   `hooks`: Admin-defined pre/post commands.
//! - `ctx` (server only): `AppState`, cookies, client address, `require_user`.
//!
//! Every endpoint has a fixed path under `/api/` (`auth/*` must stay reachable without a
//! session; everything else calls `require_user`).
pub mod account;
pub mod auth;
#[cfg(feature = "ssr")]
pub mod ctx;
pub mod dto;
pub mod enroll;
pub mod error;
pub mod groups;
pub mod hooks;
pub mod hosts;
pub mod job_dto;
pub mod jobs;
pub mod users;
