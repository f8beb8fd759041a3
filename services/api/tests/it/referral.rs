//! Referral codes, and the bonus days a referral earns: once per referred customer, up to the cap.

use chrono::Utc;
use cybervpn_domain::{CustomerId, Email};
use cybervpn_testkit::{Backend, on_both_backends};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, json_body};

on_both_backends!(
    a_referral_earns_the_referrer_days_once,
    referral_bonuses_stop_at_the_cap,
    unknown_self_and_cyclic_codes_are_refused,
);

async fn spawn(backend: Backend, max_referrals: u32) -> TestApp {
    TestApp::spawn_with(backend, |config| {
        config.auth.ip_requests_per_minute = 1_000;
        config.referral.max_referrals = max_referrals;
    })
    .await
}

async fn register_with(app: &TestApp, email: &str, code: Option<&str>) -> reqwest::Response {
    let mut body = json!({"email": email, "password": format!("correct horse {email}")});
    if let Some(code) = code {
        body["referral_code"] = json!(code);
    }
    app.post_json("/api/v1/auth/register", &body).await
}

async fn id_of(app: &TestApp, email: &str) -> CustomerId {
    app.db
        .customers()
        .find_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn referral(app: &TestApp, token: &str) -> Value {
    json_body(app.get_authed("/api/v1/referral", token).await, 200).await
}

async fn a_referral_earns_the_referrer_days_once(backend: Backend) {
    let app = spawn(backend, 100).await;
    let token = app.customer_token("inviter@example.com").await;
    let inviter = id_of(&app, "inviter@example.com").await;
    let mine = referral(&app, &token).await;
    let code = mine["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8, "{mine}");
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{code}"
    );
    assert_eq!(mine["link"]["bot_start_parameter"], format!("ref_{code}"));
    assert_eq!(mine["link"]["web_query"], format!("?ref={code}"));
    assert_eq!(mine["referrals_count"], 0);
    assert_eq!(mine["days_earned"], 0);
    assert_eq!(
        referral(&app, &token).await["code"],
        code,
        "the code is stable"
    );

    // No subscription yet: the bonus starts one of 3 days.
    let response = register_with(&app, "friend1@example.com", Some(&code.to_lowercase())).await;
    assert_eq!(response.status(), 201);
    let first = app
        .db
        .subscriptions()
        .current_for(inviter)
        .await
        .unwrap()
        .expect("the bonus started a subscription");
    let left = first.expires_at - Utc::now();
    assert!(
        left > chrono::Duration::hours(71) && left <= chrono::Duration::hours(72),
        "{left}"
    );
    assert!(
        app.outbox()
            .await
            .iter()
            .any(|m| m.job == "provision_subscription"
                && m.payload["subscription_id"] == first.id.as_uuid().to_string()),
        "the bonus is provisioned"
    );

    // With a subscription: the bonus extends it.
    assert_eq!(
        register_with(&app, "friend2@example.com", Some(&code))
            .await
            .status(),
        201
    );
    let second = app
        .db
        .subscriptions()
        .current_for(inviter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(
        second.expires_at - first.expires_at,
        chrono::Duration::days(3)
    );

    // A referred customer is linked once: the unique index refuses a second referral of them.
    let friend1 = id_of(&app, "friend1@example.com").await;
    let again = app
        .db
        .referrals()
        .record(inviter, friend1, 3, Utc::now())
        .await;
    assert!(
        matches!(
            again,
            Err(cybervpn_db::DbError::Domain(
                cybervpn_domain::DomainError::Conflict { .. }
            ))
        ),
        "{again:?}"
    );

    let mine = referral(&app, &token).await;
    assert_eq!(mine["referrals_count"], 2);
    assert_eq!(mine["days_earned"], 6);
    assert_eq!(
        app.db
            .customers()
            .record(friend1)
            .await
            .unwrap()
            .referral_code_used
            .as_deref(),
        Some(code.to_lowercase().as_str())
    );
    app.stop().await;
}

async fn referral_bonuses_stop_at_the_cap(backend: Backend) {
    let app = spawn(backend, 2).await;
    let token = app.customer_token("capped@example.com").await;
    let inviter = id_of(&app, "capped@example.com").await;
    let code = referral(&app, &token).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..3 {
        let response = register_with(&app, &format!("cap{n}@example.com"), Some(&code)).await;
        assert_eq!(response.status(), 201, "beyond the cap sign-up still works");
    }
    let subscription = app
        .db
        .subscriptions()
        .current_for(inviter)
        .await
        .unwrap()
        .unwrap();
    let left = subscription.expires_at - Utc::now();
    assert!(
        left > chrono::Duration::days(6) - chrono::Duration::minutes(5)
            && left <= chrono::Duration::days(6),
        "two bonuses of 3 days, not three: {left}"
    );
    let mine = referral(&app, &token).await;
    assert_eq!(mine["referrals_count"], 3);
    assert_eq!(mine["days_earned"], 6);
    assert_eq!(mine["max_referrals"], 2);
    app.stop().await;
}

async fn unknown_self_and_cyclic_codes_are_refused(backend: Backend) {
    let app = spawn(backend, 100).await;
    let problem = assert_problem(
        register_with(&app, "nobody@example.com", Some("NOSUCH00")).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(problem["field"], "referral_code");
    assert!(
        app.db
            .customers()
            .find_by_email(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing is kept of a refused sign-up"
    );
    let malformed = assert_problem(
        register_with(&app, "bad@example.com", Some("not a code!")).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(malformed["field"], "referral_code");

    // A referred customer gets a code of their own, which credits them, not their inviter.
    let a_token = app.customer_token("alpha@example.com").await;
    let a = id_of(&app, "alpha@example.com").await;
    let a_code = referral(&app, &a_token).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        register_with(&app, "beta@example.com", Some(&a_code))
            .await
            .status(),
        201
    );
    let b = id_of(&app, "beta@example.com").await;
    let b_code = app.db.customers().referral_code(b).await.unwrap().unwrap();
    assert_ne!(b_code, a_code);
    assert_eq!(app.db.referrals().referrer_of(b).await.unwrap(), Some(a));
    assert_eq!(
        register_with(&app, "gamma@example.com", Some(&b_code))
            .await
            .status(),
        201
    );
    assert_eq!(app.db.referrals().stats(b).await.unwrap().referrals, 1);
    assert_eq!(app.db.referrals().stats(a).await.unwrap().referrals, 1);
    app.stop().await;
}
