//! CryptoBot (Crypto Pay API): fiat-priced invoices, invoice lookups for reconciling missed webhooks, and
//! webhook verification.
//!
//! One request helper authenticates with `Crypto-Pay-API-Token`, unwraps the `{"ok":…,"result"|"error"}`
//! envelope, maps failures to [`CryptoBotError`] naming the operation, and records every attempt in the
//! `external_*` metrics with `service="cryptobot"`. Reads (`getInvoices`, `getMe`) are retried after
//! transient failures; `createInvoice` is not, because the API has no idempotency key: after an
//! ambiguous failure ([`CryptoBotError::is_retryable`]) the caller looks the invoice up by the payload it
//! sent (our payment id, [`CryptoBot::find_invoice_by_payload`]) and creates a new one only if none exists.

use std::{error::Error as _, fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use cybervpn_domain::{Currency, DomainError, Money};
use cybervpn_telemetry::ExternalMetrics;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{
    Method, StatusCode,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
    redirect,
};
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

/// Base URL of the production API.
pub const MAINNET_API_URL: &str = "https://pay.crypt.bot/api/";
/// Base URL of the testnet API (test coins, separate app tokens).
pub const TESTNET_API_URL: &str = "https://testnet-pay.crypt.bot/api/";
/// Request header carrying the app token.
pub const TOKEN_HEADER: &str = "Crypto-Pay-API-Token";
/// Webhook header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "crypto-pay-api-signature";
/// Largest `payload` the API stores, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// Longest invoice `description`, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest invoice lifetime the API accepts (31 days).
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(2_678_400);
/// Largest `count` of one `getInvoices` page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// `service` label of this client's metrics.
const SERVICE: &str = "cryptobot";
/// How much of a non-JSON error body goes into an error message.
const MAX_MESSAGE_CHARS: usize = 200;
/// Shown instead of secrets.
const REDACTED: &str = "<redacted>";

const CREATE_INVOICE: &str = "createInvoice";
const GET_INVOICES: &str = "getInvoices";
const GET_ME: &str = "getMe";
const WEBHOOK: &str = "webhook";

/// How to reach and authenticate to the Crypto Pay API.
#[derive(Clone)]
pub struct CryptoBotConfig {
    /// API base URL ending in `/api/`: [`MAINNET_API_URL`] or [`TESTNET_API_URL`].
    pub api_url: String,
    /// App token from @CryptoBot (secret: never in `Debug`, logs or errors).
    pub token: String,
    /// Limit for one attempt, from connecting to the last body byte.
    pub timeout: Duration,
}

impl CryptoBotConfig {
    /// A mainnet configuration with a 10 s timeout.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            api_url: MAINNET_API_URL.to_owned(),
            token: token.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// A testnet configuration with a 10 s timeout.
    pub fn testnet(token: impl Into<String>) -> Self {
        Self {
            api_url: TESTNET_API_URL.to_owned(),
            ..Self::new(token)
        }
    }
}

impl fmt::Debug for CryptoBotConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoBotConfig")
            .field("api_url", &self.api_url)
            .field("token", &REDACTED)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a Crypto Pay call (or a webhook parse) failed; every variant names the operation, none a secret.
#[derive(Debug, thiserror::Error)]
pub enum CryptoBotError {
    /// The API answered `{"ok":false,"error":{"code","name"}}`.
    #[error("cryptobot {operation}: API error {name} (code {code}, HTTP {status})")]
    Api {
        /// The API method, such as `createInvoice`.
        operation: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// The error's `code` (usually the HTTP status).
        code: i64,
        /// The error's `name`, such as `UNAUTHORIZED` or `AMOUNT_INVALID`.
        name: String,
    },
    /// An error status without the API's envelope (a proxy or load balancer page).
    #[error("cryptobot {operation}: HTTP {status}: {message}")]
    Http {
        /// The API method.
        operation: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// The start of the body.
        message: String,
    },
    /// No complete answer within the configured timeout.
    #[error("cryptobot {operation}: timed out")]
    Timeout {
        /// The API method.
        operation: &'static str,
    },
    /// The connection failed or closed before a complete answer.
    #[error("cryptobot {operation}: connection failed: {reason}")]
    Connection {
        /// The API method.
        operation: &'static str,
        /// The transport error chain.
        reason: String,
    },
    /// A success answer (or a webhook body) that is not what the API documents.
    #[error("cryptobot {operation}: undecodable answer: {reason}")]
    Decode {
        /// The API method, or `webhook`.
        operation: &'static str,
        /// What did not parse.
        reason: String,
    },
    /// The request was refused before being sent.
    #[error("cryptobot {operation}: {reason}")]
    Invalid {
        /// The API method.
        operation: &'static str,
        /// What is wrong with the arguments.
        reason: String,
    },
    /// The client configuration is unusable.
    #[error("cryptobot client configuration: {0}")]
    Config(String),
}

impl CryptoBotError {
    /// Whether trying again later may succeed: timeouts, connection failures, 5xx and 429.
    ///
    /// For `createInvoice` this also means "the invoice may exist": look it up by payload first.
    pub const fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connection { .. } => true,
            Self::Api { status, code, .. } => {
                *status >= 500 || *status == 429 || *code >= 500 || *code == 429
            }
            Self::Http { status, .. } => *status >= 500 || *status == 429,
            Self::Decode { .. } | Self::Invalid { .. } | Self::Config(_) => false,
        }
    }

    /// The operation that failed, when the error comes from one.
    pub const fn operation(&self) -> Option<&'static str> {
        match self {
            Self::Api { operation, .. }
            | Self::Http { operation, .. }
            | Self::Timeout { operation }
            | Self::Connection { operation, .. }
            | Self::Decode { operation, .. }
            | Self::Invalid { operation, .. } => Some(operation),
            Self::Config(_) => None,
        }
    }

    /// The API's error name (`UNAUTHORIZED`, `AMOUNT_INVALID`, …), when it sent one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Api { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// An invoice's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Waiting for payment.
    Active,
    /// Paid.
    Paid,
    /// Expired unpaid.
    Expired,
}

