//! The loyalty program's periodic side: reminding customers whose level is kept only by the grace period
//! that it ends soon, once per paid coverage end.

use chrono::{TimeDelta, Utc};
use cybervpn_db::{DbError, Loyalty, TransactionTrait};
use cybervpn_domain::{DomainError, NoticeKind};
use cybervpn_jobs::{JobError, JobResultExt};

use crate::Services;

/// How long before the grace period ends the reminder goes out.
const REMIND_AHEAD: TimeDelta = TimeDelta::days(3);

/// Sends each customer whose loyalty grace period ends within [`REMIND_AHEAD`] one reminder per coverage end.
pub(crate) async fn grace_reminders(services: &Services) -> Result<usize, JobError> {
    let now = Utc::now();
    let due = services
        .db
        .loyalty()
        .grace_ending(now, REMIND_AHEAD)
        .await
        .or_retry("list loyalty grace endings")?;
    let mut sent = 0;
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
            cybervpn_jobs::outbox::notify_customer_in(
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
            sent += 1;
        }
        txn.commit()
            .await
            .map_err(|err| JobError::retry("commit grace reminder", err))?;
    }
    Ok(sent)
}
