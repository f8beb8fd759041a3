//! Free days (bonuses, invites): added to the customer's current subscription, or a new plan-less one, with the
//! panel update written to the outbox in the caller's transaction.

use chrono::{DateTime, Utc};
use cybervpn_db::{DatabaseTransaction, DbError, Subscriptions};
use cybervpn_domain::{CustomerId, Subscription, SubscriptionStatus, TrafficLimit};
use cybervpn_jobs::{catalog::ProvisionSubscription, outbox};

/// Adds `days` to the customer's current subscription, or starts one; the panel follows via the outbox.
pub async fn grant_days(
    txn: &DatabaseTransaction,
    customer: CustomerId,
    days: u32,
    now: DateTime<Utc>,
) -> Result<Subscription, DbError> {
    let repo = Subscriptions::on(txn);
    let current = match repo.current_for(customer).await? {
        Some(current) => Some(repo.lock(current.id).await?),
        None => None,
    };
    let subscription = match current {
        // A disabled subscription cannot be extended: the days start a fresh one instead.
        Some(mut subscription) if subscription.status != SubscriptionStatus::Disabled => {
            subscription.extend_by(days, now)?;
            repo.save(&subscription).await?;
            subscription
        }
        _ => {
            let subscription =
                Subscription::start(customer, None, days, TrafficLimit::Unlimited, None, now)?;
            repo.create(&subscription).await?;
            subscription
        }
    };
    provision(txn, &subscription, now).await?;
    Ok(subscription)
}

/// Takes back up to `days` from the customer's current subscription (never time already used); `None` if
/// there is nothing to shorten.
pub async fn take_back_days(
    txn: &DatabaseTransaction,
    customer: CustomerId,
    days: u32,
    now: DateTime<Utc>,
) -> Result<Option<Subscription>, DbError> {
    let repo = Subscriptions::on(txn);
    let Some(current) = repo.current_for(customer).await? else {
        return Ok(None);
    };
    let mut subscription = repo.lock(current.id).await?;
    if subscription.status == SubscriptionStatus::Disabled {
        return Ok(None);
    }
    subscription.shorten_by(days, now);
    repo.save(&subscription).await?;
    Ok(Some(subscription))
}

/// Writes, in `txn`, the job that makes the panel match `subscription`.
pub async fn provision(
    txn: &DatabaseTransaction,
    subscription: &Subscription,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    outbox::enqueue(
        txn,
        &ProvisionSubscription {
            subscription_id: subscription.id.as_uuid(),
        },
        now,
    )
    .await?;
    Ok(())
}

/// A subscription's end as customers read it in notices.
pub fn until(subscription: &Subscription) -> String {
    subscription
        .expires_at
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}
