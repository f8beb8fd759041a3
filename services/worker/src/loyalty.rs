//! The loyalty program's periodic side: reminding customers whose level is kept only by the grace period that
//! it ends soon (once per paid coverage end), and, once it has ended, breaking their streak and provisioning
//! their subscription again (Platinum's premium squad goes).

use chrono::{TimeDelta, Utc};
use cybervpn_db::{DbError, Loyalty, Subscriptions, TransactionTrait};
use cybervpn_domain::{DomainError, LoyaltyLevel, NoticeKind, SubscriptionStatus};
use cybervpn_jobs::{JobError, JobResultExt, catalog::ProvisionSubscription, outbox};

use crate::Services;

/// How long before the grace period ends the reminder goes out.
const REMIND_AHEAD: TimeDelta = TimeDelta::days(3);

/// Lapsed streaks reset per run (the rest wait for the next tick).
const RESET_BATCH: u64 = 500;

/// Sends the grace reminders due, then resets the streaks whose grace ended.
pub(crate) async fn grace(services: &Services) -> Result<(), JobError> {
    remind(services).await?;
    reset_lapsed(services).await
}

/// Sends each customer whose loyalty grace period ends within [`REMIND_AHEAD`] one reminder per coverage end.
async fn remind(services: &Services) -> Result<(), JobError> {
    let now = Utc::now();
    let due = services
        .db
        .loyalty()
        .grace_ending(now, REMIND_AHEAD)
        .await
        .or_retry("list loyalty grace endings")?;
    for account in due {
        let (Some(paid_until), Some(grace_until)) =
            (account.tenure.paid_until, account.tenure.grace_until())
        else {
            continue;
        };
        let customer = account.customer_id;
        let language = match services.db.customers().get(customer).await {
            Ok(customer) => customer.language,
            // A deleted customer gets no reminder.
            Err(DbError::Domain(DomainError::NotFound { .. })) => continue,
            Err(err) => return Err(JobError::retry("load customer", err)),
        };
        let level = account.tenure.level_at(now);
        let txn = services
            .db
            .conn()
            .begin()
            .await
            .map_err(|err| JobError::retry("begin", err))?;
        // The mark and the notice commit together; a renewal in between changes the coverage end and skips it.
        if Loyalty::on(&txn)
            .mark_grace_notified(customer, paid_until, now)
            .await
            .or_retry("mark grace reminder")?
        {
            outbox::notify_customer_in(
                &txn,
                &format!(
                    "{}:{}:{}",
                    NoticeKind::LoyaltyGraceEnding.as_str(),
                    customer.as_uuid(),
                    paid_until.timestamp()
                ),
                customer,
                NoticeKind::LoyaltyGraceEnding,
                &[
                    ("level", level.title(language).to_owned()),
                    (
                        "until",
                        grace_until.format("%Y-%m-%d %H:%M UTC").to_string(),
                    ),
                ],
                now,
            )
            .await
            .or_retry("record grace reminder")?;
        }
        txn.commit()
            .await
            .map_err(|err| JobError::retry("commit grace reminder", err))?;
    }
    Ok(())
}

/// Breaks the streaks whose grace period ended; a Platinum customer's subscription still running is provisioned
/// again, so the panel drops the premium squad.
async fn reset_lapsed(services: &Services) -> Result<(), JobError> {
    let now = Utc::now();
    let lapsed = services
        .db
        .loyalty()
        .lapsed(now, RESET_BATCH)
        .await
        .or_retry("list lapsed loyalty streaks")?;
    for account in lapsed {
        let Some(paid_until) = account.tenure.paid_until else {
            continue;
        };
        let txn = services
            .db
            .conn()
            .begin()
            .await
            .map_err(|err| JobError::retry("begin", err))?;
        let reset = Loyalty::on(&txn)
            .reset_streak(account.customer_id, paid_until, now)
            .await
            .or_retry("reset loyalty streak")?;
        if reset && LoyaltyLevel::for_tenure(account.tenure.days).premium_squad() {
            let current = Subscriptions::on(&txn)
                .current_for(account.customer_id)
                .await
                .or_retry("load current subscription")?;
            if let Some(subscription) = current.filter(|s| s.status != SubscriptionStatus::Disabled)
            {
                outbox::enqueue(
                    &txn,
                    &ProvisionSubscription {
                        subscription_id: subscription.id.as_uuid(),
                    },
                    now,
                )
                .await
                .or_retry("enqueue provisioning")?;
            }
        }
        txn.commit()
            .await
            .map_err(|err| JobError::retry("commit loyalty reset", err))?;
    }
    Ok(())
}
