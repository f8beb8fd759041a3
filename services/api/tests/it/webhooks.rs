//! `POST /api/v1/webhooks/remnawave`: signature checks and what each panel event changes, on both backends.

use chrono::{SubsecRound, Utc};
use cybervpn_db::{Audience, NodeReport};
use cybervpn_domain::{
    CustomerId, PanelIdentity, ServerStatus, Subscription, SubscriptionStatus, TrafficBytes,
};
use cybervpn_testkit::{Backend, on_both_backends};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    webhooks_are_refused_until_a_secret_is_configured,
    only_correctly_signed_webhook_bodies_are_read,
    a_revoked_panel_user_replaces_the_subscription_link,
    a_limited_panel_user_limits_the_subscription_and_notifies_once,
    panel_side_user_changes_are_provisioned_back,
    node_events_update_servers_and_notify_staff_of_status_changes,
    events_we_do_not_act_on_change_nothing,
    replayed_and_stale_webhooks_are_refused,
);

const SECRET: &str = "webhook-secret-of-at-least-32-characters";
const PATH: &str = "/api/v1/webhooks/remnawave";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.remnawave.webhook_secret = Some(cybervpn_config::Secret::new(SECRET.to_owned()));
    })
    .await
}

/// The hex HMAC-SHA256 of `body` under `secret`, as the panel computes it.
fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs `body` as is, with `signature` in `X-Remnawave-Signature` if given.
async fn deliver_raw(app: &TestApp, body: &[u8], signature: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(PATH))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Remnawave-Signature", signature);
    }
    request.send().await.unwrap()
}

/// Delivers `event` signed with the configured secret and expects it accepted.
async fn deliver(app: &TestApp, event: &Value) {
    let body = serde_json::to_vec(event).unwrap();
    let response = deliver_raw(app, &body, Some(&sign(SECRET, &body))).await;
    assert_eq!(json_body(response, 200).await, json!({ "ok": true }));
}

/// A webhook timestamp `offset` seconds from now, as the panel writes it.
fn at(offset: i64) -> String {
    (Utc::now() + chrono::TimeDelta::seconds(offset))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(name: &str, timestamp: &str, data: Value) -> Value {
    let scope = name.split('.').next().unwrap();
    json!({ "scope": scope, "event": name, "timestamp": timestamp, "data": data, "meta": null })
}

/// A panel user as Remnawave 3.x sends it in user events.
fn panel_user(id: i64, username: &str, short_uuid: &str) -> Value {
    json!({
        "id": id,
        "shortUuid": short_uuid,
        "username": username,
        "status": "ACTIVE",
        "trafficLimitBytes": 0,
        "trafficLimitStrategy": "NO_RESET",
        "expireAt": "2030-01-01T00:00:00.000Z",
        "telegramId": null,
        "email": null,
        "tag": "CYBERVPN",
        "subscriptionUrl": format!("https://sub.example.com/{short_uuid}"),
        "activeInternalSquads": [],
        "userTraffic": { "usedTrafficBytes": 0, "lifetimeUsedTrafficBytes": 0 },
    })
}

fn username(customer: CustomerId) -> String {
    format!("cv_{}", customer.as_uuid().simple())
}

/// A customer with a subscription served by panel user `panel_id`.
async fn provisioned(app: &TestApp, email: &str, panel_id: i64) -> (CustomerId, Subscription) {
    let customer = app.customer_id(email).await;
    let subscription = app.subscribe(customer, 30).await;
    let identity = PanelIdentity {
        user_id: panel_id,
        short_uuid: "oldShort".to_owned(),
        subscription_url: "https://sub.example.com/oldShort".to_owned(),
    };
    app.db
        .subscriptions()
        .set_panel(subscription.id, Some(&identity), Utc::now())
        .await
        .unwrap();
    let subscription = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(subscription.panel, Some(identity));
    (customer, subscription)
}

/// `webhooks_received_total` for the panel and `outcome`, from `/metrics`.
async fn received(app: &TestApp, outcome: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|line| line.starts_with("webhooks_received_total{"))
        .filter(|line| line.contains(&label) && line.contains("source=\"remnawave\""))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

async fn webhooks_are_refused_until_a_secret_is_configured(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = serde_json::to_vec(&event("user.modified", &at(-180), json!({}))).unwrap();
    for signature in [Some(sign(SECRET, &body)), None] {
        assert_problem(
            deliver_raw(&app, &body, signature.as_deref()).await,
            503,
            "service_unavailable",
        )
        .await;
    }
    app.stop().await;
}

async fn only_correctly_signed_webhook_bodies_are_read(backend: Backend) {
    let app = spawn(backend).await;
    let (_, subscription) = provisioned(&app, "signed@example.com", 501).await;
    let body =
        serde_json::to_vec(&event("user.deleted", &at(-180), panel_user(501, "x", "s"))).unwrap();
    let other = br#"{"event":"user.deleted","data":{"id":501}}"#;
    let bad = [
        None,
        Some(String::new()),
        Some("not hex".to_owned()),
        Some(sign("another-secret-of-at-least-32-characters", &body)),
        Some(sign(SECRET, other)),
        Some(sign(SECRET, &body)[..62].to_owned()),
    ];
    for signature in &bad {
        assert_problem(
            deliver_raw(&app, &body, signature.as_deref()).await,
            401,
            "unauthorized",
        )
        .await;
    }
    assert_eq!(received(&app, "bad_signature").await, 6);
    assert!(
        app.outbox().await.is_empty(),
        "a refused body changes nothing"
    );

    // Signed, but not a webhook body.
    for body in [&b"user.deleted 501"[..], b"", br#"{"data":{}}"#] {
        assert_problem(
            deliver_raw(&app, body, Some(&sign(SECRET, body))).await,
            400,
            "malformed_json",
        )
        .await;
    }
    assert!(app.outbox().await.is_empty());

    // The same body correctly signed is applied (upper-case hex too).
    let upper = sign(SECRET, &body).to_uppercase();
    assert_eq!(
        json_body(deliver_raw(&app, &body, Some(&upper)).await, 200).await,
        json!({ "ok": true })
    );
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        outbox[0].payload,
        json!({ "subscription_id": subscription.id.as_uuid() })
    );
    assert_eq!(received(&app, "applied").await, 1);
    assert_eq!(received(&app, "bad_signature").await, 6);
    app.stop().await;
}

