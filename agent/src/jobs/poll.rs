//! The long poll: between check-ins the agent keeps one `JOBS_POLL_PATH` request open (the
//! server holds it up to [`MAX_POLL_WAIT_SECS`]) so a job scheduled "now" starts within
//! seconds. Paused while the worker is busy (the server would answer at once with the job
//! we cannot take yet); backs off on errors, e.g. against a server without the endpoint.

use std::time::{Duration, Instant};

use crate::backoff::{self, Backoff};
use crate::http;
use crate::proto::jobs::{JobPoll, JobPollResponse, MAX_POLL_WAIT_SECS};

use super::Jobs;

/// Shortest time between two polls (a server answering at once must not make us spin).
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// After an answer that only repeated jobs we already know.
const REPEAT_DELAY: Duration = Duration::from_secs(5);

impl Jobs {
    pub(super) async fn poll_loop(&self, client: reqwest::Client, url: String) {
        let mut backoff = Backoff::default();
        loop {
            self.idle().await;
            let started = Instant::now();
            let body = JobPoll { wait_secs: MAX_POLL_WAIT_SECS };
            let delay = match http::post_json::<_, JobPollResponse>(&client, &url, &body).await {
                Ok(response) => {
                    backoff.reset();
                    let delivered = response.jobs.len();
                    let taken = self.offer(response.jobs);
                    if delivered > 0 && taken == 0 {
                        REPEAT_DELAY
                    } else {
                        MIN_POLL_INTERVAL.saturating_sub(started.elapsed())
                    }
                }
                Err(e) => {
                    let delay = backoff::jitter(backoff.fail(), &mut rand::thread_rng());
                    let error = crate::checkin::error_chain(&e);
                    if backoff.failures() == 1 {
                        tracing::warn!(%error, retry_in_secs = delay.as_secs(), "job poll failed");
                    } else {
                        tracing::debug!(%error, retry_in_secs = delay.as_secs(), "job poll failed again");
                    }
                    delay
                }
            };
            tokio::time::sleep(delay).await;
        }
    }
}
