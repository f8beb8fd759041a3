//! Stripe: Checkout Sessions over the form-encoded API, webhook signature verification, and typed events.
//!
//! Wire facts are the shared `contracts/payments.md`: `Authorization: Bearer sk_…`, an `Idempotency-Key` on every
//! create (so retries are safe), amounts as integer minor units with lowercase currency codes, and
//! `Stripe-Signature: t=…,v1=…` checked against HMAC-SHA256 keyed with the endpoint secret *as is*.

use std::{collections::BTreeMap, error::Error as _, fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use cybervpn_domain::{Currency, Money};
use cybervpn_telemetry::ExternalMetrics;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{
    Method, StatusCode,
    header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue},
    redirect,
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// `service` label of this client's metrics.
const SERVICE: &str = "stripe";
/// Stripe's production API origin.
pub const DEFAULT_API_URL: &str = "https://api.stripe.com/";
/// How old (or how far in the future) a webhook's `t=` may be: Stripe's libraries' default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// Operation label of [`Stripe::create_checkout_session`].
const CREATE_SESSION: &str = "checkout.sessions.create";
/// Operation label of [`Stripe::retrieve_checkout_session`].
const RETRIEVE_SESSION: &str = "checkout.sessions.retrieve";
/// Operation label of refund creation.
const CREATE_REFUND: &str = "refunds.create";
/// How much of a non-JSON error body goes into an error message.
const MAX_MESSAGE_CHARS: usize = 200;
/// Stripe refuses longer idempotency keys.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// A longer `Stripe-Signature` header is not one Stripe sent.
const MAX_SIGNATURE_HEADER_LEN: usize = 8 * 1024;
/// Shown instead of secrets.
const REDACTED: &str = "<redacted>";

/// How to reach and authenticate to Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    /// API origin, `https://api.stripe.com/` in production (a loopback fake in tests).
    pub api_url: String,
    /// Secret API key `sk_…` or restricted key `rk_…` (secret: never in `Debug`, logs or errors).
    pub secret_key: String,
    /// Limit for one attempt, from connecting to the last body byte.
    pub timeout: Duration,
}

impl StripeConfig {
    /// A configuration for the production API with a 10 s timeout.
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            secret_key: secret_key.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("api_url", &self.api_url)
            .field("secret_key", &REDACTED)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What we ask Stripe to charge for one payment of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// Our payment id, sent as `client_reference_id` and `metadata[payment_id]`.
    pub payment_id: Uuid,
    /// The price; USD or RUB only (Telegram Stars are not a Stripe currency).
    pub amount: Money,
    /// The line item's name shown on the checkout page.
    pub product_name: String,
    /// Where Stripe sends the buyer after paying.
    pub success_url: String,
    /// Where Stripe sends the buyer who gives up.
    pub cancel_url: String,
}

/// Whether a Checkout Session's money has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The funds are available: safe to grant.
    Paid,
    /// Not paid yet (or an asynchronous method such as a bank debit is still pending).
    Unpaid,
    /// Nothing to pay (a 100 % discount).
    NoPaymentRequired,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

/// Where a Checkout Session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// The buyer may still pay.
    Open,
    /// The checkout finished (payment may still be processing for asynchronous methods).
    Complete,
    /// The session expired unpaid.
    Expired,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

/// A Stripe Checkout Session, as created, retrieved, or carried by a `checkout.session.*` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    /// Stripe's id, `cs_…`.
    pub id: String,
    /// The hosted checkout page; absent once the session is complete or expired.
    #[serde(default)]
    pub url: Option<String>,
    /// Whether the money arrived.
    pub payment_status: PaymentStatus,
    /// Open, complete or expired.
    #[serde(default)]
    pub status: Option<SessionStatus>,
    /// Total in the currency's minor units.
    #[serde(default)]
    pub amount_total: Option<i64>,
    /// Lowercase ISO currency code, such as `usd`.
    #[serde(default)]
    pub currency: Option<String>,
    /// Our payment id, as sent.
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// Our metadata, as sent (`payment_id`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// The PaymentIntent, once there is one (refund events refer to it).
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
}

impl CheckoutSession {
    /// Whether Stripe says the money arrived (`payment_status = paid`).
    pub fn is_paid(&self) -> bool {
        self.payment_status == PaymentStatus::Paid
    }

