//! The transport: one request helper that authenticates, unwraps `{"response": …}`, maps errors,
//! retries only what is safe to repeat, and records metrics.

use std::{error::Error as _, fmt, sync::Arc, time::Duration};

use cybervpn_telemetry::ExternalMetrics;
use reqwest::{
    Method, StatusCode,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
    redirect,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::{Instrument as _, field};

use crate::PanelError;

/// `service` label of this client's metrics.
const SERVICE: &str = "remnawave";
/// How much of a non-JSON error body goes into an error message.
const MAX_MESSAGE_CHARS: usize = 200;
/// Shown instead of secrets.
const REDACTED: &str = "<redacted>";

/// How to reach and authenticate to the panel.
#[derive(Clone)]
pub struct PanelConfig {
    /// Panel origin without `/api`, such as `https://panel.example.com`.
    pub base_url: String,
    /// API token (secret: never in `Debug`, logs or errors).
    pub token: String,
    /// Headers some deployments require in front of the panel (`X-Api-Key`, `Cookie`); values are secret.
    pub extra_headers: Vec<(String, String)>,
    /// Limit for one attempt, from connecting to the last body byte.
    pub timeout: Duration,
    /// `X-Forwarded-For` value, needed (with `X-Forwarded-Proto`) when calling the app port directly.
    pub forwarded_for: String,
}

impl PanelConfig {
    /// A configuration with a 10 s timeout, no extra headers and `X-Forwarded-For: 127.0.0.1`.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token: token.into(),
            extra_headers: Vec::new(),
            timeout: Duration::from_secs(10),
            forwarded_for: "127.0.0.1".to_owned(),
        }
    }
}

impl fmt::Debug for PanelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .extra_headers
            .iter()
            .map(|(name, _)| (name.as_str(), REDACTED))
            .collect();
        f.debug_struct("PanelConfig")
            .field("base_url", &self.base_url)
            .field("token", &REDACTED)
            .field("extra_headers", &headers)
            .field("timeout", &self.timeout)
            .field("forwarded_for", &self.forwarded_for)
            .finish()
    }
}

/// Typed client of one Remnawave 3.x panel; cheap to clone.
#[derive(Clone)]
pub struct Panel {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `<base_url>/api`.
    api: String,
    /// Token and extra header values, scrubbed from every message we build.
    secrets: Vec<String>,
    metrics: ExternalMetrics,
}

impl fmt::Debug for Panel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panel")
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> PanelError {
    PanelError::Config(message.into())
}

