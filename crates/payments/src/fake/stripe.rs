//! A loopback Stripe: Checkout Sessions over the form-encoded API with bearer auth, Stripe-style errors and
//! idempotency keys, plus signed webhook events and injected faults.
//!
//! Stricter than Stripe where that catches our bugs: it refuses unknown parameters and uppercase currencies, and a
//! bad key is echoed unmasked in the 401 message (Stripe masks it) so that client-side redaction is exercised.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::{net::TcpListener, sync::watch};
use uuid::Uuid;

/// Request bodies above this are refused.
const MAX_BODY: usize = 1024 * 1024;
/// The API version stamped on events.
const API_VERSION: &str = "2024-06-20";
/// Parameters of `POST /v1/checkout/sessions` the fake understands (plus any `metadata[…]`).
const KNOWN_PARAMS: [&str; 11] = [
    "mode",
    "line_items[0][price_data][currency]",
    "line_items[0][price_data][unit_amount]",
    "line_items[0][price_data][product_data][name]",
    "line_items[0][quantity]",
    "success_url",
    "cancel_url",
    "client_reference_id",
    "customer_email",
    "expires_at",
    "locale",
];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request the fake received, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, such as `POST`.
    pub method: String,
    /// Path, such as `/v1/checkout/sessions`.
    pub path: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Whether `Authorization: Bearer <secret key>` was right.
    pub authorized: bool,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The decoded form body, in order.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of a form parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A failure injected into the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ServerError,
    Delay(Duration),
}

/// A saved answer for an idempotency key.
#[derive(Debug, Clone)]
struct Saved {
    params: Vec<(String, String)>,
    body: Value,
}

#[derive(Debug, Default)]
struct State {
    sessions: HashMap<String, Value>,
    idempotency: HashMap<String, Saved>,
    refunded: std::collections::HashSet<String>,
}

#[derive(Debug)]
struct Shared {
    secret_key: String,
    webhook_secret: String,
    base_url: String,
    state: Mutex<State>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<VecDeque<Fault>>,
}

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

/// A Stripe on `127.0.0.1:<port>`; stops when the last clone is dropped.
#[derive(Clone)]
pub struct StripeFake {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for StripeFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeFake")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl StripeFake {
    /// Starts a fake accepting `secret_key` and signing events with `webhook_secret` (`whsec_…`).
    pub async fn start(
        secret_key: impl Into<String>,
        webhook_secret: impl Into<String>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            secret_key: secret_key.into(),
            webhook_secret: webhook_secret.into(),
            base_url: format!("http://{addr}"),
            state: Mutex::new(State::default()),
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

    /// The API origin to configure the client with, `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.handle.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared().requests).clone()
    }

    /// A session as the API would return it now.
    pub fn session(&self, session_id: &str) -> Option<Value> {
        lock(&self.shared().state).sessions.get(session_id).cloned()
    }

    /// How many distinct sessions were created.
    pub fn session_count(&self) -> usize {
        lock(&self.shared().state).sessions.len()
    }

    /// Answers the next `count` requests with Stripe's 500 `api_error`.
    pub fn fail_next(&self, count: usize) {
        lock(&self.shared().faults).extend(std::iter::repeat_n(Fault::ServerError, count));
    }

    /// Holds the next `count` requests for `delay` before handling them.
    pub fn delay_next(&self, count: usize, delay: Duration) {
        lock(&self.shared().faults).extend(std::iter::repeat_n(Fault::Delay(delay), count));
    }

    /// Marks a session paid and complete, as when the buyer pays by card; false if it does not exist.
    pub fn complete(&self, session_id: &str) -> bool {
        let mut state = lock(&self.shared().state);
        let Some(session) = state.sessions.get_mut(session_id) else {
            return false;
        };
        session["status"] = json!("complete");
        session["payment_status"] = json!("paid");
        session["url"] = Value::Null;
        session["payment_intent"] = json!(format!("pi_{}", Uuid::new_v4().simple()));
        true
    }

    /// The body and `Stripe-Signature` header of an event about a session, signed as sent at `at`;
    /// `charge.*` events carry the session's charge (fully refunded for `charge.refunded`).
    pub fn signed_event(
        &self,
        event_type: &str,
        session_id: &str,
        at: DateTime<Utc>,
    ) -> Option<(Vec<u8>, String)> {
        let session = self.session(session_id)?;
        let object = if event_type.starts_with("charge.") {
            let amount = session["amount_total"].clone();
            json!({
                "id": format!("ch_{}", Uuid::new_v4().simple()),
                "object": "charge",
                "amount": amount,
                "amount_refunded": if event_type == "charge.refunded" { amount.clone() } else { json!(0) },
                "currency": session["currency"],
                "payment_intent": session["payment_intent"],
                "refunded": event_type == "charge.refunded",
                "metadata": {},
                "livemode": false,
            })
        } else {
            session
        };
        let event = json!({
            "id": format!("evt_{}", Uuid::new_v4().simple()),
            "object": "event",
            "api_version": API_VERSION,
            "created": at.timestamp(),
            "livemode": false,
            "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null},
            "type": event_type,
            "data": {"object": object},
        });
        let body = serde_json::to_vec_pretty(&event).ok()?;
        let header = signature_header(&self.shared().webhook_secret, &body, at);
        Some((body, header))
    }

