//! Patch jobs (issue 4): an operator targets hosts and groups (cut to their scope) with a
//! scope of updates, exclusions, a schedule (now, at a time, or inside a recurring window),
//! a rollout (canary wave, batches, at most M at once, halt on failures), a reboot policy and
//! Admin-defined hooks; the server signs one spec per host and the agents report back.
//!
//! The wire contract is `agent::proto::jobs`; the design every helper builds against is in
//! the team notes (JOBS-DESIGN). Server-side host states: `queued` -> `dispatched` (signed,
//! waiting for the agent) -> `received` -> `running` -> terminal.
//!
//! # Layout
//! - `model`: the `jobs` row decoded, enum encodings, wave sizes and the halt rule.
//! - `window`: maintenance windows and start times (jiff, bundled tz database).
//! - `targets`: hosts and groups -> host list, cut to the caller's scope.
//! - `create`: validation and the one-transaction insert; `preview`: the instant preview.
//! - `scheduler`: the tick every replica runs (dispatch, waves, halts; concurrency argument).
//! - `dispatch`: signed specs, what an agent is owed, waking long polls of other replicas.
//! - `notify`: the in-process hub long polls wait on.
//! - `results`: agent events (exactly-once terminal results) and reboot observation.
//! - `control`: cancel, cancel one host, resume, run a dry run for real.
//! - `queries`: lists, details, results and host history, cut to the caller's scope.
//! - `hooks`: Admin-defined pre/post commands.

pub mod control;
pub mod create;
pub mod dispatch;
pub mod hooks;
pub mod model;
pub mod notify;
pub mod preview;
pub mod queries;
pub mod results;
pub mod scheduler;
pub mod targets;
pub mod window;
#[cfg(test)]
mod tests;
