//! A fake Crypto Pay API on loopback: `createInvoice`, `getInvoices` and `getMe` with the real envelope and
//! error bodies, parameter checks like the real API's, payments on demand, correctly signed `invoice_paid`
//! webhooks, a record of requests, and injected faults.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, sync::watch};

/// Request bodies above this are refused.
const MAX_BODY: usize = 1024 * 1024;
/// Assets the fake accepts (a subset of the real list).
const ASSETS: &[&str] = &[
    "USDT", "TON", "BTC", "ETH", "LTC", "BNB", "TRX", "USDC", "SOL", "DOGE", "NOT",
];
/// Fiat currencies the real API prices invoices in.
const FIATS: &[&str] = &[
    "USD", "EUR", "RUB", "BYN", "UAH", "GBP", "CNY", "KZT", "UZS", "GEL", "TRY", "AMD", "THB",
    "INR", "BRL", "IDR", "AZN", "AED", "PLN", "ILS",
];
/// The bot that "processes" the fake's payments (the testnet bot's name).
const BOT: &str = "CryptoTestnetBot";

/// Locks a mutex, ignoring poisoning: a panicked test must not wedge every later request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fault injected into the next request(s), whatever their method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a proxy's HTML page (no envelope), without processing.
    Status(u16),
    /// Answer `{"ok":false,"error":{"code","name"}}` with this status, without processing.
    ApiError(u16, &'static str),
    /// Wait this long, then process normally.
    Delay(Duration),
    /// Close the connection without answering, without processing.
    Drop,
    /// Process the request, then close the connection without answering (an ambiguous failure).
    DropAfterProcessing,
    /// Answer 200 with an HTML page.
    Garbage,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method (`GET`, `POST`).
    pub http_method: String,
    /// API method from the path (`createInvoice`, …).
    pub method: String,
    /// Parameters from the query string and the JSON body, merged.
    pub params: Map<String, Value>,
    /// Whether `Crypto-Pay-API-Token` matched the fake's token.
    pub authorized: bool,
}

#[derive(Debug)]
struct State {
    next_invoice_id: i64,
    next_update_id: i64,
    /// Invoices as the API returns them, oldest first.
    invoices: Vec<Value>,
}

impl State {
    /// Expires active invoices whose `expiration_date` has passed.
    fn expire(&mut self, now: DateTime<Utc>) {
        for invoice in &mut self.invoices {
            let expired = invoice["status"] == "active"
                && invoice["expiration_date"]
                    .as_str()
                    .and_then(|date| DateTime::parse_from_rfc3339(date).ok())
                    .is_some_and(|date| date <= now);
            if expired {
                invoice["status"] = json!("expired");
            }
        }
    }

    fn invoice_mut(&mut self, invoice_id: i64) -> Option<&mut Value> {
        self.invoices
            .iter_mut()
            .find(|invoice| invoice["invoice_id"] == invoice_id)
    }
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<State>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A running fake Crypto Pay API; stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct CryptoBotFake {
    handle: Arc<Handle>,
}

/// Returned by the service to make hyper drop the connection without writing a response.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed without a response")
    }
}

impl std::error::Error for CloseConnection {}

