//! The loyalty program on the real payment paths, on both databases: paid days grow the level, each level's
//! bonus is granted once, the grace period keeps the streak, refunds take back what their payment earned.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cybervpn_commerce::{
    Completion, RefundSource, Refunded, complete_payment, loyalty_status, refund_payment,
};
use cybervpn_db::Db;
use cybervpn_domain::{CustomerId, LoyaltyLevel, Payment, PaymentId};
use cybervpn_testkit::{Backend, on_both_backends};

use crate::support::{credited, customer, expiry, open, paid_notice};

/// Pays `days` for `customer` at `at` through the completion path; returns the payment.
async fn pay(db: &Db, customer: CustomerId, days: u32, at: DateTime<Utc>) -> Payment {
    let plan = db.plans().list_active().await.unwrap().remove(0);
    credited(db, customer, &plan, days, at).await
}

async fn rewarded(db: &Db, customer: CustomerId) -> Vec<(LoyaltyLevel, PaymentId)> {
    db.loyalty()
        .rewards(customer)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.level, r.payment_id))
        .collect()
}

async fn level_up_notices(db: &Db) -> Vec<String> {
    db.notifications()
        .of_kind("loyalty_level_up", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.body)
        .collect()
}

fn start() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

on_both_backends!(three_monthly_payments_reach_silver_and_its_bonus_once);
async fn three_monthly_payments_reach_silver_and_its_bonus_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "neo").await;
    let now = start();
    pay(&db, who, 30, now).await;
    pay(&db, who, 30, now + days(29)).await;
    let status = loyalty_status(&db, who, now + days(29)).await.unwrap();
    assert_eq!(status.level, LoyaltyLevel::Bronze);
    assert_eq!(status.next, Some((LoyaltyLevel::Silver, 30)));
    assert!(level_up_notices(&db).await.is_empty());

    let third = pay(&db, who, 30, now + days(59)).await;
    let status = loyalty_status(&db, who, now + days(59)).await.unwrap();
    assert_eq!(status.level, LoyaltyLevel::Silver);
    assert_eq!(status.tenure_days, 90);
    assert_eq!(status.next, Some((LoyaltyLevel::Gold, 90)));
    assert_eq!(status.paid_until, Some(now + days(90)));
    assert_eq!(rewarded(&db, who).await, [(LoyaltyLevel::Silver, third.id)]);
    // The bonus extends the same subscription: 90 paid days + 3.
    assert_eq!(expiry(&db, who).await, now + days(93));
    let notices = level_up_notices(&db).await;
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains("Silver") && notices[0].contains("3 bonus days"));

    // The same paid notice again: nothing more.
    assert_eq!(
        complete_payment(&db, &paid_notice(&third), now + days(60))
            .await
            .unwrap(),
        Completion::AlreadyCompleted
    );
    // A fourth month stays Silver and grants nothing.
    pay(&db, who, 30, now + days(89)).await;
    assert_eq!(rewarded(&db, who).await.len(), 1);
    assert_eq!(expiry(&db, who).await, now + days(123));
    assert_eq!(level_up_notices(&db).await.len(), 1);
}

on_both_backends!(an_annual_payment_reaches_platinum_with_every_bonus_once);
async fn an_annual_payment_reaches_platinum_with_every_bonus_once(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "trinity").await;
    let now = start();
    let annual = pay(&db, who, 365, now).await;
    let status = loyalty_status(&db, who, now).await.unwrap();
    assert_eq!(status.level, LoyaltyLevel::Platinum);
    assert_eq!(status.next, None);
    assert_eq!(
        rewarded(&db, who).await,
        [
            (LoyaltyLevel::Silver, annual.id),
            (LoyaltyLevel::Gold, annual.id),
            (LoyaltyLevel::Platinum, annual.id)
        ]
    );
    assert_eq!(expiry(&db, who).await, now + days(365 + 3 + 7 + 14));
    // One notice, naming the highest level and the days of all three bonuses.
    let notices = level_up_notices(&db).await;
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains("Platinum") && notices[0].contains("24 bonus days"));

    // The gateway reports it again, and the next year is paid: no bonus twice.
    assert_eq!(
        complete_payment(&db, &paid_notice(&annual), now)
            .await
            .unwrap(),
        Completion::AlreadyCompleted
    );
    pay(&db, who, 365, now + days(300)).await;
    assert_eq!(rewarded(&db, who).await.len(), 3);
    assert_eq!(expiry(&db, who).await, now + days(730 + 24));
    assert_eq!(level_up_notices(&db).await.len(), 1);
}