/// The statuses `getInvoices` can filter on (it cannot filter on `expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatusFilter {
    /// Only invoices waiting for payment.
    Active,
    /// Only paid invoices.
    Paid,
}

impl InvoiceStatusFilter {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paid => "paid",
        }
    }
}

/// What an invoice's `amount` is denominated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurrencyType {
    /// A crypto asset (`asset` is set).
    Crypto,
    /// A fiat currency (`fiat` is set), paid in one of the accepted assets.
    Fiat,
    /// A type this client does not know.
    #[serde(other)]
    Unknown,
}

/// An invoice as the API returns it; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Invoice {
    /// The API's invoice id.
    pub invoice_id: i64,
    /// The invoice hash (part of its payment links).
    #[serde(default)]
    pub hash: Option<String>,
    /// Active, paid or expired.
    pub status: InvoiceStatus,
    /// Crypto or fiat.
    pub currency_type: CurrencyType,
    /// The crypto asset of a crypto invoice (`USDT`, `TON`, …).
    #[serde(default)]
    pub asset: Option<String>,
    /// The fiat currency of a fiat invoice (`USD`, `RUB`, …).
    #[serde(default)]
    pub fiat: Option<String>,
    /// The amount as the API's exact decimal string; see [`Invoice::amount_money`].
    #[serde(deserialize_with = "decimal")]
    pub amount: String,
    /// The assets a fiat invoice can be paid in.
    #[serde(default, deserialize_with = "opt_list")]
    pub accepted_assets: Option<Vec<String>>,
    /// The asset actually paid.
    #[serde(default)]
    pub paid_asset: Option<String>,
    /// The amount actually paid, in `paid_asset`.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub paid_amount: Option<String>,
    /// The fiat rate of `paid_asset` at payment.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub paid_fiat_rate: Option<String>,
    /// The USD rate of `paid_asset` at payment.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub paid_usd_rate: Option<String>,
    /// The asset the service fee was charged in.
    #[serde(default)]
    pub fee_asset: Option<String>,
    /// The service fee charged.
    #[serde(default, deserialize_with = "opt_decimal")]
    pub fee_amount: Option<String>,
    /// Payment link opening @CryptoBot.
    pub bot_invoice_url: String,
    /// Payment link opening the Crypto Bot mini app.
    #[serde(default)]
    pub mini_app_invoice_url: Option<String>,
    /// Payment link opening the Crypto Bot web app.
    #[serde(default)]
    pub web_app_invoice_url: Option<String>,
    /// The description shown to the payer.
    #[serde(default)]
    pub description: Option<String>,
    /// When the invoice was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When an unpaid invoice expires.
    #[serde(default)]
    pub expiration_date: Option<DateTime<Utc>>,
    /// When the invoice was paid.
    #[serde(default)]
    pub paid_at: Option<DateTime<Utc>>,
    /// Whether the payer hid their identity.
    #[serde(default)]
    pub paid_anonymously: Option<bool>,
    /// The payer's comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// Our payload, as sent to `createInvoice` (our payment id).
    #[serde(default)]
    pub payload: Option<String>,
}

