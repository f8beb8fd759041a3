//! Invites on the money path, on both databases: codes earned per rule and promotion, redeemed once for free
//! days, the inviter's bonus paid once on the friend's first payment, and refunds withdrawing both.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cybervpn_commerce::{
    Completion, RedeemError, RefundSource, Refunded, complete_payment, redeem_invite,
    refund_payment,
};
use cybervpn_db::{Db, NewInvite};
use cybervpn_domain::{
    CustomerId, Invite, InvitePromotion, InviteRefusal, InviteRule, InviteSource, InviteStatus,
    Payment, Plan, PlanTier,
};
use cybervpn_testkit::{Backend, on_both_backends};

use crate::support::{credited, customer, expiry, open, paid_notice};

/// The 30-day plan of `tier`.
async fn plan(db: &Db, tier: PlanTier) -> Plan {
    db.plans()
        .list_active()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.tier == tier && p.duration.days() == 30)
        .unwrap()
}

/// Pays for `plan` through CryptoBot at `now`; the credited payment.
async fn buy(db: &Db, customer: CustomerId, plan: &Plan, now: DateTime<Utc>) -> Payment {
    credited(db, customer, plan, plan.duration.days().into(), now).await
}

async fn set_rule(db: &Db, tier: PlanTier, codes: u32, free_days: u32, bonus_days: u32) {
    let rule = InviteRule {
        tier,
        codes_per_purchase: codes,
        free_days,
        bonus_days,
        valid_days: 30,
    };
    db.invites().save_rule(&rule, Utc::now()).await.unwrap();
}

async fn codes(db: &Db, owner: CustomerId) -> Vec<Invite> {
    db.invites().owned_by(owner).await.unwrap()
}

