//! Business analytics for staff: exact figures per UTC day, Monday week and month from payments, customers,
//! trials and subscriptions stored with known times (payments credited and refunded through the commerce
//! paths), access by permission, and refusals of bad periods — on both backends.

use chrono::{DateTime, Utc};
use cybervpn_commerce::{PaidNotice, RefundSource};
use cybervpn_domain::{
    Currency, CustomerId, Email, Language, Money, NewCustomer, Payment, PaymentId, PaymentProvider,
    PaymentStatus, PlanId, StaffRole, Subscription, SubscriptionStatus, TrafficLimit, Username,
};
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    revenue_per_currency_and_gateway_with_refunds_apart,
    payment_outcomes_per_status_and_gateway_with_exact_success_rates,
    growth_counts_sign_ups_deletions_and_the_running_total,
    conversions_count_trials_paid_after_they_started,
    subscriptions_active_now_by_tier_and_churn_per_bucket,
    analytics_need_the_view_analytics_permission,
    bad_periods_are_refused_naming_the_parameter,
    the_default_period_is_the_last_thirty_days_by_day,
);

const PERIOD: &str = "from=2025-01-01&to=2025-03-01";

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// A customer who signed up at `at`.
async fn customer(app: &TestApp, name: &str, at: &str) -> CustomerId {
    let new = NewCustomer::new(
        Some(Email::parse(&format!("{name}@example.com")).unwrap()),
        None,
        Username::parse(name).unwrap(),
        Language::En,
    )
    .unwrap();
    app.db.customers().create(new, t(at)).await.unwrap().id
}

/// An operator's token: the lowest role that may read analytics.
async fn analyst(app: &TestApp) -> String {
    app.staff_token(StaffRole::Operator).await
}

/// GETs an analytics report as `token`, expecting 200.
async fn report(app: &TestApp, token: &str, name: &str, query: &str) -> Value {
    let response = app
        .get_authed(&format!("/api/v1/admin/analytics/{name}?{query}"), token)
        .await;
    json_body(response, 200).await
}

/// The bucket starting at `start`.
fn bucket<'a>(body: &'a Value, start: &str) -> &'a Value {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["start"] == start)
        .unwrap_or_else(|| panic!("no bucket starts at {start}: {body}"))
}

/// The `start`s of every bucket.
fn starts(body: &Value) -> Vec<String> {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["start"].as_str().unwrap().to_owned())
        .collect()
}

/// What becomes of a seeded payment.
enum Fate {
    Pending,
    Failed,
    Expired,
    /// Credited at this time, through the one completion path.
    Completed(&'static str),
    /// Credited, then refunded at the second time (a gateway's refund).
    Refunded(&'static str, &'static str),
}

/// Opens a payment at `created` and sends it to its fate.
async fn payment(
    app: &TestApp,
    customer: CustomerId,
    provider: PaymentProvider,
    amount: Money,
    created: &str,
    fate: Fate,
) -> PaymentId {
    let status = match fate {
        Fate::Failed => PaymentStatus::Failed,
        Fate::Expired => PaymentStatus::Expired,
        _ => PaymentStatus::Pending,
    };
    let payment = Payment {
        id: PaymentId::new(),
        customer_id: customer,
        plan_id: None,
        amount,
        status,
        provider,
        provider_payment_id: None,
        days: 30,
        invoice_url: None,
        expires_at: None,
        completed_at: None,
        review_reason: None,
        promo_code_id: None,
        refunded_at: None,
        refund_reason: None,
        created_at: t(created),
        updated_at: t(created),
    };
    let id = app.db.payments().create(payment).await.unwrap().id;
    let (paid, refunded) = match fate {
        Fate::Completed(paid) => (Some(paid), None),
        Fate::Refunded(paid, refunded) => (Some(paid), Some(refunded)),
        _ => (None, None),
    };
    if let Some(paid) = paid {
        let notice = PaidNotice {
            payment_id: id,
            provider,
            provider_payment_id: format!("gw-{}", id.as_uuid().simple()),
            paid: amount,
        };
        let completion = cybervpn_commerce::complete_payment(&app.db, &notice, t(paid))
            .await
            .unwrap();
        assert!(
            matches!(completion, cybervpn_commerce::Completion::Credited(_)),
            "{completion:?}"
        );
    }
    if let Some(refunded) = refunded {
        cybervpn_commerce::refund_payment(
            &app.db,
            id,
            "asked by the customer",
            &RefundSource::Gateway,
            t(refunded),
        )
        .await
        .unwrap();
    }
    id
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::Usd).unwrap()
}