    /// POSTs a freshly signed event about a session to `url`, as Stripe delivers webhooks; returns the status.
    pub async fn deliver(
        &self,
        url: &str,
        event_type: &str,
        session_id: &str,
    ) -> Result<u16, String> {
        let (body, header) = self
            .signed_event(event_type, session_id, Utc::now())
            .ok_or_else(|| format!("no session {session_id}"))?;
        let response = reqwest::Client::new()
            .post(url)
            .timeout(Duration::from_secs(10))
            .header("Content-Type", "application/json; charset=utf-8")
            .header(
                "User-Agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .header("Stripe-Signature", header)
            .body(body)
            .send()
            .await
            .map_err(|err| format!("delivery to {url} failed: {err}"))?;
        Ok(response.status().as_u16())
    }
}

/// A `Stripe-Signature` header for `body` sent at `at`: `t=<unix>,v1=<hex HMAC-SHA256>,v0=<…>`, keyed with the
/// endpoint secret as is (the `v0` is a decoy our verifier must ignore, as Stripe's test mode sends one).
pub fn signature_header(webhook_secret: &str, body: &[u8], at: DateTime<Utc>) -> String {
    let timestamp = at.timestamp();
    let v1 = hmac_hex(
        webhook_secret.as_bytes(),
        &[timestamp.to_string().as_bytes(), b".", body],
    );
    let v0 = hmac_hex(b"v0-legacy", &[body]);
    format!("t={timestamp},v1={v1},v0={v0}")
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

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
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, request).await) }
            });
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn stripe_error(
    status: StatusCode,
    kind: &str,
    message: &str,
    param: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut error = Map::new();
    error.insert("type".to_owned(), json!(kind));
    error.insert("message".to_owned(), json!(message));
    if let Some(param) = param {
        error.insert("param".to_owned(), json!(param));
    }
    respond(status, &json!({ "error": error }))
}

fn invalid(message: &str, param: Option<&str>) -> Response<Full<Bytes>> {
    stripe_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
        param,
    )
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let authorized = header(AUTHORIZATION.as_str()).as_deref()
        == Some(format!("Bearer {}", shared.secret_key).as_str());
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return invalid("The request body could not be read.", None),
    };
    let form = parse_form(&bytes);
    let path = parts.uri.path().to_owned();
    lock(&shared.requests).push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        idempotency_key: header("idempotency-key"),
        authorized,
        content_type: header(CONTENT_TYPE.as_str()),
        form: form.clone(),
    });

    let fault = lock(&shared.faults).pop_front();
    match fault {
        Some(Fault::ServerError) => {
            return stripe_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "An unknown error occurred",
                None,
            );
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }

    if !authorized {
        let message = match header(AUTHORIZATION.as_str()) {
            None => "You did not provide an API key. You need to provide your API key in the \
                     Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
                .to_owned(),
            Some(value) => format!(
                "Invalid API Key provided: {}",
                value.strip_prefix("Bearer ").unwrap_or(&value)
            ),
        };
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            &message,
            None,
        );
    }

    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, ["v1", "checkout", "sessions"]) => {
            create_session(shared, header("idempotency-key"), form)
        }
        (&Method::POST, ["v1", "refunds"]) => {
            create_refund(shared, header("idempotency-key"), &form)
        }
        (&Method::GET, ["v1", "checkout", "sessions", id]) => {
            let id = percent_decode(id, false);
            match lock(&shared.state).sessions.get(&id) {
                Some(session) => respond(StatusCode::OK, session),
                None => respond(
                    StatusCode::NOT_FOUND,
                    &json!({"error": {
                        "type": "invalid_request_error",
                        "code": "resource_missing",
                        "param": "session",
                        "message": format!("No such checkout.session: '{id}'"),
                    }}),
                ),
            }
        }
        _ => {
            let mut response = invalid(
                &format!("Unrecognized request URL ({}: {path}).", parts.method),
                None,
            );
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// A 400 `invalid_request_error`, before it becomes a response.
struct Rejection {
    message: String,
    param: Option<String>,
}

fn reject(message: &str, param: Option<&str>) -> Rejection {
    Rejection {
        message: message.to_owned(),
        param: param.map(str::to_owned),
    }
}

/// Validates like Stripe does (first problem wins) and returns the session's JSON.
fn new_session(base_url: &str, form: &[(String, String)]) -> Result<Value, Rejection> {
    let get = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let required = |name: &str| {
        get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| reject(&format!("Missing required param: {name}."), Some(name)))
    };
    let integer = |name: &str, min: i64| -> Result<i64, Rejection> {
        let value = required(name)?;
        let number = value
            .parse::<i64>()
            .map_err(|_| reject(&format!("Invalid integer: {value}"), Some(name)))?;
        if number < min {
            return Err(reject(
                &format!("This value must be greater than or equal to {min}."),
                Some(name),
            ));
        }
        Ok(number)
    };
    for (key, _) in form {
        let metadata = key.starts_with("metadata[") && key.ends_with(']');
        if !metadata && !KNOWN_PARAMS.contains(&key.as_str()) {
            return Err(reject(
                &format!("Received unknown parameter: {key}"),
                Some(key),
            ));
        }
    }
    let mode = required("mode")?;
    if mode != "payment" {
        return Err(reject(
            &format!("Invalid mode: {mode} (this fake only supports payment)"),
            Some("mode"),
        ));
    }
    let currency_param = "line_items[0][price_data][currency]";
    let currency = required(currency_param)?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(reject(
            &format!("Invalid currency: {currency}"),
            Some(currency_param),
        ));
    }
    let unit_amount = integer("line_items[0][price_data][unit_amount]", 0)?;
    let name = required("line_items[0][price_data][product_data][name]")?;
    let quantity = integer("line_items[0][quantity]", 1)?;
    for url_param in ["success_url", "cancel_url"] {
        if url_param == "success_url" {
            required(url_param)?;
        }
        if let Some(url) = get(url_param)
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(reject("Not a valid URL", Some(url_param)));
        }
    }
    let total = unit_amount.checked_mul(quantity).ok_or_else(|| {
        reject(
            "Amount is too large.",
            Some("line_items[0][price_data][unit_amount]"),
        )
    })?;
    let metadata: Map<String, Value> = form
        .iter()
        .filter_map(|(key, value)| {
            let inner = key.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((inner.to_owned(), json!(value)))
        })
        .collect();
    let id = format!("cs_test_{}", Uuid::new_v4().simple());
    let created = Utc::now().timestamp();
    Ok(json!({
        "id": id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "amount_subtotal": total,
        "amount_total": total,
        "currency": currency,
        "client_reference_id": get("client_reference_id"),
        "metadata": metadata,
        "success_url": get("success_url"),
        "cancel_url": get("cancel_url"),
        "url": format!("{base_url}/c/pay/{id}"),
        "payment_intent": null,
        "created": created,
        "expires_at": created + 24 * 3600,
        "livemode": false,
        "line_items_preview": {"name": name, "quantity": quantity, "unit_amount": unit_amount},
    }))
}

