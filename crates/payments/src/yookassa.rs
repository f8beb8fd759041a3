//! YooKassa: the payments API client, notification parsing, and authentication of notifications by
//! source network (YooKassa signs nothing, so the body is only a hint and callers re-fetch the payment).

use std::{
    collections::HashMap, error::Error as _, fmt, net::IpAddr, str::FromStr, sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use cybervpn_domain::{Currency, Money};
use cybervpn_telemetry::ExternalMetrics;
use reqwest::{
    Method, StatusCode,
    header::{ACCEPT, CONTENT_TYPE, HeaderValue},
    redirect,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// The production API base URL.
pub const DEFAULT_API_URL: &str = "https://api.yookassa.ru/v3/";
/// `service` label of this client's metrics.
const SERVICE: &str = "yookassa";
/// How much of a non-JSON error body goes into an error message.
const MAX_MESSAGE_CHARS: usize = 200;
/// YooKassa's limit on `description`.
const MAX_DESCRIPTION_CHARS: usize = 128;
/// YooKassa's limit on the `Idempotence-Key` header.
const MAX_IDEMPOTENCE_KEY_CHARS: usize = 64;
/// Shown instead of secrets.
const REDACTED: &str = "<redacted>";

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// Why a YooKassa call (or the reading of one of its amounts) failed; never carries the secret key.
#[derive(Debug, thiserror::Error)]
pub enum YooKassaError {
    /// YooKassa answered with an error status and (usually) its `{"type":"error",…}` body.
    #[error(
        "yookassa {operation}: HTTP {status}{}: {description}{}",
        code_part(.code.as_deref()),
        parameter_part(.parameter.as_deref())
    )]
    Api {
        /// The operation, such as `payments.create`.
        operation: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// YooKassa's error `code` (`invalid_credentials`, `invalid_request`, `not_found`, …).
        code: Option<String>,
        /// YooKassa's `description`, or the start of a non-JSON body.
        description: String,
        /// The offending request parameter, when YooKassa names one.
        parameter: Option<String>,
        /// YooKassa's error `id`, for its support.
        error_id: Option<String>,
    },
    /// No complete answer within the configured timeout.
    #[error("yookassa {operation}: timed out")]
    Timeout {
        /// The operation, such as `payments.get`.
        operation: &'static str,
    },
    /// The connection failed or was closed before a complete answer.
    #[error("yookassa {operation}: connection failed: {reason}")]
    Connection {
        /// The operation, such as `payments.get`.
        operation: &'static str,
        /// The transport error chain.
        reason: String,
    },
    /// A success answer whose body is not a payment as documented.
    #[error("yookassa {operation}: undecodable answer: {reason}")]
    Decode {
        /// The operation, such as `payments.get`.
        operation: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// The request was refused before being sent (XTR amount, bad idempotence key, long description).
    #[error("yookassa {operation}: {reason}")]
    Invalid {
        /// The operation, such as `payments.create`.
        operation: &'static str,
        /// What is wrong with the arguments.
        reason: String,
    },
    /// An amount YooKassa reported that is not an exact [`Money`] of ours.
    #[error("yookassa amount `{value} {currency}` is not usable: {reason}")]
    Amount {
        /// The decimal string as sent.
        value: String,
        /// The currency code as sent.
        currency: String,
        /// Why it was refused.
        reason: String,
    },
    /// The client configuration is unusable.
    #[error("yookassa client configuration: {0}")]
    Config(String),
}

fn code_part(code: Option<&str>) -> String {
    code.map(|code| format!(" {code}")).unwrap_or_default()
}

fn parameter_part(parameter: Option<&str>) -> String {
    parameter
        .map(|parameter| format!(" (parameter {parameter})"))
        .unwrap_or_default()
}

impl YooKassaError {
    /// Whether trying again (with the same idempotence key) may succeed: timeouts, connection failures, 5xx, 429.
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429,
            Self::Decode { .. } | Self::Invalid { .. } | Self::Amount { .. } | Self::Config(_) => {
                false
            }
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
            Self::Amount { .. } | Self::Config(_) => None,
        }
    }

    /// The HTTP status of an error answer.
    pub const fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// YooKassa's error code (`invalid_credentials`, `not_found`, …), when it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Configuration and client