impl CryptoBotFake {
    /// Serves the fake on `127.0.0.1:0` on the current Tokio runtime, accepting `token`.
    pub async fn start(token: impl Into<String>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.into(),
            state: Mutex::new(State {
                next_invoice_id: 1001,
                next_update_id: 1,
                invoices: Vec::new(),
            }),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(VecDeque::new()),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, Arc::clone(&shared), stopped));
        Ok(Self {
            handle: Arc::new(Handle { shared, addr, stop }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The API base URL to configure the client with: `http://127.0.0.1:PORT/api/`.
    pub fn url(&self) -> String {
        format!("http://{}/api/", self.handle.addr)
    }

    /// The app token the fake accepts.
    pub fn token(&self) -> &str {
        &self.shared().token
    }

    /// Applies `fault` to the next `times` requests, after any fault already queued.
    pub fn inject(&self, fault: Fault, times: usize) {
        lock(&self.shared().faults).extend(std::iter::repeat_n(fault, times));
    }

    /// Every request received, in order (recorded on arrival, before faults apply).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared().requests).clone()
    }

    /// Every invoice as the API would return it, oldest first.
    pub fn invoices(&self) -> Vec<Value> {
        let mut state = lock(&self.shared().state);
        state.expire(Utc::now());
        state.invoices.clone()
    }

    /// Marks an active invoice paid now (in its first accepted asset); `false` if there is none.
    pub fn mark_paid(&self, invoice_id: i64) -> bool {
        let mut state = lock(&self.shared().state);
        state.expire(Utc::now());
        let Some(invoice) = state.invoice_mut(invoice_id) else {
            return false;
        };
        if invoice["status"] != "active" {
            return false;
        }
        let asset = invoice["asset"]
            .as_str()
            .or_else(|| invoice["accepted_assets"][0].as_str())
            .unwrap_or("USDT")
            .to_owned();
        let fields = [
            ("status", json!("paid")),
            ("paid_at", json!(timestamp(Utc::now()))),
            ("paid_asset", json!(asset)),
            ("paid_amount", invoice["amount"].clone()),
            ("paid_fiat_rate", json!("1.00000000")),
            ("paid_usd_rate", json!("1.00000000")),
            ("fee_asset", json!(asset)),
            ("fee_amount", json!("0")),
            ("paid_anonymously", json!(false)),
        ];
        for (key, value) in fields {
            invoice[key] = value;
        }
        true
    }

    /// The `invoice_paid` update for an invoice in its current state, and its correct
    /// `crypto-pay-api-signature`; `None` if there is no such invoice.
    pub fn signed_webhook(&self, invoice_id: i64) -> Option<(Vec<u8>, String)> {
        let mut state = lock(&self.shared().state);
        let invoice = state.invoice_mut(invoice_id)?.clone();
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        drop(state);
        let update = json!({
            "update_id": update_id,
            "update_type": "invoice_paid",
            "request_date": timestamp(Utc::now()),
            "payload": invoice,
        });
        let body = serde_json::to_vec(&update).ok()?;
        let signature = sign_webhook(self.token(), &body);
        Some((body, signature))
    }

    /// POSTs the signed `invoice_paid` update of an invoice to `url`; the receiver's HTTP status.
    pub async fn deliver_webhook(&self, url: &str, invoice_id: i64) -> Result<u16, String> {
        let (body, signature) = self
            .signed_webhook(invoice_id)
            .ok_or_else(|| format!("no invoice {invoice_id}"))?;
        let response = reqwest::Client::new()
            .post(url)
            .header("crypto-pay-api-signature", signature)
            .header(CONTENT_TYPE.as_str(), "application/json")
            .body(body)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        Ok(response.status().as_u16())
    }
}

/// The webhook signature the real API sends: lowercase hex HMAC-SHA256 of `body`, keyed with the
/// SHA-256 digest (32 raw bytes) of the app token.
pub fn sign_webhook(token: &str, body: &[u8]) -> String {
    let key = Sha256::digest(token.as_bytes());
    match <Hmac<Sha256> as KeyInit>::new_from_slice(&key) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm exists only because the API is fallible.
        Err(_) => String::new(),
    }
}

/// The API's timestamp format: RFC 3339 with milliseconds and `Z`.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Accepts connections until `stop` fires or its sender is dropped.
async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

/// An answer: status and body.
struct Reply {
    status: u16,
    body: Vec<u8>,
    json: bool,
}

impl Reply {
    fn ok(result: Value) -> Self {
        Self::json(200, &json!({"ok": true, "result": result}))
    }

