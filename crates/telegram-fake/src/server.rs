//! The HTTP side: hyper 1 on a loopback listener, `/bot<token>/<method>` routing, the token check, body
//! decoding and the record of every call.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::Call;
use crate::input;
use crate::methods::{self, Method};
use crate::state::State;

/// Request bodies above this get 413, like Telegram's upload limit for bots (50 MB) plus form overhead.
const MAX_BODY: usize = 52 * 1024 * 1024;

/// Locks a mutex, ignoring poisoning: a panicked test must not wedge every later request.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the server task and the handles share.
pub(crate) struct Shared {
    pub(crate) token: String,
    pub(crate) state: Mutex<State>,
    pub(crate) calls: Mutex<Vec<Call>>,
    /// Woken when an update is queued, a webhook is set or a newer `getUpdates` starts.
    pub(crate) updates_pushed: Notify,
    /// Delivers webhooks.
    pub(crate) client: reqwest::Client,
}

/// A Bot API error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) description: String,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    /// 400 `Bad Request: <reason>`.
    pub(crate) fn bad(reason: impl std::fmt::Display) -> ApiError {
        ApiError {
            code: 400,
            description: format!("Bad Request: {reason}"),
            retry_after: None,
        }
    }

    /// Any status with a full description.
    pub(crate) fn new(code: u16, description: impl Into<String>) -> ApiError {
        ApiError {
            code,
            description: description.into(),
            retry_after: None,
        }
    }

    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after`.
    pub(crate) fn flood(retry_after: u64) -> ApiError {
        ApiError {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
        }
    }

    fn body(&self) -> Value {
        let mut body =
            json!({"ok": false, "error_code": self.code, "description": self.description});
        if let Some(retry_after) = self.retry_after {
            body["parameters"] = json!({ "retry_after": retry_after });
        }
        body
    }
}

/// A successful answer: the `result`, and the `description` some methods add.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Success {
    pub(crate) result: Value,
    pub(crate) description: Option<&'static str>,
}

impl From<Value> for Success {
    fn from(result: Value) -> Success {
        Success {
            result,
            description: None,
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
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

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let Some((token, method_name)) = path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return respond(404, &ApiError::new(404, "Not Found").body());
    };
    if token != shared.token {
        return respond(401, &ApiError::new(401, "Unauthorized").body());
    }
    let method_name = method_name.to_owned();
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return respond(413, &ApiError::new(413, "Request Entity Too Large").body()),
    };
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let decoded = input::decode(content_type, parts.uri.query(), &bytes);
    let method = Method::parse(&method_name);
    let (params, files) = match &decoded {
        Ok(input) => (Value::Object(input.params.clone()), input.files.clone()),
        Err(_) => (Value::Object(Map::new()), Vec::new()),
    };
    let outcome = match (method, decoded) {
        (None, _) => Err(ApiError::new(404, "Not Found")),
        (Some(_), Err(reason)) => Err(ApiError::bad(reason)),
        (Some(method), Ok(input)) => methods::run(shared, method, &input).await,
    };
    let (status, body) = match outcome {
        Ok(success) => {
            let mut body = json!({"ok": true, "result": success.result});
            if let Some(description) = success.description {
                body["description"] = json!(description);
            }
            (200, body)
        }
        Err(error) => (error.code, error.body()),
    };
    record(
        shared,
        Call {
            method: method.map_or(method_name, |method| method.name().to_owned()),
            params,
            files,
            status,
            response: body.clone(),
        },
    );
    respond(status, &body)
}

fn record(shared: &Shared, call: Call) {
    lock(&shared.calls).push(call);
}