// ---------------------------------------------------------------------------------------------------------

/// How to reach and authenticate to YooKassa.
#[derive(Clone)]
pub struct YooKassaConfig {
    /// API base URL including `/v3/`, such as [`DEFAULT_API_URL`].
    pub api_url: String,
    /// The shop id (the Basic auth user name).
    pub shop_id: String,
    /// The secret key (secret: never in `Debug`, logs or errors).
    pub secret_key: String,
    /// Limit for one attempt, from connecting to the last body byte.
    pub timeout: Duration,
}

impl YooKassaConfig {
    /// A configuration for the production API with a 10 s timeout.
    pub fn new(shop_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            shop_id: shop_id.into(),
            secret_key: secret_key.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for YooKassaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YooKassaConfig")
            .field("api_url", &self.api_url)
            .field("shop_id", &self.shop_id)
            .field("secret_key", &REDACTED)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A payment to create: what the customer pays, and our payment it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePayment {
    /// The amount, in RUB or USD (YooKassa does not take Stars).
    pub amount: Money,
    /// Shown to the customer (at most 128 characters).
    pub description: String,
    /// Where YooKassa sends the customer back after paying.
    pub return_url: String,
    /// Our payment id, sent as `metadata.payment_id`.
    pub payment_id: Uuid,
}

/// Status of a YooKassa payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum YooPaymentStatus {
    /// Created; the customer has not paid yet.
    Pending,
    /// Paid and authorised, waiting for capture (not used with `capture: true`).
    WaitingForCapture,
    /// Paid and captured: final.
    Succeeded,
    /// Cancelled or expired: final.
    Canceled,
}

impl YooPaymentStatus {
    /// The wire name: `pending`, `waiting_for_capture`, `succeeded`, `canceled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::WaitingForCapture => "waiting_for_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the status can no longer change.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Canceled)
    }
}

/// An amount as YooKassa sends it: a decimal string and a currency code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YooAmount {
    /// Decimal major units, such as `"100.00"`.
    pub value: String,
    /// ISO 4217 code, such as `"RUB"`.
    pub currency: String,
}

impl YooAmount {
    /// The wire form of `money`: every minor digit (`"4.99"`, `"499.00"`).
    pub fn from_money(money: Money) -> Self {
        Self {
            value: money.to_major_string(),
            currency: money.currency().as_str().to_owned(),
        }
    }

    /// The exact amount as [`Money`] (no floats); fails on a currency other than RUB/USD or a malformed value.
    pub fn to_money(&self) -> Result<Money, YooKassaError> {
        let refuse = |reason: String| YooKassaError::Amount {
            value: self.value.clone(),
            currency: self.currency.clone(),
            reason,
        };
        let currency = match self.currency.as_str() {
            "RUB" => Currency::Rub,
            "USD" => Currency::Usd,
            _ => return Err(refuse("only RUB and USD are supported".to_owned())),
        };
        Money::parse_major(&self.value, currency).map_err(|err| refuse(err.to_string()))
    }
}

/// A YooKassa payment, as read back from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YooPayment {
    /// YooKassa's payment id.
    pub id: String,
    /// The status; act only on a re-fetched one.
    pub status: YooPaymentStatus,
    /// Whether the customer has paid.
    pub paid: bool,
    /// The amount as sent; see [`YooPayment::amount_money`].
    pub amount: YooAmount,
    /// Where to send the customer to pay (redirect confirmation), while the payment awaits it.
    pub confirmation_url: Option<String>,
    /// Our payment id from `metadata.payment_id`, when present and a UUID.
    pub payment_id: Option<Uuid>,
    /// The description, if any.
    pub description: Option<String>,
    /// When YooKassa created the payment.
    pub created_at: DateTime<Utc>,
    /// Whether this is a test-shop payment.
    pub test: bool,
    /// `cancellation_details.reason` of a cancelled payment (`expired_on_confirmation`, …).
    pub cancellation_reason: Option<String>,
}