    fn error(status: u16, name: &str) -> Self {
        Self::json(
            status,
            &json!({"ok": false, "error": {"code": status, "name": name}}),
        )
    }

    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
            json: true,
        }
    }

    fn html(status: u16, text: &str) -> Self {
        Self {
            status,
            body: format!("<html><head><title>{text}</title></head><body>{text}</body></html>")
                .into_bytes(),
            json: false,
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = if self.json {
            "application/json; charset=utf-8"
        } else {
            "text/html"
        };
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let http_method = request.method().to_string();
    let method = request
        .uri()
        .path()
        .strip_prefix("/api/")
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let query = request.uri().query().map(str::to_owned);
    let authorized = request
        .headers()
        .get("crypto-pay-api-token")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|token| token == shared.token);
    let raw = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(CloseConnection),
    };
    let params = params(query.as_deref(), &raw);
    lock(&shared.requests).push(RecordedRequest {
        http_method,
        method: method.clone(),
        params: params.clone().unwrap_or_default(),
        authorized,
    });

    let fault = lock(&shared.faults).pop_front();
    let mut drop_after = false;
    match fault {
        Some(Fault::Status(status)) => {
            let reason = StatusCode::from_u16(status)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("Error");
            return Ok(Reply::html(status, &format!("{status} {reason}")).into_response());
        }
        Some(Fault::ApiError(status, name)) => {
            return Ok(Reply::error(status, name).into_response());
        }
        Some(Fault::Drop) => return Err(CloseConnection),
        Some(Fault::Garbage) => {
            return Ok(Reply::html(200, "upstream sent garbage").into_response());
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropAfterProcessing) => drop_after = true,
        None => {}
    }

    let reply = if !authorized {
        Reply::error(401, "UNAUTHORIZED")
    } else {
        match params {
            Err(()) => Reply::error(400, "PARAMS_INVALID"),
            Ok(params) => {
                let mut state = lock(&shared.state);
                state.expire(Utc::now());
                match method.as_str() {
                    "createInvoice" => create_invoice(&mut state, &params),
                    "getInvoices" => get_invoices(&state, &params),
                    "getMe" => Reply::ok(json!({
                        "app_id": 4242,
                        "name": "CyberVPN (fake)",
                        "payment_processing_bot_username": BOT,
                    })),
                    _ => Reply::error(405, "METHOD_NOT_FOUND"),
                }
            }
        }
    };
    if drop_after {
        return Err(CloseConnection);
    }
    Ok(reply.into_response())
}

/// Query-string parameters overlaid with a JSON object body, as the real API merges them.
fn params(query: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, ()> {
    let mut params = Map::new();
    if let Some(query) = query {
        let url = reqwest::Url::parse(&format!("http://fake/?{query}")).map_err(|_| ())?;
        for (key, value) in url.query_pairs() {
            params.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => params.extend(object),
            _ => return Err(()),
        }
    }
    Ok(params)
}

/// A parameter as text: strings as they are, numbers and booleans printed, arrays comma-joined.
fn text(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

/// A positive decimal with at most `max_decimals` fraction digits: `4.99`, `499`, `0.5`.
fn is_amount(text: &str, max_decimals: usize) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, "0"),
    };
    digits(whole)
        && digits(fraction)
        && fraction.len() <= max_decimals
        && text.bytes().any(|b| matches!(b, b'1'..=b'9'))
}

fn flag(params: &Map<String, Value>, key: &str) -> Result<bool, ()> {
    match text(params, key).as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(()),
    }
}