    /// Our payment id from `metadata[payment_id]`, else `client_reference_id`; `None` if absent,
    /// unparsable, or the two disagree.
    pub fn payment_id(&self) -> Option<Uuid> {
        let parse = |text: &String| Uuid::parse_str(text).ok();
        let from_metadata = self.metadata.get("payment_id").map(parse);
        let from_reference = self.client_reference_id.as_ref().map(parse);
        match (from_metadata, from_reference) {
            (Some(Some(a)), Some(Some(b))) if a != b => None,
            (Some(Some(id)), _) | (None, Some(Some(id))) => Some(id),
            _ => None,
        }
    }

    /// The total as [`Money`], when Stripe reported one in USD or RUB.
    pub fn amount(&self) -> Option<Money> {
        money(self.amount_total?, self.currency.as_deref()?)
    }
}

/// A refund Stripe created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Refund {
    /// Stripe's id, `re_…`.
    pub id: String,
    /// `pending`, `succeeded`, `failed`, `canceled` or `requires_action`.
    pub status: String,
    /// Amount refunded, in minor units.
    pub amount: i64,
    /// Lowercase ISO currency code.
    pub currency: String,
}

/// A charge, as carried by a `charge.refunded` event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Charge {
    /// Stripe's id, `ch_…` (or `py_…`).
    pub id: String,
    /// The PaymentIntent the charge belongs to: links the refund to a Checkout Session.
    #[serde(default, deserialize_with = "expandable_id")]
    pub payment_intent: Option<String>,
    /// Amount charged, in minor units.
    pub amount: i64,
    /// Amount refunded so far, in minor units (may be partial).
    pub amount_refunded: i64,
    /// Lowercase ISO currency code.
    pub currency: String,
    /// Whether the whole charge was refunded.
    #[serde(default)]
    pub refunded: bool,
}

impl Charge {
    /// The refunded amount as [`Money`], when in USD or RUB.
    pub fn refunded_amount(&self) -> Option<Money> {
        money(self.amount_refunded, &self.currency)
    }
}

fn money(amount_minor: i64, currency: &str) -> Option<Money> {
    let currency: Currency = currency.parse().ok()?;
    if currency == Currency::Xtr {
        return None;
    }
    Money::new(amount_minor, currency).ok()
}

/// A field Stripe sends as an id string, `null`, or (when expanded) an object with an `id`.
fn expandable_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Expandable {
        Id(String),
        Object { id: String },
    }
    Ok(
        Option::<Expandable>::deserialize(deserializer)?.map(|value| match value {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }),
    )
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Why a Stripe call failed; every variant names the operation, none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error status and its `{"error": {…}}` body.
    #[error("stripe {operation}: HTTP {status}{}: {message}", kind_suffix(.kind.as_deref(), .code.as_deref()))]
    Api {
        /// The operation, such as `checkout.sessions.create`.
        operation: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// Stripe's `error.type` (`invalid_request_error`, `idempotency_error`, `api_error`, …).
        kind: Option<String>,
        /// Stripe's `error.code` (`resource_missing`, …), when given.
        code: Option<String>,
        /// The offending parameter, when Stripe names one.
        param: Option<String>,
        /// Stripe's `error.message`, or the start of a non-JSON body.
        message: String,
    },
    /// No complete answer within the configured timeout.
    #[error("stripe {operation}: timed out")]
    Timeout {
        /// The operation, such as `checkout.sessions.create`.
        operation: &'static str,
    },
    /// The connection failed or was closed before a complete answer.
    #[error("stripe {operation}: connection failed: {reason}")]
    Connection {
        /// The operation, such as `checkout.sessions.create`.
        operation: &'static str,
        /// The transport error chain.
        reason: String,
    },
    /// A success answer whose body is not a Checkout Session.
    #[error("stripe {operation}: undecodable answer: {reason}")]
    Decode {
        /// The operation, such as `checkout.sessions.retrieve`.
        operation: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// The request was refused before being sent (XTR amount, empty idempotency key, bad URL).
    #[error("stripe {operation}: {reason}")]
    Invalid {
        /// The operation, such as `checkout.sessions.create`.
        operation: &'static str,
        /// What is wrong with the arguments.
        reason: String,
    },
    /// The client configuration is unusable.
    #[error("stripe client configuration: {0}")]
    Config(String),
}

