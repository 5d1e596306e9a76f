//! Integration tests of the agent crate (one binary).
//!
//! # Layout
//! - `deps`: the agent's dependency tree stays free of server/UI crates.
//! - `flow`: enroll + check in against a test-only TLS server (real TLS, real mTLS).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deps;
mod flow;