impl YooPayment {
    /// The exact amount as [`Money`], converted from the decimal string without floats.
    pub fn amount_money(&self) -> Result<Money, YooKassaError> {
        self.amount.to_money()
    }
}

/// The payment object as YooKassa sends it (unknown fields ignored).
#[derive(Deserialize)]
struct WirePayment {
    id: String,
    status: YooPaymentStatus,
    #[serde(default)]
    paid: bool,
    amount: YooAmount,
    confirmation: Option<WireConfirmation>,
    #[serde(default)]
    metadata: Option<HashMap<String, serde_json::Value>>,
    description: Option<String>,
    created_at: DateTime<Utc>,
    #[serde(default)]
    test: bool,
    cancellation_details: Option<WireCancellation>,
}

#[derive(Deserialize)]
struct WireConfirmation {
    confirmation_url: Option<String>,
}

#[derive(Deserialize)]
struct WireCancellation {
    reason: Option<String>,
}

impl From<WirePayment> for YooPayment {
    fn from(wire: WirePayment) -> Self {
        let payment_id = wire
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.get("payment_id"))
            .and_then(serde_json::Value::as_str)
            .and_then(|text| Uuid::parse_str(text).ok());
        Self {
            id: wire.id,
            status: wire.status,
            paid: wire.paid,
            amount: wire.amount,
            confirmation_url: wire.confirmation.and_then(|c| c.confirmation_url),
            payment_id,
            description: wire.description,
            created_at: wire.created_at,
            test: wire.test,
            cancellation_reason: wire.cancellation_details.and_then(|c| c.reason),
        }
    }
}

/// The body of `POST /payments`.
#[derive(Serialize)]
struct WireCreatePayment<'a> {
    amount: YooAmount,
    capture: bool,
    confirmation: WireRedirect<'a>,
    description: &'a str,
    metadata: WireMetadata,
}

#[derive(Serialize)]
struct WireRedirect<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    return_url: &'a str,
}

#[derive(Serialize)]
struct WireMetadata {
    payment_id: String,
}

/// Typed client of the YooKassa payments API; cheap to clone.
#[derive(Clone)]
pub struct YooKassa {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL ending in `/`.
    api: String,
    shop_id: String,
    secret_key: String,
    metrics: ExternalMetrics,
}

impl fmt::Debug for YooKassa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YooKassa")
            .field("api", &self.inner.api)
            .field("shop_id", &self.inner.shop_id)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> YooKassaError {
    YooKassaError::Config(message.into())
}

/// One request: what the transport needs to send and label it.
struct Call<'a> {
    operation: &'static str,
    method: Method,
    /// Path below the base URL, segments already escaped.
    path: String,
    body: Option<Vec<u8>>,
    idempotence_key: Option<&'a str>,
}

