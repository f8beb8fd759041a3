//! `POST /api/v1/webhooks/revenuecat`: app-store purchases credited once per event and per transaction through
//! the one completion path, store refunds taking the days back, and everything else answered 200 without
//! changing days (set aside for staff where money is involved), on both backends.

use cybervpn_config::Secret;
use cybervpn_domain::{CustomerId, PaymentProvider, PaymentStatus, StaffRole};
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, assert_problem, json_body},
    payments::{days_left, received},
};

on_both_backends!(
    the_webhook_is_refused_unconfigured_and_without_the_exact_authorization,
    a_purchase_is_credited_once_per_event_and_per_transaction,
    renewals_and_one_off_purchases_add_their_days,
    a_store_refund_takes_the_days_back_once,
    events_that_are_not_purchases_change_no_days,
    unknown_customers_products_and_prices_are_set_aside_for_staff,
    sandbox_purchases_count_only_when_accepted,
    malformed_bodies_are_problems,
);

const SECRET: &str = "Bearer rc-webhook-secret-for-tests";
const PATH: &str = "/api/v1/webhooks/revenuecat";
const MONTH: &str = "com.cybervpn.basic.month";
const YEAR: &str = "com.cybervpn.pro.year";

async fn spawn(backend: Backend) -> TestApp {
    spawn_tweaked(backend, |_| {}).await
}

async fn spawn_tweaked(
    backend: Backend,
    tweak: impl FnOnce(&mut cybervpn_config::Config),
) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
        let payments = &mut config.payments;
        payments.revenuecat_webhook_secret = Some(Secret::new(SECRET.to_owned()));
        payments
            .revenuecat_products
            .insert(MONTH.to_owned(), "basic_30".to_owned());
        payments
            .revenuecat_products
            .insert(YEAR.to_owned(), "pro_365".to_owned());
        tweak(config);
    })
    .await
}

/// A RevenueCat v1 webhook body: `event` fields over a production purchase of [`MONTH`] at 3.99 USD.
fn event(kind: &str, id: &str, app_user_id: &str, fields: Value) -> Value {
    let mut event = json!({
        "id": id,
        "type": kind,
        "app_id": "app1234",
        "event_timestamp_ms": 1_700_000_000_000_i64,
        "app_user_id": app_user_id,
        "original_app_user_id": "$RCAnonymousID:87c6049c58069238dce29853916d624c",
        "aliases": ["$RCAnonymousID:87c6049c58069238dce29853916d624c"],
        "product_id": MONTH,
        "period_type": "NORMAL",
        "purchased_at_ms": 1_700_000_000_000_i64,
        "expiration_at_ms": 1_702_592_000_000_i64,
        "environment": "PRODUCTION",
        "entitlement_ids": ["vpn"],
        "store": "APP_STORE",
        "transaction_id": format!("tx-{id}"),
        "original_transaction_id": "tx-original",
        "currency": "USD",
        "price": 3.99,
        "price_in_purchased_currency": 3.99,
        "takehome_percentage": 0.7,
        "country_code": "US",
    });
    for (key, value) in fields.as_object().unwrap() {
        event[key] = value.clone();
    }
    json!({ "api_version": "1.0", "event": event })
}

async fn deliver_with(
    app: &TestApp,
    body: &Value,
    authorization: Option<&str>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(PATH)).json(body);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

/// Delivers `body` with the configured Authorization and expects it accepted.
async fn deliver(app: &TestApp, body: &Value) {
    json_body(deliver_with(app, body, Some(SECRET)).await, 200).await;
}

