//! Integration tests: the real server on 127.0.0.1:0, real TLS, real databases
//! (`PM_TEST_DATABASE=sqlite|postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agent_listener;
mod agent_sim;
mod cli;
mod common;
mod e2e;
mod enroll;
mod jobs;
mod passkeys;
mod permissions;
mod tls;
mod web;
