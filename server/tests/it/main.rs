//! Integration tests: the real server on 127.0.0.1:0, real TLS, real databases
//! (`PM_TEST_DATABASE=sqlite|postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent_listener;
mod cli;
mod common;
mod e2e;
mod enroll;
mod passkeys;
mod permissions;
mod tls;
mod web;
