//! `pm-agent`: the small agent that runs on every managed host.
//!
//! # Layout
//! - [`proto`]: wire types shared with the server (serde only; the server depends on this
//!   crate with default features off and gets nothing else); `proto::jobs`: patch jobs.
//! - [`pkgname`]: package-name rules per package manager, shared with the server.
//! - `client` feature (default): everything the agent binary needs:
//!   - `config`: `agent.toml` in the state dir; `state`: the state dir's files, written atomically.
//!   - `tls`: the three rustls client configs (CA fetch, pinned web, pinned mTLS); `http`:
//!     JSON requests with them and the server's error bodies.
//!   - `enroll`: key pair + CSR, CA pinning, the enrollment request.
//!   - `checkin`: one check-in and the foreground loop; `ack`: which inventory the server
//!     holds; `backoff`: retry delays and jitter.
//!   - `facts`: os-release, kernel, arch, uptime, reboot-required.
//!   - `jobs`: patch jobs: verification, the on-disk journal, the runner, reports, reboot.
//!   - `pkg`: one backend per package manager behind [`pkg::PackageBackend`] (apt, dnf,
//!     zypper), with the program runner and the snapshot diff.
//!   - `debversion`: dpkg's version ordering; `rpmversion`: rpm's.
//!   - `error`: the agent's error enum.

// Tests may unwrap; the non-test build keeps the workspace's deny.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod pkgname;
pub mod proto;

#[cfg(feature = "client")]
pub mod ack;
#[cfg(feature = "client")]
pub mod backoff;
#[cfg(feature = "client")]
pub mod checkin;
#[cfg(feature = "client")]
pub mod config;
#[cfg(feature = "client")]
pub mod debversion;
#[cfg(feature = "client")]
pub mod enroll;
#[cfg(feature = "client")]
pub mod error;
#[cfg(feature = "client")]
pub mod facts;
#[cfg(feature = "client")]
pub mod http;
#[cfg(feature = "client")]
pub mod jobs;
#[cfg(feature = "client")]
pub mod pkg;
#[cfg(feature = "client")]
pub mod rpmversion;
#[cfg(feature = "client")]
pub mod state;
#[cfg(feature = "client")]
pub mod tls;

#[cfg(feature = "client")]
pub use error::{AgentError, Result};

/// The agent's version, reported in every check-in.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
