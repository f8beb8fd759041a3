//! The loyalty program in the worker: Platinum customers get the premium squad (through the grace period; the
//! loyalty job takes it back when the grace ends), and the grace reminder goes out once per paid coverage end.

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_commerce::{Completion, PaidNotice, complete_payment};
use cybervpn_domain::{
    Currency, CustomerId, Payment, PaymentId, PaymentProvider, PaymentStatus, Subscription,
};
use cybervpn_jobs::catalog::LoyaltyGrace;
use cybervpn_testkit::{Backend, on_both_backends};
use cybervpn_worker::provision;

use crate::rig::Rig;

/// Pays `days` for `customer` at `at` through the completion path; returns the subscription it extended.
async fn pay(rig: &Rig, customer: CustomerId, days: u32, at: DateTime<Utc>) -> Subscription {
    let plan = rig.db.plans().list_active().await.unwrap().remove(0);
    let price = *plan
        .prices()
        .iter()
        .find(|p| p.currency() == Currency::Usd)
        .unwrap();
    let payment = rig
        .db
        .payments()
        .create(Payment {
            id: PaymentId::new(),
            customer_id: customer,
            plan_id: Some(plan.id),
            amount: price,
            status: PaymentStatus::Pending,
            provider: PaymentProvider::Stripe,
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
        .unwrap();
    let notice = PaidNotice {
        payment_id: payment.id,
        provider: payment.provider,
        provider_payment_id: format!("cs_{}", payment.id.as_uuid()),
        paid: payment.amount,
    };
    match complete_payment(&rig.db, &notice, at).await.unwrap() {
        Completion::Credited(subscription) => *subscription,
        other => panic!("not credited: {other:?}"),
    }
}

fn squads(user: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = user["activeInternalSquads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|squad| squad["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

on_both_backends!(platinum_customers_get_the_premium_squad_until_their_grace_ends);
async fn platinum_customers_get_the_premium_squad_until_their_grace_ends(backend: Backend) {
    let rig = Rig::with(backend, |config| {
        config.loyalty.premium_squad = "Premium".to_owned();
    })
    .await;
    let now = Utc::now();
    let loyal = rig.customer("neo").await;
    let subscription = pay(&rig, loyal, 365, now).await;
    let monthly = rig.customer("trinity").await;
    let short = pay(&rig, monthly, 30, now).await;

    provision(&rig.services, subscription.id).await.unwrap();
    provision(&rig.services, short.id).await.unwrap();
    assert_eq!(
        squads(&rig.panel_user(loyal).unwrap()),
        ["Default-Squad", "Premium"]
    );
    assert_eq!(squads(&rig.panel_user(monthly).unwrap()), ["Default-Squad"]);

    // The paid year ended ten days ago: the grace period keeps Platinum and its squad.
    let loyalty = rig.db.loyalty();
    let mut account = loyalty.account(loyal).await.unwrap();
    account.tenure.paid_until = Some(now - TimeDelta::days(10));
    loyalty.save(&account, now).await.unwrap();
    provision(&rig.services, subscription.id).await.unwrap();
    assert_eq!(
        squads(&rig.panel_user(loyal).unwrap()),
        ["Default-Squad", "Premium"]
    );
    // Past the grace period the streak is broken: the loyalty job resets it and provisions the subscription
    // again, so the premium squad goes while the paid days stay.
    account.tenure.paid_until = Some(now - TimeDelta::days(15));
    loyalty.save(&account, now).await.unwrap();
    rig.run_job(&LoyaltyGrace { slot: 1 }, || async {
        rig.panel_user(loyal)
            .is_some_and(|user| squads(&user) == ["Default-Squad"])
    })
    .await;
    assert_eq!(rig.panel_user(loyal).unwrap()["status"], "ACTIVE");
    let account = loyalty.account(loyal).await.unwrap();
    assert_eq!(account.tenure.days, 0);
    assert_eq!(account.streak_started_at, None);
    // The monthly customer's streak is not touched.
    assert_eq!(loyalty.account(monthly).await.unwrap().tenure.days, 30);
}

on_both_backends!(the_grace_reminder_goes_out_once_per_coverage_end);
async fn the_grace_reminder_goes_out_once_per_coverage_end(backend: Backend) {
    let rig = Rig::new(backend).await;
    let now = Utc::now();
    let days = TimeDelta::days;
    // Silver (120 paid days) whose coverage ended 12 days ago: the grace ends in 2 days.
    let ending = rig.customer("morpheus").await;
    pay(&rig, ending, 120, now - days(132)).await;
    // Bronze in the same window (no level to keep), and Silver with 9 grace days left: no reminder.
    let bronze = rig.customer("tank").await;
    pay(&rig, bronze, 30, now - days(42)).await;
    let later = rig.customer("dozer").await;
    pay(&rig, later, 120, now - days(125)).await;

    let reminders = || async {
        rig.db
            .notifications()
            .of_kind("loyalty_grace_ending", 10)
            .await
            .unwrap()
    };
    rig.run_job(&LoyaltyGrace { slot: 1 }, || async {
        !reminders().await.is_empty()
    })
    .await;
    let sent = reminders().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].audience, cybervpn_db::Audience::Customer(ending));
    assert!(sent[0].body.contains("Silver"), "{}", sent[0].body);

    // The next tick, with one more customer due (later in the order): the first is not reminded again.
    let next = rig.customer("switch").await;
    pay(&rig, next, 90, now - days(101)).await;
    rig.run_job(&LoyaltyGrace { slot: 2 }, || async {
        reminders().await.len() >= 2
    })
    .await;
    let sent = reminders().await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent.iter()
            .filter(|n| n.audience == cybervpn_db::Audience::Customer(ending))
            .count(),
        1
    );
}
