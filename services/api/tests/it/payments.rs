//! Payments: creation at each gateway (loopback fakes), signed webhooks completing them exactly once, and
//! refusals (bad signatures, foreign networks, wrong amounts, gateways down), on both backends.

use chrono::{Duration, Utc};
use cybervpn_config::Secret;
use cybervpn_domain::{PaymentId, PaymentStatus};
use cybervpn_payments::fake::{
    cryptobot::{CryptoBotFake, Fault},
    stripe::{StripeFake, signature_header},
    yookassa::YooKassaFake,
};
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    providers_list_shows_what_is_configured,
    cryptobot_payment_completes_once_through_its_webhook,
    stripe_payment_completes_once_through_its_webhook,
    yookassa_payment_completes_after_refetch_from_its_networks,
    tampered_signatures_unknown_payments_and_wrong_amounts_credit_nothing,
    gateway_down_at_creation_is_503_and_the_payment_failed,
    payments_are_visible_to_their_owner_only,
    telegram_stars_payment_returns_invoice_parameters,
    purchase_shortcuts_open_the_same_payments,
);

pub(crate) const CRYPTOBOT_TOKEN: &str = "12345:AAtest-cryptobot-token";
pub(crate) const STRIPE_KEY: &str = "sk_test_fake";
pub(crate) const STRIPE_WHSEC: &str = "whsec_test_0123456789abcdef0123456789abcdef";
pub(crate) const YOO_SHOP: &str = "100500";
pub(crate) const YOO_KEY: &str = "test_yookassa_secret";

pub(crate) struct Gateways {
    pub(crate) cryptobot: CryptoBotFake,
    pub(crate) stripe: StripeFake,
    pub(crate) yookassa: YooKassaFake,
}

pub(crate) async fn spawn(backend: Backend) -> (TestApp, Gateways) {
    spawn_tweaked(backend, |_| {}).await
}

/// [`spawn`] with more configuration.
pub(crate) async fn spawn_tweaked(
    backend: Backend,
    tweak: impl FnOnce(&mut cybervpn_config::Config),
) -> (TestApp, Gateways) {
    let gateways = Gateways {
        cryptobot: CryptoBotFake::start(CRYPTOBOT_TOKEN).await.unwrap(),
        stripe: StripeFake::start(STRIPE_KEY, STRIPE_WHSEC).await.unwrap(),
        yookassa: YooKassaFake::start(YOO_SHOP, YOO_KEY).await.unwrap(),
    };
    let (cryptobot, stripe, yookassa) = (
        gateways.cryptobot.url(),
        gateways.stripe.url(),
        gateways.yookassa.url(),
    );
    let app = TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
        let payments = &mut config.payments;
        payments.cryptobot_token = Some(Secret::new(CRYPTOBOT_TOKEN.to_owned()));
        payments.cryptobot_api_url = cryptobot;
        payments.stripe_secret_key = Some(Secret::new(STRIPE_KEY.to_owned()));
        payments.stripe_webhook_secret = Some(Secret::new(STRIPE_WHSEC.to_owned()));
        payments.stripe_api_url = stripe;
        payments.yookassa_shop_id = Some(YOO_SHOP.to_owned());
        payments.yookassa_secret_key = Some(Secret::new(YOO_KEY.to_owned()));
        payments.yookassa_api_url = yookassa;
        // The test client is the notification source here.
        payments.yookassa_trusted_networks = vec!["127.0.0.1".to_owned()];
        tweak(config);
    })
    .await;
    (app, gateways)
}

/// The seeded plan `basic_30`: its id and its price in `currency`.
pub(crate) async fn basic_30(app: &TestApp, currency: &str) -> (String, i64) {
    let plans: Value = app.get("/api/v1/plans").await.json().await.unwrap();
    let plan = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "basic_30")
        .unwrap();
    let price = plan["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["currency"] == currency)
        .unwrap()["amount_minor"]
        .as_i64()
        .unwrap();
    (plan["id"].as_str().unwrap().to_owned(), price)
}

