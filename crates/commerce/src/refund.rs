//! Refunds: the money went back, so the days it bought go too — once, in one transaction with the audit
//! entry, the panel update and the customer's notice.

use chrono::{DateTime, Utc};
use cybervpn_db::{Audit, AuditEntry, Customers, Db, DbError, Payments, TransactionTrait};
use cybervpn_domain::{DomainError, PaymentId, PaymentStatus, StaffId, Subscription};

use crate::grant;

/// Who records a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundSource {
    /// A staff member, audited with the request that did it.
    Staff {
        /// Who.
        staff_id: StaffId,
        /// The request, for the audit log.
        request_id: Option<String>,
    },
    /// The gateway reported it (a signed webhook).
    Gateway,
}

/// How a refund ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refunded {
    /// Recorded now; the subscription after its days were taken back, if there was one.
    Reversed(Option<Box<Subscription>>),
    /// Recorded before: nothing changed.
    AlreadyRefunded,
}

/// Records a completed payment as refunded and takes back the days it bought (never time already used:
/// the subscription ends no earlier than now). Only completed payments can be refunded.
pub async fn refund_payment(
    db: &Db,
    payment_id: PaymentId,
    reason: &str,
    source: &RefundSource,
    now: DateTime<Utc>,
) -> Result<Refunded, DbError> {
    let txn = db.conn().begin().await?;
    let payments = Payments::on(&txn);
    let payment = payments
        .lock(payment_id)
        .await?
        .ok_or(DomainError::NotFound { entity: "payment" })?;
    match payment.status {
        PaymentStatus::Refunded => return Ok(Refunded::AlreadyRefunded),
        PaymentStatus::Completed => {}
        other => {
            return Err(DomainError::InvalidTransition {
                entity: "payment",
                from: other.as_str(),
                to: PaymentStatus::Refunded.as_str(),
            }
            .into());
        }
    }
    if !payments.refund(payment.id, reason, now).await? {
        return Ok(Refunded::AlreadyRefunded);
    }
    let subscription = match Customers::on(&txn).lock(payment.customer_id).await {
        Ok(_) => {
            let mut subscription =
                grant::take_back_days(&txn, payment.customer_id, payment.days, now).await?;
            crate::loyalty::refund(&txn, &payment, subscription.as_mut(), now).await?;
            subscription
        }
        // A deleted customer has nothing left to take back.
        Err(DbError::Domain(DomainError::NotFound { .. })) => None,
        Err(err) => return Err(err),
    };
    crate::invite::on_payment_refunded(&txn, &payment, now).await?;
    if let Some(subscription) = &subscription {
        crate::announce(
            &txn,
            &payment,
            subscription,
            crate::PaymentEvent::Refunded,
            now,
        )
        .await?;
    }
    if let RefundSource::Staff {
        staff_id,
        request_id,
    } = source
    {
        let state = |status: PaymentStatus| {
            Some(serde_json::json!({ "status": status.as_str(), "days": payment.days }))
        };
        Audit::on(&txn)
            .record(AuditEntry {
                id: uuid::Uuid::now_v7(),
                staff_id: *staff_id,
                action: "payment.refund".to_owned(),
                target_kind: "payment".to_owned(),
                target_id: payment.id.as_uuid().to_string(),
                before: state(PaymentStatus::Completed),
                after: state(PaymentStatus::Refunded),
                request_id: request_id.clone(),
                created_at: now,
            })
            .await?;
    }
    txn.commit().await?;
    tracing::info!(payment = %payment.id.as_uuid(), days = payment.days, "payment refunded");
    Ok(Refunded::Reversed(subscription.map(Box::new)))
}