impl Invoice {
    /// The amount as [`Money`] for a USD or RUB fiat invoice, converted exactly; `None` otherwise.
    pub fn amount_money(&self) -> Option<Money> {
        if self.currency_type != CurrencyType::Fiat {
            return None;
        }
        let currency = match self.fiat.as_deref()? {
            "USD" => Currency::Usd,
            "RUB" => Currency::Rub,
            _ => return None,
        };
        decimal_to_money(&self.amount, currency).ok()
    }
}

/// What `getMe` says about the app the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct App {
    /// The app id.
    pub app_id: i64,
    /// The app name.
    pub name: String,
    /// The bot that processes the app's payments (`CryptoBot` or `CryptoTestnetBot`).
    #[serde(default)]
    pub payment_processing_bot_username: Option<String>,
}

/// A webhook update's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateType {
    /// An invoice was paid.
    InvoicePaid,
    /// A type this client does not know.
    #[serde(other)]
    Other,
}

/// A webhook update: `{update_id, update_type, request_date, payload: Invoice}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Update {
    /// The update id; deduplicate deliveries on `payload.invoice_id` (there is no timestamp check).
    pub update_id: i64,
    /// What happened.
    pub update_type: UpdateType,
    /// When the API sent the update.
    pub request_date: DateTime<Utc>,
    /// The invoice concerned.
    pub payload: Invoice,
}

/// A fiat invoice to create, priced in our [`Money`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateInvoice {
    /// The price: USD or RUB (sent as `currency_type=fiat`, `fiat`, exact decimal `amount`).
    pub price: Money,
    /// Assets the payer may pay with (`USDT`, `TON`, …); empty means every asset.
    pub accepted_assets: Vec<String>,
    /// Shown to the payer (at most 1024 characters).
    pub description: Option<String>,
    /// Our payment id, returned in the invoice and the webhook (at most 4 KB).
    pub payload: String,
    /// Lifetime of the unpaid invoice, in whole seconds from 1 s to 31 days.
    pub expires_in: Option<Duration>,
    /// Whether the payer may leave a comment (API default: yes).
    pub allow_comments: Option<bool>,
    /// Whether the payer may pay anonymously (API default: yes).
    pub allow_anonymous: Option<bool>,
}

impl CreateInvoice {
    /// An invoice for `price` carrying `payload`, with the API's defaults for everything else.
    pub fn new(price: Money, payload: impl Into<String>) -> Self {
        Self {
            price,
            accepted_assets: Vec::new(),
            description: None,
            payload: payload.into(),
            expires_in: None,
            allow_comments: None,
            allow_anonymous: None,
        }
    }
}

/// A `getInvoices` query; empty `invoice_ids` and no `status` mean every invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetInvoices {
    /// Only these invoices.
    pub invoice_ids: Vec<i64>,
    /// Only invoices in this status.
    pub status: Option<InvoiceStatusFilter>,
    /// How many matching invoices to skip.
    pub offset: u32,
    /// Page size, 1 to [`MAX_PAGE_SIZE`] (the API's default is 100).
    pub count: u32,
}