fn kind_suffix(kind: Option<&str>, code: Option<&str>) -> String {
    match (kind, code) {
        (Some(kind), Some(code)) => format!(" {kind}/{code}"),
        (Some(one), None) | (None, Some(one)) => format!(" {one}"),
        (None, None) => String::new(),
    }
}

impl StripeError {
    /// Whether trying again (with the same idempotency key) may succeed: timeouts, connection failures,
    /// 5xx, 429 and 409 (a concurrent request with the same key).
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429 || *status == 409,
            Self::Decode { .. } | Self::Invalid { .. } | Self::Config(_) => false,
        }
    }

    /// The operation that failed, when the error comes from one.
    pub const fn operation(&self) -> Option<&'static str> {
        match self {
            Self::Api { operation, .. }
            | Self::Timeout { operation }
            | Self::Connection { operation, .. }
            | Self::Decode { operation, .. }
            | Self::Invalid { operation, .. } => Some(operation),
            Self::Config(_) => None,
        }
    }

    /// The HTTP status of an error answer.
    pub const fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Stripe's `error.type`, when Stripe sent one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Self::Api { kind, .. } => kind.as_deref(),
            _ => None,
        }
    }
}

fn config_error(message: impl Into<String>) -> StripeError {
    StripeError::Config(message.into())
}