async fn a_revoked_panel_user_replaces_the_subscription_link(backend: Backend) {
    let app = spawn(backend).await;
    let (customer, subscription) = provisioned(&app, "revoked@example.com", 501).await;
    deliver(
        &app,
        &event(
            "user.revoked",
            &at(-180),
            panel_user(501, &username(customer), "newShort"),
        ),
    )
    .await;
    let after = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(
        after.panel,
        Some(PanelIdentity {
            user_id: 501,
            short_uuid: "newShort".to_owned(),
            subscription_url: "https://sub.example.com/newShort".to_owned(),
        })
    );
    assert_eq!(
        Subscription {
            panel: subscription.panel.clone(),
            ..after
        },
        subscription,
        "only the panel identity changed"
    );
    assert!(app.outbox().await.is_empty(), "the panel already has it");

    // A revocation without the new link is not half applied.
    deliver(
        &app,
        &event(
            "user.revoked",
            &at(0),
            json!({ "id": 501, "shortUuid": "third" }),
        ),
    )
    .await;
    let again = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(again.panel.unwrap().short_uuid, "newShort");
    app.stop().await;
}

async fn a_limited_panel_user_limits_the_subscription_and_notifies_once(backend: Backend) {
    let app = spawn(backend).await;
    let (customer, subscription) = provisioned(&app, "limited@example.com", 502).await;
    let limited = event(
        "user.limited",
        &at(-180),
        panel_user(502, &username(customer), "oldShort"),
    );
    // The panel may deliver the same event twice: the second delivery is acknowledged and changes nothing.
    deliver(&app, &limited).await;
    let body = serde_json::to_vec(&limited).unwrap();
    let again = deliver_raw(&app, &body, Some(&sign(SECRET, &body))).await;
    assert_eq!(
        json_body(again, 200).await,
        json!({ "ok": true, "duplicate": true })
    );
    let after = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(after.status, SubscriptionStatus::Limited);
    assert_eq!(after.expires_at, subscription.expires_at);
    let notifications = app
        .db
        .notifications()
        .of_kind("traffic_limited", 10)
        .await
        .unwrap();
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    assert_eq!(notifications[0].audience, Audience::Customer(customer));
    let outbox = app.outbox().await;
    let jobs: Vec<(&str, &Value)> = outbox
        .iter()
        .map(|m| (m.job.as_str(), &m.payload))
        .collect();
    let notice = json!({ "notification_id": notifications[0].id });
    assert_eq!(
        jobs,
        [
            ("deliver_notification", &notice),
            ("push_notification", &notice)
        ]
    );

    // A traffic reset on the panel lifts the limit here too and provisions the result.
    assert!(
        app.db
            .subscriptions()
            .set_traffic_used(502, TrafficBytes::from_bytes(5_000))
            .await
            .unwrap()
    );
    deliver(
        &app,
        &event(
            "user.traffic_reset",
            &at(60),
            panel_user(502, &username(customer), "oldShort"),
        ),
    )
    .await;
    let reset = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(reset.status, SubscriptionStatus::Active);
    assert_eq!(reset.traffic_used, TrafficBytes::ZERO);
    let outbox = app.outbox().await;
    assert_eq!(outbox.len(), 3);
    assert_eq!(
        (outbox[2].job.as_str(), &outbox[2].payload),
        (
            "provision_subscription",
            &json!({ "subscription_id": subscription.id.as_uuid() })
        )
    );
    app.stop().await;
}