fn create_session(
    shared: &Shared,
    idempotency_key: Option<String>,
    form: Vec<(String, String)>,
) -> Response<Full<Bytes>> {
    let mut state = lock(&shared.state);
    if let Some(key) = &idempotency_key
        && let Some(saved) = state.idempotency.get(key)
    {
        if saved.params != form {
            return stripe_error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                &format!(
                    "Keys for idempotent requests can only be used with the same parameters they were first \
                     used with. Try using a key other than '{key}' if you meant to execute a different request."
                ),
                None,
            );
        }
        let mut response = respond(StatusCode::OK, &saved.body);
        response.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
        return response;
    }
    // Validation failures are not saved against the key, as on Stripe.
    let session = match new_session(&shared.base_url, &form) {
        Ok(session) => session,
        Err(rejection) => return invalid(&rejection.message, rejection.param.as_deref()),
    };
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    state.sessions.insert(id, session.clone());
    if let Some(key) = idempotency_key {
        state.idempotency.insert(
            key,
            Saved {
                params: form,
                body: session.clone(),
            },
        );
    }
    respond(StatusCode::OK, &session)
}

/// `POST /v1/refunds` with `payment_intent`: refunds the whole of a paid session's PaymentIntent, once.
fn create_refund(
    shared: &Shared,
    idempotency_key: Option<String>,
    form: &[(String, String)],
) -> Response<Full<Bytes>> {
    let mut state = lock(&shared.state);
    if let Some(saved) = idempotency_key
        .as_ref()
        .and_then(|key| state.idempotency.get(key))
    {
        return respond(StatusCode::OK, &saved.body);
    }
    let params: Vec<&str> = form.iter().map(|(name, _)| name.as_str()).collect();
    if params != ["payment_intent"] {
        return invalid(
            "Refunds take exactly one of charge or payment_intent here.",
            None,
        );
    }
    let intent = form[0].1.clone();
    let Some(session) = state
        .sessions
        .values()
        .find(|session| session["payment_intent"] == json!(intent))
        .cloned()
    else {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("No such payment_intent: '{intent}'"),
            Some("payment_intent"),
        );
    };
    if !state.refunded.insert(intent.clone()) {
        return stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("Charge for payment_intent {intent} has already been refunded."),
            None,
        );
    }
    let refund = json!({
        "id": format!("re_{}", Uuid::new_v4().simple()),
        "object": "refund",
        "amount": session["amount_total"],
        "currency": session["currency"],
        "payment_intent": intent,
        "status": "succeeded",
    });
    if let Some(key) = idempotency_key {
        state.idempotency.insert(
            key,
            Saved {
                params: form.to_vec(),
                body: refund.clone(),
            },
        );
    }
    respond(StatusCode::OK, &refund)
}

impl StripeFake {
    /// Whether `payment_intent` was refunded.
    pub fn refunded(&self, payment_intent: &str) -> bool {
        lock(&self.shared().state).refunded.contains(payment_intent)
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs, in order.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, escaped) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
