//! Posting [`JobEvent`]s to the server. Delivery is at least once: an event is retried with
//! backoff until the server answers it, unless the answer is a refusal that retrying cannot
//! change (a 4xx other than 408/429). The server makes repeats harmless (`duplicate`).

use std::time::Duration;

use crate::error::{AgentError, Result};
use crate::http;
use crate::proto::jobs::{JobEvent, JobEventResponse, JobState};

/// First retry delay; doubles up to [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Reporter {
    client: reqwest::Client,
    url: String,
}

/// How posting an event ended.
#[derive(Debug)]
pub enum Posted {
    Answered(JobEventResponse),
    /// The server refused it for good (the error says why); do not retry.
    Refused(AgentError),
}

impl Reporter {
    pub fn new(client: reqwest::Client, url: String) -> Reporter {
        Reporter { client, url }
    }

    pub async fn post_once(&self, event: &JobEvent) -> Result<JobEventResponse> {
        http::post_json(&self.client, &self.url, event).await
    }

    /// Retries until the server answers. `max_attempts`: `None` = forever.
    pub async fn post(&self, event: &JobEvent, max_attempts: Option<u32>) -> Result<Posted> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.post_once(event).await {
                Ok(answer) => {
                    tracing::info!(job_id = %event.job_id, state = event.state.as_str(), proceed = answer.proceed, duplicate = answer.duplicate, "job event accepted");
                    return Ok(Posted::Answered(answer));
                }
                Err(e) if !e.is_transient() => {
                    tracing::warn!(job_id = %event.job_id, state = event.state.as_str(), error = %e, "server refused the job event");
                    return Ok(Posted::Refused(e));
                }
                Err(e) => {
                    if max_attempts.is_some_and(|max| attempt >= max) {
                        return Err(e);
                    }
                    tracing::warn!(job_id = %event.job_id, state = event.state.as_str(), error = %crate::checkin::error_chain(&e), retry_in_secs = delay.as_secs(), "cannot post the job event; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}

/// A non-terminal event.
pub fn event(job_id: &str, state: JobState, at: i64) -> JobEvent {
    JobEvent { job_id: job_id.to_string(), state, at, result: None }
}
