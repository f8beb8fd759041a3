//! The loyalty program's bookkeeping on the payment paths: a credited payment grows the paid streak and
//! grants each newly reached level's bonus once (extending the same subscription, with one level-up notice);
//! a refund takes its paid days and the bonuses it earned back.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use cybervpn_db::{
    Customers, DatabaseTransaction, Db, DbError, Loyalty, LoyaltyReward, Subscriptions,
};
use cybervpn_domain::{CustomerId, LoyaltyLevel, NoticeKind, Payment, Subscription};
use cybervpn_jobs::outbox;

/// A customer's loyalty standing, as shown to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoyaltyStatus {
    /// The level now.
    pub level: LoyaltyLevel,
    /// Paid days in the current streak.
    pub tenure_days: u32,
    /// The next level and the paid days still needed for it.
    pub next: Option<(LoyaltyLevel, u32)>,
    /// When the paid coverage ends (ended).
    pub paid_until: Option<DateTime<Utc>>,
    /// Until when the level is kept without a renewal; `None` once the streak is broken or before any payment.
    pub grace_until: Option<DateTime<Utc>>,
    /// Whether the paid coverage has ended and the level is kept only by the grace period.
    pub in_grace: bool,
    /// The bonuses granted, lowest level first.
    pub rewards: Vec<LoyaltyReward>,
}

/// The customer's loyalty standing at `now`.
pub async fn loyalty_status(
    db: &Db,
    customer: CustomerId,
    now: DateTime<Utc>,
) -> Result<LoyaltyStatus, DbError> {
    let account = db.loyalty().account(customer).await?;
    let tenure = account.tenure;
    Ok(LoyaltyStatus {
        level: tenure.level_at(now),
        tenure_days: tenure.days_at(now),
        next: tenure.progress_at(now),
        paid_until: tenure.paid_until,
        grace_until: tenure.grace_until().filter(|_| !tenure.lapsed_at(now)),
        in_grace: tenure.in_grace_at(now),
        rewards: db.loyalty().rewards(customer).await?,
    })
}

/// Counts a credited `payment` in its customer's paid streak (restarted if the grace period passed) and grants,
/// on `subscription`, the bonus of every level now reached whose bonus was never granted, with one notice.
/// Runs in the completion's transaction, under the customer's lock.
pub(crate) async fn credit(
    txn: &DatabaseTransaction,
    payment: &Payment,
    subscription: &mut Subscription,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let customer = payment.customer_id;
    let loyalty = Loyalty::on(txn);
    let mut account = loyalty.account(customer).await?;
    if account.tenure.days_at(now) == 0 {
        account.streak_started_at = Some(now);
    }
    account.tenure.credit(payment.days, now);
    loyalty.save(&account, now).await?;

    let granted: HashSet<LoyaltyLevel> = loyalty
        .rewards(customer)
        .await?
        .into_iter()
        .map(|reward| reward.level)
        .collect();
    let mut reached = Vec::new();
    for level in LoyaltyLevel::rewarded_up_to(account.tenure.days) {
        if granted.contains(&level) {
            continue;
        }
        subscription.extend_by(level.bonus_days(), now)?;
        loyalty
            .record_reward(
                customer,
                &LoyaltyReward {
                    level,
                    payment_id: payment.id,
                    days: level.bonus_days(),
                    granted_at: now,
                },
            )
            .await?;
        reached.push(level);
    }
    let Some(top) = reached.last().copied() else {
        return Ok(());
    };
    Subscriptions::on(txn).save(subscription).await?;
    let bonus: u32 = reached.iter().map(|level| level.bonus_days()).sum();
    let language = Customers::on(txn).get(customer).await?.language;
    // One notice per payment, naming the highest level it reached (an annual plan reaches three at once).
    outbox::notify_customer_in(
        txn,
        &format!(
            "{}:{}:{}:{}",
            NoticeKind::LoyaltyLevelUp.as_str(),
            customer.as_uuid(),
            top.as_str(),
            payment.id.as_uuid()
        ),
        customer,
        NoticeKind::LoyaltyLevelUp,
        &[
            ("level", top.title(language).to_owned()),
            ("bonus", bonus.to_string()),
            ("until", crate::grant::until(subscription)),
        ],
        now,
    )
    .await?;
    tracing::info!(customer = %customer.as_uuid(), level = top.as_str(), bonus, "loyalty level reached");
    Ok(())
}

/// Takes a refunded `payment` out of its customer's paid streak (if it counted in the current one) and revokes
/// the bonuses it earned, taking their days back from `subscription`, so those levels can be earned again.
/// Runs in the refund's transaction, under the customer's lock.
pub(crate) async fn refund(
    txn: &DatabaseTransaction,
    payment: &Payment,
    subscription: Option<&mut Subscription>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let loyalty = Loyalty::on(txn);
    let mut account = loyalty.account(payment.customer_id).await?;
    let in_streak = account
        .streak_started_at
        .zip(payment.completed_at)
        .is_some_and(|(started, paid)| paid >= started);
    if in_streak {
        account.tenure.debit(payment.days, now);
        loyalty.save(&account, now).await?;
    }
    let bonus: u32 = loyalty
        .revoke_rewards_of(payment.id)
        .await?
        .iter()
        .map(|reward| reward.days)
        .sum();
    if bonus > 0
        && let Some(subscription) = subscription
    {
        subscription.shorten_by(bonus, now);
        Subscriptions::on(txn).save(subscription).await?;
    }
    Ok(())
}
