//! Metrics of calls this process makes to outside systems (the Remnawave panel, payment gateways).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::TelemetryError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