impl Default for GetInvoices {
    fn default() -> Self {
        Self {
            invoice_ids: Vec::new(),
            status: None,
            offset: 0,
            count: 100,
        }
    }
}

/// Typed client of the Crypto Pay API for one app; cheap to clone.
#[derive(Clone)]
pub struct CryptoBot {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL ending in `/`.
    api: String,
    /// Scrubbed from every message we build.
    token: String,
    metrics: ExternalMetrics,
}

impl fmt::Debug for CryptoBot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoBot")
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> CryptoBotError {
    CryptoBotError::Config(message.into())
}

impl CryptoBot {
    /// Builds a client; fails on an unusable configuration (bad URL, empty token, zero timeout).
    pub fn new(config: CryptoBotConfig, metrics: ExternalMetrics) -> Result<Self, CryptoBotError> {
        let api = format!("{}/", config.api_url.trim().trim_end_matches('/'));
        let url = reqwest::Url::parse(&api)
            .map_err(|err| config_error(format!("api_url is not a URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_error("api_url must be http or https"));
        }
        if config.token.trim().is_empty() {
            return Err(config_error("token is empty"));
        }
        if config.timeout.is_zero() {
            return Err(config_error("timeout must be positive"));
        }
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_str(&config.token)
            .map_err(|_| config_error("token is not a valid HTTP header value"))?;
        token.set_sensitive(true);
        headers.insert(HeaderName::from_static("crypto-pay-api-token"), token);
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
                api,
                token: config.token,
                metrics,
            }),
        })
    }

    /// Creates a fiat invoice; sent once, never retried (see the module docs for idempotency).
    pub async fn create_invoice(&self, request: &CreateInvoice) -> Result<Invoice, CryptoBotError> {
        #[derive(Serialize)]
        struct Body<'a> {
            currency_type: &'static str,
            fiat: &'static str,
            amount: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            accepted_assets: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            description: Option<&'a str>,
            payload: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            expires_in: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            allow_comments: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            allow_anonymous: Option<bool>,
        }
        let invalid = |reason: &str| CryptoBotError::Invalid {
            operation: CREATE_INVOICE,
            reason: reason.to_owned(),
        };
        let fiat = match request.price.currency() {
            Currency::Usd => "USD",
            Currency::Rub => "RUB",
            Currency::Xtr => return Err(invalid("price must be in USD or RUB")),
        };
        if request.price.amount_minor() <= 0 {
            return Err(invalid("price must be positive"));
        }
        if request.payload.is_empty() || request.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(invalid("payload must be 1 to 4096 bytes"));
        }
        if request
            .description
            .as_ref()
            .is_some_and(|text| text.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(invalid("description must be at most 1024 characters"));
        }
        if request.expires_in.is_some_and(|lifetime| {
            lifetime < Duration::from_secs(1)
                || lifetime > MAX_EXPIRES_IN
                || lifetime.subsec_nanos() != 0
        }) {
            return Err(invalid(
                "expires_in must be whole seconds from 1 s to 31 days",
            ));
        }
        if request
            .accepted_assets
            .iter()
            .any(|asset| asset.is_empty() || !asset.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(invalid("accepted_assets must be asset codes such as USDT"));
        }
        let body = Body {
            currency_type: "fiat",
            fiat,
            amount: request.price.to_major_string(),
            accepted_assets: (!request.accepted_assets.is_empty())
                .then(|| request.accepted_assets.join(",")),
            description: request.description.as_deref(),
            payload: &request.payload,
            expires_in: request.expires_in.map(|lifetime| lifetime.as_secs()),
            allow_comments: request.allow_comments,
            allow_anonymous: request.allow_anonymous,
        };
        let body = serde_json::to_vec(&body).map_err(|err| invalid(&err.to_string()))?;
        self.call(Call {
            operation: CREATE_INVOICE,
            method: Method::POST,
            query: Vec::new(),
            body: Some(body),
            repeatable: false,
        })
        .await
    }

    /// Lists invoices, for reconciling missed webhooks; retried after transient failures.
    pub async fn get_invoices(&self, query: &GetInvoices) -> Result<Vec<Invoice>, CryptoBotError> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<Invoice>,
        }
        if !(1..=MAX_PAGE_SIZE).contains(&query.count) {
            return Err(CryptoBotError::Invalid {
                operation: GET_INVOICES,
                reason: "count must be 1 to 1000".to_owned(),
            });
        }
        let mut params = Vec::new();
        if !query.invoice_ids.is_empty() {
            let ids: Vec<String> = query.invoice_ids.iter().map(i64::to_string).collect();
            params.push(("invoice_ids", ids.join(",")));
        }
        if let Some(status) = query.status {
            params.push(("status", status.as_str().to_owned()));
        }
        params.push(("offset", query.offset.to_string()));
        params.push(("count", query.count.to_string()));
        let items: Items = self
            .call(Call {
                operation: GET_INVOICES,
                method: Method::GET,
                query: params,
                body: None,
                repeatable: true,
            })
            .await?;
        Ok(items.items)
    }

    /// The invoice carrying `payload` (our payment id) among the first `max_scanned` invoices listed,
    /// if any: the check to make after an ambiguous `createInvoice` failure, before creating again.
    pub async fn find_invoice_by_payload(
        &self,
        payload: &str,
        max_scanned: u32,
    ) -> Result<Option<Invoice>, CryptoBotError> {
        let mut offset = 0;
        while offset < max_scanned {
            let count = (max_scanned - offset).min(MAX_PAGE_SIZE);
            let page = self
                .get_invoices(&GetInvoices {
                    offset,
                    count,
                    ..GetInvoices::default()
                })
                .await?;
            let full = page.len() >= usize::try_from(count).unwrap_or(usize::MAX);
            if let Some(found) = page
                .into_iter()
                .find(|invoice| invoice.payload.as_deref() == Some(payload))
            {
                return Ok(Some(found));
            }
            if !full {
                break;
            }
            offset += count;
        }
        Ok(None)
    }

    /// The app the token belongs to (a cheap token check); retried.
    pub async fn get_me(&self) -> Result<App, CryptoBotError> {
        self.call(Call {
            operation: GET_ME,
            method: Method::GET,
            query: Vec::new(),
            body: None,
            repeatable: true,
        })
        .await
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, CryptoBotError> {
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
    ) -> Result<(StatusCode, T), CryptoBotError> {
        #[derive(Deserialize)]
        struct Envelope<T> {
            ok: bool,
            result: Option<T>,
            error: Option<ApiError>,
        }
        #[derive(Deserialize)]
        struct ApiError {
            code: Option<i64>,
            name: Option<String>,
        }
        let operation = call.operation;
        let url = format!("{}{}", self.inner.api, operation);
        let mut request = self.inner.http.request(call.method.clone(), url);
        if !call.query.is_empty() {
            request = request.query(&call.query);
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
        match serde_json::from_slice::<Envelope<T>>(&bytes) {
            Ok(Envelope {
                ok: false, error, ..
            }) => {
                let error = error.unwrap_or(ApiError {
                    code: None,
                    name: None,
                });
                Err(CryptoBotError::Api {
                    operation,
                    status: status.as_u16(),
                    code: error.code.unwrap_or_else(|| i64::from(status.as_u16())),
                    name: self.redact(&error.name.unwrap_or_else(|| "UNKNOWN".to_owned())),
                })
            }
            Ok(Envelope {
                ok: true,
                result: Some(result),
                ..
            }) if status.is_success() => Ok((status, result)),
            Ok(_) if status.is_success() => Err(CryptoBotError::Decode {
                operation,
                reason: "\"ok\":true without a result".to_owned(),
            }),
            Err(err) if status.is_success() => Err(CryptoBotError::Decode {
                operation,
                reason: self.redact(&err.to_string()),
            }),
            Ok(_) | Err(_) => {
                let text: String = String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(MAX_MESSAGE_CHARS)
                    .collect();
                let text = if text.trim().is_empty() {
                    status.canonical_reason().unwrap_or("no message").to_owned()
                } else {
                    text
                };
                Err(CryptoBotError::Http {
                    operation,
                    status: status.as_u16(),
                    message: self.redact(&text),
                })
            }
        }
    }

    fn transport_error(&self, operation: &'static str, err: &reqwest::Error) -> CryptoBotError {
        if err.is_timeout() {
            return CryptoBotError::Timeout { operation };
        }
        // reqwest's own message is generic ("error sending request"): the cause chain says what happened.
        let mut reason = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        CryptoBotError::Connection {
            operation,
            reason: self.redact(&reason),
        }
    }

    fn redact(&self, text: &str) -> String {
        // Short tokens are not worth scrubbing (and would mangle unrelated text).
        if self.inner.token.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.inner.token, REDACTED)
    }
}