impl YooKassa {
    /// Builds a client; fails on an unusable configuration (bad URL, empty credentials, zero timeout).
    pub fn new(config: YooKassaConfig, metrics: ExternalMetrics) -> Result<Self, YooKassaError> {
        let api = format!("{}/", config.api_url.trim().trim_end_matches('/'));
        let url = reqwest::Url::parse(&api)
            .map_err(|err| config_error(format!("api_url is not a URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error("api_url must be http or https"));
        }
        if config.shop_id.trim().is_empty() {
            return Err(config_error("shop_id is empty"));
        }
        if config.shop_id.contains(':') {
            return Err(config_error("shop_id must not contain ':'"));
        }
        if config.secret_key.trim().is_empty() {
            return Err(config_error("secret_key is empty"));
        }
        if config.timeout.is_zero() {
            return Err(config_error("timeout must be positive"));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(redirect::Policy::none())
            .user_agent(concat!("cybervpn-payments/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| config_error(format!("HTTP client: {err}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api,
                shop_id: config.shop_id,
                secret_key: config.secret_key,
                metrics,
            }),
        })
    }

    /// Creates a one-stage (`capture: true`) payment with a redirect confirmation.
    ///
    /// `idempotence_key` must be unique per logical payment and reused on every retry of it (at most 64
    /// characters); transient failures are retried here with the same key, so at most one payment results.
    pub async fn create_payment(
        &self,
        payment: &CreatePayment,
        idempotence_key: &str,
    ) -> Result<YooPayment, YooKassaError> {
        const OPERATION: &str = "payments.create";
        let invalid = |reason: String| YooKassaError::Invalid {
            operation: OPERATION,
            reason,
        };
        let currency = payment.amount.currency();
        if !matches!(currency, Currency::Rub | Currency::Usd) {
            return Err(invalid(format!(
                "YooKassa takes RUB or USD, not {currency}"
            )));
        }
        if payment.amount.amount_minor() == 0 {
            return Err(invalid("amount must be positive".to_owned()));
        }
        if payment.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(invalid(format!(
                "description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        if payment.return_url.trim().is_empty() {
            return Err(invalid("return_url is empty".to_owned()));
        }
        if idempotence_key.trim().is_empty()
            || idempotence_key.chars().count() > MAX_IDEMPOTENCE_KEY_CHARS
            || HeaderValue::from_str(idempotence_key).is_err()
        {
            return Err(invalid(format!(
                "idempotence key must be 1 to {MAX_IDEMPOTENCE_KEY_CHARS} visible ASCII characters"
            )));
        }
        let body = WireCreatePayment {
            amount: YooAmount::from_money(payment.amount),
            capture: true,
            confirmation: WireRedirect {
                kind: "redirect",
                return_url: &payment.return_url,
            },
            description: &payment.description,
            metadata: WireMetadata {
                payment_id: payment.payment_id.to_string(),
            },
        };
        let body =
            serde_json::to_vec(&body).map_err(|err| invalid(format!("request body: {err}")))?;
        let call = Call {
            operation: OPERATION,
            method: Method::POST,
            path: "payments".to_owned(),
            body: Some(body),
            idempotence_key: Some(idempotence_key),
        };
        self.execute::<WirePayment>(&call).await.map(Into::into)
    }

    /// Reads a payment by YooKassa id: the source of truth to act on after a notification.
    pub async fn get_payment(&self, id: &str) -> Result<YooPayment, YooKassaError> {
        const OPERATION: &str = "payments.get";
        if id.trim().is_empty() {
            return Err(YooKassaError::Invalid {
                operation: OPERATION,
                reason: "payment id is empty".to_owned(),
            });
        }
        let call = Call {
            operation: OPERATION,
            method: Method::GET,
            path: format!("payments/{}", segment(id)),
            body: None,
            idempotence_key: None,
        };
        self.execute::<WirePayment>(&call).await.map(Into::into)
    }

    async fn execute<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, YooKassaError> {
        self.inner
            .metrics
            .call(SERVICE, call.operation, true, || async {
                self.attempt::<T>(call)
                    .await
                    .map(|(status, value)| (status.as_u16(), value))
            })
            .await
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
    ) -> Result<(StatusCode, T), YooKassaError> {
        let operation = call.operation;
        let url = format!("{}{}", self.inner.api, call.path);
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url)
            .basic_auth(&self.inner.shop_id, Some(&self.inner.secret_key))
            .header(ACCEPT, "application/json");
        if let Some(key) = call.idempotence_key {
            request = request.header("Idempotence-Key", key);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
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
        serde_json::from_slice::<T>(&bytes)
            .map(|value| (status, value))
            .map_err(|err| YooKassaError::Decode {
                operation,
                reason: self.redact(&err.to_string()),
            })
    }

    fn transport_error(&self, operation: &'static str, err: &reqwest::Error) -> YooKassaError {
        if err.is_timeout() {
            return YooKassaError::Timeout { operation };
        }
        // reqwest's own message is generic ("error sending request"): the cause chain says what happened.
        let mut reason = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        YooKassaError::Connection {
            operation,
            reason: self.redact(&reason),
        }
    }

    fn api_error(&self, operation: &'static str, status: StatusCode, body: &[u8]) -> YooKassaError {
        #[derive(Deserialize)]
        struct ErrorBody {
            id: Option<String>,
            code: Option<String>,
            description: Option<String>,
            parameter: Option<String>,
        }
        let (code, description, parameter, error_id) =
            match serde_json::from_slice::<ErrorBody>(body) {
                Ok(error) => (
                    error.code,
                    truncate(
                        &error.description.unwrap_or_default(),
                        4 * MAX_MESSAGE_CHARS,
                    ),
                    error.parameter,
                    error.id,
                ),
                // A proxy's HTML or plain-text page.
                Err(_) => (
                    None,
                    truncate(&String::from_utf8_lossy(body), MAX_MESSAGE_CHARS),
                    None,
                    None,
                ),
            };
        let description = if description.trim().is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no description")
                .to_owned()
        } else {
            description
        };
        YooKassaError::Api {
            operation,
            status: status.as_u16(),
            code: code.map(|code| self.redact(&code)),
            description: self.redact(&description),
            parameter: parameter.map(|parameter| self.redact(&parameter)),
            error_id,
        }
    }

    fn redact(&self, text: &str) -> String {
        let secret = &self.inner.secret_key;
        // Short values are not worth scrubbing (and would mangle unrelated text).
        if secret.len() < 4 {
            return text.to_owned();
        }
        text.replace(secret.as_str(), REDACTED)
    }
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

// ---------------------------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------------------------

/// The `event` of a YooKassa notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NotificationEvent {
    /// `payment.succeeded`.
    PaymentSucceeded,
    /// `payment.waiting_for_capture`.
    PaymentWaitingForCapture,
    /// `payment.canceled`.
    PaymentCanceled,
    /// `refund.succeeded`.
    RefundSucceeded,
    /// Any other event (`payout.*`, `deal.*`, …), kept verbatim.
    Other(String),
}

impl NotificationEvent {
    /// Reads an event name; unknown names become [`NotificationEvent::Other`].
    pub fn parse(name: &str) -> Self {
        match name {
            "payment.succeeded" => Self::PaymentSucceeded,
            "payment.waiting_for_capture" => Self::PaymentWaitingForCapture,
            "payment.canceled" => Self::PaymentCanceled,
            "refund.succeeded" => Self::RefundSucceeded,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire name, such as `payment.succeeded`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::PaymentSucceeded => "payment.succeeded",
            Self::PaymentWaitingForCapture => "payment.waiting_for_capture",
            Self::PaymentCanceled => "payment.canceled",
            Self::RefundSucceeded => "refund.succeeded",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for NotificationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A YooKassa notification, read as a hint only: act on the payment re-fetched with [`YooKassa::get_payment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub event: NotificationEvent,
    /// `object.id`: the payment id for `payment.*` events, the refund id for `refund.*` events.
    pub object_id: String,
    /// The YooKassa payment concerned: `object.id` for `payment.*`, `object.payment_id` for `refund.*`.
    pub yookassa_payment_id: Option<String>,
}

/// A notification body that is not a YooKassa notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("yookassa notification is malformed: {reason}")]
pub struct InvalidNotification {
    /// What is wrong with the body.
    pub reason: String,
}

/// Parses a notification body (`{"type":"notification","event":…,"object":{…}}`); unknown fields are ignored.
pub fn parse_notification(body: &[u8]) -> Result<Notification, InvalidNotification> {
    #[derive(Deserialize)]
    struct Wire {
        #[serde(rename = "type")]
        kind: String,
        event: String,
        object: WireObject,
    }
    #[derive(Deserialize)]
    struct WireObject {
        id: String,
        payment_id: Option<String>,
    }
    let invalid = |reason: String| InvalidNotification { reason };
    let wire: Wire = serde_json::from_slice(body)
        .map_err(|err| invalid(format!("not the documented JSON: {err}")))?;
    if wire.kind != "notification" {
        return Err(invalid(format!(
            "type is `{}`, expected `notification`",
            truncate(&wire.kind, 40)
        )));
    }
    if wire.object.id.trim().is_empty() {
        return Err(invalid("object.id is empty".to_owned()));
    }
    let event = NotificationEvent::parse(&wire.event);
    let yookassa_payment_id = if wire.event.starts_with("payment.") {
        Some(wire.object.id.clone())
    } else {
        wire.object.payment_id
    };
    Ok(Notification {
        event,
        object_id: wire.object.id,
        yookassa_payment_id,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Source networks
// ---------------------------------------------------------------------------------------------------------

/// The networks YooKassa sends notifications from, as published in its official SDK (`SecurityHelper`).
pub const YOOKASSA_NETWORKS: &[&str] = &[
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11",
    "77.75.156.35",
    "77.75.154.128/25",
    "2a02:5180:0:1509::/64",
    "2a02:5180:0:2655::/64",
    "2a02:5180:0:1533::/64",
    "2a02:5180:0:2669::/64",
];

/// One network: an address and a prefix length, host bits zero; IPv4-mapped IPv6 is stored as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

/// A network entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("network `{entry}` is invalid: {reason}")]
pub struct InvalidNetwork {
    /// The entry as given.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

impl IpNetwork {
    /// The network address.
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (IPv4-mapped IPv6 treated as IPv4) is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_bits(self.prefix, 32);
                u128::from(u32::from(net)) == u128::from(u32::from(ip)) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(net) == u128::from(ip) & mask_bits(self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The mask of a `prefix`-bit network in an address of `width` bits, in the low `width` bits of a `u128`.
fn mask_bits(prefix: u8, width: u8) -> u128 {
    let all = if width >= 128 {
        u128::MAX
    } else {
        (1_u128 << width) - 1
    };
    let host_bits = width.saturating_sub(prefix);
    let host = if host_bits >= 128 {
        u128::MAX
    } else {
        (1_u128 << host_bits) - 1
    };
    all & !host
}

impl FromStr for IpNetwork {
    type Err = InvalidNetwork;

    /// Parses `addr/prefix` or a bare address (a single host); host bits must be zero.
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| InvalidNetwork {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let text = entry.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| invalid("not an IPv4 or IPv6 address"))?;
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|prefix| *prefix <= width)
                    .ok_or_else(|| invalid("prefix length is out of range"))?
            }
            Some(_) => return Err(invalid("prefix length is not a number")),
        };
        let bits = match addr {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        if bits & !mask_bits(prefix, width) != 0 {
            return Err(invalid("host bits are set (use the network address)"));
        }
        // `::ffff:a.b.c.d/n` with n ≥ 96 is an IPv4 network in disguise.
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A set of networks: YooKassa's sources, or the reverse proxies whose `X-Forwarded-For` we believe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks {
    networks: Vec<IpNetwork>,
}

impl TrustedNetworks {
    /// Parses CIDRs and bare addresses (IPv4 and IPv6); the first invalid entry is named in the error.
    pub fn parse<I, S>(entries: I) -> Result<Self, InvalidNetwork>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let networks = entries
            .into_iter()
            .map(|entry| entry.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// The empty set: trusts nothing.
    pub const fn none() -> Self {
        Self {
            networks: Vec::new(),
        }
    }

    /// Exactly the networks YooKassa publishes ([`YOOKASSA_NETWORKS`]).
    pub fn yookassa_default() -> Self {
        Self {
            networks: YOOKASSA_NETWORKS
                .iter()
                .filter_map(|entry| entry.parse().ok())
                .collect(),
        }
    }

    /// Whether `ip` (IPv4-mapped IPv6 treated as IPv4) is inside any of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The networks, in the order given.
    pub fn networks(&self) -> &[IpNetwork] {
        &self.networks
    }
}

/// The address a request really came from: `peer`, unless `peer` is one of `trusted_proxies`, in which case
/// `X-Forwarded-For` is walked from the right past trusted proxies to the first address that is not one.
///
/// Several `X-Forwarded-For` headers are to be joined with `,` in order. An unparsable hop stops the walk at the
/// last trusted hop (which is then not a notification source, so the request fails closed). The result is
/// canonical: an IPv4-mapped IPv6 address comes back as IPv4.
pub fn client_ip(
    peer: IpAddr,
    x_forwarded_for: Option<&str>,
    trusted_proxies: &TrustedNetworks,
) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted_proxies.contains(client) {
        return client;
    }
    let Some(header) = x_forwarded_for else {
        return client;
    };
    for hop in header.rsplit(',') {
        let Some(hop) = parse_hop(hop) else {
            return client;
        };
        client = hop;
        if !trusted_proxies.contains(hop) {
            return hop;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop.parse::<IpAddr>().ok().or_else(|| {
        hop.parse::<std::net::SocketAddr>()
            .ok()
            .map(|addr| addr.ip())
    })?;
    Some(ip.to_canonical())
}

impl cybervpn_telemetry::AttemptError for YooKassaError {
    fn is_retryable(&self) -> bool {
        Self::is_retryable(self)
    }

    fn metric_status(&self) -> String {
        match self {
            Self::Api { status, .. } => status.to_string(),
            Self::Timeout { .. } => "timeout".to_owned(),
            Self::Connection { .. } => "connection".to_owned(),
            Self::Decode { .. } => "decode".to_owned(),
            Self::Invalid { .. } | Self::Amount { .. } | Self::Config(_) => "invalid".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_bits(0, 32), 0);
        assert_eq!(mask_bits(32, 32), 0xFFFF_FFFF);
        assert_eq!(mask_bits(27, 32), 0xFFFF_FFE0);
        assert_eq!(mask_bits(128, 128), u128::MAX);
        assert_eq!(mask_bits(0, 128), 0);
        assert_eq!(mask_bits(64, 128), u128::MAX << 64);
    }

    #[test]
    fn networks_parse_strictly() {
        let net: IpNetwork = "185.71.76.0/27".parse().unwrap();
        assert_eq!(net.to_string(), "185.71.76.0/27");
        assert_eq!("77.75.156.11".parse::<IpNetwork>().unwrap().prefix(), 32);
        assert_eq!(
            "::ffff:10.0.0.0/104"
                .parse::<IpNetwork>()
                .unwrap()
                .to_string(),
            "10.0.0.0/8"
        );
        assert!(
            "0.0.0.0/0"
                .parse::<IpNetwork>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in [
            "",
            "10.0.0.1/24",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "::/129",
            "x",
        ] {
            let err = bad.parse::<IpNetwork>().unwrap_err();
            assert_eq!(err.entry, bad);
        }
    }

    #[test]
    fn yookassa_default_has_every_published_network() {
        assert_eq!(
            TrustedNetworks::yookassa_default().networks().len(),
            YOOKASSA_NETWORKS.len()
        );
    }

    #[test]
    fn amounts_convert_exactly() {
        let amount = YooAmount {
            value: "0.29".to_owned(),
            currency: "RUB".to_owned(),
        };
        assert_eq!(amount.to_money().unwrap().amount_minor(), 29);
        let euro = YooAmount {
            value: "1.00".to_owned(),
            currency: "EUR".to_owned(),
        };
        assert!(matches!(euro.to_money(), Err(YooKassaError::Amount { .. })));
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let config = YooKassaConfig::new("123", "live_SECRET");
        assert!(!format!("{config:?}").contains("SECRET"));
    }
}