/// Typed Stripe client; cheap to clone.
#[derive(Clone)]
pub struct Stripe {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// `api_url` without its trailing slash.
    base: String,
    /// The secret key, scrubbed from every message we build.
    secret: String,
    metrics: ExternalMetrics,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// One Stripe request: what the transport needs to send, retry and label it.
struct Call {
    operation: &'static str,
    method: Method,
    /// Path below the origin, starting `/v1/`, segments already escaped.
    path: String,
    form: Option<Vec<(&'static str, String)>>,
    idempotency_key: Option<String>,
    repeatable: bool,
}

impl Stripe {
    /// Builds a client; fails on an unusable configuration (bad URL, missing or publishable key, zero timeout).
    pub fn new(config: StripeConfig, metrics: ExternalMetrics) -> Result<Self, StripeError> {
        let base = config.api_url.trim().trim_end_matches('/');
        let url = reqwest::Url::parse(base)
            .map_err(|err| config_error(format!("api_url is not a URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error("api_url must be http or https"));
        }
        if url.path().trim_end_matches('/').ends_with("/v1") {
            return Err(config_error("api_url must not include the /v1 suffix"));
        }
        let key = config.secret_key.trim();
        if key.is_empty() {
            return Err(config_error("secret_key is empty"));
        }
        if key.starts_with("pk_") {
            return Err(config_error(
                "secret_key is a publishable key (pk_…); a secret key (sk_…) is required",
            ));
        }
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(config_error(
                "secret_key must be a secret (sk_…) or restricted (rk_…) key",
            ));
        }
        if config.timeout.is_zero() {
            return Err(config_error("timeout must be positive"));
        }

        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| config_error("secret_key is not a valid HTTP header value"))?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));

        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(redirect::Policy::none())
            .user_agent(concat!("cybervpn-payments/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| config_error(format!("HTTP client: {err}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: base.to_owned(),
                secret: key.to_owned(),
                metrics,
            }),
        })
    }

    /// Creates a hosted Checkout Session for one payment; the same `idempotency_key` (one per payment)
    /// makes repeats, ours or the retries', return the same session.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let invalid = |reason: String| StripeError::Invalid {
            operation: CREATE_SESSION,
            reason,
        };
        let key = idempotency_key.trim();
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.is_ascii() {
            return Err(invalid(
                "idempotency key must be 1 to 255 ASCII characters".to_owned(),
            ));
        }
        let form = checkout_form(request).map_err(invalid)?;
        self.execute(Call {
            operation: CREATE_SESSION,
            method: Method::POST,
            path: "/v1/checkout/sessions".to_owned(),
            form: Some(form),
            idempotency_key: Some(key.to_owned()),
            // The idempotency key makes a repeated create return the first session.
            repeatable: true,
        })
        .await
    }

    /// Fetches a Checkout Session by id (`cs_…`): the authoritative state, whatever a webhook said.
    pub async fn retrieve_checkout_session(
        &self,
        id: &str,
    ) -> Result<CheckoutSession, StripeError> {
        if id.trim().is_empty() {
            return Err(StripeError::Invalid {
                operation: RETRIEVE_SESSION,
                reason: "session id is empty".to_owned(),
            });
        }
        self.execute(Call {
            operation: RETRIEVE_SESSION,
            method: Method::GET,
            path: format!("/v1/checkout/sessions/{}", segment(id)),
            form: None,
            idempotency_key: None,
            repeatable: true,
        })
        .await
    }

    /// Refunds the whole of a PaymentIntent (`pi_…`); the same `idempotency_key` (one per payment) makes
    /// repeats return the first refund. Stripe then sends `charge.refunded`.
    pub async fn refund_payment_intent(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
    ) -> Result<Refund, StripeError> {
        if !payment_intent.starts_with("pi_") {
            return Err(StripeError::Invalid {
                operation: CREATE_REFUND,
                reason: "not a PaymentIntent id (pi_…)".to_owned(),
            });
        }
        self.execute(Call {
            operation: CREATE_REFUND,
            method: Method::POST,
            path: "/v1/refunds".to_owned(),
            form: Some(vec![("payment_intent", payment_intent.to_owned())]),
            idempotency_key: Some(idempotency_key.to_owned()),
            repeatable: true,
        })
        .await
    }

    async fn execute<T: DeserializeOwned>(&self, call: Call) -> Result<T, StripeError> {
        self.inner
            .metrics
            .call(SERVICE, call.operation, call.repeatable, || async {
                self.attempt::<T>(&call)
                    .await
                    .map(|(status, value)| (status.as_u16(), value))
            })
            .await
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call,
    ) -> Result<(StatusCode, T), StripeError> {
        let operation = call.operation;
        let url = format!("{}{}", self.inner.base, call.path);
        let mut request = self.inner.http.request(call.method.clone(), url);
        if let Some(key) = &call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(form) = &call.form {
            request = request.form(form);
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.transport_error(operation, &err))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.transport_error(operation, &err))?;
        if !status.is_success() {
            return Err(self.api_error(operation, status, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map(|value| (status, value))
            .map_err(|err| StripeError::Decode {
                operation,
                reason: self.redact(&err.to_string()),
            })
    }

    fn transport_error(&self, operation: &'static str, err: &reqwest::Error) -> StripeError {
        if err.is_timeout() {
            return StripeError::Timeout { operation };
        }
        // reqwest's own message is generic ("error sending request"): the cause chain says what happened.
        let mut reason = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        StripeError::Connection {
            operation,
            reason: self.redact(&reason),
        }
    }

    fn api_error(&self, operation: &'static str, status: StatusCode, body: &[u8]) -> StripeError {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: ErrorDetail,
        }
        #[derive(Deserialize)]
        struct ErrorDetail {
            #[serde(rename = "type")]
            kind: Option<String>,
            code: Option<String>,
            param: Option<String>,
            message: Option<String>,
        }
        let (kind, code, param, message) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => (
                error.kind,
                error.code,
                error.param,
                truncate(&error.message.unwrap_or_default(), 4 * MAX_MESSAGE_CHARS),
            ),
            // A proxy's HTML or plain-text page.
            Err(_) => (
                None,
                None,
                None,
                truncate(&String::from_utf8_lossy(body), MAX_MESSAGE_CHARS),
            ),
        };
        let message = if message.trim().is_empty() {
            status.canonical_reason().unwrap_or("no message").to_owned()
        } else {
            message
        };
        StripeError::Api {
            operation,
            status: status.as_u16(),
            kind,
            code,
            param: param.map(|param| self.redact(&param)),
            message: self.redact(&message),
        }
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.inner.secret, REDACTED)
    }
}

