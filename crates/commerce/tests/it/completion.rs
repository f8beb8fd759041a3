//! The completion path on both databases: credited once, never for the wrong amount, duplicates harmless.

use chrono::{SubsecRound, TimeDelta, Utc};
use cybervpn_commerce::{Completion, PaidNotice, complete_payment, expire_unpaid};
use cybervpn_db::Db;
use cybervpn_domain::{
    Currency, CustomerId, LoyaltyLevel, Money, Payment, PaymentId, PaymentProvider, PaymentStatus,
    Plan, Subscription, TrafficLimit,
};
use cybervpn_testkit::{Backend, on_both_backends};

use crate::support::{customer, open, pending_payment};

async fn plan(db: &Db) -> Plan {
    db.plans().list_active().await.unwrap().remove(0)
}

async fn pending(db: &Db, customer: CustomerId, plan: &Plan, provider: PaymentProvider) -> Payment {
    let days = plan.duration.days().into();
    pending_payment(db, customer, plan, provider, days, Utc::now()).await
}

fn notice(payment: &Payment, reference: &str) -> PaidNotice {
    PaidNotice {
        payment_id: payment.id,
        provider: payment.provider,
        provider_payment_id: reference.to_owned(),
        paid: payment.amount,
    }
}

async fn outbox_jobs(db: &Db) -> Vec<String> {
    let txn = cybervpn_db::TransactionTrait::begin(db.conn())
        .await
        .unwrap();
    let jobs = cybervpn_db::Outbox::on(&txn)
        .claim(100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.job)
        .collect();
    txn.rollback().await.unwrap();
    jobs
}

on_both_backends!(a_payment_is_credited_exactly_once);
async fn a_payment_is_credited_exactly_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "neo").await;
    let plan = plan(&db).await;
    let payment = pending(&db, who, &plan, PaymentProvider::CryptoBot).await;
    let now = Utc::now().trunc_subsecs(6);

    let Completion::Credited(subscription) = complete_payment(&db, &notice(&payment, "inv-1"), now)
        .await
        .unwrap()
    else {
        panic!("credited");
    };
    let days = i64::from(plan.duration.days());
    assert_eq!(subscription.expires_at, now + TimeDelta::days(days));
    assert_eq!(subscription.plan_id, Some(plan.id));
    let stored = db.payments().get(payment.id).await.unwrap();
    assert_eq!(stored.status, PaymentStatus::Completed);
    assert_eq!(stored.provider_payment_id.as_deref(), Some("inv-1"));
    assert!(stored.completed_at.is_some());
    assert_eq!(
        outbox_jobs(&db).await,
        [
            "provision_subscription",
            "deliver_notification",
            "push_notification",
            // The basic tier's default invite rule: one code, announced.
            "deliver_notification",
            "push_notification"
        ]
    );

    // The webhook again, later: nothing changes.
    let again = complete_payment(&db, &notice(&payment, "inv-1"), now + TimeDelta::minutes(5))
        .await
        .unwrap();
    assert_eq!(again, Completion::AlreadyCompleted);
    let current = db.subscriptions().current_for(who).await.unwrap().unwrap();
    assert_eq!(current.expires_at, subscription.expires_at);
    assert_eq!(outbox_jobs(&db).await.len(), 5);

    // A second purchase keeps the time left.
    let second = pending(&db, who, &plan, PaymentProvider::CryptoBot).await;
    let later = now + TimeDelta::days(1);
    complete_payment(&db, &notice(&second, "inv-2"), later)
        .await
        .unwrap();
    let current = db.subscriptions().current_for(who).await.unwrap().unwrap();
    assert_eq!(
        current.expires_at,
        subscription.expires_at + TimeDelta::days(days)
    );
}

on_both_backends!(a_purchase_over_a_trial_takes_the_plan_for_good);
async fn a_purchase_over_a_trial_takes_the_plan_for_good(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "niobe").await;
    let plan = plan(&db).await;
    let now = Utc::now().trunc_subsecs(6);
    let trial = Subscription::start(who, None, 3, TrafficLimit::Unlimited, None, now).unwrap();
    db.subscriptions().create(&trial).await.unwrap();
    let payment = pending(&db, who, &plan, PaymentProvider::Stripe).await;
    complete_payment(&db, &notice(&payment, "cs_trial"), now)
        .await
        .unwrap();
    // Stored, not only returned: the subscription is the plan's from now on (its tier, traffic and devices).
    let stored = db.subscriptions().get(trial.id).await.unwrap();
    assert_eq!(stored.plan_id, Some(plan.id));
    assert_eq!(stored.traffic_limit, plan.traffic_limit);
    assert_eq!(stored.device_limit, Some(plan.device_limit));
    assert_eq!(
        stored.expires_at,
        trial.expires_at + TimeDelta::days(i64::from(plan.duration.days()))
    );
}

