//! Staff WebSockets: tickets, live events across two api replicas, topics by role, floods and slow readers.

use std::time::Duration;

use cybervpn_domain::{LiveEvent, LiveTopic, StaffRole};
use cybervpn_kv::{Kv, Store};
use cybervpn_testkit::Backend;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

use crate::helpers::{TestApp, assert_problem};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A fresh ticket for the staff member holding `token`, from the api at `base`.
async fn ticket(app: &TestApp, base: &str, token: &str) -> String {
    let response = app
        .client
        .post(format!("{base}/api/v1/ws/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 30);
    body["ticket"].as_str().unwrap().to_owned()
}

/// Opens `path` on the api at `base` with `ticket`; the HTTP status when the upgrade is refused.
async fn connect(base: &str, path: &str, ticket: &str) -> Result<Socket, u16> {
    let url = format!("{}{path}?ticket={ticket}", base.replacen("http", "ws", 1));
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(err) => panic!("connect: {err}"),
    }
}

/// The next event (JSON text message), skipping pings; panics after 10 s.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next event of `kind`, skipping periodic ones (queue depth, node snapshots).
async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let event = next_event(socket).await;
        if event["type"] == kind {
            return event;
        }
    }
}

/// The store the worker would publish through: the app's Redis under its prefix.
fn worker_store(app: &TestApp) -> Store {
    let redis = &app.config.redis;
    Store::Redis(Kv::new(redis.url.as_ref().unwrap().expose(), &redis.key_prefix, 2).unwrap())
}

