//! Business operations that move money and days, each in one database transaction.
//!
//! [`complete_payment`] is the only way a payment is credited, whatever the gateway: it credits a pending
//! payment exactly once, checks the amount against the price frozen on it, adds the days, and writes the
//! panel provisioning and the customer notification to the outbox in the same transaction. [`checkout`] opens
//! payments at a frozen price (with promo codes); [`refund`] takes the days of a refunded payment back;
//! [`loyalty`] counts credited and refunded payments in the loyalty program inside those same transactions;
//! [`store`] records and credits app-store purchases reported by RevenueCat; [`invite`] issues, redeems and
//! rewards invite codes on that same path; [`grant`] adds free days.

use chrono::{DateTime, Utc};
use cybervpn_db::{
    Customers, Db, DbError, Payments, Plans, Subscriptions, TransactionTrait, Trials,
};
use cybervpn_domain::{
    DomainError, Money, NoticeKind, Payment, PaymentId, PaymentProvider, PaymentStatus, Plan,
    Subscription, SubscriptionStatus, TrafficBytes,
};
use cybervpn_jobs::outbox;

pub mod checkout;
pub mod grant;
pub mod invite;
pub mod loyalty;
pub mod refund;
pub mod stars;
pub mod store;

pub use checkout::{Order, Quote, expire_unpaid, fail_payment, open_payment};
pub use invite::{RedeemError, Redeemed, redeem_invite};
pub use loyalty::{LoyaltyStatus, loyalty_status};
pub use refund::{RefundSource, Refunded, refund_payment};
pub use store::{StorePurchase, credit_store_purchase};

/// What a gateway reports: this payment was paid, this much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidNotice {
    /// Our payment id (the gateway echoes it from the invoice payload or metadata).
    pub payment_id: PaymentId,
    /// The gateway that reports it.
    pub provider: PaymentProvider,
    /// The gateway's own id of the payment.
    pub provider_payment_id: String,
    /// The amount the gateway says was paid.
    pub paid: Money,
}

/// How a paid notice ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Credited now: the subscription after the days were added.
    Credited(Box<Subscription>),
    /// Credited before (a duplicate or late notice): nothing changed.
    AlreadyCompleted,
    /// Not credited; set aside for staff with the reason (amount mismatch, paid after closing, wrong gateway).
    NeedsReview(String),
    /// No such payment: acknowledge it, credit nothing.
    Unknown,
}

/// Credits a paid payment exactly once (see the crate docs).
pub async fn complete_payment(
    db: &Db,
    notice: &PaidNotice,
    now: DateTime<Utc>,
) -> Result<Completion, DbError> {
    let txn = db.conn().begin().await?;
    let payments = Payments::on(&txn);
    let Some(payment) = payments.lock(notice.payment_id).await? else {
        return Ok(Completion::Unknown);
    };
    if let Some(reason) = review_reason(&payment, notice) {
        payments.flag(payment.id, &reason, now).await?;
        txn.commit().await?;
        tracing::warn!(payment = %payment.id.as_uuid(), reason = %reason, "payment set aside for review");
        return Ok(Completion::NeedsReview(reason));
    }
    if payment.status == PaymentStatus::Completed {
        return Ok(Completion::AlreadyCompleted);
    }
    // One customer's payments are credited one after another: two payments completing at once must extend
    // one subscription, not each start their own.
    match Customers::on(&txn).lock(payment.customer_id).await {
        Ok(_) => {}
        Err(DbError::Domain(DomainError::NotFound { .. })) => {
            let reason = "paid by a customer whose account was deleted".to_owned();
            payments.flag(payment.id, &reason, now).await?;
            txn.commit().await?;
            return Ok(Completion::NeedsReview(reason));
        }
        Err(err) => return Err(err),
    }
    if !payments
        .complete(payment.id, Some(&notice.provider_payment_id), now)
        .await?
    {
        // Someone else completed it between our read and write (SQLite has no row lock).
        return Ok(Completion::AlreadyCompleted);
    }
    let plan = match payment.plan_id {
        Some(id) => Some(Plans::on(&txn).get(id).await?),
        None => None,
    };
    let mut subscription = add_days(&txn, &payment, plan.as_ref(), now).await?;
    // The customer's first payment after their free trial converts it (for the conversion report).
    Trials::on(&txn)
        .mark_converted(payment.customer_id, now)
        .await?;
    loyalty::credit(&txn, &payment, &mut subscription, now).await?;
    announce(&txn, &payment, &subscription, PaymentEvent::Completed, now).await?;
    invite::on_payment_credited(&txn, &payment, plan.as_ref(), now).await?;
    txn.commit().await?;
    tracing::info!(payment = %payment.id.as_uuid(), days = payment.days, "payment credited");
    Ok(Completion::Credited(Box::new(subscription)))
}