on_both_backends!(a_wrong_amount_or_gateway_is_set_aside_and_never_credited);
async fn a_wrong_amount_or_gateway_is_set_aside_and_never_credited(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "trinity").await;
    let plan = plan(&db).await;
    let payment = pending(&db, who, &plan, PaymentProvider::Stripe).await;
    let mut short = notice(&payment, "cs_1");
    short.paid = Money::new(payment.amount.amount_minor() - 1, Currency::Usd).unwrap();
    let outcome = complete_payment(&db, &short, Utc::now()).await.unwrap();
    assert!(
        matches!(&outcome, Completion::NeedsReview(r) if r.contains("but the price is")),
        "{outcome:?}"
    );
    let mut rubles = notice(&payment, "cs_1");
    rubles.paid = Money::new(payment.amount.amount_minor(), Currency::Rub).unwrap();
    assert!(matches!(
        complete_payment(&db, &rubles, Utc::now()).await.unwrap(),
        Completion::NeedsReview(_)
    ));
    let mut elsewhere = notice(&payment, "cs_1");
    elsewhere.provider = PaymentProvider::YooKassa;
    assert!(matches!(
        complete_payment(&db, &elsewhere, Utc::now()).await.unwrap(),
        Completion::NeedsReview(r) if r.contains("yookassa")
    ));
    let stored = db.payments().get(payment.id).await.unwrap();
    assert_eq!(stored.status, PaymentStatus::Pending);
    assert!(stored.review_reason.is_some());
    assert!(db.subscriptions().current_for(who).await.unwrap().is_none());
    assert!(outbox_jobs(&db).await.is_empty());

    let unknown = PaidNotice {
        payment_id: PaymentId::new(),
        ..notice(&payment, "cs_2")
    };
    assert_eq!(
        complete_payment(&db, &unknown, Utc::now()).await.unwrap(),
        Completion::Unknown
    );
}

on_both_backends!(unpaid_payments_expire_and_a_late_payment_goes_to_review);
async fn unpaid_payments_expire_and_a_late_payment_goes_to_review(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "morpheus").await;
    let plan = plan(&db).await;
    let payment = pending(&db, who, &plan, PaymentProvider::YooKassa).await;
    assert_eq!(
        expire_unpaid(&db, Utc::now()).await.unwrap(),
        0,
        "not due yet"
    );
    assert_eq!(
        expire_unpaid(&db, Utc::now() + TimeDelta::hours(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.payments().get(payment.id).await.unwrap().status,
        PaymentStatus::Expired
    );
    let late = complete_payment(&db, &notice(&payment, "yk-1"), Utc::now())
        .await
        .unwrap();
    assert!(
        matches!(&late, Completion::NeedsReview(r) if r.contains("expired")),
        "{late:?}"
    );
    assert!(db.subscriptions().current_for(who).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_notices_credit_once() {
    let (_guard, db) = open(Backend::Postgres).await;
    let who = customer(&db, "tank").await;
    let plan = plan(&db).await;
    let payment = pending(&db, who, &plan, PaymentProvider::CryptoBot).await;
    let now = Utc::now().trunc_subsecs(6);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let db = db.clone();
        let notice = notice(&payment, "inv-9");
        tasks.push(tokio::spawn(async move {
            complete_payment(&db, &notice, now).await.unwrap()
        }));
    }
    let mut credited = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Completion::Credited(_)) {
            credited += 1;
        }
    }
    assert_eq!(credited, 1);
    let current = db.subscriptions().current_for(who).await.unwrap().unwrap();
    assert_eq!(
        current.expires_at,
        now + TimeDelta::days(i64::from(plan.duration.days()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_payments_of_one_customer_completing_at_once_extend_one_subscription() {
    let (_guard, db) = open(Backend::Postgres).await;
    let who = customer(&db, "dozer").await;
    let plan = plan(&db).await;
    let mut tasks = Vec::new();
    for reference in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        let payment = pending(&db, who, &plan, PaymentProvider::CryptoBot).await;
        let db = db.clone();
        let notice = notice(&payment, reference);
        tasks.push(tokio::spawn(async move {
            complete_payment(&db, &notice, Utc::now()).await.unwrap()
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Completion::Credited(_)));
    }
    let all = db.subscriptions().of_customer(who).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let paid = u32::from(plan.duration.days()) * 8;
    // The loyalty levels those paid days reach add their bonuses to the same subscription.
    let bonus: u32 = LoyaltyLevel::rewarded_up_to(paid)
        .map(LoyaltyLevel::bonus_days)
        .sum();
    assert_eq!(
        all[0].expires_at - all[0].created_at,
        TimeDelta::days(i64::from(paid + bonus))
    );
}