impl Panel {
    /// Builds a client; fails on an unusable configuration (bad URL, empty token, invalid header).
    pub fn new(config: PanelConfig, metrics: ExternalMetrics) -> Result<Self, PanelError> {
        let base = config.base_url.trim().trim_end_matches('/');
        let url = reqwest::Url::parse(base)
            .map_err(|err| config_error(format!("base_url is not a URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error("base_url must be http or https"));
        }
        if url.path().ends_with("/api") {
            return Err(config_error("base_url must not include the /api suffix"));
        }
        if config.token.trim().is_empty() {
            return Err(config_error("token is empty"));
        }
        if config.timeout.is_zero() {
            return Err(config_error("timeout must be positive"));
        }

        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", config.token))
            .map_err(|_| config_error("token is not a valid HTTP header value"))?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(&config.forwarded_for)
                .map_err(|_| config_error("forwarded_for is not a valid HTTP header value"))?,
        );
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in &config.extra_headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| config_error(format!("extra header name `{name}` is invalid")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| config_error(format!("extra header `{name}` has an invalid value")))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(redirect::Policy::none())
            .user_agent(concat!("cybervpn-remnawave/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| config_error(format!("HTTP client: {err}")))?;

        // Short values are not worth scrubbing (and would mangle unrelated text).
        let secrets = std::iter::once(config.token)
            .chain(config.extra_headers.into_iter().map(|(_, value)| value))
            .filter(|secret| secret.len() >= 4)
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api: format!("{base}/api"),
                secrets,
                metrics,
            }),
        })
    }

    /// Sends `call` and returns the unwrapped `response` of its success body.
    pub(crate) async fn fetch<T: DeserializeOwned>(&self, call: Call) -> Result<T, PanelError> {
        #[derive(Deserialize)]
        struct Envelope<T> {
            response: T,
        }
        self.execute(&call, |body| {
            serde_json::from_slice::<Envelope<T>>(body)
                .map(|envelope| envelope.response)
                .map_err(|err| err.to_string())
        })
        .await
    }

    /// Sends `call`, whose success answer has no body worth reading (202, 204).
    pub(crate) async fn send(&self, call: Call) -> Result<(), PanelError> {
        self.execute(&call, |_| Ok(())).await
    }

    async fn execute<T>(
        &self,
        call: &Call,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, PanelError> {
        let body = match &call.body {
            Some(Err(reason)) => {
                return Err(PanelError::Invalid {
                    operation: call.operation,
                    reason: format!("request body: {reason}"),
                });
            }
            Some(Ok(body)) => Some(body.as_slice()),
            None => None,
        };
        // One span per call (retries included); the path is left out, it names users.
        let span = tracing::info_span!(
            "panel_request",
            operation = call.operation,
            method = %call.method,
            status = field::Empty,
        );
        self.inner
            .metrics
            .call(SERVICE, call.operation, call.repeatable, || async {
                self.attempt(call, body, &decode)
                    .await
                    .map(|(status, value)| (status.as_u16(), value))
            })
            .instrument(span)
            .await
    }

    async fn attempt<T>(
        &self,
        call: &Call,
        body: Option<&[u8]>,
        decode: &impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(StatusCode, T), PanelError> {
        let operation = call.operation;
        let url = format!("{}{}", self.inner.api, call.path);
        let mut request = self.inner.http.request(call.method.clone(), url);
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        for (name, value) in cybervpn_telemetry::trace_headers() {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.transport_error(operation, &err))?;
        let status = response.status();
        tracing::Span::current().record("status", status.as_u16());
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.transport_error(operation, &err))?;
        if !status.is_success() {
            return Err(self.api_error(operation, status, &bytes));
        }
        decode(&bytes)
            .map(|value| (status, value))
            .map_err(|reason| PanelError::Decode {
                operation,
                reason: self.redact(&reason),
            })
    }

    fn transport_error(&self, operation: &'static str, err: &reqwest::Error) -> PanelError {
        if err.is_timeout() {
            return PanelError::Timeout { operation };
        }
        // reqwest's own message is generic ("error sending request"): the cause chain says what happened.
        let mut reason = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        PanelError::Connection {
            operation,
            reason: self.redact(&reason),
        }
    }

    fn api_error(&self, operation: &'static str, status: StatusCode, body: &[u8]) -> PanelError {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ErrorBody {
            message: Option<serde_json::Value>,
            error_code: Option<String>,
            /// Validation failures list the offending fields here.
            errors: Option<serde_json::Value>,
        }
        let text = |value: serde_json::Value| match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(error) => {
                let mut message = error.message.map(text).unwrap_or_default();
                if let Some(errors) = error.errors {
                    message = format!("{message}: {}", text(errors));
                }
                (error.error_code, truncate(&message, 4 * MAX_MESSAGE_CHARS))
            }
            // A proxy's HTML or plain-text page.
            Err(_) => (
                None,
                truncate(&String::from_utf8_lossy(body), MAX_MESSAGE_CHARS),
            ),
        };
        let message = if message.trim().is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            message
        };
        PanelError::Api {
            operation,
            status: status.as_u16(),
            code,
            message: self.redact(&message),
        }
    }

    fn redact(&self, text: &str) -> String {
        self.inner
            .secrets
            .iter()
            .fold(text.to_owned(), |text, secret| {
                text.replace(secret, REDACTED)
            })
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// One panel request: what the transport needs to send, retry and label it.
pub(crate) struct Call {
    operation: &'static str,
    method: Method,
    /// Path below `/api`, with segments already escaped.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Result<Vec<u8>, String>>,
    repeatable: bool,
}

impl Call {
    fn new(method: Method, operation: &'static str, path: String) -> Self {
        Self {
            operation,
            method,
            path,
            query: Vec::new(),
            body: None,
            repeatable: false,
        }
    }

    /// A GET: reads are always safe to repeat.
    pub(crate) fn get(operation: &'static str, path: String) -> Self {
        Self::new(Method::GET, operation, path).repeatable()
    }

    /// A POST, not repeated unless marked [`Call::repeatable`].
    pub(crate) fn post(operation: &'static str, path: String) -> Self {
        Self::new(Method::POST, operation, path)
    }

    /// A PATCH of absolute values: safe to repeat.
    pub(crate) fn patch(operation: &'static str, path: String) -> Self {
        Self::new(Method::PATCH, operation, path).repeatable()
    }

    /// A DELETE: safe to repeat (the caller treats 404 as done).
    pub(crate) fn delete(operation: &'static str, path: String) -> Self {
        Self::new(Method::DELETE, operation, path).repeatable()
    }

    /// Marks the call as safe to send again after a transient failure.
    pub(crate) const fn repeatable(mut self) -> Self {
        self.repeatable = true;
        self
    }

    /// Sets a JSON body.
    pub(crate) fn json(mut self, body: &impl Serialize) -> Self {
        self.body = Some(serde_json::to_vec(body).map_err(|err| err.to_string()));
        self
    }

    /// Adds a query parameter when `value` is present.
    pub(crate) fn query(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.query.push((key, value.to_string()));
        }
        self
    }
}

/// Escapes a value for use as one path segment.
pub(crate) fn segment(raw: &str) -> String {
    raw.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> ExternalMetrics {
        cybervpn_telemetry::Metrics::new()
            .expect("metrics")
            .external
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut config = PanelConfig::new("https://panel.example", "tok-SECRET-123");
        config
            .extra_headers
            .push(("X-Api-Key".to_owned(), "key-SECRET-456".to_owned()));
        let text = format!("{config:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(text.contains("X-Api-Key"));
        let panel = Panel::new(config, metrics()).expect("panel");
        assert!(!format!("{panel:?}").contains("SECRET"));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let refused = |config: PanelConfig| Panel::new(config, metrics()).is_err();
        assert!(refused(PanelConfig::new("not a url", "token")));
        assert!(refused(PanelConfig::new("ftp://panel", "token")));
        assert!(refused(PanelConfig::new("https://panel/api", "token")));
        assert!(refused(PanelConfig::new("https://panel", " ")));
        let mut config = PanelConfig::new("https://panel", "token");
        config
            .extra_headers
            .push(("Bad Header".to_owned(), "x".to_owned()));
        let err = Panel::new(config, metrics()).expect_err("bad header");
        assert!(err.to_string().contains("Bad Header"));
        assert!(!refused(PanelConfig::new("https://panel/", "token")));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("c_1-a.b~"), "c_1-a.b~");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
