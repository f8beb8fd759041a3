//! Repository tests against real PostgreSQL and SQLite databases.
#![expect(clippy::unwrap_used, reason = "a failed step fails the test")]

use chrono::Utc;
use cybervpn_db::{Db, DbError};
use cybervpn_domain::{
    Currency, CustomerId, DomainError, Email, Language, Money, NewCustomer, Payment, PaymentId,
    PaymentProvider, PaymentStatus, TelegramId, Username,
};
use cybervpn_testkit::{Backend, TestDb};

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn postgres() {
                super::$name(cybervpn_testkit::Backend::Postgres).await;
            }

            #[tokio::test]
            async fn sqlite() {
                super::$name(cybervpn_testkit::Backend::Sqlite).await;
            }
        }
    )+};
}

on_both_backends!(
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
