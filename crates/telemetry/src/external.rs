//! Metrics of calls this process makes to outside systems (the Remnawave panel, payment gateways).

use std::{
    hash::{BuildHasher, RandomState},
    time::{Duration, Instant},
};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::TelemetryError;

/// Retries of a call that is safe to repeat (the first attempt not counted).
pub const MAX_RETRIES: u32 = 2;

/// Wait before the first retry; doubles with each further one.
const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// A failed attempt at an outside system.
pub trait AttemptError: std::fmt::Display {
    /// Whether another attempt may succeed (timeouts, connection errors, 5xx, 429).
    fn is_retryable(&self) -> bool;
    /// The `status` label: the HTTP status, or `timeout` / `connection` / `decode`.
    fn metric_status(&self) -> String;
}

/// Metrics of requests to outside systems; label values are static names, never raw paths or ids.
#[derive(Clone)]
pub struct ExternalMetrics {
    /// `external_requests_total{service,operation,status}`; `status` is the HTTP status code or
    /// `timeout` / `connection` / `decode`.
    pub requests_total: IntCounterVec,
    /// `external_request_duration_seconds{service,operation}`.
    pub request_duration_seconds: HistogramVec,
}

impl ExternalMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, TelemetryError> {
        let requests_total = IntCounterVec::new(
            Opts::new(
                "external_requests_total",
                "Requests made to outside systems, by outcome",
            ),
            &["service", "operation", "status"],
        )?;
        let request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "external_request_duration_seconds",
                "Time from request sent to response read, per attempt",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["service", "operation"],
        )?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_seconds.clone()))?;
        Ok(Self {
            requests_total,
            request_duration_seconds,
        })
    }

    /// Records one attempt; `service` and `operation` must be static names (bounded label values).
    pub fn observe(&self, service: &str, operation: &str, status: &str, seconds: f64) {
        self.requests_total
            .with_label_values(&[service, operation, status])
            .inc();
        self.request_duration_seconds
            .with_label_values(&[service, operation])
            .observe(seconds);
    }
}

impl ExternalMetrics {
    /// Makes `attempt` once, or up to `1 + MAX_RETRIES` times when `repeatable` while it fails retryably, with
    /// exponential backoff and jitter between attempts; every attempt is recorded.
    pub async fn call<T, E, Fut>(
        &self,
        service: &'static str,
        operation: &'static str,
        repeatable: bool,
        mut attempt: impl FnMut() -> Fut,
    ) -> Result<T, E>
    where
        E: AttemptError,
        Fut: Future<Output = Result<(u16, T), E>>,
    {
        let attempts = if repeatable { 1 + MAX_RETRIES } else { 1 };
        let mut tried = 1;
        loop {
            let started = Instant::now();
            let result = attempt().await;
            let seconds = started.elapsed().as_secs_f64();
            let status = match &result {
                Ok((status, _)) => status.to_string(),
                Err(err) => err.metric_status(),
            };
            self.observe(service, operation, &status, seconds);
            match result {
                Ok((_, value)) => {
                    tracing::debug!(service, operation, %status, seconds, "external call");
                    return Ok(value);
                }
                Err(err) if tried < attempts && err.is_retryable() => {
                    let delay = backoff(tried);
                    tracing::warn!(service, operation, attempt = tried, ?delay, error = %err, "external call failed; retrying");
                    tokio::time::sleep(delay).await;
                    tried += 1;
                }
                Err(err) => {
                    tracing::debug!(service, operation, %status, seconds, error = %err, "external call failed");
                    return Err(err);
                }
            }
        }
    }
}

/// Wait after failed attempt number `attempt` (1-based): 100 ms doubling, plus up to 50 ms of jitter.
fn backoff(attempt: u32) -> Duration {
    let jitter = RandomState::new().hash_one(attempt) % 50;
    BACKOFF_BASE * 2_u32.saturating_pow(attempt.saturating_sub(1)) + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows() {
        assert!(backoff(1) < Duration::from_millis(150));
        assert!(backoff(2) >= Duration::from_millis(200));
    }

    #[test]
    fn records_outcomes_per_operation() {
        let registry = Registry::new();
        let metrics = ExternalMetrics::register(&registry).expect("register");
        metrics.observe("remnawave", "users.get", "200", 0.01);
        metrics.observe("remnawave", "users.get", "timeout", 5.0);
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .expect("encode");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains(
            r#"external_requests_total{operation="users.get",service="remnawave",status="timeout"} 1"#
        ), "{text}");
        assert!(text.contains("external_request_duration_seconds_count"));
    }
}