on_both_backends!(renewing_inside_the_grace_keeps_the_streak_and_after_it_restarts);
async fn renewing_inside_the_grace_keeps_the_streak_and_after_it_restarts(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "morpheus").await;
    let now = start();
    let first = pay(&db, who, 90, now).await;
    assert_eq!(rewarded(&db, who).await, [(LoyaltyLevel::Silver, first.id)]);

    // Paid coverage ended at day 90; ten days later the level is kept by the grace period.
    let status = loyalty_status(&db, who, now + days(100)).await.unwrap();
    assert_eq!(status.level, LoyaltyLevel::Silver);
    assert!(status.in_grace);
    assert_eq!(status.grace_until, Some(now + days(104)));
    pay(&db, who, 90, now + days(100)).await;
    let status = loyalty_status(&db, who, now + days(100)).await.unwrap();
    assert_eq!(status.tenure_days, 180, "renewed inside the grace period");
    assert_eq!(status.level, LoyaltyLevel::Gold);
    assert_eq!(status.paid_until, Some(now + days(190)));
    assert_eq!(rewarded(&db, who).await.len(), 2);

    // Coverage ends at day 190, grace at 204: at day 210 the streak is broken.
    let status = loyalty_status(&db, who, now + days(210)).await.unwrap();
    assert_eq!(status.level, LoyaltyLevel::Bronze);
    assert_eq!(status.tenure_days, 0);
    assert_eq!(status.grace_until, None);
    pay(&db, who, 90, now + days(210)).await;
    let status = loyalty_status(&db, who, now + days(210)).await.unwrap();
    assert_eq!(status.tenure_days, 90, "a new streak");
    assert_eq!(status.level, LoyaltyLevel::Silver);
    assert_eq!(status.paid_until, Some(now + days(300)));
    // Silver and Gold were granted in the first streak: never again.
    let before = expiry(&db, who).await;
    pay(&db, who, 90, now + days(290)).await;
    assert_eq!(rewarded(&db, who).await.len(), 2);
    assert_eq!(expiry(&db, who).await, before + days(90));
    assert_eq!(level_up_notices(&db).await.len(), 2);
}

on_both_backends!(refunding_the_payment_that_reached_a_level_takes_its_bonus_back);
async fn refunding_the_payment_that_reached_a_level_takes_its_bonus_back(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let who = customer(&db, "tank").await;
    let now = start();
    pay(&db, who, 60, now).await;
    let earner = pay(&db, who, 30, now).await;
    assert_eq!(
        rewarded(&db, who).await,
        [(LoyaltyLevel::Silver, earner.id)]
    );
    assert_eq!(expiry(&db, who).await, now + days(93));

    let refunded = refund_payment(
        &db,
        earner.id,
        "asked by the customer",
        &RefundSource::Gateway,
        now + days(1),
    )
    .await
    .unwrap();
    assert!(matches!(refunded, Refunded::Reversed(Some(_))));
    let status = loyalty_status(&db, who, now + days(1)).await.unwrap();
    assert_eq!(status.level, LoyaltyLevel::Bronze);
    assert_eq!(status.tenure_days, 60);
    assert!(status.rewards.is_empty());
    // The paid month and its bonus days are both gone.
    assert_eq!(expiry(&db, who).await, now + days(60));

    // Refunded twice: nothing more is taken.
    assert_eq!(
        refund_payment(
            &db,
            earner.id,
            "again",
            &RefundSource::Gateway,
            now + days(1)
        )
        .await
        .unwrap(),
        Refunded::AlreadyRefunded
    );
    assert_eq!(expiry(&db, who).await, now + days(60));

    // The level can be earned again, once.
    let again = pay(&db, who, 30, now + days(2)).await;
    assert_eq!(rewarded(&db, who).await, [(LoyaltyLevel::Silver, again.id)]);
    assert_eq!(expiry(&db, who).await, now + days(93));
}