/// One API request: what the transport needs to send, retry and label it.
struct Call {
    /// The API method name, also the path below the base URL and the metric's `operation`.
    operation: &'static str,
    method: Method,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    repeatable: bool,
}

/// Whether `signature_header` is the lowercase hex HMAC-SHA256 of the raw `body`, keyed with the
/// SHA-256 digest (32 raw bytes) of the app `token`; compared in constant time.
pub fn verify_webhook(token: &str, body: &[u8], signature_header: &str) -> bool {
    let header = signature_header.as_bytes();
    if header.len() != 64
        || !header
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return false;
    }
    let Ok(signature) = hex::decode(header) else {
        return false;
    };
    let key = Sha256::digest(token.as_bytes());
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Parses a webhook body (verify it first with [`verify_webhook`]).
pub fn parse_webhook(body: &[u8]) -> Result<Update, CryptoBotError> {
    serde_json::from_slice(body).map_err(|err| CryptoBotError::Decode {
        operation: WEBHOOK,
        reason: err.to_string(),
    })
}

/// Converts the API's decimal `amount` to [`Money`] exactly: trailing zeros beyond the currency's
/// minor digits are accepted ("4.990"), any other extra digit is refused ("4.999").
pub fn decimal_to_money(amount: &str, currency: Currency) -> Result<Money, DomainError> {
    let exponent = usize::try_from(currency.minor_exponent()).unwrap_or(0);
    let trimmed = match amount.split_once('.') {
        Some((whole, fraction)) if fraction.len() > exponent => {
            let (kept, extra) = fraction.split_at(exponent);
            if !extra.bytes().all(|b| b == b'0') {
                return Err(DomainError::invalid(
                    "amount",
                    format!("{currency} allows at most {exponent} decimal places"),
                ));
            }
            if kept.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{kept}")
            }
        }
        _ => amount.to_owned(),
    };
    Money::parse_major(&trimmed, currency)
}

