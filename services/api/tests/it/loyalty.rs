//! `GET /api/v1/loyalty`: the level and progress that real payments (credited through the Stripe webhook)
//! earned, with the bonuses granted once.

use cybervpn_domain::PaymentStatus;
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, assert_problem, json_body},
    payments::{Gateways, customer, days_left, spawn, stored},
};

on_both_backends!(loyalty_shows_the_level_that_paid_days_earned);

/// Buys the seeded plan `code` and lets Stripe report it paid through the webhook.
async fn buy(app: &TestApp, gateways: &Gateways, token: &str, code: &str) {
    let plans: Value = app.get("/api/v1/plans").await.json().await.unwrap();
    let plan_id = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code)
        .unwrap()["id"]
        .clone();
    let created = json_body(
        app.post_authed(
            "/api/v1/payments",
            token,
            &json!({ "plan_id": plan_id, "provider": "stripe" }),
        )
        .await,
        201,
    )
    .await;
    let session = stored(app, &created["id"])
        .await
        .provider_payment_id
        .unwrap();
    assert!(gateways.stripe.complete(&session));
    let status = gateways
        .stripe
        .deliver(
            &app.url("/api/v1/webhooks/stripe"),
            "checkout.session.completed",
            &session,
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        stored(app, &created["id"]).await.status,
        PaymentStatus::Completed
    );
}

async fn loyalty(app: &TestApp, token: &str) -> Value {
    json_body(app.get_authed("/api/v1/loyalty", token).await, 200).await
}

async fn loyalty_shows_the_level_that_paid_days_earned(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    assert_problem(app.get("/api/v1/loyalty").await, 401, "unauthorized").await;
    let (token, customer) = customer(&app, "loyal@example.com").await;

    let fresh = loyalty(&app, &token).await;
    assert_eq!(fresh["level"], "bronze");
    assert_eq!(fresh["tenure_days"], 0);
    assert_eq!(fresh["paid_until"], Value::Null);

    buy(&app, &gateways, &token, "basic_30").await;
    let month = loyalty(&app, &token).await;
    assert_eq!(month["level"], "bronze");
    assert_eq!(month["tenure_days"], 30);
    assert_eq!(month["next_level"], "silver");
    assert_eq!(month["days_to_next_level"], 60);
    assert_eq!(month["in_grace"], false);
    assert!(month["grace_until"].is_string(), "{month}");
    assert_eq!(month["perks"]["priority_support"], false);
    assert_eq!(month["rewards"], json!([]));

    // A year at once: Platinum, with the Silver, Gold and Platinum bonuses added to the subscription.
    buy(&app, &gateways, &token, "basic_365").await;
    let year = loyalty(&app, &token).await;
    assert_eq!(year["level"], "platinum", "{year}");
    assert_eq!(year["tenure_days"], 395);
    assert_eq!(year["next_level"], Value::Null);
    assert_eq!(year["days_to_next_level"], Value::Null);
    assert_eq!(
        year["perks"],
        json!({ "priority_support": true, "early_access": true, "premium_squad": true })
    );
    let rewards: Vec<(String, u64)> = year["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["level"].as_str().unwrap().to_owned(),
                r["days"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rewards,
        [
            ("silver".to_owned(), 3),
            ("gold".to_owned(), 7),
            ("platinum".to_owned(), 14)
        ]
    );
    assert_eq!(days_left(&app, customer).await, Some(30 + 365 + 24));

    // Support staff see the same standing (and so who gets priority); an unknown customer is a 404.
    let support = app.staff_token(cybervpn_domain::StaffRole::Support).await;
    let path = format!("/api/v1/users/{}/loyalty", customer.as_uuid());
    let seen = json_body(app.get_authed(&path, &support).await, 200).await;
    assert_eq!(seen, year);
    let unknown = format!("/api/v1/users/{}/loyalty", uuid::Uuid::now_v7());
    assert_problem(app.get_authed(&unknown, &support).await, 404, "not_found").await;
    app.stop().await;
}
