//! The free trial: once per customer and once per Telegram account, held by the database.

use chrono::Utc;
use cybervpn_auth::Audience;
use cybervpn_domain::{CustomerId, Email, Language, NewCustomer, TelegramId, Username};
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    trial_is_taken_once_and_provisioned,
    trial_is_once_per_telegram_account,
    trial_is_refused_with_an_active_subscription,
    trial_days_and_traffic_follow_configuration,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
    })
    .await
}

/// A customer created by the bot (Telegram id, no password) and an access token for them.
pub(crate) async fn telegram_customer(
    app: &TestApp,
    name: &str,
    telegram: i64,
) -> (CustomerId, String) {
    let new = NewCustomer::new(
        Some(Email::parse(&format!("{name}@example.com")).unwrap()),
        Some(TelegramId::new(telegram).unwrap()),
        Username::parse(name).unwrap(),
        Language::En,
    )
    .unwrap();
    let customer = app.db.customers().create(new, Utc::now()).await.unwrap();
    let token = app.forge_token(
        customer.id.as_uuid(),
        "customer",
        Audience::Customer,
        Utc::now(),
        chrono::Duration::minutes(15),
    );
    (customer.id, token)
}

async fn trial_is_taken_once_and_provisioned(backend: Backend) {
    let app = spawn(backend).await;
    let token = app.customer_token("trial@example.com").await;
    let id = app
        .db
        .customers()
        .find_by_email(&Email::parse("trial@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;

    let before = json_body(app.get_authed("/api/v1/trial/status", &token).await, 200).await;
    assert_eq!(before["available"], true, "{before}");
    assert_eq!(before["activated_at"], Value::Null);
    assert_eq!(before["expires_at"], Value::Null);
    assert_eq!(before["days"], 2);
    assert_eq!(before["traffic_limit_bytes"], 2_000_000_000_u64);

    let started = json_body(
        app.post_authed("/api/v1/trial/activate", &token, &serde_json::json!({}))
            .await,
        201,
    )
    .await;
    assert_eq!(started["plan_id"], Value::Null);
    assert_eq!(started["status"], "active");
    assert_eq!(started["traffic_limit_bytes"], 2_000_000_000_u64);
    assert_eq!(started["provisioned"], false);
    let expires: chrono::DateTime<Utc> = started["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - Utc::now();
    assert!(
        left > chrono::Duration::hours(47) && left <= chrono::Duration::hours(48),
        "{left}"
    );

    let subscription = app
        .db
        .subscriptions()
        .current_for(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subscription.id.as_uuid().to_string(), started["id"]);
    let outbox = app.outbox().await;
    assert!(
        outbox
            .iter()
            .any(|m| m.job == "provision_subscription"
                && m.payload["subscription_id"] == started["id"]),
        "{outbox:?}"
    );
    assert!(
        outbox.iter().any(|m| m.job == "deliver_notification"),
        "{outbox:?}"
    );
    let notifications = app
        .db
        .notifications()
        .of_kind("trial_started", 10)
        .await
        .unwrap();
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    assert_eq!(
        notifications[0].audience,
        cybervpn_db::Audience::Customer(id)
    );

    let after = json_body(app.get_authed("/api/v1/trial/status", &token).await, 200).await;
    assert_eq!(after["available"], false, "{after}");
    assert!(after["activated_at"].is_string());
    assert_eq!(after["expires_at"], started["expires_at"]);

    let again = app
        .post_authed("/api/v1/trial/activate", &token, &serde_json::json!({}))
        .await;
    let problem = assert_problem(again, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("trial"),
        "{problem}"
    );
    assert_eq!(
        app.db.subscriptions().of_customer(id).await.unwrap().len(),
        1,
        "no second subscription"
    );
    app.stop().await;
}

async fn trial_is_once_per_telegram_account(backend: Backend) {
    let app = spawn(backend).await;
    let (first_id, first) = telegram_customer(&app, "first_tg", 4242).await;
    json_body(
        app.post_authed("/api/v1/trial/activate", &first, &serde_json::json!({}))
            .await,
        201,
    )
    .await;

    // The same Telegram account, re-linked to another customer after the first one gave it up.
    app.db
        .customers()
        .soft_delete(first_id, Utc::now())
        .await
        .unwrap();
    let (_, second) = telegram_customer(&app, "second_tg", 4242).await;
    let status = json_body(app.get_authed("/api/v1/trial/status", &second).await, 200).await;
    assert_eq!(status["available"], false, "{status}");
    let refused = app
        .post_authed("/api/v1/trial/activate", &second, &serde_json::json!({}))
        .await;
    let problem = assert_problem(refused, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("Telegram"),
        "{problem}"
    );

    // The database holds the rule even when the handler's check is bypassed.
    let third = app
        .db
        .trials()
        .record(&cybervpn_db::Trial {
            customer_id: CustomerId::new(),
            telegram_id: Some(TelegramId::new(4242).unwrap()),
            subscription_id: cybervpn_domain::SubscriptionId::new(),
            activated_at: Utc::now(),
            expires_at: Utc::now(),
        })
        .await;
    assert!(
        matches!(
            third,
            Err(cybervpn_db::DbError::Domain(
                cybervpn_domain::DomainError::Conflict { .. }
            ))
        ),
        "{third:?}"
    );

    // Customers without Telegram never clash with each other.
    let a = app.customer_token("no_tg_a@example.com").await;
    let b = app.customer_token("no_tg_b@example.com").await;
    for token in [a, b] {
        json_body(
            app.post_authed("/api/v1/trial/activate", &token, &serde_json::json!({}))
                .await,
            201,
        )
        .await;
    }
    app.stop().await;
}

async fn trial_is_refused_with_an_active_subscription(backend: Backend) {
    let app = spawn(backend).await;
    let id = app.customer_id("paying@example.com").await;
    let token = app
        .customer_token_for("paying@example.com", "correct horse paying@example.com")
        .await;
    app.subscribe(id, 30).await;
    let status = json_body(app.get_authed("/api/v1/trial/status", &token).await, 200).await;
    assert_eq!(status["available"], false);
    let refused = app
        .post_authed("/api/v1/trial/activate", &token, &serde_json::json!({}))
        .await;
    let problem = assert_problem(refused, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("active subscription"),
        "{problem}"
    );
    assert!(app.db.trials().for_customer(id).await.unwrap().is_none());

    let anonymous = app
        .post_json("/api/v1/trial/activate", &serde_json::json!({}))
        .await;
    assert_problem(anonymous, 401, "unauthorized").await;
    app.stop().await;
}

async fn trial_days_and_traffic_follow_configuration(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.trial.days = 5;
        config.trial.traffic_gb = 0;
    })
    .await;
    let token = app.customer_token("configured@example.com").await;
    let status = json_body(app.get_authed("/api/v1/trial/status", &token).await, 200).await;
    assert_eq!(status["days"], 5);
    assert_eq!(status["traffic_limit_bytes"], Value::Null);
    let started = json_body(
        app.post_authed("/api/v1/trial/activate", &token, &serde_json::json!({}))
            .await,
        201,
    )
    .await;
    assert_eq!(started["traffic_limit_bytes"], Value::Null);
    app.stop().await;
}