async fn panel_side_user_changes_are_provisioned_back(backend: Backend) {
    let app = spawn(backend).await;
    let (customer, subscription) = provisioned(&app, "changed@example.com", 503).await;
    // Not provisioned yet (no panel id stored): found by the username we derive from the customer.
    let fresh = app.customer_id("fresh-panel@example.com").await;
    let unlinked = app.subscribe(fresh, 30).await;

    for (name, user) in [
        ("user.deleted", panel_user(503, &username(customer), "s1")),
        ("user.modified", panel_user(503, &username(customer), "s1")),
        ("user.modified", panel_user(9_999, &username(fresh), "s2")),
    ] {
        deliver(&app, &event(name, &at(-180), user)).await;
    }
    let outbox = app.outbox().await;
    let jobs: Vec<(&str, &Value)> = outbox
        .iter()
        .map(|m| (m.job.as_str(), &m.payload))
        .collect();
    let ours = json!({ "subscription_id": subscription.id.as_uuid() });
    let theirs = json!({ "subscription_id": unlinked.id.as_uuid() });
    assert_eq!(
        jobs,
        [
            ("provision_subscription", &ours),
            ("provision_subscription", &ours),
            ("provision_subscription", &theirs),
        ]
    );
    // Our subscription stays the truth: the panel's change is not copied into it.
    assert_eq!(
        app.db.subscriptions().get(subscription.id).await.unwrap(),
        subscription
    );

    // A panel user that is none of ours is acknowledged and left alone.
    for user in [
        panel_user(4_242, "someone_else", "s3"),
        panel_user(
            4_243,
            &format!("cv_{}", uuid::Uuid::now_v7().simple()),
            "s4",
        ),
    ] {
        deliver(&app, &event("user.deleted", &at(-180), user)).await;
    }
    assert_eq!(app.outbox().await.len(), 3);
    assert_eq!(received(&app, "applied").await, 3);
    assert_eq!(received(&app, "ignored").await, 2);
    app.stop().await;
}

fn node_event(name: &str, timestamp: &str, uuid: uuid::Uuid, connected: bool) -> Value {
    event(
        name,
        timestamp,
        json!({
            "uuid": uuid,
            "name": "Frankfurt",
            "address": "fra.vpn.example.com",
            "port": 2222,
            "isConnected": connected,
            "isDisabled": false,
            "isConnecting": false,
            "lastStatusMessage": if connected { Value::Null } else { json!("connection timed out") },
            "countryCode": "DE",
            "usersOnline": if connected { 12 } else { 0 },
            "trafficUsedBytes": "123456",
            "trafficLimitBytes": null,
            "xrayUptime": "0",
        }),
    )
}

async fn node_events_update_servers_and_notify_staff_of_status_changes(backend: Backend) {
    let app = spawn(backend).await;
    let node = uuid::Uuid::new_v4();
    let seen = Utc::now().trunc_subsecs(6);
    let server = app
        .db
        .servers()
        .upsert(
            &NodeReport {
                panel_uuid: node.to_string(),
                name: "Frankfurt".to_owned(),
                address: "fra.vpn.example.com".to_owned(),
                port: 2222,
                country_code: "DE".to_owned(),
                is_connected: true,
                is_disabled: false,
                users_online: 12,
                traffic_used_bytes: 100_000,
                status_message: None,
            },
            seen,
        )
        .await
        .unwrap()
        .id;

    // The panel loses the node, and says so twice (two events, seconds apart).
    deliver(
        &app,
        &node_event("node.connection_lost", &at(-180), node, false),
    )
    .await;
    deliver(
        &app,
        &node_event("node.connection_lost", &at(-175), node, false),
    )
    .await;
    let stored = app.db.servers().get(server).await.unwrap();
    assert_eq!(stored.status, ServerStatus::Offline);
    assert!(!stored.is_connected);
    assert_eq!(stored.users_online, 0);
    assert_eq!(stored.traffic_used_bytes, 123_456);
    assert_eq!(
        stored.status_message.as_deref(),
        Some("connection timed out")
    );
    assert!(stored.last_status_change.unwrap() > seen);
    let notifications = app
        .db
        .notifications()
        .of_kind("node_status", 10)
        .await
        .unwrap();
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    assert_eq!(notifications[0].audience, Audience::Staff);
    assert!(
        notifications[0].body.contains("Frankfurt")
            && notifications[0].body.contains("online → offline"),
        "{}",
        notifications[0].body
    );
    assert_eq!(app.outbox().await.len(), 1, "one delivery job");

    // A change that keeps the status says nothing; the node coming back does.
    deliver(&app, &node_event("node.modified", &at(-120), node, false)).await;
    deliver(
        &app,
        &node_event("node.connection_restored", &at(-60), node, true),
    )
    .await;
    let stored = app.db.servers().get(server).await.unwrap();
    assert_eq!(stored.status, ServerStatus::Online);
    assert_eq!(stored.users_online, 12);
    let notifications = app
        .db
        .notifications()
        .of_kind("node_status", 10)
        .await
        .unwrap();
    assert_eq!(notifications.len(), 2, "{notifications:?}");
    assert!(
        notifications[0].body.contains("offline → online"),
        "{}",
        notifications[0].body
    );
    assert_eq!(app.db.servers().list().await.unwrap().len(), 1);
    app.stop().await;
}