/// What happened to a payment, for the customer's notice.
#[derive(Clone, Copy)]
enum PaymentEvent {
    Completed,
    Refunded,
}

/// Writes, in `txn`, the panel update of `subscription` and the customer's notice of the payment `event`.
async fn announce(
    txn: &cybervpn_db::DatabaseTransaction,
    payment: &Payment,
    subscription: &Subscription,
    event: PaymentEvent,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    grant::provision(txn, subscription, now).await?;
    let kind = match event {
        PaymentEvent::Completed => NoticeKind::PaymentCompleted,
        PaymentEvent::Refunded => NoticeKind::PaymentRefunded,
    };
    outbox::notify_customer_in(
        txn,
        &format!("{}:{}", kind.as_str(), payment.id.as_uuid()),
        payment.customer_id,
        kind,
        &[
            ("amount", payment.amount.to_major_string()),
            ("currency", payment.amount.currency().as_str().to_owned()),
            ("until", grant::until(subscription)),
        ],
        now,
    )
    .await?;
    Ok(())
}

/// Why this notice must not be credited automatically, if it must not.
fn review_reason(payment: &Payment, notice: &PaidNotice) -> Option<String> {
    if payment.provider != notice.provider {
        return Some(format!(
            "paid through {} but created for {}",
            notice.provider.as_str(),
            payment.provider.as_str()
        ));
    }
    if notice.paid != payment.amount {
        return Some(format!(
            "paid {} {} but the price is {} {}",
            notice.paid.to_major_string(),
            notice.paid.currency().as_str(),
            payment.amount.to_major_string(),
            payment.amount.currency().as_str()
        ));
    }
    match payment.status {
        PaymentStatus::Pending | PaymentStatus::Completed => None,
        closed => Some(format!("paid after the payment was {}", closed.as_str())),
    }
}

/// Adds the payment's days to the customer's current subscription (or starts one), with the plan's terms.
async fn add_days(
    txn: &cybervpn_db::DatabaseTransaction,
    payment: &Payment,
    plan: Option<&Plan>,
    now: DateTime<Utc>,
) -> Result<Subscription, DbError> {
    let subscriptions = Subscriptions::on(txn);
    let current = subscriptions
        .current_for(payment.customer_id)
        .await?
        .filter(|s| s.status != SubscriptionStatus::Disabled);
    match current {
        Some(current) => {
            let mut subscription = subscriptions.lock(current.id).await?;
            if let Some(plan) = plan {
                subscription.plan_id = Some(plan.id);
                subscription.traffic_limit = plan.traffic_limit;
                subscription.device_limit = Some(plan.device_limit);
            }
            if subscription.status == SubscriptionStatus::Limited {
                // A purchase renews the traffic allowance.
                subscription.status = SubscriptionStatus::Active;
                subscription.traffic_used = TrafficBytes::ZERO;
            }
            subscription.extend_by(payment.days, now)?;
            subscriptions.save(&subscription).await?;
            Ok(subscription)
        }
        None => {
            let subscription = Subscription::start(
                payment.customer_id,
                plan.map(|p| p.id),
                payment.days,
                plan.map_or(cybervpn_domain::TrafficLimit::Unlimited, |p| {
                    p.traffic_limit
                }),
                plan.map(|p| p.device_limit),
                now,
            )?;
            subscriptions.create(&subscription).await?;
            Ok(subscription)
        }
    }
}