fn create_invoice(state: &mut State, params: &Map<String, Value>) -> Reply {
    let currency_type = text(params, "currency_type").unwrap_or_else(|| "crypto".to_owned());
    let mut invoice = Map::new();
    match currency_type.as_str() {
        "crypto" => {
            let Some(asset) =
                text(params, "asset").filter(|asset| ASSETS.contains(&asset.as_str()))
            else {
                return Reply::error(400, "ASSET_INVALID");
            };
            invoice.insert("asset".to_owned(), json!(asset));
        }
        "fiat" => {
            let Some(fiat) = text(params, "fiat").filter(|fiat| FIATS.contains(&fiat.as_str()))
            else {
                return Reply::error(400, "FIAT_INVALID");
            };
            let accepted: Vec<String> = match text(params, "accepted_assets") {
                None => ASSETS.iter().map(|&asset| asset.to_owned()).collect(),
                Some(list) => list.split(',').map(str::to_owned).collect(),
            };
            if accepted.is_empty()
                || accepted
                    .iter()
                    .any(|asset| !ASSETS.contains(&asset.as_str()))
            {
                return Reply::error(400, "ACCEPTED_ASSETS_INVALID");
            }
            invoice.insert("fiat".to_owned(), json!(fiat));
            invoice.insert("accepted_assets".to_owned(), json!(accepted));
        }
        _ => return Reply::error(400, "CURRENCY_TYPE_INVALID"),
    }
    let max_decimals = if currency_type == "fiat" { 2 } else { 8 };
    let Some(amount) = text(params, "amount").filter(|amount| is_amount(amount, max_decimals))
    else {
        return Reply::error(400, "AMOUNT_INVALID");
    };
    let description = text(params, "description");
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1024)
    {
        return Reply::error(400, "DESCRIPTION_TOO_LONG");
    }
    let payload = text(params, "payload");
    if payload.as_ref().is_some_and(|p| p.len() > 4096) {
        return Reply::error(400, "PAYLOAD_TOO_LONG");
    }
    let now = Utc::now();
    let expiration = match text(params, "expires_in") {
        None => None,
        Some(seconds) => match seconds.parse::<i64>() {
            Ok(seconds @ 1..=2_678_400) => Some(now + chrono::Duration::seconds(seconds)),
            _ => return Reply::error(400, "EXPIRES_IN_INVALID"),
        },
    };
    let (Ok(allow_comments), Ok(allow_anonymous)) = (
        flag(params, "allow_comments"),
        flag(params, "allow_anonymous"),
    ) else {
        return Reply::error(400, "PARAMS_INVALID");
    };

    let invoice_id = state.next_invoice_id;
    state.next_invoice_id += 1;
    let hash = format!("IV{}", uuid::Uuid::new_v4().simple());
    let bot_url = format!("https://t.me/{BOT}?start={hash}");
    let fields = [
        ("invoice_id", json!(invoice_id)),
        ("hash", json!(hash)),
        ("currency_type", json!(currency_type)),
        ("amount", json!(amount)),
        ("pay_url", json!(bot_url)),
        ("bot_invoice_url", json!(bot_url)),
        (
            "mini_app_invoice_url",
            json!(format!("https://t.me/{BOT}/app?startapp=invoice-{hash}")),
        ),
        (
            "web_app_invoice_url",
            json!(format!("https://testnet-app.send.tg/invoices/{hash}")),
        ),
        ("status", json!("active")),
        ("created_at", json!(timestamp(now))),
        ("allow_comments", json!(allow_comments)),
        ("allow_anonymous", json!(allow_anonymous)),
    ];
    for (key, value) in fields {
        invoice.insert(key.to_owned(), value);
    }
    if let Some(description) = description {
        invoice.insert("description".to_owned(), json!(description));
    }
    if let Some(payload) = payload {
        invoice.insert("payload".to_owned(), json!(payload));
    }
    if let Some(expiration) = expiration {
        invoice.insert("expiration_date".to_owned(), json!(timestamp(expiration)));
    }
    let invoice = Value::Object(invoice);
    state.invoices.push(invoice.clone());
    Reply::ok(invoice)
}

fn get_invoices(state: &State, params: &Map<String, Value>) -> Reply {
    let ids = match text(params, "invoice_ids") {
        None => None,
        Some(list) => match list
            .split(',')
            .map(|id| id.trim().parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(ids) => Some(ids),
            Err(_) => return Reply::error(400, "INVOICE_IDS_INVALID"),
        },
    };
    let status = text(params, "status");
    if status
        .as_deref()
        .is_some_and(|status| !matches!(status, "active" | "paid"))
    {
        return Reply::error(400, "STATUS_INVALID");
    }
    let Ok(offset) = text(params, "offset").map_or(Ok(0), |offset| offset.parse::<usize>()) else {
        return Reply::error(400, "OFFSET_INVALID");
    };
    let count = match text(params, "count").map_or(Ok(100), |count| count.parse::<usize>()) {
        Ok(count @ 1..=1000) => count,
        _ => return Reply::error(400, "COUNT_INVALID"),
    };
    let asset = text(params, "asset");
    let fiat = text(params, "fiat");
    let matches = |invoice: &&Value| {
        let field = |key: &str| invoice[key].as_str().map(str::to_owned);
        ids.as_ref().is_none_or(|ids| {
            invoice["invoice_id"]
                .as_i64()
                .is_some_and(|id| ids.contains(&id))
        }) && status
            .as_deref()
            .is_none_or(|status| field("status").as_deref() == Some(status))
            && asset.as_ref().is_none_or(|asset| {
                asset
                    .split(',')
                    .any(|a| field("asset").as_deref() == Some(a))
            })
            && fiat
                .as_ref()
                .is_none_or(|fiat| fiat.split(',').any(|f| field("fiat").as_deref() == Some(f)))
    };
    let items: Vec<Value> = state
        .invoices
        .iter()
        .rev()
        .filter(matches)
        .skip(offset)
        .take(count)
        .cloned()
        .collect();
    Reply::ok(json!({ "items": items }))
}