fn rub(minor: i64) -> Money {
    Money::new(minor, Currency::Rub).unwrap()
}

fn xtr(minor: i64) -> Money {
    Money::new(minor, Currency::Xtr).unwrap()
}

/// A revenue line as the report shows it.
fn line(
    currency: &str,
    provider: &str,
    payments: u64,
    amount: i64,
    refunds: u64,
    refunded: i64,
) -> Value {
    json!({
        "currency": currency, "provider": provider, "payments": payments, "amount_minor": amount,
        "refunds": refunds, "refunded_minor": refunded, "net_minor": amount - refunded,
    })
}

async fn revenue_per_currency_and_gateway_with_refunds_apart(backend: Backend) {
    use PaymentProvider::*;
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    let c = customer(&app, "payer_one", "2024-11-01T00:00:00Z").await;
    // Monday 6 January, twice, one of them a second before midnight.
    payment(
        &app,
        c,
        Stripe,
        usd(499),
        "2025-01-06T09:59:00Z",
        Fate::Completed("2025-01-06T10:00:00Z"),
    )
    .await;
    payment(
        &app,
        c,
        Stripe,
        usd(1000),
        "2025-01-06T23:50:00Z",
        Fate::Completed("2025-01-06T23:59:59.500Z"),
    )
    .await;
    // Sunday 12 January: still the week of the 6th.
    payment(
        &app,
        c,
        CryptoBot,
        usd(300),
        "2025-01-12T11:00:00Z",
        Fate::Completed("2025-01-12T12:00:00Z"),
    )
    .await;
    // Opened on Sunday, credited on the first instant of Monday 13 January.
    payment(
        &app,
        c,
        YooKassa,
        rub(29_900),
        "2025-01-12T23:59:00Z",
        Fate::Completed("2025-01-13T00:00:00Z"),
    )
    .await;
    // Credited in January, refunded in February: revenue of January, a refund of February.
    payment(
        &app,
        c,
        TelegramStars,
        xtr(200),
        "2025-01-31T22:00:00Z",
        Fate::Refunded("2025-01-31T23:00:00Z", "2025-02-02T08:00:00Z"),
    )
    .await;
    // Credited before the period, refunded in it: only the refund counts.
    payment(
        &app,
        c,
        Stripe,
        usd(499),
        "2024-12-31T23:59:00Z",
        Fate::Refunded("2024-12-31T23:59:59Z", "2025-01-07T12:00:00Z"),
    )
    .await;
    // Never credited, or credited at the period's (exclusive) end.
    payment(
        &app,
        c,
        Stripe,
        usd(499),
        "2025-01-08T00:00:00Z",
        Fate::Pending,
    )
    .await;
    payment(
        &app,
        c,
        Stripe,
        usd(499),
        "2025-01-08T00:00:00Z",
        Fate::Failed,
    )
    .await;
    payment(
        &app,
        c,
        YooKassa,
        rub(29_900),
        "2025-01-09T00:00:00Z",
        Fate::Expired,
    )
    .await;
    payment(
        &app,
        c,
        Stripe,
        usd(777),
        "2025-02-28T23:59:00Z",
        Fate::Completed("2025-03-01T00:00:00Z"),
    )
    .await;

    let months = report(
        &app,
        &token,
        "revenue",
        &format!("{PERIOD}&granularity=month"),
    )
    .await;
    assert_eq!(
        months["period"],
        json!({"from": "2025-01-01T00:00:00Z", "to": "2025-03-01T00:00:00Z", "granularity": "month"})
    );
    assert_eq!(
        starts(&months),
        ["2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z"]
    );
    assert_eq!(
        bucket(&months, "2025-01-01T00:00:00Z")["end"],
        "2025-02-01T00:00:00Z"
    );
    assert_eq!(
        bucket(&months, "2025-01-01T00:00:00Z")["lines"],
        json!([
            line("USD", "cryptobot", 1, 300, 0, 0),
            line("USD", "stripe", 2, 1499, 1, 499),
            line("RUB", "yookassa", 1, 29_900, 0, 0),
            line("XTR", "telegram_stars", 1, 200, 0, 0),
        ])
    );
    assert_eq!(
        bucket(&months, "2025-02-01T00:00:00Z")["lines"],
        json!([line("XTR", "telegram_stars", 0, 0, 1, 200)])
    );
    assert_eq!(
        months["totals"],
        json!([
            line("USD", "cryptobot", 1, 300, 0, 0),
            line("USD", "stripe", 2, 1499, 1, 499),
            line("RUB", "yookassa", 1, 29_900, 0, 0),
            line("XTR", "telegram_stars", 1, 200, 1, 200),
        ])
    );

    // Weeks from Monday; the first is clipped to the period's start (a Wednesday).
    let weeks = report(
        &app,
        &token,
        "revenue",
        &format!("{PERIOD}&granularity=week"),
    )
    .await;
    assert_eq!(
        starts(&weeks),
        [
            "2025-01-01T00:00:00Z",
            "2025-01-06T00:00:00Z",
            "2025-01-13T00:00:00Z",
            "2025-01-20T00:00:00Z",
            "2025-01-27T00:00:00Z",
            "2025-02-03T00:00:00Z",
            "2025-02-10T00:00:00Z",
            "2025-02-17T00:00:00Z",
            "2025-02-24T00:00:00Z",
        ]
    );
    assert_eq!(
        bucket(&weeks, "2025-01-01T00:00:00Z")["end"],
        "2025-01-06T00:00:00Z"
    );
    assert_eq!(
        bucket(&weeks, "2025-02-24T00:00:00Z")["end"],
        "2025-03-01T00:00:00Z"
    );
    assert_eq!(bucket(&weeks, "2025-01-01T00:00:00Z")["lines"], json!([]));
    assert_eq!(
        bucket(&weeks, "2025-01-06T00:00:00Z")["lines"],
        json!([
            line("USD", "cryptobot", 1, 300, 0, 0),
            line("USD", "stripe", 2, 1499, 1, 499)
        ])
    );
    assert_eq!(
        bucket(&weeks, "2025-01-13T00:00:00Z")["lines"],
        json!([line("RUB", "yookassa", 1, 29_900, 0, 0)])
    );
    // Paid on Friday 31 January, refunded on Sunday 2 February: the same week, net nothing.
    assert_eq!(
        bucket(&weeks, "2025-01-27T00:00:00Z")["lines"],
        json!([line("XTR", "telegram_stars", 1, 200, 1, 200)])
    );
    assert_eq!(weeks["totals"], months["totals"]);

    let days = report(
        &app,
        &token,
        "revenue",
        &format!("{PERIOD}&granularity=day"),
    )
    .await;
    assert_eq!(days["buckets"].as_array().unwrap().len(), 59);
    assert_eq!(
        bucket(&days, "2025-01-06T00:00:00Z")["lines"],
        json!([line("USD", "stripe", 2, 1499, 0, 0)])
    );
    assert_eq!(
        bucket(&days, "2025-01-07T00:00:00Z")["lines"],
        json!([line("USD", "stripe", 0, 0, 1, 499)])
    );
    assert_eq!(
        bucket(&days, "2025-01-12T00:00:00Z")["lines"],
        json!([line("USD", "cryptobot", 1, 300, 0, 0)])
    );
    assert_eq!(
        bucket(&days, "2025-02-02T00:00:00Z")["lines"],
        json!([line("XTR", "telegram_stars", 0, 0, 1, 200)])
    );
    let busy: Vec<&str> = days["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| !b["lines"].as_array().unwrap().is_empty())
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(
        busy,
        [
            "2025-01-06T00:00:00Z",
            "2025-01-07T00:00:00Z",
            "2025-01-12T00:00:00Z",
            "2025-01-13T00:00:00Z",
            "2025-01-31T00:00:00Z",
            "2025-02-02T00:00:00Z",
        ]
    );
    assert_eq!(days["totals"], months["totals"]);
    app.stop().await;
}

/// Payment counts by status as the report shows them.
fn counts(pending: u64, completed: u64, failed: u64, expired: u64, refunded: u64) -> Value {
    let succeeded = completed + refunded;
    let decided = succeeded + failed + expired;
    json!({
        "pending": pending, "completed": completed, "failed": failed, "expired": expired, "refunded": refunded,
        "total": pending + decided, "succeeded": succeeded, "decided": decided,
        "success_rate_bps": (succeeded * 10_000).checked_div(decided).map_or(Value::Null, |bps| json!(bps)),
    })
}

async fn payment_outcomes_per_status_and_gateway_with_exact_success_rates(backend: Backend) {
    use PaymentProvider::*;
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    let c = customer(&app, "payer_two", "2024-11-01T00:00:00Z").await;
    // Opened on Monday 6 January; counted by when they were opened, whenever their outcome came.
    for fate in [
        Fate::Completed("2025-01-06T10:05:00Z"),
        Fate::Completed("2025-01-20T10:05:00Z"),
        Fate::Failed,
        Fate::Expired,
        Fate::Pending,
    ] {
        payment(&app, c, Stripe, usd(499), "2025-01-06T10:00:00Z", fate).await;
    }
    payment(
        &app,
        c,
        CryptoBot,
        usd(499),
        "2025-01-06T11:00:00Z",
        Fate::Refunded("2025-01-06T11:01:00Z", "2025-02-10T00:00:00Z"),
    )
    .await;
    // Tuesday 11 February.
    payment(
        &app,
        c,
        YooKassa,
        rub(29_900),
        "2025-02-11T09:00:00Z",
        Fate::Completed("2025-02-11T09:01:00Z"),
    )
    .await;
    payment(
        &app,
        c,
        YooKassa,
        rub(29_900),
        "2025-02-11T10:00:00Z",
        Fate::Failed,
    )
    .await;
    // Outside the period.
    payment(
        &app,
        c,
        Stripe,
        usd(499),
        "2024-12-31T23:59:59Z",
        Fate::Failed,
    )
    .await;
    payment(
        &app,
        c,
        Stripe,
        usd(499),
        "2025-03-01T00:00:00Z",
        Fate::Failed,
    )
    .await;

    let january = json!({
        "all": counts(1, 2, 1, 1, 1),
        "by_provider": [
            {"provider": "cryptobot", "counts": counts(0, 0, 0, 0, 1)},
            {"provider": "stripe", "counts": counts(1, 2, 1, 1, 0)},
        ],
    });
    let february = json!({
        "all": counts(0, 1, 1, 0, 0),
        "by_provider": [{"provider": "yookassa", "counts": counts(0, 1, 1, 0, 0)}],
    });
    let empty = json!({"all": counts(0, 0, 0, 0, 0), "by_provider": []});
    let shown = |b: &Value| json!({"all": b["all"], "by_provider": b["by_provider"]});

    let months = report(
        &app,
        &token,
        "payments",
        &format!("{PERIOD}&granularity=month"),
    )
    .await;
    assert_eq!(shown(bucket(&months, "2025-01-01T00:00:00Z")), january);
    assert_eq!(shown(bucket(&months, "2025-02-01T00:00:00Z")), february);
    // 3 of 5 decided in January (60 %), 4 of 7 over the period: 5714 basis points, rounded down.
    assert_eq!(months["all"], counts(1, 3, 2, 1, 1));
    assert_eq!(months["all"]["success_rate_bps"], 5714);
    assert_eq!(
        months["by_provider"],
        json!([
            {"provider": "cryptobot", "counts": counts(0, 0, 0, 0, 1)},
            {"provider": "yookassa", "counts": counts(0, 1, 1, 0, 0)},
            {"provider": "stripe", "counts": counts(1, 2, 1, 1, 0)},
        ])
    );

    let weeks = report(
        &app,
        &token,
        "payments",
        &format!("{PERIOD}&granularity=week"),
    )
    .await;
    assert_eq!(shown(bucket(&weeks, "2025-01-06T00:00:00Z")), january);
    assert_eq!(shown(bucket(&weeks, "2025-02-10T00:00:00Z")), february);
    assert_eq!(shown(bucket(&weeks, "2025-01-01T00:00:00Z")), empty);
    assert_eq!(
        bucket(&weeks, "2025-01-01T00:00:00Z")["all"]["success_rate_bps"],
        Value::Null
    );
    assert_eq!(weeks["all"], months["all"]);

    let days = report(
        &app,
        &token,
        "payments",
        &format!("{PERIOD}&granularity=day"),
    )
    .await;
    assert_eq!(shown(bucket(&days, "2025-01-06T00:00:00Z")), january);
    assert_eq!(shown(bucket(&days, "2025-02-11T00:00:00Z")), february);
    assert_eq!(shown(bucket(&days, "2025-02-10T00:00:00Z")), empty);
    assert_eq!(days["all"], months["all"]);
    app.stop().await;
}

async fn growth_counts_sign_ups_deletions_and_the_running_total(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    let early = customer(&app, "early_one", "2024-12-15T00:00:00Z").await;
    customer(&app, "early_two", "2024-12-15T00:00:00Z").await;
    customer(&app, "early_three", "2024-12-31T23:59:59Z").await;
    customer(&app, "jan_five_a", "2025-01-05T08:00:00Z").await;
    let churned = customer(&app, "jan_five_b", "2025-01-05T09:00:00Z").await;
    customer(&app, "jan_six", "2025-01-06T00:00:00Z").await;
    customer(&app, "feb_first", "2025-02-01T00:00:00Z").await;
    customer(&app, "after_end", "2025-03-01T00:00:00Z").await;
    app.db
        .customers()
        .soft_delete(early, t("2025-01-10T12:00:00Z"))
        .await
        .unwrap();
    app.db
        .customers()
        .soft_delete(churned, t("2025-02-03T12:00:00Z"))
        .await
        .unwrap();

    let growth = |b: &Value| {
        (
            b["new_customers"].as_u64().unwrap(),
            b["deleted_customers"].as_u64().unwrap(),
            b["total_customers"].as_u64().unwrap(),
        )
    };
    let months = report(
        &app,
        &token,
        "growth",
        &format!("{PERIOD}&granularity=month"),
    )
    .await;
    assert_eq!(months["total_at_start"], 3);
    assert_eq!(growth(bucket(&months, "2025-01-01T00:00:00Z")), (3, 1, 5));
    assert_eq!(growth(bucket(&months, "2025-02-01T00:00:00Z")), (1, 1, 5));

    let weeks = report(
        &app,
        &token,
        "growth",
        &format!("{PERIOD}&granularity=week"),
    )
    .await;
    assert_eq!(weeks["total_at_start"], 3);
    // Sunday the 5th belongs to the clipped first week, Monday the 6th to the next.
    assert_eq!(growth(bucket(&weeks, "2025-01-01T00:00:00Z")), (2, 0, 5));
    assert_eq!(growth(bucket(&weeks, "2025-01-06T00:00:00Z")), (1, 1, 5));
    assert_eq!(growth(bucket(&weeks, "2025-01-13T00:00:00Z")), (0, 0, 5));
    assert_eq!(growth(bucket(&weeks, "2025-01-27T00:00:00Z")), (1, 0, 6));
    assert_eq!(growth(bucket(&weeks, "2025-02-03T00:00:00Z")), (0, 1, 5));
    assert_eq!(growth(bucket(&weeks, "2025-02-24T00:00:00Z")), (0, 0, 5));

    let days = report(&app, &token, "growth", &format!("{PERIOD}&granularity=day")).await;
    assert_eq!(growth(bucket(&days, "2025-01-01T00:00:00Z")), (0, 0, 3));
    assert_eq!(growth(bucket(&days, "2025-01-05T00:00:00Z")), (2, 0, 5));
    assert_eq!(growth(bucket(&days, "2025-01-06T00:00:00Z")), (1, 0, 6));
    assert_eq!(growth(bucket(&days, "2025-01-10T00:00:00Z")), (0, 1, 5));
    assert_eq!(growth(bucket(&days, "2025-02-28T00:00:00Z")), (0, 0, 5));

    // A period starting later counts everyone before it.
    let later = report(
        &app,
        &token,
        "growth",
        "from=2025-02-01&to=2025-03-01&granularity=month",
    )
    .await;
    assert_eq!(later["total_at_start"], 5);
    assert_eq!(growth(bucket(&later, "2025-02-01T00:00:00Z")), (1, 1, 5));
    app.stop().await;
}

/// A free trial for `customer` activated at `at`, with its three-day subscription.
async fn trial(app: &TestApp, customer: CustomerId, at: &str) {
    let subscription =
        Subscription::start(customer, None, 3, TrafficLimit::Unlimited, None, t(at)).unwrap();
    app.db.subscriptions().create(&subscription).await.unwrap();
    app.db
        .trials()
        .record(&cybervpn_db::Trial {
            customer_id: customer,
            telegram_id: None,
            subscription_id: subscription.id,
            activated_at: t(at),
            expires_at: subscription.expires_at,
        })
        .await
        .unwrap();
}

async fn conversions_count_trials_paid_after_they_started(backend: Backend) {
    use PaymentProvider::Stripe;
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    // Converts two weeks after the trial.
    let converts = customer(&app, "converts", "2025-01-06T00:00:00Z").await;
    trial(&app, converts, "2025-01-06T08:00:00Z").await;
    payment(
        &app,
        converts,
        Stripe,
        usd(499),
        "2025-01-20T10:00:00Z",
        Fate::Completed("2025-01-20T10:01:00Z"),
    )
    .await;
    // Paid before the trial: not a conversion of it.
    let paid_before = customer(&app, "paid_before", "2024-12-01T00:00:00Z").await;
    payment(
        &app,
        paid_before,
        Stripe,
        usd(499),
        "2024-12-20T10:00:00Z",
        Fate::Completed("2024-12-20T10:01:00Z"),
    )
    .await;
    trial(&app, paid_before, "2025-01-07T08:00:00Z").await;
    // Never pays, or only tries to.
    let never = customer(&app, "never_pays", "2025-01-20T00:00:00Z").await;
    trial(&app, never, "2025-01-20T08:00:00Z").await;
    let tries = customer(&app, "only_tries", "2025-02-04T00:00:00Z").await;
    trial(&app, tries, "2025-02-04T08:00:00Z").await;
    payment(
        &app,
        tries,
        Stripe,
        usd(499),
        "2025-02-05T10:00:00Z",
        Fate::Failed,
    )
    .await;
    payment(
        &app,
        tries,
        Stripe,
        usd(499),
        "2025-02-05T11:00:00Z",
        Fate::Pending,
    )
    .await;
    // Converts on its first payment; the second changes nothing. Refunded later: it still converted.
    let twice = customer(&app, "pays_twice", "2025-02-03T00:00:00Z").await;
    trial(&app, twice, "2025-02-03T08:00:00Z").await;
    payment(
        &app,
        twice,
        Stripe,
        usd(499),
        "2025-02-10T10:00:00Z",
        Fate::Refunded("2025-02-10T10:01:00Z", "2025-02-12T00:00:00Z"),
    )
    .await;
    payment(
        &app,
        twice,
        Stripe,
        usd(499),
        "2025-02-20T10:00:00Z",
        Fate::Completed("2025-02-20T10:01:00Z"),
    )
    .await;
    // A trial after the period, converted: not counted.
    let later = customer(&app, "later_trial", "2025-03-01T00:00:00Z").await;
    trial(&app, later, "2025-03-01T08:00:00Z").await;
    payment(
        &app,
        later,
        Stripe,
        usd(499),
        "2025-03-02T10:00:00Z",
        Fate::Completed("2025-03-02T10:01:00Z"),
    )
    .await;

    let shown = |b: &Value| {
        (
            b["trials"].clone(),
            b["converted"].clone(),
            b["conversion_bps"].clone(),
        )
    };
    let months = report(
        &app,
        &token,
        "conversions",
        &format!("{PERIOD}&granularity=month"),
    )
    .await;
    assert_eq!(
        shown(bucket(&months, "2025-01-01T00:00:00Z")),
        (json!(3), json!(1), json!(3333))
    );
    assert_eq!(
        shown(bucket(&months, "2025-02-01T00:00:00Z")),
        (json!(2), json!(1), json!(5000))
    );
    assert_eq!(shown(&months), (json!(5), json!(2), json!(4000)));

    let weeks = report(
        &app,
        &token,
        "conversions",
        &format!("{PERIOD}&granularity=week"),
    )
    .await;
    assert_eq!(
        shown(bucket(&weeks, "2025-01-01T00:00:00Z")),
        (json!(0), json!(0), Value::Null)
    );
    assert_eq!(
        shown(bucket(&weeks, "2025-01-06T00:00:00Z")),
        (json!(2), json!(1), json!(5000))
    );
    assert_eq!(
        shown(bucket(&weeks, "2025-01-20T00:00:00Z")),
        (json!(1), json!(0), json!(0))
    );
    assert_eq!(
        shown(bucket(&weeks, "2025-02-03T00:00:00Z")),
        (json!(2), json!(1), json!(5000))
    );
    assert_eq!(shown(&weeks), shown(&months));

    let days = report(
        &app,
        &token,
        "conversions",
        &format!("{PERIOD}&granularity=day"),
    )
    .await;
    assert_eq!(
        shown(bucket(&days, "2025-01-06T00:00:00Z")),
        (json!(1), json!(1), json!(10_000))
    );
    assert_eq!(
        shown(bucket(&days, "2025-01-07T00:00:00Z")),
        (json!(1), json!(0), json!(0))
    );
    assert_eq!(
        shown(bucket(&days, "2025-02-04T00:00:00Z")),
        (json!(1), json!(0), json!(0))
    );
    assert_eq!(shown(&days), shown(&months));
    app.stop().await;
}

/// A subscription stored as given: on `plan` (or none), in `status`, from `created` to `expires`.
async fn subscription(
    app: &TestApp,
    customer: CustomerId,
    plan: Option<PlanId>,
    status: SubscriptionStatus,
    created: &str,
    expires: &str,
) {
    let mut s = Subscription::start(
        customer,
        plan,
        30,
        TrafficLimit::Unlimited,
        None,
        t(created),
    )
    .unwrap();
    s.status = status;
    s.expires_at = t(expires);
    app.db.subscriptions().create(&s).await.unwrap();
}

/// Starts and churn of one kind as the report shows them.
fn churn(active_at_start: u64, started: u64, churned: u64) -> Value {
    json!({
        "active_at_start": active_at_start, "started": started, "churned": churned,
        "churn_bps": (churned * 10_000).checked_div(active_at_start).map_or(Value::Null, |bps| json!(bps)),
    })
}

async fn subscriptions_active_now_by_tier_and_churn_per_bucket(backend: Backend) {
    use SubscriptionStatus::*;
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    let plans = app.db.plans().list_all().await.unwrap();
    let plan = |code: &str| Some(plans.iter().find(|p| p.code == code).unwrap().id);
    let c = customer(&app, "subscriber", "2024-01-01T00:00:00Z").await;
    let forever = "2099-01-01T00:00:00Z";
    // Live at the start: a paid one ending mid-January (churned), a paid one running on.
    subscription(
        &app,
        c,
        plan("basic_30"),
        Expired,
        "2024-12-01T00:00:00Z",
        "2025-01-15T00:00:00Z",
    )
    .await;
    subscription(
        &app,
        c,
        plan("pro_30"),
        Active,
        "2024-12-10T00:00:00Z",
        forever,
    )
    .await;
    // Started in January: paid (one disabled by staff, one still marked active though it ended in February).
    subscription(
        &app,
        c,
        plan("pro_90"),
        Active,
        "2025-01-10T00:00:00Z",
        forever,
    )
    .await;
    subscription(
        &app,
        c,
        plan("basic_90"),
        Disabled,
        "2025-01-02T00:00:00Z",
        forever,
    )
    .await;
    subscription(
        &app,
        c,
        plan("cyber_30"),
        Active,
        "2025-01-05T00:00:00Z",
        "2025-02-10T00:00:00Z",
    )
    .await;
    // A trial started and ended in January.
    subscription(
        &app,
        c,
        None,
        Expired,
        "2025-01-20T00:00:00Z",
        "2025-01-23T00:00:00Z",
    )
    .await;
    // Started and ended in February.
    subscription(
        &app,
        c,
        plan("ultra_30"),
        Expired,
        "2025-02-05T00:00:00Z",
        "2025-02-28T23:00:00Z",
    )
    .await;
    // Without a plan, live throughout: one ends at the period's (exclusive) end, a staff grant runs on.
    subscription(
        &app,
        c,
        None,
        Expired,
        "2024-11-01T00:00:00Z",
        "2025-03-01T00:00:00Z",
    )
    .await;
    subscription(&app, c, None, Active, "2024-06-01T00:00:00Z", forever).await;

    let months = report(
        &app,
        &token,
        "subscriptions",
        &format!("{PERIOD}&granularity=month"),
    )
    .await;
    assert_eq!(
        months["active_now"],
        json!([{"tier": "pro", "active": 2}, {"tier": null, "active": 1}])
    );
    assert_eq!(months["active_now_total"], 3);
    let shown = |b: &Value| (b["paid"].clone(), b["free"].clone());
    assert_eq!(
        shown(bucket(&months, "2025-01-01T00:00:00Z")),
        (churn(2, 3, 1), churn(2, 1, 1))
    );
    assert_eq!(
        shown(bucket(&months, "2025-02-01T00:00:00Z")),
        (churn(4, 1, 2), churn(2, 0, 0))
    );

    let weeks = report(
        &app,
        &token,
        "subscriptions",
        &format!("{PERIOD}&granularity=week"),
    )
    .await;
    assert_eq!(weeks["active_now"], months["active_now"]);
    // 1–5 January: the disabled and the cyber subscriptions start.
    assert_eq!(
        shown(bucket(&weeks, "2025-01-01T00:00:00Z")),
        (churn(2, 2, 0), churn(2, 0, 0))
    );
    // 6–12 January: the second pro one starts.
    assert_eq!(
        shown(bucket(&weeks, "2025-01-06T00:00:00Z")),
        (churn(4, 1, 0), churn(2, 0, 0))
    );
    // 13–19 January: the basic one ends.
    assert_eq!(
        shown(bucket(&weeks, "2025-01-13T00:00:00Z")),
        (churn(5, 0, 1), churn(2, 0, 0))
    );
    // 20–26 January: the trial starts and ends.
    assert_eq!(
        shown(bucket(&weeks, "2025-01-20T00:00:00Z")),
        (churn(4, 0, 0), churn(2, 1, 1))
    );
    // 10–16 February: the cyber one ends.
    assert_eq!(
        shown(bucket(&weeks, "2025-02-10T00:00:00Z")),
        (churn(5, 0, 1), churn(2, 0, 0))
    );
    // 24 February – 1 March: the ultra one ends; the free one ending on 1 March is still live.
    assert_eq!(
        shown(bucket(&weeks, "2025-02-24T00:00:00Z")),
        (churn(4, 0, 1), churn(2, 0, 0))
    );

    let days = report(
        &app,
        &token,
        "subscriptions",
        &format!("{PERIOD}&granularity=day"),
    )
    .await;
    // Ending at midnight on the 15th: live at that day's start, and churned that day.
    assert_eq!(
        shown(bucket(&days, "2025-01-15T00:00:00Z")),
        (churn(5, 0, 1), churn(2, 0, 0))
    );
    assert_eq!(
        shown(bucket(&days, "2025-01-16T00:00:00Z")),
        (churn(4, 0, 0), churn(2, 0, 0))
    );
    assert_eq!(
        shown(bucket(&days, "2025-02-05T00:00:00Z")),
        (churn(4, 1, 0), churn(2, 0, 0))
    );
    assert_eq!(
        shown(bucket(&days, "2025-02-28T00:00:00Z")),
        (churn(4, 0, 1), churn(2, 0, 0))
    );
    app.stop().await;
}

const REPORTS: [&str; 5] = [
    "revenue",
    "payments",
    "growth",
    "conversions",
    "subscriptions",
];

async fn analytics_need_the_view_analytics_permission(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let customer = app.customer_token("not_staff@example.com").await;
    for report in REPORTS {
        let path = format!("/api/v1/admin/analytics/{report}");
        assert_problem(app.get(&path).await, 401, "unauthorized").await;
        assert_problem(app.get_authed(&path, &customer).await, 401, "token_invalid").await;
    }
    for role in StaffRole::ALL {
        let token = app.staff_token(*role).await;
        for report in REPORTS {
            let response = app
                .get_authed(&format!("/api/v1/admin/analytics/{report}"), &token)
                .await;
            if role.at_least(StaffRole::Operator) {
                assert_eq!(response.status(), 200, "{role} {report}");
            } else {
                let body = assert_problem(response, 403, "forbidden").await;
                assert!(
                    body["detail"].as_str().unwrap().contains("view_analytics"),
                    "{body}"
                );
            }
        }
    }
    app.stop().await;
}

async fn bad_periods_are_refused_naming_the_parameter(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    let cases = [
        ("granularity=hour", "granularity"),
        ("granularity=", "granularity"),
        ("from=yesterday", "from"),
        ("from=2025-13-01", "from"),
        ("to=2025-01-01T25:00:00Z", "to"),
        ("from=2025-02-01&to=2025-01-01", "to"),
        ("from=2025-01-01&to=2025-01-01", "to"),
        (
            "from=2025-01-01T00:00:00Z&to=2025-01-01T00:00:00%2B01:00",
            "to",
        ),
        ("from=2023-01-01&to=2025-01-02", "to"),
        ("from=1969-12-31&to=1970-01-02", "from"),
    ];
    for report in REPORTS {
        for (query, field) in cases {
            let response = app
                .get_authed(&format!("/api/v1/admin/analytics/{report}?{query}"), &token)
                .await;
            let body = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(body["field"], field, "{report}?{query}: {body}");
        }
    }
    // The longest period, 731 days, is accepted.
    let longest = report(
        &app,
        &token,
        "revenue",
        "from=2023-01-01&to=2025-01-01&granularity=month",
    )
    .await;
    assert_eq!(longest["buckets"].as_array().unwrap().len(), 24);
    app.stop().await;
}

async fn the_default_period_is_the_last_thirty_days_by_day(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = analyst(&app).await;
    let before = Utc::now();
    let body = report(&app, &token, "growth", "").await;
    let to = t(body["period"]["to"].as_str().unwrap());
    let from = t(body["period"]["from"].as_str().unwrap());
    assert_eq!(body["period"]["granularity"], "day");
    // The end of today (UTC), unless the test ran across midnight.
    let tomorrow = (before.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    assert!(
        to == tomorrow || to == tomorrow + chrono::Duration::days(1),
        "{to}"
    );
    assert_eq!(to - from, chrono::Duration::days(30));
    assert_eq!(body["buckets"].as_array().unwrap().len(), 30);
    // Only `to` given: the thirty days before it.
    let body = report(&app, &token, "revenue", "to=2025-03-01&granularity=week").await;
    assert_eq!(body["period"]["from"], "2025-01-30T00:00:00Z");
    assert_eq!(starts(&body)[1], "2025-02-03T00:00:00Z");
    app.stop().await;
}
