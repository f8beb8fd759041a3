//! A loopback fake of the YooKassa payments API (`POST /v3/payments`, `GET /v3/payments/{id}`): Basic auth,
//! `Idempotence-Key` semantics, amount validation, real error and notification bodies, and injected faults.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch};
use uuid::Uuid;

/// Largest request body the fake reads.
const MAX_BODY: usize = 1 << 20;
/// Currencies the fake shop accepts.
const CURRENCIES: [&str; 3] = ["RUB", "USD", "EUR"];

/// One request the fake received, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// HTTP method, such as `POST`.
    pub method: String,
    /// Request path, such as `/v3/payments`.
    pub path: String,
    /// Headers in order, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A misbehaviour applied to the next request(s).
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answer with this status and an `internal_server_error` body, without processing the request.
    Status(u16),
    /// Process the request, then wait this long before answering (a lost or late answer).
    Delay(Duration),
}

struct Shared {
    shop_id: String,
    /// The exact `Authorization` header value that authenticates.
    expected_auth: String,
    state: Mutex<State>,
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

#[derive(Default)]
struct State {
    /// Payment objects by id, in YooKassa's JSON shape.
    payments: HashMap<String, Value>,
    /// Idempotence key → (request body, payment id).
    keys: HashMap<String, (Value, String)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake YooKassa; clones share it, and it stops when the last clone drops.
#[derive(Clone)]
pub struct YooKassaFake {
    handle: Arc<Handle>,
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

impl std::fmt::Debug for YooKassaFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YooKassaFake")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl YooKassaFake {
    /// Serves a fake shop with these credentials on `127.0.0.1:0`, on the current Tokio runtime.
    pub async fn start(
        shop_id: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> std::io::Result<Self> {
        let shop_id = shop_id.into();
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let credentials = format!("{shop_id}:{}", secret_key.into());
        let shared = Arc::new(Shared {
            expected_auth: format!("Basic {}", base64(credentials.as_bytes())),
            shop_id,
            state: Mutex::new(State::default()),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
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

    /// The API base URL for [`crate::yookassa::YooKassaConfig::api_url`]: `http://127.0.0.1:PORT/v3/`.
    pub fn url(&self) -> String {
        format!("http://{}/v3/", self.handle.addr)
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared().requests).clone()
    }

    /// The stored payment object, in YooKassa's JSON shape.
    pub fn payment(&self, id: &str) -> Option<Value> {
        lock(&self.shared().state).payments.get(id).cloned()
    }

    /// How many payments exist.
    pub fn payment_count(&self) -> usize {
        lock(&self.shared().state).payments.len()
    }

    /// The customer paid: `succeeded`, `paid: true`; false if the payment is unknown or already final.
    pub fn succeed(&self, id: &str) -> bool {
        self.transition(id, |payment| {
            let amount = payment.get("amount").cloned().unwrap_or(Value::Null);
            payment["status"] = json!("succeeded");
            payment["paid"] = json!(true);
            payment["refundable"] = json!(true);
            payment["captured_at"] = json!(now());
            payment["income_amount"] = amount;
            if let Some(object) = payment.as_object_mut() {
                object.remove("confirmation");
            }
        })
    }

    /// The payment expired unpaid: `canceled`; false if the payment is unknown or already final.
    pub fn cancel(&self, id: &str) -> bool {
        self.transition(id, |payment| {
            payment["status"] = json!("canceled");
            payment["paid"] = json!(false);
            payment["cancellation_details"] =
                json!({"party": "yoo_money", "reason": "expired_on_confirmation"});
            if let Some(object) = payment.as_object_mut() {
                object.remove("confirmation");
            }
        })
    }

    fn transition(&self, id: &str, change: impl FnOnce(&mut Value)) -> bool {
        let mut state = lock(&self.shared().state);
        let Some(payment) = state.payments.get_mut(id) else {
            return false;
        };
        if !matches!(
            payment.get("status").and_then(Value::as_str),
            Some("pending" | "waiting_for_capture")
        ) {
            return false;
        }
        change(payment);
        true
    }

    /// The body YooKassa would POST for `event` (`payment.succeeded`, `refund.succeeded`, any name) about
    /// payment `id`: the current payment object, or for `refund.*` a refund of it.
    pub fn notification_body(&self, event: &str, id: &str) -> Vec<u8> {
        let payment = self.payment(id);
        let object = if event.starts_with("refund.") {
            let amount = payment
                .as_ref()
                .and_then(|payment| payment.get("amount").cloned())
                .unwrap_or_else(|| json!({"value": "0.00", "currency": "RUB"}));
            json!({
                "id": payment_like_id(),
                "payment_id": id,
                "status": "succeeded",
                "amount": amount,
                "created_at": now(),
            })
        } else {
            payment.unwrap_or_else(|| json!({"id": id}))
        };
        json!({"type": "notification", "event": event, "object": object})
            .to_string()
            .into_bytes()
    }

    /// The next `times` requests answer `status` with an `internal_server_error` body and take no effect.
    pub fn fail_next(&self, times: usize, status: u16) {
        let mut faults = lock(&self.shared().faults);
        faults.extend(std::iter::repeat_n(Fault::Status(status), times));
    }

    /// The next `times` requests take effect, but are answered only after `delay`.
    pub fn delay_next(&self, times: usize, delay: Duration) {
        let mut faults = lock(&self.shared().faults);
        faults.extend(std::iter::repeat_n(Fault::Delay(delay), times));
    }
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

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(error(
                400,
                "invalid_request",
                "Request body is unreadable",
                None,
            ));
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    lock(&shared.requests).push(recorded.clone());
    let fault = lock(&shared.faults).pop_front();
    if let Some(Fault::Status(status)) = fault {
        return Ok(error(
            status,
            "internal_server_error",
            "Internal server error. Repeat the request with the same Idempotence-Key",
            None,
        ));
    }
    let response = route(&shared, &parts.method, &recorded);
    if let Some(Fault::Delay(delay)) = fault {
        tokio::time::sleep(delay).await;
    }
    Ok(response)
}

fn route(shared: &Shared, method: &Method, request: &RecordedRequest) -> Response<Full<Bytes>> {
    let Some(path) = request.path.strip_prefix("/v3/") else {
        return error(404, "not_found", "Unknown API path", None);
    };
    if request.header("authorization") != Some(shared.expected_auth.as_str()) {
        return error(
            401,
            "invalid_credentials",
            "Login has no access to this shop or the secret key is wrong",
            None,
        );
    }
    match (method, path.split_once('/')) {
        (&Method::POST, None) if path == "payments" => create(shared, request),
        (&Method::GET, Some(("payments", id))) if !id.is_empty() && !id.contains('/') => {
            match lock(&shared.state).payments.get(id) {
                Some(payment) => reply(200, payment),
                None => error(
                    404,
                    "not_found",
                    "Incorrect payment_id. Payment doesn't exist or access denied",
                    Some("payment_id"),
                ),
            }
        }
        _ => error(404, "not_found", "Unknown API method", None),
    }
}

fn create(shared: &Shared, request: &RecordedRequest) -> Response<Full<Bytes>> {
    let Some(key) = request
        .header("idempotence-key")
        .filter(|key| !key.trim().is_empty())
    else {
        return error(
            400,
            "invalid_request",
            "Idempotence key isn't specified",
            Some("Idempotence-Key"),
        );
    };
    if key.chars().count() > 64 {
        return error(
            400,
            "invalid_request",
            "Idempotence key is too long",
            Some("Idempotence-Key"),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return error(
            400,
            "invalid_request",
            "Request body is not valid JSON",
            None,
        );
    };
    if let Err((parameter, description)) = validate(&body) {
        return error(400, "invalid_request", description, Some(parameter));
    }

    let mut state = lock(&shared.state);
    if let Some((first_body, id)) = state.keys.get(key) {
        if *first_body != body {
            return error(
                400,
                "invalid_request",
                "Idempotence key duplicated with other request parameters",
                Some("Idempotence-Key"),
            );
        }
        return match state.payments.get(id) {
            Some(payment) => reply(200, payment),
            None => error(500, "internal_server_error", "Payment is lost", None),
        };
    }
    let id = payment_like_id();
    let mut payment = json!({
        "id": id,
        "status": "pending",
        "paid": false,
        "amount": body["amount"],
        "created_at": now(),
        "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "recipient": {"account_id": shared.shop_id, "gateway_id": "100500"},
        "refundable": false,
        "test": true,
    });
    if let Some(description) = body.get("description") {
        payment["description"] = description.clone();
    }
    if let Some(return_url) = body.pointer("/confirmation/return_url") {
        payment["confirmation"] = json!({
            "type": "redirect",
            "return_url": return_url,
            "confirmation_url": format!("https://yoomoney.ru/checkout/payments/v2/contract?orderId={id}"),
        });
    }
    state.keys.insert(key.to_owned(), (body, id.clone()));
    let response = reply(200, &payment);
    state.payments.insert(id, payment);
    response
}

/// Checks a create body as YooKassa does; the error names the parameter.
fn validate(body: &Value) -> Result<(), (&'static str, &'static str)> {
    let value = body
        .pointer("/amount/value")
        .and_then(Value::as_str)
        .ok_or(("amount.value", "Amount value is missing"))?;
    let well_formed = value.split_once('.').is_some_and(|(whole, fraction)| {
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() == 2
            && fraction.bytes().all(|b| b.is_ascii_digit())
    });
    if !well_formed {
        return Err((
            "amount.value",
            "Amount value must be a decimal string with two fraction digits",
        ));
    }
    if value.bytes().all(|b| b == b'0' || b == b'.') {
        return Err(("amount.value", "Amount value must be positive"));
    }
    let currency = body
        .pointer("/amount/currency")
        .and_then(Value::as_str)
        .ok_or(("amount.currency", "Amount currency is missing"))?;
    if !CURRENCIES.contains(&currency) {
        return Err(("amount.currency", "Currency is not supported"));
    }
    if body
        .get("capture")
        .is_some_and(|capture| !capture.is_boolean())
    {
        return Err(("capture", "capture must be a boolean"));
    }
    if let Some(confirmation) = body.get("confirmation") {
        if confirmation.get("type").and_then(Value::as_str) != Some("redirect") {
            return Err((
                "confirmation.type",
                "Only redirect confirmation is supported",
            ));
        }
        if confirmation
            .get("return_url")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(("confirmation.return_url", "Return URL is missing"));
        }
    }
    if body.get("description").is_some_and(|description| {
        description
            .as_str()
            .is_none_or(|text| text.chars().count() > 128)
    }) {
        return Err((
            "description",
            "Description must be a string of at most 128 characters",
        ));
    }
    if let Some(metadata) = body.get("metadata") {
        let valid = metadata
            .as_object()
            .is_some_and(|fields| fields.len() <= 16 && fields.values().all(Value::is_string));
        if !valid {
            return Err((
                "metadata",
                "Metadata must be an object of at most 16 string values",
            ));
        }
    }
    Ok(())
}

fn reply(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// YooKassa's error body.
fn error(
    status: u16,
    code: &str,
    description: &str,
    parameter: Option<&str>,
) -> Response<Full<Bytes>> {
    let mut body = json!({
        "type": "error",
        "id": Uuid::new_v4().to_string(),
        "code": code,
        "description": description,
    });
    if let Some(parameter) = parameter {
        body["parameter"] = json!(parameter);
    }
    reply(status, &body)
}

/// An id in YooKassa's style (UUID-shaped, such as `2f3a…-000f-5000-8000-…`).
fn payment_like_id() -> String {
    Uuid::new_v4().to_string()
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Standard base64 with padding (for the expected Basic credentials).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, output) in cases {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }
}
