//! Promo codes: staff manage them (audited, with permission), customers check them, payments freeze the
//! discounted price and hold one use, which comes back when the payment fails or expires.

use chrono::{Duration, Utc};
use cybervpn_domain::{PaymentStatus, StaffRole};
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, assert_problem, json_body},
    payments::{basic_30, customer, spawn, stored},
};

on_both_backends!(
    staff_create_change_and_switch_off_promo_codes,
    a_percent_code_prices_the_payment_and_is_used_once_per_customer,
    bonus_days_and_fixed_discounts_apply_to_what_they_should,
    a_failed_or_expired_payment_gives_its_promo_use_back,
    the_last_use_goes_to_one_customer_only,
    validation_says_why_a_code_cannot_be_used,
);

async fn create_code(app: &TestApp, staff: &str, body: Value) -> Value {
    json_body(
        app.post_authed("/api/v1/admin/promo-codes", staff, &body)
            .await,
        201,
    )
    .await
}

async fn pay(
    app: &TestApp,
    token: &str,
    plan: &str,
    provider: &str,
    code: &str,
) -> reqwest::Response {
    app.post_authed(
        "/api/v1/payments",
        token,
        &json!({ "plan_id": plan, "provider": provider, "promo_code": code }),
    )
    .await
}

async fn staff_create_change_and_switch_off_promo_codes(backend: Backend) {
    let (app, _gateways) = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let created = create_code(
        &app,
        &admin,
        json!({ "code": " welcome10 ", "benefit": { "kind": "percent_off", "percent": 10 }, "max_uses": 5 }),
    )
    .await;
    assert_eq!(created["code"], "WELCOME10");
    assert_eq!(created["used_count"], 0);
    assert_eq!(created["is_active"], true);
    let id = created["id"].as_str().unwrap();

    // Same code again (any case): conflict. Bad settings: 422.
    assert_problem(
        app.post_authed(
            "/api/v1/admin/promo-codes",
            &admin,
            &json!({ "code": "WELCOME10", "benefit": { "kind": "bonus_days", "days": 3 } }),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    for bad in [
        json!({ "code": "X", "benefit": { "kind": "bonus_days", "days": 3 } }),
        json!({ "code": "FREE", "benefit": { "kind": "percent_off", "percent": 100 } }),
        json!({ "code": "NEG", "benefit": { "kind": "amount_off", "amount_minor": -5, "currency": "USD" } }),
        json!({ "code": "WINDOW", "benefit": { "kind": "bonus_days", "days": 3 },
                "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2026-11-01T00:00:00Z" }),
    ] {
        let response = app
            .post_authed("/api/v1/admin/promo-codes", &admin, &bad)
            .await;
        assert_eq!(response.status(), 422, "{bad}");
    }

    let path = format!("/api/v1/admin/promo-codes/{id}");
    let changed = json_body(
        app.client
            .patch(app.url(&path))
            .bearer_auth(&admin)
            .json(&json!({ "max_uses": 50 }))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(changed["max_uses"], 50);
    let status = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
    let seen = json_body(app.get_authed(&path, &admin).await, 200).await;
    assert_eq!(seen["is_active"], false);
    let page = json_body(
        app.get_authed("/api/v1/admin/promo-codes", &admin).await,
        200,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    for action in [
        "promo_code.create",
        "promo_code.update",
        "promo_code.deactivate",
    ] {
        assert_eq!(app.audit_entries(action).await.len(), 1, "{action}");
    }
    // Support staff may not touch promo codes.
    let support = app.staff_token(StaffRole::Support).await;
    assert_problem(
        app.get_authed("/api/v1/admin/promo-codes", &support).await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

async fn a_percent_code_prices_the_payment_and_is_used_once_per_customer(backend: Backend) {
    let (app, _gateways) = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let promo = create_code(
        &app,
        &admin,
        json!({ "code": "TEN", "benefit": { "kind": "percent_off", "percent": 10 } }),
    )
    .await;
    let (plan, price) = basic_30(&app, "USD").await;
    let (token, _) = customer(&app, "promo@example.com").await;

    let payment = json_body(pay(&app, &token, &plan, "cryptobot", "ten").await, 201).await;
    let discounted = price - price * 10 / 100;
    assert_eq!(payment["amount_minor"], discounted);
    assert_eq!(payment["promo_code_id"], promo["id"]);
    assert_eq!(
        stored(&app, &payment["id"]).await.amount.amount_minor(),
        discounted
    );

    // The customer's second try is refused while the first payment holds the code.
    assert_problem(
        pay(&app, &token, &plan, "cryptobot", "TEN").await,
        422,
        "validation_failed",
    )
    .await;
    // Another customer may use it.
    let (other, _) = customer(&app, "promo2@example.com").await;
    json_body(pay(&app, &other, &plan, "stripe", "TEN").await, 201).await;
    let seen = json_body(
        app.get_authed(
            &format!(
                "/api/v1/admin/promo-codes/{}",
                promo["id"].as_str().unwrap()
            ),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(seen["used_count"], 2);
    app.stop().await;
}

async fn bonus_days_and_fixed_discounts_apply_to_what_they_should(backend: Backend) {
    let (app, _gateways) = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let (plan, usd) = basic_30(&app, "USD").await;
    let (_, rub) = basic_30(&app, "RUB").await;
    create_code(
        &app,
        &admin,
        json!({ "code": "WEEK", "benefit": { "kind": "bonus_days", "days": 7 }, "plan_id": plan }),
    )
    .await;
    create_code(
        &app,
        &admin,
        json!({ "code": "RUB100", "benefit": { "kind": "amount_off", "amount_minor": 10000, "currency": "RUB" } }),
    )
    .await;
    let (token, _) = customer(&app, "bonus@example.com").await;

    let payment = json_body(pay(&app, &token, &plan, "cryptobot", "WEEK").await, 201).await;
    assert_eq!(payment["amount_minor"], usd, "bonus days keep the price");
    assert_eq!(payment["days"], 37);

    // A RUB discount does not apply to a USD payment, and applies to a RUB one.
    let refused = pay(&app, &token, &plan, "cryptobot", "RUB100").await;
    assert_problem(refused, 422, "validation_failed").await;
    let payment = json_body(pay(&app, &token, &plan, "yookassa", "RUB100").await, 201).await;
    assert_eq!(payment["amount_minor"], (rub - 10000).max(1));

    // A code restricted to another plan is refused.
    let plans: Value = app.get("/api/v1/plans").await.json().await.unwrap();
    let other_plan = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] != "basic_30")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (other, _) = customer(&app, "bonus2@example.com").await;
    assert_problem(
        pay(&app, &other, &other_plan, "cryptobot", "WEEK").await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

async fn a_failed_or_expired_payment_gives_its_promo_use_back(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let promo = create_code(
        &app,
        &admin,
        json!({ "code": "ONCE", "benefit": { "kind": "percent_off", "percent": 20 }, "max_uses": 1 }),
    )
    .await;
    let (plan, _) = basic_30(&app, "USD").await;
    let (token, _) = customer(&app, "release@example.com").await;
    let used = || async {
        app.db
            .promos()
            .get(cybervpn_domain::PromoCodeId::from_uuid(
                uuid::Uuid::parse_str(promo["id"].as_str().unwrap()).unwrap(),
            ))
            .await
            .unwrap()
            .used_count
    };

    // The gateway is down: the payment fails and the use comes back at once.
    gateways
        .cryptobot
        .inject(cybervpn_payments::fake::cryptobot::Fault::Status(502), 10);
    assert_problem(
        pay(&app, &token, &plan, "cryptobot", "ONCE").await,
        503,
        "service_unavailable",
    )
    .await;
    assert_eq!(used().await, 0);

    // A Stripe bank debit that fails gives it back too.
    let debit = json_body(pay(&app, &token, &plan, "stripe", "ONCE").await, 201).await;
    assert_eq!(used().await, 1);
    let session = stored(&app, &debit["id"])
        .await
        .provider_payment_id
        .unwrap();
    let url = app.url("/api/v1/webhooks/stripe");
    let status = gateways
        .stripe
        .deliver(&url, "checkout.session.async_payment_failed", &session)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        stored(&app, &debit["id"]).await.status,
        PaymentStatus::Failed
    );
    assert_eq!(used().await, 0);

    // So does a YooKassa payment cancelled at YooKassa (the notification is re-fetched first).
    let (rub_plan, _) = basic_30(&app, "RUB").await;
    let yoo = json_body(pay(&app, &token, &rub_plan, "yookassa", "ONCE").await, 201).await;
    assert_eq!(used().await, 1);
    let yoo_id = stored(&app, &yoo["id"]).await.provider_payment_id.unwrap();
    let url = app.url("/api/v1/webhooks/yookassa");
    let notify = || {
        app.client
            .post(&url)
            .header("content-type", "application/json")
            .body(
                gateways
                    .yookassa
                    .notification_body("payment.canceled", &yoo_id),
            )
            .send()
    };
    assert_eq!(notify().await.unwrap().status(), 200);
    assert_eq!(
        stored(&app, &yoo["id"]).await.status,
        PaymentStatus::Pending,
        "still pending at YooKassa"
    );
    assert!(gateways.yookassa.cancel(&yoo_id));
    assert_eq!(notify().await.unwrap().status(), 200);
    assert_eq!(stored(&app, &yoo["id"]).await.status, PaymentStatus::Failed);
    assert_eq!(used().await, 0);

    // A payment that is never paid holds the use until it expires.
    let payment = json_body(pay(&app, &token, &plan, "stripe", "ONCE").await, 201).await;
    assert_eq!(used().await, 1);
    let (late, _) = customer(&app, "late@example.com").await;
    assert_problem(
        pay(&app, &late, &plan, "stripe", "ONCE").await,
        422,
        "validation_failed",
    )
    .await;
    let closed = cybervpn_commerce::expire_unpaid(&app.db, Utc::now() + Duration::days(2))
        .await
        .unwrap();
    assert_eq!(closed, 1);
    assert_eq!(
        stored(&app, &payment["id"]).await.status,
        PaymentStatus::Expired
    );
    assert_eq!(used().await, 0);
    json_body(pay(&app, &late, &plan, "stripe", "ONCE").await, 201).await;
    assert_eq!(used().await, 1);
    app.stop().await;
}

async fn the_last_use_goes_to_one_customer_only(backend: Backend) {
    let (app, _gateways) = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    create_code(
        &app,
        &admin,
        json!({ "code": "LAST", "benefit": { "kind": "bonus_days", "days": 1 }, "max_uses": 1 }),
    )
    .await;
    let (plan, _) = basic_30(&app, "USD").await;
    let mut tokens = Vec::new();
    for i in 0..6 {
        tokens.push(customer(&app, &format!("race{i}@example.com")).await.0);
    }
    let attempts = tokens
        .iter()
        .map(|token| pay(&app, token, &plan, "telegram_stars", "LAST"));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [201, 422, 503].contains(s)),
        "{statuses:?}"
    );
    app.stop().await;
}

async fn validation_says_why_a_code_cannot_be_used(backend: Backend) {
    let (app, _gateways) = spawn(backend).await;
    let admin = app.staff_token(StaffRole::Admin).await;
    create_code(
        &app,
        &admin,
        json!({ "code": "HALF", "benefit": { "kind": "percent_off", "percent": 50 } }),
    )
    .await;
    create_code(
        &app,
        &admin,
        json!({ "code": "OLD", "benefit": { "kind": "percent_off", "percent": 50 },
                "valid_until": (Utc::now() - Duration::hours(1)).to_rfc3339() }),
    )
    .await;
    let (plan, price) = basic_30(&app, "USD").await;
    let (token, _) = customer(&app, "validate@example.com").await;
    let validate = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.post_authed("/api/v1/promo/validate", &token, &body)
                .await
        }
    };

    let valid = json_body(validate(json!({ "code": "half" })).await, 200).await;
    assert_eq!(
        valid["benefit"],
        json!({ "kind": "percent_off", "percent": 50 })
    );
    assert!(valid["price"].is_null());
    let priced = json_body(
        validate(json!({ "code": "HALF", "plan_id": plan, "provider": "stripe" })).await,
        200,
    )
    .await;
    assert_eq!(priced["price"]["list_amount_minor"], price);
    assert_eq!(priced["price"]["amount_minor"], price - price / 2);
    assert_eq!(priced["price"]["currency"], "USD");

    assert_problem(validate(json!({ "code": "NOPE" })).await, 404, "not_found").await;
    let expired = validate(json!({ "code": "OLD" })).await;
    let body = json_body(expired, 422).await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert_problem(
        validate(json!({ "code": "a b" })).await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.post_json("/api/v1/promo/validate", &json!({ "code": "HALF" }))
            .await,
        401,
        "unauthorized",
    )
    .await;
    app.stop().await;
}
