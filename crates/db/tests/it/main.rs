//! Repository tests against real PostgreSQL and SQLite databases.
#![expect(clippy::unwrap_used, reason = "a failed step fails the test")]

use chrono::Duration;
use chrono::Utc;
use cybervpn_db::{Db, DbError, Rotation};
use cybervpn_domain::{
    Currency, CustomerId, DomainError, Email, Language, Money, NewCustomer, Payment, PaymentId,
    PaymentProvider, PaymentStatus, Principal, TelegramId, Username,
};
use cybervpn_testkit::{Backend, TestDb, on_both_backends};

on_both_backends!(
    refresh_tokens_rotate_once_and_reuse_revokes_the_family,
    totp_steps_and_backup_codes_are_accepted_at_most_once,
    customers_are_unique_per_email_and_telegram_id,
    payments_are_unique_per_provider_payment_id,
    seeded_catalogue_round_trips,
);

async fn open(backend: Backend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let db = Db::from_connection(test_db.connect().await);
    (test_db, db)
}

fn new_customer(email: Option<&str>, telegram: Option<i64>) -> NewCustomer {
    NewCustomer::new(
        email.map(|e| Email::parse(e).unwrap()),
        telegram.map(|t| TelegramId::new(t).unwrap()),
        Username::parse("neo_42").unwrap(),
        Language::Ru,
    )
    .unwrap()
}

fn assert_conflict(result: Result<impl std::fmt::Debug, DbError>, what: &str) {
    match result {
        Err(DbError::Domain(DomainError::Conflict { what: got })) => assert_eq!(got, what),
        other => panic!("expected a conflict on {what}, got {other:?}"),
    }
}

