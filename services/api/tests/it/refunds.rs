//! Refunds and the staff payment views: money goes back through the gateway (Stripe, Telegram Stars) or is
//! recorded after a refund in the gateway's dashboard; the days it bought are taken back once, audited.

use chrono::{SubsecRound, Utc};
use cybervpn_config::Secret;
use cybervpn_domain::{PaymentStatus, StaffRole, TelegramId};
use cybervpn_telegram_fake::TelegramFake;
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, assert_problem, json_body},
    payments::{create, customer, days_left, received, spawn, spawn_tweaked, stored},
};

on_both_backends!(
    staff_refund_a_stripe_payment_and_its_days_go_once,
    a_refund_made_in_stripe_takes_the_days_back,
    staff_refund_telegram_stars_through_the_bot_api,
    other_gateways_refund_in_their_dashboard_then_staff_record_it,
    staff_search_payments_and_read_any_payment,
    business_metrics_count_customers_subscriptions_revenue_and_servers,
);

const BOT_TOKEN: &str = "123456:TEST-bot-token";

fn refund_path(payment: &Value) -> String {
    format!(
        "/api/v1/admin/payments/{}/refund",
        payment["id"].as_str().unwrap()
    )
}

/// A Stripe payment of `customer`, paid and credited through the webhook; returns it and its PaymentIntent.
async fn paid_stripe(
    app: &TestApp,
    gateways: &crate::payments::Gateways,
    token: &str,
) -> (Value, String) {
    let created = create(app, token, "stripe").await;
    let session = stored(app, &created["id"])
        .await
        .provider_payment_id
        .unwrap();
    assert!(gateways.stripe.complete(&session));
    let url = app.url("/api/v1/webhooks/stripe");
    let status = gateways
        .stripe
        .deliver(&url, "checkout.session.completed", &session)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let payment = stored(app, &created["id"]).await;
    assert_eq!(payment.status, PaymentStatus::Completed);
    let intent = payment.provider_payment_id.unwrap();
    assert!(
        intent.starts_with("pi_"),
        "the PaymentIntent is kept: {intent}"
    );
    (created, session)
}

