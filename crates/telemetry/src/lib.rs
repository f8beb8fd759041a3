//! Observability shared by every binary.
//!
//! Owns the `tracing` subscriber (JSON or pretty logs, and OTLP export of spans with W3C trace-context
//! propagation), the Prometheus registry, and the typed metrics the services record; metric label values are
//! always bounded (route templates, never raw paths).

mod external;
mod ops;
mod trace;

pub use external::{AttemptError, ExternalMetrics, MAX_RETRIES};
pub use ops::{HealthCheck, OpsServer, Webhook, WebhookHandler, shutdown_signal};
pub use trace::{
    TRACEPARENT, Tracing, continue_from, continue_trace, current_trace_id, current_traceparent,
    test_subscriber, trace_headers,
};

use cybervpn_config::{LogConfig, LogFormat, TelemetryConfig};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use tracing_subscriber::{
    EnvFilter, Layer, Registry as SpanRegistry, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.level` is not a valid filter directive.
    #[error("invalid configuration key `log.level`: {0}")]
    InvalidLevel(String),
    /// A metric could not be registered (a programming error: duplicate name).
    #[error("metric registration failed: {0}")]
    Metric(#[from] prometheus::Error),
    /// The OTLP span exporter could not be built from `telemetry.otlp_endpoint`.
    #[error("invalid configuration key `telemetry.otlp_endpoint`: {0}")]
    Exporter(String),
}

/// Parses `log.level` into a filter, so a bad directive fails before anything starts.
pub fn log_filter(config: &LogConfig) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder()
        .parse(&config.level)
        .map_err(|err| TelemetryError::InvalidLevel(err.to_string()))
}

/// Installs the global `tracing` subscriber writing to stderr (stdout is left to command output), without
/// span export; a second call (as in tests) is a no-op.
pub fn init_logging(config: &LogConfig) -> Result<(), TelemetryError> {
    init(config, &TelemetryConfig::default(), "cybervpn").map(drop)
}

/// Installs the global `tracing` subscriber: logs to stderr and, when `telemetry.otlp_endpoint` is set, spans
/// exported over OTLP as `service.name` `default_service` unless configured otherwise. Call it inside the tokio
/// runtime, and [`Tracing::shutdown`] before exiting. A second call (as in tests) is a no-op.
pub fn init(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    default_service: &str,
) -> Result<Tracing, TelemetryError> {
    let filter = log_filter(log)?;
    let provider = trace::provider(telemetry, default_service)?;
    let logs: Box<dyn Layer<SpanRegistry> + Send + Sync> = match log.format {
        LogFormat::Json => fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    // `log.level` filters the logs only: spans are exported at `info` whatever the log level.
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(provider.as_ref().map(trace::layer))
        .try_init();
    // `try_init` fails only when a subscriber is already installed; then nothing of ours exports.
    Ok(match installed {
        Ok(()) => Tracing::new(provider),
        Err(_) => Tracing::disabled(),
    })
}

/// The Prometheus registry of one process, with the metrics it records.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP server metrics.
    pub http: HttpMetrics,
    /// Metrics of calls to outside systems.
    pub external: ExternalMetrics,
    /// Webhooks received, by source and outcome (`applied`, `ignored`, `bad_signature`).
    pub webhooks: prometheus::IntCounterVec,
}

impl Metrics {
    /// Creates a registry with every metric registered.
    pub fn new() -> Result<Self, TelemetryError> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        let external = ExternalMetrics::register(&registry)?;
        let webhooks = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "webhooks_received_total",
                "Webhooks received by source and outcome",
            ),
            &["source", "outcome"],
        )?;
        registry.register(Box::new(webhooks.clone()))?;
        Ok(Self {
            registry,
            http,
            external,
            webhooks,
        })
    }

    /// The registry, for services that add their own metrics.
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Content type of [`Metrics::render`].
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metrics of an HTTP server.
#[derive(Clone)]
pub struct HttpMetrics {
    /// `http_requests_total{method,route,status}`.
    pub requests_total: IntCounterVec,
    /// `http_request_duration_seconds{method,route}`.
    pub request_duration_seconds: HistogramVec,
}

impl HttpMetrics {
    fn register(registry: &Registry) -> Result<Self, TelemetryError> {
        let requests_total = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests served"),
            &["method", "route", "status"],
        )?;
        let request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request received to response ready",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["method", "route"],
        )?;
        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration_seconds.clone()))?;
        Ok(Self {
            requests_total,
            request_duration_seconds,
        })
    }

    /// Records one finished request; `route` must be a route template, never a raw path.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        // Clients choose the method: anything non-standard is folded so label values stay bounded.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        let status = status.to_string();
        self.requests_total
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.request_duration_seconds
            .with_label_values(&[method, route])
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_http_metrics_with_their_labels() {
        let metrics = Metrics::new().expect("registry");
        metrics.http.observe("GET", "/api/v1/plans", 200, 0.002);
        let text = String::from_utf8(metrics.render()).expect("utf8");
        assert!(
            text.contains(
                r#"http_requests_total{method="GET",route="/api/v1/plans",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("http_request_duration_seconds_bucket"));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let metrics = Metrics::new().expect("registry");
        metrics.http.observe("FOO1", "unmatched", 404, 0.001);
        metrics.http.observe("BAR", "unmatched", 404, 0.001);
        let text = String::from_utf8(metrics.render()).expect("utf8");
        assert!(
            text.contains(
                r#"http_requests_total{method="OTHER",route="unmatched",status="404"} 2"#
            ),
            "{text}"
        );
        assert!(!text.contains("FOO1"));
    }

    #[test]
    fn bad_level_names_the_key() {
        let config = LogConfig {
            level: "info,=[".to_owned(),
            ..LogConfig::default()
        };
        let err = log_filter(&config).expect_err("invalid");
        assert!(err.to_string().contains("log.level"));
    }
}
