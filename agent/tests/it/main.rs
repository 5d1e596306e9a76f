//! Integration tests of the agent crate (one binary).
//!
//! # Layout
//! - `deps`: the agent's dependency tree stays free of server/UI crates.
//! - `server`: the test-only stand-in for the server's listeners (real TLS, real mTLS),
//!   speaking the enrollment, check-in and job contracts.
//! - `flow`: enroll + check in.
//! - `jobs`: patch jobs with the real binary: runs, window, reboot policy, refusals, and the
//!   `kill -9` matrix.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deps;
mod flow;
mod jobs;
mod server;
