//! Jobs written to the transactional outbox: recorded in the caller's transaction, relayed after commit.

use chrono::{DateTime, Utc};
use cybervpn_db::{
    Audience, Customers, DatabaseTransaction, DbError, NoticeTemplates, Notifications, Outbox,
};
use cybervpn_domain::{CustomerId, NoticeKind, notice};
use uuid::Uuid;

use crate::{
    Job,
    catalog::{DeliverNotification, PushNotification},
};

/// Records `job` in the outbox of `txn`; it reaches the queue once the transaction commits, carrying the trace
/// of the current span.
pub async fn enqueue<J: Job>(
    txn: &DatabaseTransaction,
    job: &J,
    now: DateTime<Utc>,
) -> Result<Uuid, DbError> {
    let trace_context = cybervpn_telemetry::current_traceparent();
    Outbox::on(txn)
        .push(J::NAME, job, trace_context.as_deref(), now)
        .await
}

/// Records a notification unless `dedup_key` was used before, with its delivery job, in `txn`; true if new.
pub async fn notify_in(
    txn: &DatabaseTransaction,
    dedup_key: &str,
    audience: Audience,
    kind: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    Ok(record(txn, dedup_key, audience, kind, body, now)
        .await?
        .is_some())
}

/// Records a notification and its delivery job unless `dedup_key` was used before; its id if new.
async fn record(
    txn: &DatabaseTransaction,
    dedup_key: &str,
    audience: Audience,
    kind: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, DbError> {
    let Some(id) = Notifications::on(txn)
        .record_once(dedup_key, audience, kind, body, now)
        .await?
    else {
        return Ok(None);
    };
    enqueue(
        txn,
        &DeliverNotification {
            notification_id: id,
        },
        now,
    )
    .await?;
    Ok(Some(id))
}

/// Records the customer notice `kind` in the customer's language (staff's wording, else the built-in text),
/// filled in with `values`, unless `dedup_key` was used before, with its Telegram delivery and its push to the
/// customer's devices; true if new.
pub async fn notify_customer_in(
    txn: &DatabaseTransaction,
    dedup_key: &str,
    customer: CustomerId,
    kind: NoticeKind,
    values: &[(&str, String)],
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    let language = Customers::on(txn).get(customer).await?.language;
    let template = NoticeTemplates::on(txn).text(kind, language).await?;
    let Some(id) = record(
        txn,
        dedup_key,
        Audience::Customer(customer),
        kind.as_str(),
        &notice::render(&template, values),
        now,
    )
    .await?
    else {
        return Ok(false);
    };
    enqueue(
        txn,
        &PushNotification {
            notification_id: id,
        },
        now,
    )
    .await?;
    Ok(true)
}
