//! The edge every request passes: request id, tracing span, metrics, security headers.

use std::time::Instant;

use actix_web::{
    Error, HttpMessage,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use tracing::{Instrument, field};

use crate::state::AppState;

/// Header carrying the request id, honoured when the client (or proxy) sends a sane one.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, available to handlers through request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Path prefix of the interactive docs, which need a looser content security policy.
const DOCS_PREFIX: &str = "/docs";
const API_CSP: HeaderValue =
    HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
const DOCS_CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
);
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

/// Wraps every request: assigns its id, runs it in a span, records metrics and adds security headers.
pub(crate) async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_acceptable_request_id(value))
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        route = field::Empty,
        status = field::Empty,
    );
    // A caller that traces (a proxy, another service) makes this request part of its trace.
    cybervpn_telemetry::continue_trace(&span, |name| {
        req.headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    });

    // Handlers turn their errors into responses; only an inner middleware (CORS) returns `Err` here, and
    // routing needs sole ownership of the request, so there is no request left to build a response from.
    let mut response = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();

    let status = response.status();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    span.record("route", route.as_str());
    span.record("status", status.as_u16());
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(state) = &state {
        state
            .metrics
            .http
            .observe(method.as_str(), &route, status.as_u16(), elapsed);
    }
    span.in_scope(|| {
        // Successes are the hot path: logged at debug so a busy api is not throttled by its own logs.
        if status.is_server_error() {
            tracing::error!(elapsed_ms = elapsed * 1000.0, "request failed");
        } else if status.is_client_error() {
            tracing::info!(elapsed_ms = elapsed * 1000.0, "request rejected");
        } else {
            tracing::debug!(elapsed_ms = elapsed * 1000.0, "request served");
        }
    });

    let is_docs = response.request().path().starts_with(DOCS_PREFIX);
    let hsts = state.as_ref().is_some_and(|s| s.config.api.hsts);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, value);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        if is_docs { DOCS_CSP } else { API_CSP },
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    // Tokens, codes and personal data must not sit in shared caches; cacheable routes say so themselves.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// 1–128 characters of `[A-Za-z0-9._:-]`, so ids are safe in logs and headers.
fn is_acceptable_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::is_acceptable_request_id;

    #[test]
    fn request_ids_are_bounded_and_printable() {
        assert!(is_acceptable_request_id("abc-123_x.y:z"));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id("line\nbreak"));
        assert!(!is_acceptable_request_id(&"a".repeat(129)));
    }
}
