//! Telegram Stars on both databases: the pre-checkout re-check and the idempotent grant.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cybervpn_commerce::{
    Completion, complete_payment,
    stars::{PreCheckout, PreCheckoutAnswer, SuccessfulPayment, pre_checkout, successful_payment},
};
use cybervpn_db::Db;
use cybervpn_domain::{
    CustomerId, Language, NewCustomer, Payment, PaymentId, PaymentProvider, PaymentStatus, Plan,
    TelegramId, Username,
};
use cybervpn_testkit::{Backend, on_both_backends};

use crate::support::{open, pending_payment};

async fn customer(db: &Db, name: &str, telegram_id: i64) -> CustomerId {
    let new = NewCustomer::new(
        None,
        Some(TelegramId::new(telegram_id).unwrap()),
        Username::parse(name).unwrap(),
        Language::En,
    )
    .unwrap();
    db.customers().create(new, Utc::now()).await.unwrap().id
}

async fn plan(db: &Db) -> Plan {
    db.plans().list_active().await.unwrap().remove(0)
}

async fn stars_payment(db: &Db, customer: CustomerId, plan: &Plan, now: DateTime<Utc>) -> Payment {
    let days = plan.duration.days().into();
    pending_payment(
        db,
        customer,
        plan,
        PaymentProvider::TelegramStars,
        days,
        now,
    )
    .await
}

fn query(payment: &Payment, telegram_user_id: i64) -> PreCheckout {
    PreCheckout {
        invoice_payload: payment.id.to_string(),
        currency: "XTR".to_owned(),
        total_amount: payment.amount.amount_minor(),
        telegram_user_id,
    }
}

fn paid(payment: &Payment, charge_id: &str) -> SuccessfulPayment {
    SuccessfulPayment {
        invoice_payload: payment.id.to_string(),
        currency: "XTR".to_owned(),
        total_amount: payment.amount.amount_minor(),
        telegram_payment_charge_id: charge_id.to_owned(),
        provider_payment_charge_id: None,
    }
}

fn rejected(answer: &PreCheckoutAnswer) -> bool {
    matches!(answer, PreCheckoutAnswer::Reject(message) if !message.is_empty())
}

on_both_backends!(pre_checkout_accepts_only_the_right_payment);
async fn pre_checkout_accepts_only_the_right_payment(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now().trunc_subsecs(6);
    let who = customer(&db, "neo", 1001).await;
    customer(&db, "smith", 1002).await;
    let plan = plan(&db).await;
    let payment = stars_payment(&db, who, &plan, now).await;

    let ok = query(&payment, 1001);
    assert_eq!(
        pre_checkout(&db, &ok, now).await.unwrap(),
        PreCheckoutAnswer::Ok
    );

    let mut more = ok.clone();
    more.total_amount += 1;
    let mut less = ok.clone();
    less.total_amount -= 1;
    let mut dollars = ok.clone();
    dollars.currency = "USD".to_owned();
    let other_user = query(&payment, 1002);
    let stranger = query(&payment, 4242);
    let mut unknown = ok.clone();
    unknown.invoice_payload = PaymentId::new().to_string();
    let mut garbage = ok.clone();
    garbage.invoice_payload = "buy-30-days".to_owned();
    for bad in [more, less, dollars, other_user, stranger, unknown, garbage] {
        let answer = pre_checkout(&db, &bad, now).await.unwrap();
        assert!(rejected(&answer), "{bad:?} -> {answer:?}");
    }

    let expired = pre_checkout(&db, &ok, now + TimeDelta::hours(2))
        .await
        .unwrap();
    assert!(rejected(&expired), "{expired:?}");

    // Another gateway's payment is not payable with Stars.
    let mut card = stars_payment(&db, who, &plan, now).await;
    card.id = PaymentId::new();
    card.provider = PaymentProvider::Stripe;
    let card = db.payments().create(card).await.unwrap();
    let answer = pre_checkout(&db, &query(&card, 1001), now).await.unwrap();
    assert!(rejected(&answer), "{answer:?}");

    // Once paid, the same invoice is not payable again.
    assert!(matches!(
        successful_payment(&db, &paid(&payment, "charge-1"), now)
            .await
            .unwrap(),
        Completion::Credited(_)
    ));
    let answer = pre_checkout(&db, &ok, now).await.unwrap();
    assert!(rejected(&answer), "{answer:?}");

    // A payment closed as expired is rejected even before its clock says so.
    let closed = stars_payment(&db, who, &plan, now).await;
    cybervpn_commerce::expire_unpaid(&db, now + TimeDelta::hours(2))
        .await
        .unwrap();
    let answer = pre_checkout(&db, &query(&closed, 1001), now).await.unwrap();
    assert!(rejected(&answer), "{answer:?}");
}

