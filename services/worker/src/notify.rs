//! Notifications: recorded once, with their delivery job, in one transaction; the bot delivers them.

use chrono::Utc;
use cybervpn_db::{Audience, Db, DbError, TransactionTrait};

/// Records a notification unless `dedup_key` was used before, and schedules its delivery; true if new.
pub async fn notify(
    db: &Db,
    dedup_key: &str,
    audience: Audience,
    kind: &str,
    body: &str,
) -> Result<bool, DbError> {
    let txn = db.conn().begin().await?;
    let new =
        cybervpn_jobs::outbox::notify_in(&txn, dedup_key, audience, kind, body, Utc::now()).await?;
    txn.commit().await?;
    Ok(new)
}