async fn refused(db: &Db, customer: CustomerId, code: &str, now: DateTime<Utc>) -> InviteRefusal {
    match redeem_invite(db, customer, code, now).await {
        Err(RedeemError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Notifications recorded for `customer`, as `kind` names.
async fn notices(db: &Db, customer: CustomerId) -> Vec<String> {
    use cybervpn_db::EntityTrait;
    cybervpn_db::entity::notification::Entity::find()
        .all(db.conn())
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.customer_id == Some(customer.as_uuid()))
        .map(|n| n.kind)
        .collect()
}

on_both_backends!(purchases_earn_codes_by_their_tier_s_rule_and_promotions);
async fn purchases_earn_codes_by_their_tier_s_rule_and_promotions(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let owner = customer(&db, "morpheus").await;
    let pro = plan(&db, PlanTier::Pro).await;
    let basic = plan(&db, PlanTier::Basic).await;
    set_rule(&db, PlanTier::Pro, 2, 14, 7).await;
    set_rule(&db, PlanTier::Basic, 0, 7, 7).await;
    let now = Utc::now().trunc_subsecs(6);

    buy(&db, owner, &pro, now).await;
    let issued = codes(&db, owner).await;
    assert_eq!(issued.len(), 2);
    assert_ne!(issued[0].code, issued[1].code);
    for invite in &issued {
        assert_eq!(invite.status_at(now), InviteStatus::Available);
        assert_eq!(invite.source, InviteSource::Purchase);
        assert_eq!((invite.free_days, invite.bonus_days), (14, 7));
        assert_eq!(invite.expires_at, now + TimeDelta::days(30));
    }
    assert!(
        notices(&db, owner)
            .await
            .contains(&"invites_issued".to_owned())
    );

    // A tier whose rule issues none.
    buy(&db, owner, &basic, now).await;
    assert_eq!(codes(&db, owner).await.len(), 2);

    // ×3 for Pro and ×2 for every tier are running: the largest applies, once.
    for (tier, multiplier) in [
        (Some(PlanTier::Pro), 3),
        (None, 2),
        (Some(PlanTier::Basic), 10),
    ] {
        let promotion = InvitePromotion {
            id: uuid::Uuid::now_v7(),
            name: format!("x{multiplier}"),
            tier,
            multiplier,
            starts_at: now - TimeDelta::hours(1),
            ends_at: now + TimeDelta::days(1),
        };
        db.invites()
            .create_promotion(&promotion, now)
            .await
            .unwrap();
    }
    buy(&db, owner, &pro, now).await;
    assert_eq!(codes(&db, owner).await.len(), 2 + 6);
    // After the window the rule alone applies again.
    buy(&db, owner, &pro, now + TimeDelta::days(2)).await;
    assert_eq!(codes(&db, owner).await.len(), 2 + 6 + 2);
}

on_both_backends!(a_code_gives_free_days_once_and_its_owner_a_bonus_on_the_first_payment);
async fn a_code_gives_free_days_once_and_its_owner_a_bonus_on_the_first_payment(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let owner = customer(&db, "trinity").await;
    let friend = customer(&db, "switch").await;
    let other = customer(&db, "apoc").await;
    let pro = plan(&db, PlanTier::Pro).await;
    set_rule(&db, PlanTier::Pro, 3, 14, 7).await;
    let now = Utc::now().trunc_subsecs(6);
    buy(&db, owner, &pro, now).await;
    let issued = codes(&db, owner).await;
    let owner_until = expiry(&db, owner).await;

    // Forged, own code, then a real one typed loosely.
    assert_eq!(
        refused(&db, friend, "ZZZZZZZZZZZZ", now).await,
        InviteRefusal::Unknown
    );
    assert_eq!(
        refused(&db, friend, "nope", now).await,
        InviteRefusal::Unknown
    );
    assert_eq!(
        refused(&db, owner, &issued[0].code, now).await,
        InviteRefusal::OwnCode
    );
    let typed = format!("inv_{}", issued[0].code.to_lowercase());
    let redeemed = redeem_invite(&db, friend, &typed, now).await.unwrap();
    assert_eq!(redeemed.subscription.expires_at, now + TimeDelta::days(14));
    assert_eq!(redeemed.subscription.plan_id, None);
    assert_eq!(expiry(&db, friend).await, now + TimeDelta::days(14));
    assert!(
        notices(&db, friend)
            .await
            .contains(&"invite_redeemed".to_owned())
    );
    let used = db.invites().get(issued[0].id).await.unwrap();
    assert_eq!(used.status_at(now), InviteStatus::Used);
    assert_eq!(used.redeemed_by, Some(friend));

    // The same code again, by anyone; a second code for the same friend: no more days.
    assert_eq!(
        refused(&db, other, &issued[0].code, now).await,
        InviteRefusal::Used
    );
    assert_eq!(
        refused(&db, friend, &issued[0].code, now).await,
        InviteRefusal::Used
    );
    assert_eq!(
        refused(&db, friend, &issued[1].code, now).await,
        InviteRefusal::AlreadyGranted
    );
    assert_eq!(expiry(&db, friend).await, now + TimeDelta::days(14));

    // An expired code.
    let stale = db
        .invites()
        .issue(
            &[NewInvite {
                code: cybervpn_domain::invite::new_invite_code(),
                owner_id: Some(owner),
                source: InviteSource::Staff,
                payment_id: None,
                issued_by: None,
                note: None,
                free_days: 7,
                bonus_days: 0,
                expires_at: now - TimeDelta::seconds(1),
            }],
            now - TimeDelta::days(1),
        )
        .await
        .unwrap();
    assert_eq!(
        refused(&db, other, &stale[0].code, now).await,
        InviteRefusal::Expired
    );
    assert!(
        db.subscriptions()
            .current_for(other)
            .await
            .unwrap()
            .is_none()
    );

    // The friend's first payment pays the owner 7 days, once; a later payment or a duplicate notice nothing.
    let later = now + TimeDelta::minutes(1);
    let first = buy(&db, friend, &pro, later).await;
    assert_eq!(expiry(&db, owner).await, owner_until + TimeDelta::days(7));
    assert!(
        notices(&db, owner)
            .await
            .contains(&"invite_bonus".to_owned())
    );
    let again = complete_payment(&db, &paid_notice(&first), later)
        .await
        .unwrap();
    assert_eq!(again, Completion::AlreadyCompleted);
    buy(&db, friend, &pro, later).await;
    assert_eq!(expiry(&db, owner).await, owner_until + TimeDelta::days(7));
    assert!(
        db.invites()
            .get(issued[0].id)
            .await
            .unwrap()
            .bonus_paid_at
            .is_some()
    );
}

on_both_backends!(refunds_withdraw_unused_codes_and_the_bonus_they_paid);
async fn refunds_withdraw_unused_codes_and_the_bonus_they_paid(backend: Backend) {
    let (_guard, db) = open(backend).await;
    let owner = customer(&db, "niobe").await;
    let friend = customer(&db, "ghost").await;
    let pro = plan(&db, PlanTier::Pro).await;
    set_rule(&db, PlanTier::Pro, 2, 10, 5).await;
    let now = Utc::now().trunc_subsecs(6);
    let purchase = buy(&db, owner, &pro, now).await;
    let issued = codes(&db, owner).await;
    redeem_invite(&db, friend, &issued[0].code, now)
        .await
        .unwrap();
    let owner_until = expiry(&db, owner).await;
    let friend_payment = buy(&db, friend, &pro, now).await;
    assert_eq!(expiry(&db, owner).await, owner_until + TimeDelta::days(5));

    // The friend's payment is refunded: the owner's bonus goes back too, once.
    for _ in 0..2 {
        refund_payment(
            &db,
            friend_payment.id,
            "chargeback",
            &RefundSource::Gateway,
            now,
        )
        .await
        .unwrap();
    }
    assert_eq!(expiry(&db, owner).await, owner_until);
    assert!(
        db.invites()
            .get(issued[0].id)
            .await
            .unwrap()
            .bonus_paid_at
            .is_none()
    );
    // A later real payment earns it again.
    buy(&db, friend, &pro, now).await;
    assert_eq!(expiry(&db, owner).await, owner_until + TimeDelta::days(5));

    // The owner's purchase is refunded: the unused code is withdrawn, the redeemed one stays used.
    let refunded = refund_payment(&db, purchase.id, "requested", &RefundSource::Gateway, now)
        .await
        .unwrap();
    assert!(matches!(refunded, Refunded::Reversed(_)));
    assert_eq!(
        db.invites().get(issued[1].id).await.unwrap().status_at(now),
        InviteStatus::Expired
    );
    assert_eq!(
        db.invites().get(issued[0].id).await.unwrap().status_at(now),
        InviteStatus::Used
    );
    let other = customer(&db, "cypher").await;
    assert_eq!(
        refused(&db, other, &issued[1].code, now).await,
        InviteRefusal::Expired
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_code_grant_once() {
    let (_guard, db) = open(Backend::Postgres).await;
    let owner = customer(&db, "oracle").await;
    let pro = plan(&db, PlanTier::Pro).await;
    set_rule(&db, PlanTier::Pro, 1, 7, 7).await;
    let now = Utc::now().trunc_subsecs(6);
    buy(&db, owner, &pro, now).await;
    let code = codes(&db, owner).await.remove(0).code;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let friend = customer(&db, &format!("seraph{i}")).await;
        let db = db.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            redeem_invite(&db, friend, &code, now).await.is_ok()
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += usize::from(task.await.unwrap());
    }
    assert_eq!(granted, 1);
}
