//! Notification delivery against a loopback fake of the Telegram Bot API.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use chrono::Utc;
use cybervpn_config::Secret;
use cybervpn_db::Audience;
use cybervpn_testkit::Backend;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::rig::Rig;

/// Records `sendMessage` calls and answers each chat as told: ok, blocked (403) or rate limited (429).
#[derive(Clone, Default)]
struct BotApi {
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    blocked: Arc<Mutex<Vec<i64>>>,
    limited_once: Arc<Mutex<Vec<i64>>>,
}

impl BotApi {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let api = self.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        url
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let body: Value =
            serde_json::from_slice(&request.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        let chat = body["chat_id"].as_i64().unwrap();
        self.calls.lock().unwrap().push((path, body));
        let blocked = self.blocked.lock().unwrap().contains(&chat);
        let limited = {
            let mut limited = self.limited_once.lock().unwrap();
            let position = limited.iter().position(|c| *c == chat);
            position.map(|i| limited.remove(i)).is_some()
        };
        let (status, reply) = if blocked {
            (
                403,
                json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
            )
        } else if limited {
            (
                429,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 1}}),
            )
        } else {
            (
                200,
                json!({"ok": true, "result": {"message_id": 1, "chat": {"id": chat}}}),
            )
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(reply.to_string())))
            .unwrap()
    }
}

#[tokio::test]
async fn notifications_reach_telegram_once_and_blocked_chats_are_not_retried() {
    let api = BotApi::default();
    let url = api.clone().start().await;
    let rig = Rig::with(Backend::Postgres, |config| {
        config.telegram.bot_token = Some(Secret::new("123:SECRET".to_owned()));
        config.telegram.api_url = url.clone();
        config.telegram.admin_chat_ids = vec![-1001, -1002];
    })
    .await;
    let customer = rig.customer("ada").await;
    let chat = rig
        .db
        .customers()
        .get(customer)
        .await
        .unwrap()
        .telegram_id
        .unwrap()
        .get();
    api.limited_once.lock().unwrap().push(chat);
    api.blocked.lock().unwrap().push(-1002);

    let db = &rig.db;
    assert!(
        cybervpn_worker::notify(db, "k1", Audience::Customer(customer), "test", "hello")
            .await
            .unwrap()
    );
    assert!(
        !cybervpn_worker::notify(db, "k1", Audience::Customer(customer), "test", "hello")
            .await
            .unwrap(),
        "recorded once"
    );
    assert!(
        cybervpn_worker::notify(db, "k2", Audience::Staff, "test", "node down")
            .await
            .unwrap()
    );
    rig.run_until("both notifications are delivered", || async {
        db.notifications().pending(10).await.unwrap().is_empty()
    })
    .await;

    let calls = api.calls.lock().unwrap().clone();
    assert!(
        calls
            .iter()
            .all(|(path, _)| path == "/bot123:SECRET/sendMessage"),
        "{calls:?}"
    );
    let to_customer: Vec<_> = calls.iter().filter(|(_, b)| b["chat_id"] == chat).collect();
    assert_eq!(to_customer.len(), 2, "rate limited once, then delivered");
    assert_eq!(to_customer[1].1["text"], "hello");
    let to_staff: Vec<i64> = calls
        .iter()
        .filter_map(|(_, b)| b["chat_id"].as_i64())
        .filter(|c| *c < 0)
        .collect();
    assert_eq!(
        to_staff,
        [-1001, -1002],
        "the blocked admin chat is tried once, not retried"
    );
    let staff = db.notifications().of_kind("test", 10).await.unwrap();
    assert!(
        staff
            .iter()
            .all(|n| n.sent_at.is_some_and(|at| at <= Utc::now()))
    );
}
