//! Integration tests of the agent crate (one binary).
//!
//! # Layout
//! - `deps`: the agent's dependency tree stays free of server/UI crates.
//! - `server`: the test-only stand-in for the server's listeners (real TLS, real mTLS),
//!   speaking the enrollment, check-in and job contracts.
//! - `flow`: enroll + check in.
//! - `jobs`: patch jobs with the real binary: runs, window, reboot policy, refusals, and the
//!   `kill -9` matrix.
//! - `pkg_injection`: fake package managers record their argv (hostile names, exact commands).
//! - `pkg_apt`: the real apt-get/dpkg against a local repository (root).
//! - `pkg_rpm`: the real dnf and zypper on an install-root tree.
//! - `pkg_support`: fakes, fixtures, skip rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod deps;
mod flow;
mod jobs;
mod pkg_apt;
mod pkg_injection;
mod pkg_rpm;
mod pkg_support;
mod server;