/// A JSON scalar the API documents as a string but may send as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Number(serde_json::Number),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Self::Str(text) => text,
            Self::Number(number) => number.to_string(),
        }
    }
}

fn decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Scalar::deserialize(deserializer).map(Scalar::into_text)
}

fn opt_decimal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(deserializer)?.map(Scalar::into_text))
}

/// A list sent as a JSON array or as a comma-separated string.
fn opt_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Items(Vec<String>),
        Joined(String),
    }
    Ok(
        Option::<List>::deserialize(deserializer)?.map(|list| match list {
            List::Items(items) => items,
            List::Joined(text) => text
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        }),
    )
}

impl cybervpn_telemetry::AttemptError for CryptoBotError {
    fn is_retryable(&self) -> bool {
        Self::is_retryable(self)
    }

    fn metric_status(&self) -> String {
        match self {
            Self::Api { status, .. } | Self::Http { status, .. } => status.to_string(),
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

    fn money(minor: i64, currency: Currency) -> Option<Money> {
        Money::new(minor, currency).ok()
    }

    #[test]
    fn decimals_convert_to_minor_units_exactly() {
        let usd = |text: &str| decimal_to_money(text, Currency::Usd).ok();
        assert_eq!(usd("4.99"), money(499, Currency::Usd));
        assert_eq!(usd("499.00"), money(49_900, Currency::Usd));
        assert_eq!(usd("0.1"), money(10, Currency::Usd));
        assert_eq!(usd("5"), money(500, Currency::Usd));
        assert_eq!(usd("4.990000"), money(499, Currency::Usd));
        // Floats would turn 0.1 + 0.2 into 0.30000000000000004; strings never do.
        assert_eq!(usd("0.30"), money(30, Currency::Usd));
        assert_eq!(usd("92233720368547758.07"), money(i64::MAX, Currency::Usd));
    }

    #[test]
    fn more_decimals_than_the_currency_has_are_refused() {
        assert!(decimal_to_money("4.999", Currency::Usd).is_err());
        assert!(decimal_to_money("4.991", Currency::Rub).is_err());
        assert!(decimal_to_money("1.5", Currency::Xtr).is_err());
        assert_eq!(
            decimal_to_money("15.0", Currency::Xtr).ok(),
            money(15, Currency::Xtr)
        );
        for bad in ["", "-1.00", "1e3", "4,99", " 4.99", "4.", ".99", "NaN"] {
            assert!(decimal_to_money(bad, Currency::Usd).is_err(), "{bad:?}");
        }
        assert!(decimal_to_money("92233720368547758.08", Currency::Usd).is_err());
    }

    #[test]
    fn minor_units_render_as_exact_decimal_strings() {
        let render = |minor, currency| Money::new(minor, currency).map(|m| m.to_major_string());
        assert_eq!(render(499, Currency::Usd).ok().as_deref(), Some("4.99"));
        assert_eq!(
            render(49_900, Currency::Rub).ok().as_deref(),
            Some("499.00")
        );
        assert_eq!(render(5, Currency::Usd).ok().as_deref(), Some("0.05"));
    }

    #[test]
    fn fiat_invoices_give_money_and_crypto_ones_do_not() {
        let json = r#"{"invoice_id":7,"status":"paid","currency_type":"fiat","fiat":"RUB","amount":"499.00",
            "accepted_assets":"USDT,TON","bot_invoice_url":"https://t.me/CryptoBot?start=IVx","extra":1}"#;
        let invoice: Option<Invoice> = serde_json::from_str(json).ok();
        let invoice = invoice.as_ref();
        assert_eq!(
            invoice.and_then(Invoice::amount_money),
            money(49_900, Currency::Rub)
        );
        assert_eq!(
            invoice.and_then(|i| i.accepted_assets.clone()),
            Some(vec!["USDT".to_owned(), "TON".to_owned()])
        );
        let crypto = r#"{"invoice_id":8,"status":"active","currency_type":"crypto","asset":"TON","amount":1.5,
            "bot_invoice_url":"u"}"#;
        let crypto: Option<Invoice> = serde_json::from_str(crypto).ok();
        assert_eq!(crypto.as_ref().map(|i| i.amount.as_str()), Some("1.5"));
        assert_eq!(crypto.and_then(|i| i.amount_money()), None);
    }

    #[test]
    fn retryable_are_transient_failures_only() {
        let api = |status, code| CryptoBotError::Api {
            operation: GET_ME,
            status,
            code,
            name: "X".to_owned(),
        };
        assert!(api(500, 500).is_retryable());
        assert!(api(200, 429).is_retryable());
        assert!(!api(401, 401).is_retryable());
        assert!(!api(400, 400).is_retryable());
        assert!(CryptoBotError::Timeout { operation: GET_ME }.is_retryable());
        assert_eq!(
            api(401, 401).to_string(),
            "cryptobot getMe: API error X (code 401, HTTP 401)"
        );
    }

    #[test]
    fn config_debug_hides_the_token() {
        let config = CryptoBotConfig::testnet("12345:AAzzSecretTokenValue");
        let text = format!("{config:?}");
        assert!(!text.contains("SecretToken"), "{text}");
        assert!(text.contains(TESTNET_API_URL));
    }
}
