//! Arrangements the commerce tests share: a database, customers, and payments through the completion path.

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_commerce::{Completion, PaidNotice, complete_payment};
use cybervpn_db::Db;
use cybervpn_domain::{
    Currency, CustomerId, Email, Language, NewCustomer, Payment, PaymentId, PaymentProvider,
    PaymentStatus, Plan, Username,
};
use cybervpn_testkit::{Backend, TestDb};

pub(crate) async fn open(backend: Backend) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let db = Db::from_connection(test_db.connect().await);
    (test_db, db)
}

/// A customer signed up by email as `name`.
pub(crate) async fn customer(db: &Db, name: &str) -> CustomerId {
    let new = NewCustomer::new(
        Some(Email::parse(&format!("{name}@example.com")).unwrap()),
        None,
        Username::parse(name).unwrap(),
        Language::En,
    )
    .unwrap();
    db.customers().create(new, Utc::now()).await.unwrap().id
}

/// A pending payment of `plan` through `provider` (Stars in XTR, the others in USD) for `days`, opened at `at`.
pub(crate) async fn pending_payment(
    db: &Db,
    customer: CustomerId,
    plan: &Plan,
    provider: PaymentProvider,
    days: u32,
    at: DateTime<Utc>,
) -> Payment {
    let currency = match provider {
        PaymentProvider::TelegramStars => Currency::Xtr,
        _ => Currency::Usd,
    };
    db.payments()
        .create(Payment {
            id: PaymentId::new(),
            customer_id: customer,
            plan_id: Some(plan.id),
            amount: plan.price_in(currency).unwrap(),
            status: PaymentStatus::Pending,
            provider,
            provider_payment_id: None,
            days,
            invoice_url: None,
            expires_at: Some(at + TimeDelta::hours(1)),
            completed_at: None,
            review_reason: None,
            promo_code_id: None,
            refunded_at: None,
            refund_reason: None,
            created_at: at,
            updated_at: at,
        })
        .await
        .unwrap()
}

/// The gateway's paid notice for `payment`, with a reference made from its id.
pub(crate) fn paid_notice(payment: &Payment) -> PaidNotice {
    PaidNotice {
        payment_id: payment.id,
        provider: payment.provider,
        provider_payment_id: format!("ref-{}", payment.id.as_uuid()),
        paid: payment.amount,
    }
}

/// Pays `days` of `plan` through CryptoBot at `at`, credited through the completion path.
pub(crate) async fn credited(
    db: &Db,
    customer: CustomerId,
    plan: &Plan,
    days: u32,
    at: DateTime<Utc>,
) -> Payment {
    let payment = pending_payment(db, customer, plan, PaymentProvider::CryptoBot, days, at).await;
    let completion = complete_payment(db, &paid_notice(&payment), at)
        .await
        .unwrap();
    assert!(
        matches!(completion, Completion::Credited(_)),
        "{completion:?}"
    );
    payment
}

/// When the customer's current subscription ends.
pub(crate) async fn expiry(db: &Db, customer: CustomerId) -> DateTime<Utc> {
    db.subscriptions()
        .current_for(customer)
        .await
        .unwrap()
        .unwrap()
        .expires_at
}