/// The form fields of a Checkout Session create, exactly as the contract lists them.
fn checkout_form(request: &CheckoutRequest) -> Result<Vec<(&'static str, String)>, String> {
    let currency = request.amount.currency();
    if !matches!(currency, Currency::Usd | Currency::Rub) {
        return Err(format!(
            "{currency} cannot be charged through Stripe (USD or RUB only)"
        ));
    }
    if request.amount.amount_minor() <= 0 {
        return Err("amount must be positive".to_owned());
    }
    if request.product_name.trim().is_empty() {
        return Err("product name is empty".to_owned());
    }
    for (name, url) in [
        ("success_url", &request.success_url),
        ("cancel_url", &request.cancel_url),
    ] {
        let parsed =
            reqwest::Url::parse(url).map_err(|err| format!("{name} is not a URL: {err}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{name} must be http or https"));
        }
    }
    let payment_id = request.payment_id.to_string();
    Ok(vec![
        ("mode", "payment".to_owned()),
        (
            "line_items[0][price_data][currency]",
            currency.as_str().to_ascii_lowercase(),
        ),
        (
            "line_items[0][price_data][unit_amount]",
            request.amount.amount_minor().to_string(),
        ),
        (
            "line_items[0][price_data][product_data][name]",
            request.product_name.clone(),
        ),
        ("line_items[0][quantity]", "1".to_owned()),
        ("success_url", request.success_url.clone()),
        ("cancel_url", request.cancel_url.clone()),
        ("client_reference_id", payment_id.clone()),
        ("metadata[payment_id]", payment_id),
    ])
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// Escapes a value for use as one path segment.
fn segment(raw: &str) -> String {
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

/// Why a webhook's `Stripe-Signature` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The configured endpoint secret is empty: nothing can be verified.
    #[error("stripe webhook: the endpoint secret is empty")]
    NoSecret,
    /// The header is not `t=<unix>,v1=<hex>…` (empty, no or several `t`, non-numeric `t`, oversized).
    #[error("stripe webhook: malformed Stripe-Signature header: {0}")]
    MalformedHeader(&'static str),
    /// The header carries no `v1` signature (a `v0`-only header is test-mode legacy, never accepted).
    #[error("stripe webhook: no v1 signature in the Stripe-Signature header")]
    NoV1Signature,
    /// No `v1` signature matches the body and timestamp under the endpoint secret.
    #[error("stripe webhook: no v1 signature matches the payload")]
    BadSignature,
    /// The signature is valid but its timestamp is too old (a replay) or too far in the future.
    #[error(
        "stripe webhook: timestamp {timestamp} is outside the tolerance of {tolerance_seconds} s"
    )]
    TimestampOutsideTolerance {
        /// The header's `t`, in Unix seconds.
        timestamp: i64,
        /// The tolerance it was checked against.
        tolerance_seconds: u64,
    },
}

/// The parts of a `Stripe-Signature` header we use.
struct SignatureHeader<'h> {
    timestamp: i64,
    timestamp_text: &'h str,
    v1: Vec<&'h str>,
}

fn parse_signature_header(header: &str) -> Result<SignatureHeader<'_>, SignatureError> {
    let malformed = SignatureError::MalformedHeader;
    if header.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(malformed("too long"));
    }
    let header = header.trim();
    if header.is_empty() {
        return Err(malformed("empty"));
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        // Items without `=` and schemes we do not know (v0) are ignored, as Stripe's libraries do.
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if timestamp.is_some() => return Err(malformed("more than one t")),
            "t" => timestamp = Some(value),
            "v1" => v1.push(value),
            _ => {}
        }
    }
    let timestamp_text = timestamp.ok_or(malformed("no t=<unix timestamp>"))?;
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("t is not a Unix timestamp"));
    }
    let timestamp = timestamp_text
        .parse::<i64>()
        .map_err(|_| malformed("t is not a Unix timestamp"))?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }
    Ok(SignatureHeader {
        timestamp,
        timestamp_text,
        v1,
    })
}