on_both_backends!(a_stars_payment_is_credited_once);
async fn a_stars_payment_is_credited_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now().trunc_subsecs(6);
    let who = customer(&db, "trinity", 2001).await;
    let plan = plan(&db).await;
    let payment = stars_payment(&db, who, &plan, now).await;

    let Completion::Credited(subscription) =
        successful_payment(&db, &paid(&payment, "stxCharge1"), now)
            .await
            .unwrap()
    else {
        panic!("credited");
    };
    let days = i64::from(plan.duration.days());
    assert_eq!(subscription.expires_at, now + TimeDelta::days(days));
    let stored = db.payments().get(payment.id).await.unwrap();
    assert_eq!(stored.status, PaymentStatus::Completed);
    assert_eq!(stored.provider_payment_id.as_deref(), Some("stxCharge1"));

    // Telegram delivers the same update again.
    let again = successful_payment(
        &db,
        &paid(&payment, "stxCharge1"),
        now + TimeDelta::minutes(5),
    )
    .await
    .unwrap();
    assert_eq!(again, Completion::AlreadyCompleted);
    let current = db.subscriptions().current_for(who).await.unwrap().unwrap();
    assert_eq!(current.expires_at, subscription.expires_at);
    let stored = db.payments().get(payment.id).await.unwrap();
    assert_eq!(stored.provider_payment_id.as_deref(), Some("stxCharge1"));
    assert!(stored.review_reason.is_none());
}

on_both_backends!(a_wrong_stars_payment_is_set_aside_and_never_credited);
async fn a_wrong_stars_payment_is_set_aside_and_never_credited(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let now = Utc::now().trunc_subsecs(6);
    let who = customer(&db, "morpheus", 3001).await;
    let plan = plan(&db).await;
    let payment = stars_payment(&db, who, &plan, now).await;

    let mut short = paid(&payment, "stxShort");
    short.total_amount -= 1;
    let outcome = successful_payment(&db, &short, now).await.unwrap();
    assert!(
        matches!(&outcome, Completion::NeedsReview(r) if r.contains("but the price is")),
        "{outcome:?}"
    );
    let mut dollars = paid(&payment, "stxUsd");
    dollars.currency = "USD".to_owned();
    let outcome = successful_payment(&db, &dollars, now).await.unwrap();
    assert!(matches!(outcome, Completion::NeedsReview(_)), "{outcome:?}");
    let mut euros = paid(&payment, "stxEur");
    euros.currency = "EUR".to_owned();
    let outcome = successful_payment(&db, &euros, now).await.unwrap();
    assert!(
        matches!(&outcome, Completion::NeedsReview(r) if r.contains("EUR")),
        "{outcome:?}"
    );
    let mut negative = paid(&payment, "stxNeg");
    negative.total_amount = -1;
    let outcome = successful_payment(&db, &negative, now).await.unwrap();
    assert!(matches!(outcome, Completion::NeedsReview(_)), "{outcome:?}");

    let stored = db.payments().get(payment.id).await.unwrap();
    assert_eq!(stored.status, PaymentStatus::Pending);
    assert!(stored.review_reason.is_some());
    assert!(db.subscriptions().current_for(who).await.unwrap().is_none());

    let mut garbage = paid(&payment, "stxGarbage");
    garbage.invoice_payload = "not-a-payment".to_owned();
    assert_eq!(
        successful_payment(&db, &garbage, now).await.unwrap(),
        Completion::Unknown
    );
    let mut unknown = paid(&payment, "stxUnknown");
    unknown.invoice_payload = PaymentId::new().to_string();
    assert_eq!(
        successful_payment(&db, &unknown, now).await.unwrap(),
        Completion::Unknown
    );
    unknown.currency = "EUR".to_owned();
    assert_eq!(
        successful_payment(&db, &unknown, now).await.unwrap(),
        Completion::Unknown
    );

    // The Stars path goes through the one completion path: a card notice for it is set aside too.
    let card = cybervpn_commerce::PaidNotice {
        payment_id: payment.id,
        provider: PaymentProvider::Stripe,
        provider_payment_id: "cs_1".to_owned(),
        paid: payment.amount,
    };
    assert!(matches!(
        complete_payment(&db, &card, now).await.unwrap(),
        Completion::NeedsReview(_)
    ));
    assert!(db.subscriptions().current_for(who).await.unwrap().is_none());
}
