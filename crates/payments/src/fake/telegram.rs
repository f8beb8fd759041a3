//! A loopback Telegram Bot API for Stars refunds: `refundStarPayment` against charges the test registers,
//! with Telegram's error answers.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode, body::Incoming, header::CONTENT_TYPE, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct State {
    /// Charge id → the user who paid.
    charges: HashMap<String, i64>,
    refunded: HashSet<String>,
}

struct Shared {
    token: String,
    state: Mutex<State>,
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

/// A Bot API on `127.0.0.1:<port>` for the bot `token`; stops when the last clone is dropped.
#[derive(Clone)]
pub struct TelegramFake {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for TelegramFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramFake").finish_non_exhaustive()
    }
}

impl TelegramFake {
    /// Starts a fake answering the bot `token` only (others get 401 Unauthorized, as on Telegram).
    pub async fn start(token: impl Into<String>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.into(),
            state: Mutex::new(State::default()),
        });
        let (stop, mut stopped) = watch::channel(false);
        let serving = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, std::convert::Infallible>(answer(&shared, request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            handle: Arc::new(Handle { shared, addr, stop }),
        })
    }

    /// The Bot API origin to configure, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// Registers a Stars charge `user_id` paid, as Telegram would after `successful_payment`.
    pub fn add_charge(&self, user_id: i64, telegram_payment_charge_id: &str) {
        lock(&self.handle.shared.state)
            .charges
            .insert(telegram_payment_charge_id.to_owned(), user_id);
    }

    /// Whether the charge was refunded.
    pub fn refunded(&self, telegram_payment_charge_id: &str) -> bool {
        lock(&self.handle.shared.state)
            .refunded
            .contains(telegram_payment_charge_id)
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(body).unwrap_or_default(),
    )));
    *response.status_mut() = status;
    if let Ok(value) = "application/json".parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

fn error(code: u16, description: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"ok": false, "error_code": code, "description": description}),
    )
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some((bot, method)) = path
        .trim_start_matches('/')
        .split_once('/')
        .and_then(|(bot, method)| Some((bot.strip_prefix("bot")?.to_owned(), method.to_owned())))
    else {
        return error(404, "Not Found");
    };
    if bot != shared.token {
        return error(401, "Unauthorized");
    }
    let Ok(body) = request.into_body().collect().await else {
        return error(400, "Bad Request: body");
    };
    let params: Value = serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null);
    if method != "refundStarPayment" {
        return error(404, "Not Found: method not found");
    }
    let (Some(user_id), Some(charge)) = (
        params["user_id"].as_i64(),
        params["telegram_payment_charge_id"].as_str(),
    ) else {
        return error(
            400,
            "Bad Request: user_id and telegram_payment_charge_id are required",
        );
    };
    let mut state = lock(&shared.state);
    if state.charges.get(charge) != Some(&user_id) {
        return error(400, "Bad Request: CHARGE_NOT_FOUND");
    }
    if !state.refunded.insert(charge.to_owned()) {
        return error(400, "Bad Request: CHARGE_ALREADY_REFUNDED");
    }
    reply(StatusCode::OK, &json!({"ok": true, "result": true}))
}