/// Checks a webhook's `Stripe-Signature` header against the raw body, the endpoint secret (`whsec_…`, used as
/// is) and `now`; accepts if any `v1` matches and `t` is within `tolerance` of `now`.
pub fn verify_webhook(
    secret: &str,
    body: &[u8],
    header: &str,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let parsed = parse_signature_header(header)?;
    // HMAC takes keys of any length; the error branch cannot happen.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::NoSecret)?;
    mac.update(parsed.timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let mut matched = subtle::Choice::from(0);
    for candidate in &parsed.v1 {
        // A candidate that is not hex cannot match; its length is public, its content is compared in constant time.
        if let Ok(candidate) = hex::decode(candidate) {
            matched |= expected.as_slice().ct_eq(&candidate);
        }
    }
    if !bool::from(matched) {
        return Err(SignatureError::BadSignature);
    }
    let tolerance_seconds = tolerance.as_secs();
    let limit = i64::try_from(tolerance_seconds).unwrap_or(i64::MAX);
    let age = now.timestamp().saturating_sub(parsed.timestamp);
    if age > limit || age.saturating_neg() > limit {
        return Err(SignatureError::TimestampOutsideTolerance {
            timestamp: parsed.timestamp,
            tolerance_seconds,
        });
    }
    Ok(())
}

/// Why a webhook body is not a Stripe event we can read.
#[derive(Debug, thiserror::Error)]
#[error("stripe event: {0}")]
pub struct EventError(String);

/// A Stripe event (the webhook body), with typed access to the ones we act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stripe's id, `evt_…`: the idempotency key for handling.
    pub id: String,
    /// The event type, such as `checkout.session.completed`.
    pub event_type: String,
    /// When Stripe created the event.
    pub created: DateTime<Utc>,
    /// Whether the event comes from live mode (false in test mode).
    pub livemode: bool,
    /// `data.object` as sent.
    pub object: serde_json::Value,
    /// `data.object` decoded for the event types we act on.
    pub payload: EventPayload,
}

/// The typed `data.object` of the event types we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventPayload {
    /// `checkout.session.completed`: grant only if [`CheckoutSession::is_paid`].
    CheckoutSessionCompleted(CheckoutSession),
    /// `checkout.session.async_payment_succeeded`: a delayed payment arrived.
    CheckoutSessionAsyncPaymentSucceeded(CheckoutSession),
    /// `checkout.session.async_payment_failed`: a delayed payment failed.
    CheckoutSessionAsyncPaymentFailed(CheckoutSession),
    /// `charge.refunded`: some or all of a charge was refunded.
    ChargeRefunded(Charge),
    /// Any other event type (acknowledge and ignore).
    Other,
}

impl Event {
    /// The session whose payment this event confirms: `checkout.session.completed` with
    /// `payment_status = paid`, or `checkout.session.async_payment_succeeded`.
    pub fn paid_session(&self) -> Option<&CheckoutSession> {
        match &self.payload {
            EventPayload::CheckoutSessionCompleted(session) if session.is_paid() => Some(session),
            EventPayload::CheckoutSessionAsyncPaymentSucceeded(session) => Some(session),
            _ => None,
        }
    }
}

/// Parses a webhook body (verify it first with [`verify_webhook`]).
pub fn parse_event(body: &[u8]) -> Result<Event, EventError> {
    #[derive(Deserialize)]
    struct Wire {
        id: String,
        #[serde(rename = "type")]
        event_type: String,
        #[serde(with = "chrono::serde::ts_seconds")]
        created: DateTime<Utc>,
        #[serde(default)]
        livemode: bool,
        data: WireData,
    }
    #[derive(Deserialize)]
    struct WireData {
        object: serde_json::Value,
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|err| EventError(err.to_string()))?;
    let event_type = wire.event_type.as_str();
    let decode = |what: &'static str| {
        move |err: serde_json::Error| EventError(format!("{event_type}: {what}: {err}"))
    };
    let session =
        || CheckoutSession::deserialize(&wire.data.object).map_err(decode("checkout session"));
    let payload = match wire.event_type.as_str() {
        "checkout.session.completed" => EventPayload::CheckoutSessionCompleted(session()?),
        "checkout.session.async_payment_succeeded" => {
            EventPayload::CheckoutSessionAsyncPaymentSucceeded(session()?)
        }
        "checkout.session.async_payment_failed" => {
            EventPayload::CheckoutSessionAsyncPaymentFailed(session()?)
        }
        "charge.refunded" => EventPayload::ChargeRefunded(
            Charge::deserialize(&wire.data.object).map_err(decode("charge"))?,
        ),
        _ => EventPayload::Other,
    };
    Ok(Event {
        id: wire.id,
        event_type: wire.event_type,
        created: wire.created,
        livemode: wire.livemode,
        object: wire.data.object,
        payload,
    })
}

