//! Distributed tracing: OTLP export of `tracing` spans and W3C trace-context propagation.
//!
//! With no `telemetry.otlp_endpoint` no OpenTelemetry layer is installed: spans have no trace context, the
//! helpers below find none to propagate, and incoming `traceparent` headers are ignored.

use std::{collections::HashMap, time::Duration};

use cybervpn_config::TelemetryConfig;
use opentelemetry::{
    KeyValue,
    propagation::{Extractor, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, filter::LevelFilter, filter::Targets, registry::LookupSpan};

use crate::TelemetryError;

/// The W3C header that carries the trace id and parent span id.
pub const TRACEPARENT: &str = "traceparent";

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Exports spans while alive; [`Tracing::shutdown`] flushes the spans still buffered.
#[derive(Debug)]
#[must_use = "spans buffered at exit are lost unless `shutdown` is called"]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    pub(crate) const fn new(provider: Option<SdkTracerProvider>) -> Self {
        Self { provider }
    }

    /// No export (tests, tools).
    pub const fn disabled() -> Self {
        Self { provider: None }
    }

    /// Whether spans are exported.
    pub const fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter (blocking work runs off the async threads).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "trace export: final flush failed"),
            Err(err) => tracing::warn!(error = %err, "trace export: final flush panicked"),
        }
    }
}

/// Builds the OTLP exporter when an endpoint is configured; must run inside the tokio runtime.
pub(crate) fn provider(
    config: &TelemetryConfig,
    default_service: &str,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|err| TelemetryError::Exporter(err.to_string()))?;
    let service = config
        .service_name
        .clone()
        .unwrap_or_else(|| default_service.to_owned());
    let resource = Resource::builder_empty()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        config.trace_sample_ratio,
    )));
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(sampler)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The layer that turns `tracing` spans into OpenTelemetry spans, leaving out the exporter's own transport.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + use<S>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    // Spans of the HTTP/2 stack would describe the export itself (and feed it forever).
    let targets = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("h2", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("tonic", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry_otlp", LevelFilter::OFF);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("cybervpn"))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_filter(targets)
}

/// The `traceparent` of the current span, if it is traced; stored with work handed to another process.
pub fn current_traceparent() -> Option<String> {
    trace_headers()
        .into_iter()
        .find_map(|(name, value)| (name == TRACEPARENT).then_some(value))
}

/// The W3C trace-context headers (`traceparent`, and `tracestate` when set) of the current span; empty when
/// it is not traced. Add them to outgoing requests.
pub fn trace_headers() -> Vec<(&'static str, String)> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier
        .into_iter()
        .filter_map(|(name, value)| match name.as_str() {
            TRACEPARENT => Some((TRACEPARENT, value)),
            "tracestate" => Some(("tracestate", value)),
            _ => None,
        })
        .collect()
}

/// Makes `span` a child of the remote span whose headers `header` reads (`traceparent`, `tracestate`); a
/// missing or malformed `traceparent` leaves `span` where it was. Call it before entering `span`.
pub fn continue_trace<'a>(span: &tracing::Span, header: impl Fn(&str) -> Option<&'a str>) {
    let Some(traceparent) = header(TRACEPARENT) else {
        return;
    };
    let carrier = Carrier {
        traceparent,
        tracestate: header("tracestate"),
    };
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        // Fails only without the OpenTelemetry layer, when there is nothing to continue.
        let _ = span.set_parent(context);
    }
}

/// Makes `span` a child of the span that `traceparent` names (as stored by [`current_traceparent`]).
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    continue_trace(span, |name| {
        if name == TRACEPARENT {
            traceparent
        } else {
            None
        }
    });
}

struct Carrier<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![TRACEPARENT];
        if self.tracestate.is_some() {
            keys.push("tracestate");
        }
        keys
    }
}

/// A subscriber that traces without exporting, for tests of propagation; spans are always sampled.
#[doc(hidden)]
pub fn test_subscriber() -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::layer::SubscriberExt as _;
    let provider = SdkTracerProvider::builder().build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
}

/// The trace id of the current span as 32 hex digits, if it is traced.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn nothing_propagates_without_the_layer() {
        let span = tracing::info_span!("untraced");
        continue_from(&span, Some(PARENT));
        let _entered = span.enter();
        assert_eq!(current_traceparent(), None);
        assert!(trace_headers().is_empty());
    }

    #[test]
    fn a_span_continues_the_remote_trace_and_hands_it_on() {
        tracing::subscriber::with_default(test_subscriber(), || {
            let span = tracing::info_span!("server");
            continue_trace(&span, |name| match name {
                "traceparent" => Some(PARENT),
                "tracestate" => Some("vendor=1"),
                _ => None,
            });
            let _entered = span.enter();
            assert_eq!(
                current_trace_id().as_deref(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            let child = tracing::info_span!("client");
            let _child = child.enter();
            let headers: HashMap<_, _> = trace_headers().into_iter().collect();
            let traceparent = &headers[TRACEPARENT];
            assert!(
                traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{traceparent}"
            );
            assert!(!traceparent.contains("00f067aa0ba902b7"), "a new span id");
            assert_eq!(headers["tracestate"], "vendor=1");
            assert_eq!(current_traceparent().as_ref(), Some(traceparent));
        });
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        tracing::subscriber::with_default(test_subscriber(), || {
            let span = tracing::info_span!("server");
            continue_from(&span, Some("00-not-a-trace-01"));
            let _entered = span.enter();
            let trace_id = current_trace_id().expect("traced");
            assert_eq!(trace_id.len(), 32);
            assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        });
    }
}