async fn events_we_do_not_act_on_change_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let (customer, subscription) = provisioned(&app, "ignored@example.com", 504).await;
    let events = [
        event(
            "torrent_blocker.report",
            &at(-180),
            json!({ "user": panel_user(504, &username(customer), "oldShort"), "node": {} }),
        ),
        event(
            "user.first_connected",
            &at(-180),
            panel_user(504, &username(customer), "oldShort"),
        ),
        event("service.panel_started", &at(-180), json!({})),
        event("node.created", &at(-180), json!({ "name": "no uuid" })),
        json!({ "event": "user.limited", "timestamp": at(-180) }),
    ];
    for event in &events {
        deliver(&app, event).await;
    }
    assert_eq!(
        app.db.subscriptions().get(subscription.id).await.unwrap(),
        subscription
    );
    assert!(app.outbox().await.is_empty());
    assert!(app.db.notifications().pending(10).await.unwrap().is_empty());
    assert!(app.db.servers().list().await.unwrap().is_empty());
    assert_eq!(received(&app, "ignored").await, 5);
    assert_eq!(received(&app, "applied").await, 0);
    app.stop().await;
}

async fn replayed_and_stale_webhooks_are_refused(backend: Backend) {
    let app = spawn(backend).await;
    let (customer, subscription) = provisioned(&app, "replay@example.com", 601).await;
    let user = panel_user(601, &username(customer), "oldShort");
    let reset = event("user.traffic_reset", &at(-30), user.clone());
    deliver(&app, &reset).await;
    let jobs = app.outbox().await.len();

    // Traffic is used again; a captured copy of the reset, replayed, must not clear it.
    assert!(
        app.db
            .subscriptions()
            .set_traffic_used(601, TrafficBytes::from_bytes(7_000))
            .await
            .unwrap()
    );
    let body = serde_json::to_vec(&reset).unwrap();
    let replay = deliver_raw(&app, &body, Some(&sign(SECRET, &body))).await;
    assert_eq!(
        json_body(replay, 200).await,
        json!({ "ok": true, "duplicate": true })
    );
    let after = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(after.traffic_used, TrafficBytes::from_bytes(7_000));
    assert_eq!(app.outbox().await.len(), jobs, "nothing provisioned again");
    assert_eq!(received(&app, "duplicate").await, 1);

    // Correctly signed but too old or too far ahead (a replay past the dedup window, or a skewed clock).
    for timestamp in [
        at(-6 * 60),
        at(6 * 60),
        "2025-06-01T12:00:00.000Z".to_owned(),
    ] {
        let body =
            serde_json::to_vec(&event("user.traffic_reset", &timestamp, user.clone())).unwrap();
        let response = deliver_raw(&app, &body, Some(&sign(SECRET, &body))).await;
        let problem = assert_problem(response, 401, "unauthorized").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("5 minutes"),
            "{problem}"
        );
    }
    assert_eq!(received(&app, "stale").await, 3);
    // No timestamp at all is not a panel webhook.
    let body = serde_json::to_vec(&json!({ "event": "user.traffic_reset", "data": user })).unwrap();
    let response = deliver_raw(&app, &body, Some(&sign(SECRET, &body))).await;
    assert_problem(response, 400, "malformed_json").await;
    let after = app.db.subscriptions().get(subscription.id).await.unwrap();
    assert_eq!(after.traffic_used, TrafficBytes::from_bytes(7_000));
    app.stop().await;
}