impl cybervpn_telemetry::AttemptError for StripeError {
    fn is_retryable(&self) -> bool {
        Self::is_retryable(self)
    }

    fn metric_status(&self) -> String {
        match self {
            Self::Api { status, .. } => status.to_string(),
            Self::Timeout { .. } => "timeout".to_owned(),
            Self::Connection { .. } => "connection".to_owned(),
            Self::Decode { .. } => "decode".to_owned(),
            Self::Invalid { .. } | Self::Config(_) => "invalid".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
    /// `printf '1700000000.{"id":"evt_1","object":"event"}' | openssl dgst -sha256 -hmac whsec_test_secret`.
    const OPENSSL_V1: &str = "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd";

    fn at(unix: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix, 0).unwrap_or_default()
    }

    #[test]
    fn matches_an_independently_computed_signature() {
        let header = format!("t=1700000000,v1={OPENSSL_V1}");
        assert_eq!(
            verify_webhook(
                "whsec_test_secret",
                BODY,
                &header,
                at(1_700_000_010),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
        // Keyed with the secret stripped of `whsec_`: the common bug must not verify.
        assert_eq!(
            verify_webhook(
                "test_secret",
                BODY,
                &header,
                at(1_700_000_010),
                DEFAULT_TOLERANCE
            ),
            Err(SignatureError::BadSignature)
        );
    }

    #[test]
    fn future_timestamps_beyond_tolerance_are_refused() {
        let header = format!("t=1700000000,v1={OPENSSL_V1}");
        let verify = |now| {
            verify_webhook(
                "whsec_test_secret",
                BODY,
                &header,
                at(now),
                DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(verify(1_700_000_000 - 300), Ok(()));
        assert!(matches!(
            verify(1_700_000_000 - 301),
            Err(SignatureError::TimestampOutsideTolerance { .. })
        ));
    }

    #[test]
    fn header_parsing_ignores_unknown_items_and_refuses_duplicates() {
        assert!(parse_signature_header("t=1, v1=ab ,junk,v9=x").is_ok());
        assert_eq!(
            parse_signature_header("t=1,t=2,v1=ab").err(),
            Some(SignatureError::MalformedHeader("more than one t"))
        );
        assert!(matches!(
            parse_signature_header("t=-5,v1=ab"),
            Err(SignatureError::MalformedHeader(_))
        ));
        assert!(matches!(
            parse_signature_header(&"v1=ab,".repeat(5000)),
            Err(SignatureError::MalformedHeader("too long"))
        ));
    }

    #[test]
    fn bad_configurations_are_refused() {
        let metrics = || {
            cybervpn_telemetry::Metrics::new()
                .map(|metrics| metrics.external)
                .map_err(|err| err.to_string())
        };
        let refused = |config: StripeConfig| -> bool {
            metrics().is_ok_and(|metrics| Stripe::new(config, metrics).is_err())
        };
        assert!(refused(StripeConfig::new("")));
        assert!(refused(StripeConfig::new("pk_test_123")));
        assert!(refused(StripeConfig::new("whsec_123")));
        let mut config = StripeConfig::new("sk_test_123");
        config.api_url = "https://api.stripe.com/v1".to_owned();
        assert!(refused(config));
        assert!(!refused(StripeConfig::new("sk_test_123")));
        assert!(!refused(StripeConfig::new("rk_live_123")));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let text = format!("{:?}", StripeConfig::new("sk_test_SECRET"));
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn session_payment_id_needs_agreement() {
        let mut session = CheckoutSession {
            id: "cs_1".to_owned(),
            url: None,
            payment_status: PaymentStatus::Paid,
            status: Some(SessionStatus::Complete),
            amount_total: Some(499),
            currency: Some("usd".to_owned()),
            client_reference_id: Some(Uuid::nil().to_string()),
            metadata: BTreeMap::new(),
            payment_intent: None,
        };
        assert_eq!(session.payment_id(), Some(Uuid::nil()));
        assert_eq!(session.amount(), Money::new(499, Currency::Usd).ok());
        session
            .metadata
            .insert("payment_id".to_owned(), Uuid::max().to_string());
        assert_eq!(session.payment_id(), None);
    }
}