/// RevenueCat payments of `customer`, oldest first.
async fn store_payments(app: &TestApp, customer: CustomerId) -> Vec<cybervpn_domain::Payment> {
    let mut payments: Vec<_> = app
        .db
        .payments()
        .search(
            &cybervpn_db::PaymentSearch {
                customer_id: Some(customer),
                provider: Some(PaymentProvider::RevenueCat),
                ..Default::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    payments.sort_by_key(|p| (p.created_at, p.id.as_uuid()));
    payments
}

async fn outcome_of(app: &TestApp, id: &str) -> Option<cybervpn_db::StoreEvent> {
    for outcome in [
        "applied",
        "duplicate",
        "refunded",
        "ignored",
        "set_aside",
        "sandbox",
    ] {
        let events = app
            .db
            .store_events()
            .with_outcome(outcome, 100)
            .await
            .unwrap();
        if let Some(event) = events.into_iter().find(|e| e.id == id) {
            return Some(event);
        }
    }
    None
}

/// Staff notifications of events set aside.
async fn set_aside_notices(app: &TestApp) -> Vec<String> {
    app.db
        .notifications()
        .of_kind("revenuecat_set_aside", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| {
            assert_eq!(n.audience, cybervpn_db::Audience::Staff);
            n.body
        })
        .collect()
}

async fn the_webhook_is_refused_unconfigured_and_without_the_exact_authorization(backend: Backend) {
    let unconfigured = TestApp::spawn(backend).await;
    let body = event(
        "INITIAL_PURCHASE",
        "evt-0",
        &uuid::Uuid::new_v4().to_string(),
        json!({}),
    );
    assert_problem(
        deliver_with(&unconfigured, &body, Some(SECRET)).await,
        503,
        "service_unavailable",
    )
    .await;
    unconfigured.stop().await;

    let app = spawn(backend).await;
    let customer = app.customer_id("rc-auth@example.com").await;
    let body = event(
        "INITIAL_PURCHASE",
        "evt-1",
        &customer.as_uuid().to_string(),
        json!({}),
    );
    for authorization in [
        None,
        Some(""),
        Some("Bearer rc-webhook-secret-for-test"),
        Some("rc-webhook-secret-for-tests"),
        Some("bearer rc-webhook-secret-for-tests"),
    ] {
        assert_problem(
            deliver_with(&app, &body, authorization).await,
            401,
            "unauthorized",
        )
        .await;
    }
    assert_eq!(received(&app, "revenuecat", "bad_signature").await, 5);
    assert!(store_payments(&app, customer).await.is_empty());
    assert_eq!(days_left(&app, customer).await, None);
    app.stop().await;
}

async fn a_purchase_is_credited_once_per_event_and_per_transaction(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rc-buyer@example.com").await;
    let user = customer.as_uuid().to_string();
    let purchase = event("INITIAL_PURCHASE", "evt-buy", &user, json!({}));
    deliver(&app, &purchase).await;

    let payments = store_payments(&app, customer).await;
    assert_eq!(payments.len(), 1);
    let payment = &payments[0];
    assert_eq!(payment.status, PaymentStatus::Completed);
    assert_eq!(payment.amount.amount_minor(), 399);
    assert_eq!(payment.amount.currency().as_str(), "USD");
    assert_eq!(payment.days, 30);
    assert_eq!(payment.provider_payment_id.as_deref(), Some("tx-evt-buy"));
    let basic = app
        .db
        .plans()
        .find_by_code("basic_30")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(payment.plan_id, Some(basic.id));
    assert_eq!(days_left(&app, customer).await, Some(30));
    // The same completion path as the other gateways: the panel update and the customer's notice.
    let mut jobs: Vec<String> = app.outbox().await.into_iter().map(|m| m.job).collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            // The payment's notice and the invite codes the basic tier's default rule issues, each pushed.
            "deliver_notification",
            "deliver_notification",
            "provision_subscription",
            "push_notification",
            "push_notification"
        ]
    );
    assert_eq!(received(&app, "revenuecat", "applied").await, 1);

    // Delivered again (RevenueCat retries with the same id): nothing more.
    deliver(&app, &purchase).await;
    // Another event of the same store transaction: nothing more either.
    deliver(
        &app,
        &event(
            "INITIAL_PURCHASE",
            "evt-buy-2",
            &user,
            json!({ "transaction_id": "tx-evt-buy" }),
        ),
    )
    .await;
    assert_eq!(store_payments(&app, customer).await.len(), 1);
    assert_eq!(days_left(&app, customer).await, Some(30));
    assert_eq!(
        app.outbox().await.len(),
        5,
        "no more panel updates or notices"
    );
    assert_eq!(received(&app, "revenuecat", "duplicate").await, 2);
    assert_eq!(
        outcome_of(&app, "evt-buy").await.unwrap().outcome,
        "applied"
    );
    let second = outcome_of(&app, "evt-buy-2").await.unwrap();
    assert_eq!(
        (second.outcome.as_str(), second.payment_id),
        ("duplicate", Some(payment.id))
    );

    // The same new event delivered twice at once: one payment, its days once.
    let renewal = event("RENEWAL", "evt-buy-3", &user, json!({}));
    let (first, second) = tokio::join!(
        deliver_with(&app, &renewal, Some(SECRET)),
        deliver_with(&app, &renewal, Some(SECRET))
    );
    let statuses = [first.status().as_u16(), second.status().as_u16()];
    match backend {
        Backend::Postgres => assert_eq!(statuses, [200, 200]),
        // SQLite has one writer: the loser may be told to retry (503), which RevenueCat does.
        Backend::Sqlite => assert!(
            statuses.contains(&200) && statuses.iter().all(|s| [200, 503].contains(s)),
            "{statuses:?}"
        ),
    }
    deliver(&app, &renewal).await;
    assert_eq!(store_payments(&app, customer).await.len(), 2);
    assert_eq!(days_left(&app, customer).await, Some(60));
    assert_eq!(app.outbox().await.len(), 10, "five jobs per purchase");

    // Staff see it with the other payments.
    let staff = app.staff_token(StaffRole::Admin).await;
    let listed = json_body(
        app.get_authed("/api/v1/admin/payments?provider=revenuecat", &staff)
            .await,
        200,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(listed["items"][1]["provider"], "revenuecat");
    assert_eq!(listed["items"][1]["provider_payment_id"], "tx-evt-buy");
    // App-store purchases are not opened through the api.
    let token = app.customer_token("rc-checkout@example.com").await;
    assert_problem(
        app.post_authed(
            "/api/v1/payments",
            &token,
            &json!({ "plan_id": basic.id.as_uuid(), "provider": "revenuecat" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

async fn renewals_and_one_off_purchases_add_their_days(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rc-renew@example.com").await;
    let user = customer.as_uuid().to_string();
    deliver(&app, &event("INITIAL_PURCHASE", "evt-r0", &user, json!({}))).await;
    deliver(
        &app,
        &event("RENEWAL", "evt-r1", &user, json!({ "renewal_number": 2 })),
    )
    .await;
    assert_eq!(days_left(&app, customer).await, Some(60));
    // A one-off purchase of another product, in roubles, exactly: 2 990.00 RUB is 299 000 kopecks.
    deliver(
        &app,
        &event(
            "NON_RENEWING_PURCHASE",
            "evt-r2",
            &user,
            json!({ "product_id": YEAR, "currency": "RUB", "price": 32.61, "price_in_purchased_currency": 2990.0 }),
        ),
    )
    .await;
    // A currency we do not keep: recorded at RevenueCat's USD price, rounded to cents.
    deliver(
        &app,
        &event(
            "RENEWAL",
            "evt-r3",
            &user,
            json!({ "currency": "EUR", "price": 4.315, "price_in_purchased_currency": 3.99 }),
        ),
    )
    .await;
    let payments = store_payments(&app, customer).await;
    let amounts: Vec<(i64, &str, u32)> = payments
        .iter()
        .map(|p| {
            (
                p.amount.amount_minor(),
                p.amount.currency().as_str(),
                p.days,
            )
        })
        .collect();
    assert_eq!(
        amounts,
        [
            (399, "USD", 30),
            (399, "USD", 30),
            (299_000, "RUB", 365),
            (432, "USD", 30)
        ]
    );
    assert!(
        payments
            .iter()
            .all(|p| p.status == PaymentStatus::Completed)
    );
    // The paid year reaches Platinum: the Silver, Gold and Platinum bonuses (3 + 7 + 14 days) come on top.
    assert_eq!(days_left(&app, customer).await, Some(60 + 365 + 30 + 24));
    // The subscription takes the terms of the plan bought last, as with every gateway.
    let basic = app
        .db
        .plans()
        .find_by_code("basic_30")
        .await
        .unwrap()
        .unwrap();
    let current = app
        .db
        .subscriptions()
        .current_for(customer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.plan_id, Some(basic.id));
    app.stop().await;
}

async fn a_store_refund_takes_the_days_back_once(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rc-refund@example.com").await;
    let user = customer.as_uuid().to_string();
    deliver(&app, &event("INITIAL_PURCHASE", "evt-f0", &user, json!({}))).await;
    deliver(&app, &event("RENEWAL", "evt-f1", &user, json!({}))).await;
    assert_eq!(days_left(&app, customer).await, Some(60));
    let before = app.outbox().await.len();

    let refund = event(
        "CANCELLATION",
        "evt-f2",
        &user,
        json!({ "cancel_reason": "CUSTOMER_SUPPORT", "transaction_id": "tx-evt-f1", "price": -3.99, "price_in_purchased_currency": -3.99 }),
    );
    deliver(&app, &refund).await;
    assert_eq!(days_left(&app, customer).await, Some(30));
    let payments = store_payments(&app, customer).await;
    let statuses: Vec<PaymentStatus> = payments.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [PaymentStatus::Completed, PaymentStatus::Refunded]
    );
    let mut jobs: Vec<String> = app.outbox().await[before..]
        .iter()
        .map(|m| m.job.clone())
        .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            "deliver_notification",
            "provision_subscription",
            "push_notification"
        ]
    );

    // Delivered again, or reported in another event: refunded once.
    deliver(&app, &refund).await;
    deliver(
        &app,
        &event(
            "CANCELLATION",
            "evt-f3",
            &user,
            json!({ "cancel_reason": "CUSTOMER_SUPPORT", "transaction_id": "tx-evt-f1" }),
        ),
    )
    .await;
    assert_eq!(days_left(&app, customer).await, Some(30));
    assert_eq!(app.outbox().await.len(), before + 3);
    assert_eq!(received(&app, "revenuecat", "refunded").await, 1);

    // A refund of a transaction that credited nothing here: set aside for staff.
    deliver(
        &app,
        &event(
            "CANCELLATION",
            "evt-f4",
            &user,
            json!({ "cancel_reason": "CUSTOMER_SUPPORT", "transaction_id": "tx-unknown" }),
        ),
    )
    .await;
    assert_eq!(
        outcome_of(&app, "evt-f4").await.unwrap().outcome,
        "set_aside"
    );
    let notices = set_aside_notices(&app).await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("tx-unknown"), "{notices:?}");
    assert_eq!(days_left(&app, customer).await, Some(30));
    app.stop().await;
}

async fn events_that_are_not_purchases_change_no_days(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rc-other@example.com").await;
    let user = customer.as_uuid().to_string();
    deliver(&app, &event("INITIAL_PURCHASE", "evt-o0", &user, json!({}))).await;
    let before = app.outbox().await.len();
    for (kind, id, fields) in [
        (
            "CANCELLATION",
            "evt-o1",
            json!({ "cancel_reason": "UNSUBSCRIBE" }),
        ),
        (
            "CANCELLATION",
            "evt-o2",
            json!({ "cancel_reason": "BILLING_ERROR" }),
        ),
        ("UNCANCELLATION", "evt-o3", json!({})),
        (
            "EXPIRATION",
            "evt-o4",
            json!({ "expiration_reason": "UNSUBSCRIBE" }),
        ),
        (
            "BILLING_ISSUE",
            "evt-o5",
            json!({ "grace_period_expiration_at_ms": null }),
        ),
        (
            "PRODUCT_CHANGE",
            "evt-o6",
            json!({ "new_product_id": YEAR }),
        ),
        ("SUBSCRIPTION_PAUSED", "evt-o7", json!({})),
        ("TEST", "evt-o8", json!({})),
        (
            "TRANSFER",
            "evt-o9",
            json!({ "transferred_from": ["a"], "transferred_to": ["b"] }),
        ),
    ] {
        deliver(&app, &event(kind, id, &user, fields)).await;
        assert_eq!(
            outcome_of(&app, id).await.unwrap().outcome,
            "ignored",
            "{kind}"
        );
    }
    assert_eq!(store_payments(&app, customer).await.len(), 1);
    assert_eq!(days_left(&app, customer).await, Some(30));
    assert_eq!(app.outbox().await.len(), before);
    assert!(set_aside_notices(&app).await.is_empty());
    assert_eq!(received(&app, "revenuecat", "ignored").await, 9);
    app.stop().await;
}

async fn unknown_customers_products_and_prices_are_set_aside_for_staff(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rc-aside@example.com").await;
    let user = customer.as_uuid().to_string();
    let stranger = uuid::Uuid::new_v4().to_string();
    for (id, app_user, fields, mentions) in [
        ("evt-a1", stranger.as_str(), json!({}), stranger.as_str()),
        (
            "evt-a2",
            "$RCAnonymousID:8069238d",
            json!({}),
            "$RCAnonymousID:8069238d",
        ),
        (
            "evt-a3",
            user.as_str(),
            json!({ "product_id": "com.cybervpn.unknown" }),
            "com.cybervpn.unknown",
        ),
        (
            "evt-a4",
            user.as_str(),
            json!({ "price_in_purchased_currency": null }),
            "price",
        ),
        (
            "evt-a5",
            user.as_str(),
            json!({ "price_in_purchased_currency": 3.999 }),
            "price",
        ),
    ] {
        deliver(&app, &event("INITIAL_PURCHASE", id, app_user, fields)).await;
        let recorded = outcome_of(&app, id).await.unwrap();
        assert_eq!(recorded.outcome, "set_aside", "{id}");
        assert!(
            recorded.detail.as_deref().unwrap().contains(mentions),
            "{recorded:?}"
        );
    }
    assert!(store_payments(&app, customer).await.is_empty());
    assert_eq!(days_left(&app, customer).await, None);
    let notices = set_aside_notices(&app).await;
    assert_eq!(notices.len(), 5, "{notices:?}");
    assert!(
        notices
            .iter()
            .any(|n| n.contains("evt-a3") && n.contains("com.cybervpn.unknown"))
    );
    assert_eq!(received(&app, "revenuecat", "set_aside").await, 5);
    // A retry of a set-aside event is a duplicate: staff were told once.
    deliver(
        &app,
        &event("INITIAL_PURCHASE", "evt-a1", &stranger, json!({})),
    )
    .await;
    assert_eq!(set_aside_notices(&app).await.len(), 5);

    // A free store trial pays nothing and gives nothing.
    deliver(
        &app,
        &event(
            "INITIAL_PURCHASE",
            "evt-a6",
            &user,
            json!({ "period_type": "TRIAL", "price": 0, "price_in_purchased_currency": 0 }),
        ),
    )
    .await;
    assert_eq!(outcome_of(&app, "evt-a6").await.unwrap().outcome, "ignored");
    assert_eq!(days_left(&app, customer).await, None);

    // The customer id among the aliases (the app logged in after an anonymous purchase) is found.
    deliver(
        &app,
        &event(
            "INITIAL_PURCHASE",
            "evt-a7",
            "$RCAnonymousID:8069238d",
            json!({ "aliases": ["$RCAnonymousID:8069238d", user] }),
        ),
    )
    .await;
    assert_eq!(outcome_of(&app, "evt-a7").await.unwrap().outcome, "applied");
    assert_eq!(days_left(&app, customer).await, Some(30));
    app.stop().await;
}

async fn sandbox_purchases_count_only_when_accepted(backend: Backend) {
    let app = spawn(backend).await;
    let customer = app.customer_id("rc-sandbox@example.com").await;
    let sandbox = event(
        "INITIAL_PURCHASE",
        "evt-s1",
        &customer.as_uuid().to_string(),
        json!({ "environment": "SANDBOX" }),
    );
    deliver(&app, &sandbox).await;
    assert_eq!(outcome_of(&app, "evt-s1").await.unwrap().outcome, "sandbox");
    assert!(store_payments(&app, customer).await.is_empty());
    assert_eq!(days_left(&app, customer).await, None);
    app.stop().await;

    let app = spawn_tweaked(backend, |config| {
        config.payments.revenuecat_accept_sandbox = true;
    })
    .await;
    let customer = app.customer_id("rc-sandbox@example.com").await;
    let sandbox = event(
        "INITIAL_PURCHASE",
        "evt-s1",
        &customer.as_uuid().to_string(),
        json!({ "environment": "SANDBOX" }),
    );
    deliver(&app, &sandbox).await;
    assert_eq!(store_payments(&app, customer).await.len(), 1);
    assert_eq!(days_left(&app, customer).await, Some(30));
    app.stop().await;
}

async fn malformed_bodies_are_problems(backend: Backend) {
    let app = spawn(backend).await;
    for body in [
        "not json".to_owned(),
        "{}".to_owned(),
        json!({ "api_version": "1.0", "event": { "type": "INITIAL_PURCHASE" } }).to_string(),
        json!({ "api_version": "1.0", "event": { "id": "", "type": "TEST" } }).to_string(),
        json!({ "api_version": "1.0", "event": { "id": "x".repeat(129), "type": "TEST" } })
            .to_string(),
        json!({ "api_version": "1.0", "event": { "id": "evt-m", "type": "TEST", "aliases": "x" } })
            .to_string(),
    ] {
        let response = app
            .client
            .post(app.url(PATH))
            .header("authorization", SECRET)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "malformed_json").await;
    }
    assert_eq!(received(&app, "revenuecat", "malformed").await, 6);
    app.stop().await;
}