async fn customers_are_unique_per_email_and_telegram_id(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let first = db
        .customers()
        .create(new_customer(Some("Neo@Example.com"), Some(777)), now)
        .await
        .unwrap();
    assert_eq!(db.customers().get(first.id).await.unwrap(), first);

    // Emails are stored normalised, so case does not dodge the constraint.
    assert_conflict(
        db.customers()
            .create(new_customer(Some("neo@example.COM"), None), now)
            .await,
        "customer with this email",
    );
    assert_conflict(
        db.customers()
            .create(new_customer(None, Some(777)), now)
            .await,
        "customer with this Telegram id",
    );
    // Both fields are optional: many customers may lack an email or a Telegram id.
    db.customers()
        .create(new_customer(None, Some(778)), now)
        .await
        .unwrap();
    db.customers()
        .create(new_customer(Some("trinity@example.com"), None), now)
        .await
        .unwrap();

    let by_telegram = db
        .customers()
        .find_by_telegram_id(TelegramId::new(777).unwrap())
        .await
        .unwrap();
    assert_eq!(by_telegram.map(|c| c.id), Some(first.id));
    let by_email = db
        .customers()
        .find_by_email(&Email::parse("NEO@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(by_email.map(|c| c.id), Some(first.id));

    match db.customers().get(CustomerId::new()).await {
        Err(DbError::Domain(DomainError::NotFound { entity })) => assert_eq!(entity, "customer"),
        other => panic!("expected not found, got {other:?}"),
    }
}

async fn payments_are_unique_per_provider_payment_id(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = db
        .customers()
        .create(new_customer(Some("buyer@example.com"), None), now)
        .await
        .unwrap();
    let plan = db.plans().list_active().await.unwrap().remove(0);
    let payment = |provider, id: &str| Payment {
        id: PaymentId::new(),
        customer_id: customer.id,
        plan_id: Some(plan.id),
        amount: Money::new(499, Currency::Usd).unwrap(),
        status: PaymentStatus::Pending,
        provider,
        provider_payment_id: Some(id.to_owned()),
        created_at: now,
        updated_at: now,
    };
    let first = db
        .payments()
        .create(payment(PaymentProvider::Stripe, "pi_123"))
        .await
        .unwrap();
    assert_eq!(db.payments().get(first.id).await.unwrap(), first);

    assert_conflict(
        db.payments()
            .create(payment(PaymentProvider::Stripe, "pi_123"))
            .await,
        "payment with this provider payment id",
    );
    // The same id at another provider is a different payment.
    db.payments()
        .create(payment(PaymentProvider::YooKassa, "pi_123"))
        .await
        .unwrap();

    let found = db
        .payments()
        .find_by_provider_id(PaymentProvider::Stripe, "pi_123")
        .await
        .unwrap();
    assert_eq!(found.map(|p| p.id), Some(first.id));
}

async fn seeded_catalogue_round_trips(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let plans = db.plans().list_active().await.unwrap();
    assert_eq!(plans.len(), 16);
    for plan in &plans {
        assert_eq!(plan.prices().len(), 3, "{}", plan.code);
        assert_eq!(db.plans().get(plan.id).await.unwrap(), *plan);
    }
    let cyber_365 = plans.iter().find(|p| p.code == "cyber_365").unwrap();
    // 14.99 USD a month × 12 months, 20 % off.
    assert_eq!(
        cyber_365.price_in(Currency::Usd),
        Some(Money::new(14_390, Currency::Usd).unwrap())
    );
    assert!(db.pending_migrations().await.unwrap().is_empty());
    db.ping().await.unwrap();
}

async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let later = now + Duration::days(7);
    let customer = db
        .customers()
        .create(new_customer(Some("s@example.com"), None), now)
        .await
        .unwrap();
    let me = Principal::Customer(customer.id);
    let sessions = db.sessions();
    sessions.start(me, "h1".into(), later, now).await.unwrap();
    sessions
        .start(me, "other-device".into(), later, now)
        .await
        .unwrap();

    assert_eq!(
        sessions
            .rotate("h1", "h2".into(), later, now)
            .await
            .unwrap(),
        Rotation::Rotated { principal: me }
    );
    assert_eq!(
        sessions
            .rotate("h2", "h3".into(), later, now)
            .await
            .unwrap(),
        Rotation::Rotated { principal: me }
    );
    // h1 was already used: reuse revokes h1's whole family, including the live h3.
    assert_eq!(
        sessions.rotate("h1", "x".into(), later, now).await.unwrap(),
        Rotation::Reused { principal: me }
    );
    assert_eq!(
        sessions
            .rotate("h3", "h4".into(), later, now)
            .await
            .unwrap(),
        Rotation::Reused { principal: me }
    );
    // Another sign-in's family is untouched.
    assert_eq!(
        sessions
            .rotate("other-device", "o2".into(), later, now)
            .await
            .unwrap(),
        Rotation::Rotated { principal: me }
    );
    assert_eq!(
        sessions
            .rotate("nope", "n".into(), later, now)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    sessions
        .start(
            me,
            "old".into(),
            now - Duration::seconds(1),
            now - Duration::days(8),
        )
        .await
        .unwrap();
    assert_eq!(
        sessions
            .rotate("old", "n2".into(), later, now)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // Still unrevoked: `other-device` (used), `o2` (live) and `old` (expired).
    assert_eq!(sessions.revoke_all(me, now).await.unwrap(), 3);
    assert_eq!(
        sessions
            .rotate("o2", "o3".into(), later, now)
            .await
            .unwrap(),
        Rotation::Reused { principal: me }
    );
}

async fn totp_steps_and_backup_codes_are_accepted_at_most_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now();
    let customer = db
        .customers()
        .create(new_customer(Some("t@example.com"), None), now)
        .await
        .unwrap();
    let me = Principal::Customer(customer.id);
    let tf = db.two_factor();
    tf.begin(me, "sealed-1".into(), now).await.unwrap();
    assert!(
        !tf.use_step(me, 100).await.unwrap(),
        "unconfirmed enrolments accept nothing"
    );
    assert!(
        tf.confirm(me, 100, vec!["b1".into(), "b2".into()], now)
            .await
            .unwrap()
    );
    assert!(
        !tf.confirm(me, 101, vec![], now).await.unwrap(),
        "confirms once"
    );
    assert_eq!(tf.get(me).await.unwrap().map(|e| e.confirmed), Some(true));
    assert!(
        !tf.use_step(me, 100).await.unwrap(),
        "the confirming code is spent"
    );
    assert!(tf.use_step(me, 101).await.unwrap());
    assert!(!tf.use_step(me, 101).await.unwrap(), "replay refused");
    assert!(!tf.use_step(me, 99).await.unwrap(), "older steps refused");

    assert!(tf.use_backup_code(me, "b1", now).await.unwrap());
    assert!(!tf.use_backup_code(me, "b1", now).await.unwrap());
    assert!(!tf.use_backup_code(me, "zz", now).await.unwrap());

    match tf.begin(me, "sealed-2".into(), now).await {
        Err(DbError::Domain(DomainError::Conflict { .. })) => {}
        other => panic!("a confirmed enrolment must be removed first, got {other:?}"),
    }
    tf.remove(me).await.unwrap();
    assert_eq!(tf.get(me).await.unwrap(), None);
    assert!(!tf.use_backup_code(me, "b2", now).await.unwrap());
}
