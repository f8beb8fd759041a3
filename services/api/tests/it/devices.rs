//! Push devices: register, re-register (a token changing hands), list, delete; bad input; other customers'
//! devices are out of reach; and a customer notice (the trial) schedules its push next to its Telegram delivery.

use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    devices_are_registered_moved_listed_and_deleted,
    bad_device_input_is_refused,
    a_customer_notice_schedules_its_push,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
    })
    .await
}

async fn register(app: &TestApp, token: &str, platform: &str, fcm: &str) -> reqwest::Response {
    app.post_authed(
        "/api/v1/devices",
        token,
        &json!({"platform": platform, "token": fcm}),
    )
    .await
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    json_body(app.get_authed("/api/v1/devices", token).await, 200)
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn delete(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/api/v1/devices/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn devices_are_registered_moved_listed_and_deleted(backend: Backend) {
    let app = spawn(backend).await;
    let alice = app.customer_token("alice@example.com").await;
    let bob = app.customer_token("bob@example.com").await;

    let phone = json_body(register(&app, &alice, "android", "fcm-phone").await, 201).await;
    assert_eq!(phone["platform"], "android");
    assert!(phone["created_at"].is_string(), "{phone}");
    assert!(
        phone.get("token").is_none(),
        "the token is not echoed: {phone}"
    );
    let laptop = json_body(register(&app, &alice, "web", "fcm-laptop").await, 201).await;
    // The same token again, by the same customer: an update, not a second device.
    let again = json_body(register(&app, &alice, "android", "fcm-phone").await, 200).await;
    assert_eq!(again["id"], phone["id"]);
    let ids: Vec<Value> = list(&app, &alice)
        .await
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, [phone["id"].clone(), laptop["id"].clone()]);

    // The phone changes hands: Bob registers its token and it moves to him.
    let moved = json_body(register(&app, &bob, "ios", "fcm-phone").await, 200).await;
    assert_eq!(moved["id"], phone["id"]);
    assert_eq!(moved["platform"], "ios");
    let alices: Vec<Value> = list(&app, &alice)
        .await
        .iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(alices, [laptop["id"].clone()]);
    assert_eq!(list(&app, &bob).await.len(), 1);

    // Alice cannot delete Bob's device, nor a device that does not exist.
    let phone_id = moved["id"].as_str().unwrap();
    assert_problem(delete(&app, &alice, phone_id).await, 404, "not_found").await;
    assert_problem(
        delete(&app, &alice, "0195f0a0-0000-7000-8000-000000000000").await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(list(&app, &bob).await.len(), 1);
    assert_eq!(delete(&app, &bob, phone_id).await.status().as_u16(), 204);
    assert!(list(&app, &bob).await.is_empty());
    assert_problem(delete(&app, &bob, phone_id).await, 404, "not_found").await;

    // At most ten devices: the eleventh drops the oldest.
    for n in 0..10 {
        register(&app, &alice, "web", &format!("fcm-browser-{n}")).await;
    }
    let kept = list(&app, &alice).await;
    assert_eq!(kept.len(), 10);
    assert!(
        kept.iter().all(|d| d["id"] != laptop["id"]),
        "the oldest device went: {kept:?}"
    );

    // Without a token: 401.
    let anonymous = app
        .post_json(
            "/api/v1/devices",
            &json!({"platform": "web", "token": "fcm-x"}),
        )
        .await;
    assert_eq!(anonymous.status().as_u16(), 401);
    app.stop().await;
}

async fn bad_device_input_is_refused(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.customer_token("carol@example.com").await;
    let body = assert_problem(
        register(&app, &token, "symbian", "fcm-1").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "platform", "{body}");
    let body = assert_problem(
        register(&app, &token, "android", "  ").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "token", "{body}");
    let long = "x".repeat(4097);
    let body = assert_problem(
        register(&app, &token, "android", &long).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["field"], "token", "{body}");
    assert_eq!(
        register(&app, &token, "android", &"x".repeat(4096))
            .await
            .status()
            .as_u16(),
        201
    );
    let missing = app
        .post_authed("/api/v1/devices", &token, &json!({"platform": "ios"}))
        .await;
    assert_eq!(missing.status().as_u16(), 422);
    assert_problem(
        delete(&app, &token, "not-a-uuid").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(list(&app, &token).await.len(), 1);
    app.stop().await;
}

async fn a_customer_notice_schedules_its_push(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.customer_token("dave@example.com").await;
    json_body(register(&app, &token, "android", "fcm-dave").await, 201).await;
    assert_eq!(
        app.post_authed("/api/v1/trial/activate", &token, &json!({}))
            .await
            .status()
            .as_u16(),
        201
    );
    let notice = app
        .db
        .notifications()
        .of_kind("trial_started", 10)
        .await
        .unwrap();
    assert_eq!(notice.len(), 1);
    let outbox = app.outbox().await;
    let of = |job: &str| {
        outbox
            .iter()
            .filter(|m| m.job == job)
            .map(|m| m.payload.clone())
            .collect::<Vec<_>>()
    };
    let expected = vec![json!({"notification_id": notice[0].id})];
    assert_eq!(of("deliver_notification"), expected, "{outbox:?}");
    assert_eq!(of("push_notification"), expected, "{outbox:?}");
    app.stop().await;
}