async fn staff_refund_a_stripe_payment_and_its_days_go_once(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "refund@example.com").await;
    app.subscribe(customer, 10).await;
    let (payment, session) = paid_stripe(&app, &gateways, &token).await;
    assert_eq!(days_left(&app, customer).await, Some(40));

    let admin = app.staff_token(StaffRole::Admin).await;
    let body = json!({ "reason": "could not connect" });
    let refunded = json_body(
        app.post_authed(&refund_path(&payment), &admin, &body).await,
        200,
    )
    .await;
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["refund_reason"], "could not connect");
    let intent = stored(&app, &payment["id"])
        .await
        .provider_payment_id
        .unwrap();
    assert!(gateways.stripe.refunded(&intent));
    assert_eq!(
        days_left(&app, customer).await,
        Some(10),
        "the 30 days bought are taken back"
    );
    assert_eq!(app.audit_entries("payment.refund").await.len(), 1);

    // Stripe's own `charge.refunded` and a second click change nothing.
    let url = app.url("/api/v1/webhooks/stripe");
    let status = gateways
        .stripe
        .deliver(&url, "charge.refunded", &session)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(received(&app, "stripe", "duplicate").await, 1);
    json_body(
        app.post_authed(&refund_path(&payment), &admin, &body).await,
        200,
    )
    .await;
    assert_eq!(days_left(&app, customer).await, Some(10));
    assert_eq!(app.audit_entries("payment.refund").await.len(), 1);
    let jobs: Vec<String> = app.outbox().await.into_iter().map(|m| m.job).collect();
    assert!(
        jobs.iter()
            .filter(|j| *j == "provision_subscription")
            .count()
            >= 2,
        "{jobs:?}"
    );

    // Operators may look but not refund.
    let operator = app.staff_token(StaffRole::Operator).await;
    assert_problem(
        app.post_authed(&refund_path(&payment), &operator, &body)
            .await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

async fn a_refund_made_in_stripe_takes_the_days_back(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "dashboard@example.com").await;
    let (payment, session) = paid_stripe(&app, &gateways, &token).await;
    assert_eq!(days_left(&app, customer).await, Some(30));

    let url = app.url("/api/v1/webhooks/stripe");
    for _ in 0..2 {
        let status = gateways
            .stripe
            .deliver(&url, "charge.refunded", &session)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let stored = stored(&app, &payment["id"]).await;
    assert_eq!(stored.status, PaymentStatus::Refunded);
    assert_eq!(stored.refund_reason.as_deref(), Some("refunded at Stripe"));
    let current = app
        .db
        .subscriptions()
        .current_for(customer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        current.expires_at <= Utc::now(),
        "nothing is left of a refunded first purchase"
    );
    assert_eq!(received(&app, "stripe", "refunded").await, 1);
    assert_eq!(received(&app, "stripe", "duplicate").await, 1);
    app.stop().await;
}

async fn staff_refund_telegram_stars_through_the_bot_api(backend: Backend) {
    let telegram = TelegramFake::start(BOT_TOKEN).await.unwrap();
    let url = telegram.url();
    let (app, _gateways) = spawn_tweaked(backend, |config| {
        config.telegram.bot_token = Some(Secret::new(BOT_TOKEN.to_owned()));
        config.telegram.api_url = url;
    })
    .await;
    let new = cybervpn_domain::NewCustomer::new(
        Some(cybervpn_domain::Email::parse("stars-refund@example.com").unwrap()),
        Some(TelegramId::new(777_000).unwrap()),
        cybervpn_domain::Username::parse("starsrefund").unwrap(),
        cybervpn_domain::Language::En,
    )
    .unwrap();
    let customer_id = app.db.customers().create(new, Utc::now()).await.unwrap().id;
    let token = app.forge_token(
        customer_id.as_uuid(),
        "customer",
        cybervpn_auth::Audience::Customer,
        Utc::now(),
        chrono::Duration::minutes(15),
    );
    let payment = create(&app, &token, "telegram_stars").await;
    let paid = cybervpn_commerce::stars::SuccessfulPayment {
        invoice_payload: payment["id"].as_str().unwrap().to_owned(),
        currency: "XTR".to_owned(),
        total_amount: payment["amount_minor"].as_i64().unwrap(),
        telegram_payment_charge_id: "stxCHARGE1".to_owned(),
        provider_payment_charge_id: None,
    };
    let now = Utc::now().trunc_subsecs(6);
    let credited = cybervpn_commerce::stars::successful_payment(&app.db, &paid, now)
        .await
        .unwrap();
    assert!(
        matches!(credited, cybervpn_commerce::Completion::Credited(_)),
        "{credited:?}"
    );
    assert_eq!(days_left(&app, customer_id).await, Some(30));

    let admin = app.staff_token(StaffRole::Admin).await;
    let body = json!({ "reason": "duplicate purchase" });
    // Telegram does not know the charge (not registered yet): it refuses, and nothing changes.
    let refused = json_body(
        app.post_authed(&refund_path(&payment), &admin, &body).await,
        422,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("CHARGE_NOT_FOUND"),
        "{refused}"
    );
    assert_eq!(
        stored(&app, &payment["id"]).await.status,
        PaymentStatus::Completed
    );

    telegram.add_charge(777_000, "stxCHARGE1");
    let refunded = json_body(
        app.post_authed(&refund_path(&payment), &admin, &body).await,
        200,
    )
    .await;
    assert_eq!(refunded["status"], "refunded");
    assert!(telegram.refunded("stxCHARGE1"));
    let current = app
        .db
        .subscriptions()
        .current_for(customer_id)
        .await
        .unwrap()
        .unwrap();
    assert!(current.expires_at <= Utc::now() + chrono::Duration::seconds(5));
    app.stop().await;
}

async fn other_gateways_refund_in_their_dashboard_then_staff_record_it(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (token, customer) = customer(&app, "crypto-refund@example.com").await;
    let created = create(&app, &token, "cryptobot").await;
    let admin = app.staff_token(StaffRole::Admin).await;
    let body = json!({ "reason": "asked for it" });

    // Not paid yet: nothing to refund.
    assert_problem(
        app.post_authed(&refund_path(&created), &admin, &body).await,
        409,
        "invalid_state_transition",
    )
    .await;
    let invoice: i64 = stored(&app, &created["id"])
        .await
        .provider_payment_id
        .unwrap()
        .parse()
        .unwrap();
    assert!(gateways.cryptobot.mark_paid(invoice));
    let url = app.url("/api/v1/webhooks/cryptobot");
    assert_eq!(
        gateways
            .cryptobot
            .deliver_webhook(&url, invoice)
            .await
            .unwrap(),
        200
    );
    assert_eq!(days_left(&app, customer).await, Some(30));

    let refused = app.post_authed(&refund_path(&created), &admin, &body).await;
    let problem = json_body(refused, 422).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("dashboard"),
        "{problem}"
    );
    assert_problem(
        app.post_authed(&refund_path(&created), &admin, &json!({ "reason": " " }))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let recorded = json_body(
        app.post_authed(
            &refund_path(&created),
            &admin,
            &json!({ "reason": "refunded by hand", "already_refunded_at_gateway": true }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(recorded["status"], "refunded");
    let current = app
        .db
        .subscriptions()
        .current_for(customer)
        .await
        .unwrap()
        .unwrap();
    assert!(current.expires_at <= Utc::now() + chrono::Duration::seconds(5));
    app.stop().await;
}

async fn staff_search_payments_and_read_any_payment(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    let (alice, alice_id) = customer(&app, "alice@example.com").await;
    let (bob, _) = customer(&app, "bob@example.com").await;
    let a1 = create(&app, &alice, "cryptobot").await;
    let a2 = create(&app, &alice, "stripe").await;
    let b1 = create(&app, &bob, "cryptobot").await;
    let invoice: i64 = stored(&app, &a1["id"])
        .await
        .provider_payment_id
        .unwrap()
        .parse()
        .unwrap();
    assert!(gateways.cryptobot.mark_paid(invoice));
    let url = app.url("/api/v1/webhooks/cryptobot");
    assert_eq!(
        gateways
            .cryptobot
            .deliver_webhook(&url, invoice)
            .await
            .unwrap(),
        200
    );

    let support = app.staff_token(StaffRole::Support).await;
    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].clone())
            .collect()
    };
    let all = json_body(
        app.get_authed("/api/v1/admin/payments", &support).await,
        200,
    )
    .await;
    assert_eq!(
        ids(&all),
        [b1["id"].clone(), a2["id"].clone(), a1["id"].clone()],
        "newest first"
    );
    let path = format!(
        "/api/v1/admin/payments?customer_id={}&provider=cryptobot",
        alice_id.as_uuid()
    );
    let alices = json_body(app.get_authed(&path, &support).await, 200).await;
    assert_eq!(ids(&alices), [a1["id"].clone()]);
    let completed = json_body(
        app.get_authed("/api/v1/admin/payments?status=completed", &support)
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&completed), [a1["id"].clone()]);
    assert_eq!(
        completed["items"][0]["provider_payment_id"],
        invoice.to_string()
    );
    let paged = json_body(
        app.get_authed("/api/v1/admin/payments?limit=2", &support)
            .await,
        200,
    )
    .await;
    assert_eq!(ids(&paged).len(), 2);
    let cursor = paged["next_cursor"].as_str().unwrap();
    let rest = json_body(
        app.get_authed(
            &format!("/api/v1/admin/payments?limit=2&before={cursor}"),
            &support,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(ids(&rest), [a1["id"].clone()]);
    assert_problem(
        app.get_authed("/api/v1/admin/payments?status=lost", &support)
            .await,
        422,
        "validation_failed",
    )
    .await;

    // `GET /payments/{id}`: the owner, staff with view_payments; not the viewer role, not another customer.
    let path = format!("/api/v1/payments/{}", a2["id"].as_str().unwrap());
    assert_eq!(
        json_body(app.get_authed(&path, &support).await, 200).await["id"],
        a2["id"]
    );
    let viewer = app.staff_token(StaffRole::Viewer).await;
    assert_problem(app.get_authed(&path, &viewer).await, 403, "forbidden").await;
    assert_problem(app.get_authed(&path, &bob).await, 404, "not_found").await;
    assert_problem(
        app.get_authed("/api/v1/admin/payments", &viewer).await,
        403,
        "forbidden",
    )
    .await;
    app.stop().await;
}

/// The scraped value of the series `series` (name and labels exactly as rendered).
fn scraped(text: &str, series: &str) -> Option<i64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

async fn business_metrics_count_customers_subscriptions_revenue_and_servers(backend: Backend) {
    let (app, gateways) = spawn(backend).await;
    // One customer took a trial and then paid for a plan through Stripe (the plan replaces the trial's tier);
    // another has a subscription without a plan (a trial).
    let (token, buyer) = customer(&app, "metrics@example.com").await;
    app.subscribe(buyer, 3).await;
    let (payment, _) = paid_stripe(&app, &gateways, &token).await;
    let (_, trial) = customer(&app, "trial@example.com").await;
    app.subscribe(trial, 3).await;
    let paid = stored(&app, &payment["id"]).await;
    app.db
        .servers()
        .upsert(
            &cybervpn_db::NodeReport {
                panel_uuid: "7b0c5a52-7d5e-4c3a-9a59-0d6b0f3c1a01".to_owned(),
                name: "Frankfurt-1".to_owned(),
                address: "de1.example.com".to_owned(),
                port: 443,
                country_code: "DE".to_owned(),
                is_connected: true,
                is_disabled: false,
                users_online: 17,
                traffic_used_bytes: 0,
                status_message: None,
            },
            Utc::now(),
        )
        .await
        .unwrap();

    // The other customer has 200 paid days in a row: Gold.
    let now = Utc::now();
    let mut account = app.db.loyalty().account(trial).await.unwrap();
    account.tenure.credit(200, now);
    app.db.loyalty().save(&account, now).await.unwrap();

    let text = app.get("/metrics").await.text().await.unwrap();
    assert_eq!(scraped(&text, "business_customers"), Some(2), "{text}");
    // The basic plan's purchase earned one invite code (the seeded rule).
    for (status, count) in [("available", 1), ("used", 0), ("expired", 0)] {
        let series = format!(r#"business_invites{{status="{status}"}}"#);
        assert_eq!(scraped(&text, &series), Some(count), "{text}");
    }
    for (level, count) in [("silver", 0), ("gold", 1), ("platinum", 0)] {
        let series = format!(r#"business_loyalty_customers{{level="{level}"}}"#);
        assert_eq!(scraped(&text, &series), Some(count), "{text}");
    }
    assert_eq!(
        scraped(&text, r#"business_active_subscriptions{tier="trial"}"#),
        Some(1),
        "{text}"
    );
    assert_eq!(
        scraped(&text, r#"business_active_subscriptions{tier="basic"}"#),
        Some(1),
        "{text}"
    );
    let labels = format!(
        r#"{{currency="{}",provider="stripe"}}"#,
        paid.amount.currency().as_str()
    );
    assert_eq!(
        scraped(&text, &format!("business_revenue_minor{labels}")),
        Some(paid.amount.amount_minor()),
        "{text}"
    );
    assert_eq!(
        scraped(&text, &format!("business_payments_completed{labels}")),
        Some(1)
    );
    assert_eq!(
        scraped(&text, r#"business_servers{status="online"}"#),
        Some(1),
        "{text}"
    );
    assert_eq!(
        scraped(
            &text,
            r#"business_server_users_online{server="Frankfurt-1"}"#
        ),
        Some(17)
    );
}
