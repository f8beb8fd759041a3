//! Typed background jobs: Redis (apalis) and in-process queues, retries with backoff, dead letters, metrics.
//!
//! Owns the job contract ([`Job`]: a stable name that is also the queue, and a retry policy), the producer
//! handle ([`Queue`]), the consumer ([`Worker`]) and the dead-letter set admins list and re-drive.
//! Delivery is at least once: a handler may see a job again after a crash, so handlers must be idempotent.
#![forbid(unsafe_code)]

mod memory;
mod metrics;
mod queue;
mod redis_backend;
mod retry;
mod worker;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use crate::metrics::JobMetrics;
pub use crate::queue::Queue;
pub use crate::retry::RetryPolicy;
pub use crate::worker::Worker;

pub mod catalog;
#[cfg(feature = "outbox")]
pub mod outbox;

/// A background job: its payload type, stable name (also its queue) and retry policy.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// Stable name of the job and its queue; never derived from the Rust type path, so moving the type is safe.
    const NAME: &'static str;
    /// How often and how patiently a failing job is retried before it is dead-lettered.
    const RETRY: RetryPolicy = RetryPolicy::DEFAULT;
}

/// Why a job handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A transient failure: the job is tried again after a backoff, until its attempts run out.
    #[error("{0}")]
    Retry(String),
    /// A failure that retrying cannot fix: the job goes to the dead-letter set now.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    /// A transient failure of `operation`.
    pub fn retry(operation: &str, cause: impl std::fmt::Display) -> Self {
        Self::Retry(format!("{operation}: {cause}"))
    }

    /// A permanent failure of `operation`.
    pub fn permanent(operation: &str, cause: impl std::fmt::Display) -> Self {
        Self::Permanent(format!("{operation}: {cause}"))
    }

    /// The failure message.
    pub fn message(&self) -> &str {
        match self {
            Self::Retry(message) | Self::Permanent(message) => message,
        }
    }
}

/// A queue failure inside a handler (say, pushing a follow-up job) is transient.
impl From<QueueError> for JobError {
    fn from(err: QueueError) -> Self {
        Self::Retry(err.to_string())
    }
}

/// Turns any error into a [`JobError`] that names the failed operation: `repo.load(id).await.or_retry("load order")?`.
pub trait JobResultExt<T> {
    /// Maps an error to [`JobError::Retry`].
    fn or_retry(self, operation: &str) -> Result<T, JobError>;
    /// Maps an error to [`JobError::Permanent`].
    fn or_permanent(self, operation: &str) -> Result<T, JobError>;
}

impl<T, E: std::fmt::Display> JobResultExt<T> for Result<T, E> {
    fn or_retry(self, operation: &str) -> Result<T, JobError> {
        self.map_err(|err| JobError::retry(operation, err))
    }

    fn or_permanent(self, operation: &str) -> Result<T, JobError> {
        self.map_err(|err| JobError::permanent(operation, err))
    }
}

/// What a handler knows about the delivery it is processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    /// Job id returned by [`Queue::push`]; the same on every attempt and after a re-drive.
    pub job_id: String,
    /// 1 on the first delivery, incremented on each retry (reset to 1 by a re-drive).
    pub attempt: u32,
    /// The attempt after which a retryable failure is dead-lettered ([`RetryPolicy::max_attempts`]).
    pub max_attempts: u32,
}

impl JobContext {
    /// Whether a retryable failure of this attempt dead-letters the job.
    pub const fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// A job that failed permanently or ran out of attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadJob {
    /// Job id.
    pub id: String,
    /// Job name ([`Job::NAME`]).
    pub name: String,
    /// The job's payload as pushed.
    pub payload: serde_json::Value,
    /// The last failure message.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the job was dead-lettered.
    pub failed_at: DateTime<Utc>,
}

/// Why a queue or worker operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused or could not be reached.
    #[error("job queue: {operation} failed: {source}")]
    Redis {
        /// What was being done.
        operation: &'static str,
        /// The Redis error.
        #[source]
        source: redis::RedisError,
    },
    /// A payload or a stored record could not be (de)serialised.
    #[error("job queue: {operation} failed: {source}")]
    Json {
        /// What was being done.
        operation: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The worker was set up wrongly (a programming error).
    #[error("job worker: {0}")]
    Config(String),
    /// A consumer task of the worker crashed.
    #[error("job worker: consumer task failed: {0}")]
    Crashed(String),
}

impl QueueError {
    pub(crate) fn redis(operation: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Redis { operation, source }
    }

    pub(crate) fn json(operation: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| Self::Json { operation, source }
    }
}

/// What travels through a queue: the payload plus the delivery state that survives retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub(crate) id: String,
    pub(crate) attempt: u32,
    pub(crate) payload: serde_json::Value,
    /// W3C `traceparent` of the span that pushed the job: the handler's span continues that trace. Absent
    /// from jobs pushed untraced (or before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trace_context: Option<String>,
}