fn node(connected: bool) -> cybervpn_remnawave::Node {
    serde_json::from_value(json!({
        "uuid": "0b7e6f4a-3a54-4f31-9f0e-2f1c9d1e5a77",
        "name": "Frankfurt-1",
        "address": "de1.example.com",
        "port": 443,
        "isConnected": connected,
        "isDisabled": false,
        "countryCode": "DE",
        "usersOnline": 12,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_status_change_from_the_worker_reaches_clients_of_both_replicas() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let replica = app.sibling(|_| {}).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut on_a = connect(
        &app.base,
        "/api/v1/ws/monitoring",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    // A ticket from one replica opens a socket on the other: tickets live in the shared store.
    let mut on_b = connect(
        &replica,
        "/api/v1/ws/monitoring",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    let mut incidents = connect(
        &replica,
        "/api/v1/ws/notifications",
        &ticket(&app, &replica, &admin).await,
    )
    .await
    .unwrap();
    for socket in [&mut on_a, &mut on_b] {
        let hello = next_event(socket).await;
        assert_eq!(hello["type"], "subscribed");
        assert_eq!(hello["data"]["topics"], json!(["monitoring"]));
    }
    let hello = next_event(&mut incidents).await;
    assert_eq!(
        hello["data"]["topics"],
        json!(["payments", "customers", "incidents"])
    );

    // What the worker's node sync does when the panel reports the node down.
    let store = worker_store(&app);
    let now = chrono::Utc::now();
    cybervpn_worker::record_node(&app.db, &store, &node(true), "sync:1", now)
        .await
        .unwrap();
    cybervpn_worker::record_node(&app.db, &store, &node(false), "sync:2", now)
        .await
        .unwrap();
    for socket in [&mut on_a, &mut on_b, &mut incidents] {
        let event = next_of(socket, "node_status").await;
        assert_eq!(event["data"]["name"], "Frankfurt-1");
        assert_eq!(event["data"]["from"], "online");
        assert_eq!(event["data"]["to"], "offline");
    }
    app.stop().await;
}

#[tokio::test]
async fn tickets_are_single_use_and_need_a_staff_token() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let refused = app
        .client
        .post(app.url("/api/v1/ws/ticket"))
        .send()
        .await
        .unwrap();
    assert_problem(refused, 401, "unauthorized").await;
    let customer = app.customer_token("ws@example.com").await;
    let refused = app
        .client
        .post(app.url("/api/v1/ws/ticket"))
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert!(
        [401, 403].contains(&refused.status().as_u16()),
        "{}",
        refused.status()
    );

    let viewer = app.staff_token(StaffRole::Viewer).await;
    let one = ticket(&app, &app.base, &viewer).await;
    let _socket = connect(&app.base, "/api/v1/ws/monitoring", &one)
        .await
        .unwrap();
    assert_eq!(
        connect(&app.base, "/api/v1/ws/monitoring", &one)
            .await
            .err(),
        Some(401),
        "a ticket opens one socket"
    );
    let forged = format!("{}.AAAA", uuid::Uuid::new_v4().simple());
    assert_eq!(
        connect(&app.base, "/api/v1/ws/monitoring", &forged)
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        connect(&app.base, "/api/v1/ws/notifications", "garbage")
            .await
            .err(),
        Some(401)
    );
    let plain = app.get("/api/v1/ws/monitoring").await;
    assert_problem(plain, 422, "validation_failed").await;
    // A plain GET does not spend a ticket.
    let unspent = ticket(&app, &app.base, &viewer).await;
    let plain = app
        .get(&format!("/api/v1/ws/monitoring?ticket={unspent}"))
        .await;
    assert_problem(plain, 422, "validation_failed").await;
    assert!(
        connect(&app.base, "/api/v1/ws/monitoring", &unspent)
            .await
            .is_ok()
    );
    app.stop().await;
}

/// Publishes a live event the way the api and the worker do.
async fn publish(store: &Store, topic: LiveTopic, kind: &str, data: Value) {
    let event = LiveEvent::new(topic, kind, chrono::Utc::now(), data);
    cybervpn_worker::live::publish(store, &event).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_receives_only_the_topics_it_may_see() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let viewer = app.staff_token(StaffRole::Viewer).await;
    let support = app.staff_token(StaffRole::Support).await;
    let mut viewer_socket = connect(
        &app.base,
        "/api/v1/ws/notifications",
        &ticket(&app, &app.base, &viewer).await,
    )
    .await
    .unwrap();
    let mut support_socket = connect(
        &app.base,
        "/api/v1/ws/notifications",
        &ticket(&app, &app.base, &support).await,
    )
    .await
    .unwrap();
    assert_eq!(
        next_event(&mut viewer_socket).await["data"]["topics"],
        json!(["customers", "incidents"]),
        "viewers do not see payments"
    );
    next_event(&mut support_socket).await;

    let store = worker_store(&app);
    publish(
        &store,
        LiveTopic::Payments,
        "payment_completed",
        json!({"amount_minor": 500}),
    )
    .await;
    // A real sign-up through the api publishes `customer_registered`.
    app.register("newcomer@example.com").await;
    let paid = next_event(&mut support_socket).await;
    assert_eq!(
        (paid["topic"].as_str(), paid["type"].as_str()),
        (Some("payments"), Some("payment_completed"))
    );
    let joined = next_event(&mut support_socket).await;
    assert_eq!(joined["type"], "customer_registered");
    assert_eq!(joined["data"]["via"], "api");
    // Events keep their order: the viewer's next event is the sign-up, so the payment was held back.
    let first = next_event(&mut viewer_socket).await;
    assert_eq!(first["type"], "customer_registered", "{first}");
    app.stop().await;
}

/// The close frame the server ends `socket` with, reading past anything before it.
async fn close_code(socket: &mut Socket) -> CloseCode {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => return frame.code,
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_closed_with_a_policy_error() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut socket = connect(
        &app.base,
        "/api/v1/ws/monitoring",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    for n in 0..40 {
        if socket
            .send(Message::text(format!("spam {n}")))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut socket).await, CloseCode::Policy);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"ws_closed_total{reason="flood"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_three_heartbeats() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| config.api.ws_heartbeat_secs = 1).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let socket = connect(
        &app.base,
        "/api/v1/ws/monitoring",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    // Never read: the client answers no pings. The server gives up after three heartbeats.
    let mut dropped = false;
    for _ in 0..100 {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains(r#"ws_closed_total{reason="silent"} 1"#) {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the silent client is dropped");
    drop(socket);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_dropped_while_the_others_keep_receiving() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let slow = connect(
        &app.base,
        "/api/v1/ws/monitoring",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    let mut reader = connect(
        &app.base,
        "/api/v1/ws/monitoring",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    next_event(&mut reader).await;
    let store = worker_store(&app);
    let filler = "x".repeat(8 * 1024);
    let reading = tokio::spawn(async move {
        loop {
            let event = next_event(&mut reader).await;
            if event["type"] == "last" {
                return event;
            }
        }
    });
    // About 24 MB of events: far more than the socket buffers of a client that never reads.
    for n in 0..3000 {
        publish(
            &store,
            LiveTopic::Monitoring,
            "bulk",
            json!({"n": n, "filler": filler}),
        )
        .await;
        if n % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    publish(&store, LiveTopic::Monitoring, "last", json!({})).await;
    let last = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last["topic"], "monitoring");
    let mut dropped = false;
    for _ in 0..150 {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        if metrics.contains(r#"ws_closed_total{reason="too_slow"} 1"#) {
            dropped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped, "the slow reader is dropped");
    drop(slow);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_told_when_the_api_stops() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let mut socket = connect(
        &app.base,
        "/api/v1/ws/notifications",
        &ticket(&app, &app.base, &admin).await,
    )
    .await
    .unwrap();
    next_of(&mut socket, "subscribed").await;
    // A graceful stop: the WebSocket gets 1001 instead of being cut when the drain times out.
    let stopping = tokio::spawn(app.stop());
    assert_eq!(close_code(&mut socket).await, CloseCode::Away);
    stopping.await.unwrap();
}