/// A registered customer's access token and id.
pub(crate) async fn customer(app: &TestApp, email: &str) -> (String, cybervpn_domain::CustomerId) {
    let token = app.customer_token(email).await;
    let id = app
        .db
        .customers()
        .find_by_email(&cybervpn_domain::Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    (token, id)
}

pub(crate) async fn create(app: &TestApp, token: &str, provider: &str) -> Value {
    let (plan_id, _) = basic_30(app, "USD").await;
    json_body(
        app.post_authed(
            "/api/v1/payments",
            token,
            &json!({ "plan_id": plan_id, "provider": provider }),
        )
        .await,
        201,
    )
    .await
}

pub(crate) async fn stored(app: &TestApp, id: &Value) -> cybervpn_domain::Payment {
    let id = uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap();
    app.db
        .payments()
        .get(PaymentId::from_uuid(id))
        .await
        .unwrap()
}

/// Days the customer's current subscription has left, rounded.
pub(crate) async fn days_left(app: &TestApp, customer: cybervpn_domain::CustomerId) -> Option<i64> {
    let current = app
        .db
        .subscriptions()
        .current_for(customer)
        .await
        .unwrap()?;
    Some((current.expires_at - Utc::now() + Duration::hours(1)).num_days())
}

/// `webhooks_received_total{source, outcome}`, from `/metrics`.
pub(crate) async fn received(app: &TestApp, source: &str, outcome: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let (source, outcome) = (
        format!("source=\"{source}\""),
        format!("outcome=\"{outcome}\""),
    );
    text.lines()
        .filter(|line| line.starts_with("webhooks_received_total{"))
        .filter(|line| line.contains(&source) && line.contains(&outcome))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn jobs(outbox: &[cybervpn_db::OutboxMessage]) -> Vec<String> {
    let mut jobs: Vec<String> = outbox.iter().map(|m| m.job.clone()).collect();
    jobs.sort();
    jobs
}

async fn providers_list_shows_what_is_configured(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let listed = json_body(app.get("/api/v1/payments/providers").await, 200).await;
    let enabled: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["provider"].as_str().unwrap(),
                p["enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        enabled,
        [
            ("cryptobot", false),
            ("stripe", false),
            ("yookassa", false),
            ("telegram_stars", true)
        ]
    );
    let token = app.customer_token("nogateway@example.com").await;
    let (plan_id, _) = basic_30(&app, "USD").await;
    assert_problem(
        app.post_authed(
            "/api/v1/payments",
            &token,
            &json!({ "plan_id": plan_id, "provider": "stripe" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;

    let (app, _gateways) = spawn(backend).await;
    let listed = json_body(app.get("/api/v1/payments/providers").await, 200).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["enabled"] == true),
        "{listed}"
    );
    app.stop().await;
}

async fn cryptobot_payment_completes_once_through_its_webhook(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "crypto@example.com").await;
    let (_, price) = basic_30(&app, "USD").await;

    let created = create(&app, &token, "cryptobot").await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["amount_minor"], price);
    assert_eq!(created["days"], 30);
    assert!(created["invoice_url"].is_string(), "{created}");
    assert!(created["expires_at"].is_string(), "{created}");
    let payment = stored(&app, &created["id"]).await;
    let invoice_id: i64 = payment.provider_payment_id.unwrap().parse().unwrap();
    let sent = &gateways.cryptobot.invoices()[0];
    assert_eq!(sent["payload"], created["id"], "payload is our payment id");

    assert!(gateways.cryptobot.mark_paid(invoice_id));
    let url = app.url("/api/v1/webhooks/cryptobot");
    assert_eq!(
        gateways
            .cryptobot
            .deliver_webhook(&url, invoice_id)
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        stored(&app, &created["id"]).await.status,
        PaymentStatus::Completed
    );
    assert_eq!(days_left(&app, customer).await, Some(30));
    assert_eq!(
        jobs(&app.outbox().await),
        [
            // The payment's notice and the invite codes the basic tier's default rule issues, each pushed.
            "deliver_notification",
            "deliver_notification",
            "provision_subscription",
            "push_notification",
            "push_notification"
        ]
    );

    // The same update again: nothing more.
    assert_eq!(
        gateways
            .cryptobot
            .deliver_webhook(&url, invoice_id)
            .await
            .unwrap(),
        200
    );
    assert_eq!(days_left(&app, customer).await, Some(30), "no double days");
    assert_eq!(app.outbox().await.len(), 5, "no more jobs");
    assert_eq!(received(&app, "cryptobot", "applied").await, 1);
    assert_eq!(received(&app, "cryptobot", "duplicate").await, 1);
    let completed = json_body(
        app.get_authed(
            &format!("/api/v1/payments/{}", created["id"].as_str().unwrap()),
            &token,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(completed["status"], "completed");
    app.stop().await;
}

async fn stripe_payment_completes_once_through_its_webhook(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "stripe@example.com").await;
    app.subscribe(customer, 10).await;

    let created = create(&app, &token, "stripe").await;
    assert_eq!(created["currency"], "USD");
    assert!(created["invoice_url"].is_string(), "{created}");
    let session = stored(&app, &created["id"])
        .await
        .provider_payment_id
        .unwrap();
    let request = gateways
        .stripe
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/checkout/sessions")
        .unwrap();
    assert_eq!(request.idempotency_key.as_deref(), created["id"].as_str());

    assert!(gateways.stripe.complete(&session));
    let url = app.url("/api/v1/webhooks/stripe");
    for _ in 0..2 {
        assert_eq!(
            gateways
                .stripe
                .deliver(&url, "checkout.session.completed", &session)
                .await
                .unwrap(),
            200
        );
    }
    assert_eq!(
        stored(&app, &created["id"]).await.status,
        PaymentStatus::Completed
    );
    assert_eq!(
        days_left(&app, customer).await,
        Some(40),
        "extended by 30 days, once"
    );
    assert_eq!(
        jobs(&app.outbox().await),
        [
            // The payment's notice and the invite codes the basic tier's default rule issues, each pushed.
            "deliver_notification",
            "deliver_notification",
            "provision_subscription",
            "push_notification",
            "push_notification"
        ]
    );
    app.stop().await;
}

async fn yookassa_payment_completes_after_refetch_from_its_networks(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "yoo@example.com").await;
    let (_, rub) = basic_30(&app, "RUB").await;

    let created = create(&app, &token, "yookassa").await;
    assert_eq!(created["currency"], "RUB");
    assert_eq!(created["amount_minor"], rub);
    assert!(created["invoice_url"].is_string(), "{created}");
    let yoo_id = stored(&app, &created["id"])
        .await
        .provider_payment_id
        .unwrap();
    let url = app.url("/api/v1/webhooks/yookassa");

    // A notification claiming success while YooKassa says pending: the re-fetch wins.
    let mut claim: Value = serde_json::from_slice(
        &gateways
            .yookassa
            .notification_body("payment.succeeded", &yoo_id),
    )
    .unwrap();
    claim["object"]["status"] = json!("succeeded");
    let response = app.client.post(&url).json(&claim).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        stored(&app, &created["id"]).await.status,
        PaymentStatus::Pending
    );

    assert!(gateways.yookassa.succeed(&yoo_id));
    let body = gateways
        .yookassa
        .notification_body("payment.succeeded", &yoo_id);
    for _ in 0..2 {
        let response = app
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    assert_eq!(
        stored(&app, &created["id"]).await.status,
        PaymentStatus::Completed
    );
    assert_eq!(days_left(&app, customer).await, Some(30));
    // Provisioning, and the payment's and the invite codes' notices with their pushes.
    assert_eq!(app.outbox().await.len(), 5);

    // From outside YooKassa's networks: refused.
    let default_networks = app
        .sibling(|config| {
            config.payments.yookassa_trusted_networks =
                cybervpn_config::PaymentsConfig::default().yookassa_trusted_networks;
        })
        .await;
    let response = app
        .client
        .post(format!("{default_networks}/api/v1/webhooks/yookassa"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(received(&app, "yookassa", "applied").await, 1);
    assert_eq!(received(&app, "yookassa", "duplicate").await, 1);
    app.stop().await;
}

async fn tampered_signatures_unknown_payments_and_wrong_amounts_credit_nothing(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "tamper@example.com").await;

    // CryptoBot: a body changed after signing.
    let created = create(&app, &token, "cryptobot").await;
    let invoice_id: i64 = stored(&app, &created["id"])
        .await
        .provider_payment_id
        .unwrap()
        .parse()
        .unwrap();
    gateways.cryptobot.mark_paid(invoice_id);
    let (body, signature) = gateways.cryptobot.signed_webhook(invoice_id).unwrap();
    let mut tampered = body.clone();
    tampered.push(b' ');
    for (body, signature) in [(tampered, signature.clone()), (body, "00".repeat(32))] {
        let response = app
            .client
            .post(app.url("/api/v1/webhooks/cryptobot"))
            .header("crypto-pay-api-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "unauthorized").await;
    }

    // Stripe: a stale or wrongly keyed signature.
    let stripe = create(&app, &token, "stripe").await;
    let session_id = stored(&app, &stripe["id"])
        .await
        .provider_payment_id
        .unwrap();
    gateways.stripe.complete(&session_id);
    let stale = Utc::now() - Duration::seconds(301);
    let (body, header) = gateways
        .stripe
        .signed_event("checkout.session.completed", &session_id, stale)
        .unwrap();
    let wrong_key = signature_header("whsec_another_secret_of_32_characters!", &body, Utc::now());
    for header in [header, wrong_key] {
        let response = app
            .client
            .post(app.url("/api/v1/webhooks/stripe"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "unauthorized").await;
    }
    assert_eq!(
        stored(&app, &created["id"]).await.status,
        PaymentStatus::Pending
    );
    assert_eq!(
        stored(&app, &stripe["id"]).await.status,
        PaymentStatus::Pending
    );

    // Correctly signed, for a payment we never created: 200, nothing credited.
    let mut session = gateways.stripe.session(&session_id).unwrap();
    let mut event = json!({
        "id": "evt_unknown", "object": "event", "created": Utc::now().timestamp(),
        "livemode": false, "type": "checkout.session.completed", "data": {"object": null},
    });
    session["metadata"] = json!({ "payment_id": uuid::Uuid::new_v4().to_string() });
    session["client_reference_id"] = Value::Null;
    event["data"]["object"] = session.clone();
    let signed = |event: &Value| {
        let body = serde_json::to_vec(event).unwrap();
        let header = signature_header(STRIPE_WHSEC, &body, Utc::now());
        (body, header)
    };
    let send = |(body, header): (Vec<u8>, String)| {
        app.client
            .post(app.url("/api/v1/webhooks/stripe"))
            .header("stripe-signature", header)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(send(signed(&event)).await.unwrap().status().as_u16(), 200);

    // Correctly signed, our payment, but one cent short: set aside for review, not credited.
    session["metadata"] = json!({ "payment_id": stripe["id"] });
    session["amount_total"] = json!(session["amount_total"].as_i64().unwrap() - 1);
    event["data"]["object"] = session;
    assert_eq!(send(signed(&event)).await.unwrap().status().as_u16(), 200);
    let flagged = stored(&app, &stripe["id"]).await;
    assert_eq!(flagged.status, PaymentStatus::Pending);
    assert!(flagged.review_reason.is_some(), "{flagged:?}");

    assert_eq!(days_left(&app, customer).await, None, "nothing credited");
    assert!(app.outbox().await.is_empty());
    assert_eq!(received(&app, "cryptobot", "bad_signature").await, 2);
    assert_eq!(received(&app, "stripe", "bad_signature").await, 2);
    assert_eq!(received(&app, "stripe", "unknown").await, 1);
    assert_eq!(received(&app, "stripe", "review").await, 1);
    app.stop().await;
}

async fn gateway_down_at_creation_is_503_and_the_payment_failed(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let token = app.customer_token("down@example.com").await;
    let (plan_id, _) = basic_30(&app, "USD").await;
    gateways.cryptobot.inject(Fault::Status(502), 10);
    gateways.stripe.fail_next(10);
    gateways.yookassa.fail_next(10, 500);
    for provider in ["cryptobot", "stripe", "yookassa"] {
        assert_problem(
            app.post_authed(
                "/api/v1/payments",
                &token,
                &json!({ "plan_id": plan_id, "provider": provider }),
            )
            .await,
            503,
            "service_unavailable",
        )
        .await;
    }
    let statuses: Vec<String> = {
        use cybervpn_db::EntityTrait;
        cybervpn_db::entity::payment::Entity::find()
            .all(app.db.conn())
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.status)
            .collect()
    };
    assert_eq!(statuses, ["failed", "failed", "failed"]);
    app.stop().await;
}

async fn payments_are_visible_to_their_owner_only(backend: Backend) {
    let (app, _gateways) = spawn(backend).await;
    let owner = app.customer_token("owner@example.com").await;
    let other = app.customer_token("other@example.com").await;
    let created = create(&app, &owner, "cryptobot").await;
    let path = format!("/api/v1/payments/{}", created["id"].as_str().unwrap());
    let seen = json_body(app.get_authed(&path, &owner).await, 200).await;
    assert_eq!(seen["id"], created["id"]);
    assert_problem(app.get_authed(&path, &other).await, 404, "not_found").await;
    assert_problem(app.get(&path).await, 401, "unauthorized").await;
    let missing = format!("/api/v1/payments/{}", uuid::Uuid::new_v4());
    assert_problem(app.get_authed(&missing, &owner).await, 404, "not_found").await;
    app.stop().await;
}

async fn telegram_stars_payment_returns_invoice_parameters(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
    })
    .await;
    let token = app.customer_token("stars@example.com").await;
    let (_, stars) = basic_30(&app, "XTR").await;
    let created = create(&app, &token, "telegram_stars").await;
    assert_eq!(created["currency"], "XTR");
    assert_eq!(created["amount_minor"], stars);
    let invoice = &created["stars_invoice"];
    assert_eq!(invoice["currency"], "XTR");
    assert_eq!(invoice["payload"], created["id"]);
    assert_eq!(invoice["prices"].as_array().unwrap().len(), 1);
    assert_eq!(invoice["prices"][0]["amount"], stars);
    app.stop().await;
}

async fn purchase_shortcuts_open_the_same_payments(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, _) = customer(&app, "shortcut@example.com").await;
    let (plan, price) = basic_30(&app, "USD").await;

    let started = json_body(
        app.post_authed(
            "/api/v1/subscriptions",
            &token,
            &json!({ "plan_id": plan, "provider": "stripe" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(started["payment"]["status"], "pending");
    assert_eq!(started["payment"]["amount_minor"], price);
    assert_eq!(started["next_step"]["action"], "open_url");
    assert_eq!(
        started["next_step"]["url"],
        started["payment"]["invoice_url"]
    );
    let stars = json_body(
        app.post_authed(
            "/api/v1/subscriptions",
            &token,
            &json!({ "plan_id": plan, "provider": "telegram_stars" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(stars["next_step"]["action"], "pay_in_telegram");
    assert!(stars["payment"]["stars_invoice"].is_object());

    let invoice = json_body(
        app.post_authed(
            "/api/v1/payments/crypto/invoice",
            &token,
            &json!({ "plan_id": plan }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(invoice["provider"], "cryptobot");
    assert_eq!(invoice["currency"], "USD");
    assert_eq!(gateways.cryptobot.invoices().len(), 1);
    assert_problem(
        app.post_authed(
            "/api/v1/payments/crypto/invoice",
            &token,
            &json!({ "plan_id": plan, "currency": "XTR" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.post_authed(
            "/api/v1/subscriptions",
            &token,
            &json!({ "plan_id": uuid::Uuid::new_v4(), "provider": "stripe" }),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    app.stop().await;
}
