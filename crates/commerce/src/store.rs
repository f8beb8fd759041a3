//! App-store purchases (App Store, Google Play) reported by RevenueCat: already paid when we hear of them, so a
//! payment is recorded for the store's transaction and credited through [`complete_payment`] at once.
//!
//! Idempotent on the store's transaction id (unique per provider on `payments`): a second report of the same
//! transaction finds the payment and credits nothing more.

use chrono::{DateTime, Utc};
use cybervpn_db::{Db, DbError};
use cybervpn_domain::{
    CustomerId, DomainError, Money, Payment, PaymentId, PaymentProvider, PaymentStatus, Plan,
};

use crate::{Completion, PaidNotice, complete_payment};

/// A purchase a customer made in an app store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePurchase {
    /// Who bought.
    pub customer_id: CustomerId,
    /// The plan the store product buys.
    pub plan: Plan,
    /// What the store charged.
    pub paid: Money,
    /// The store's transaction id.
    pub transaction_id: String,
}

/// Records the purchase as a RevenueCat payment (once per transaction) and credits it; returns the payment.
pub async fn credit_store_purchase(
    db: &Db,
    purchase: &StorePurchase,
    now: DateTime<Utc>,
) -> Result<(PaymentId, Completion), DbError> {
    const PROVIDER: PaymentProvider = PaymentProvider::RevenueCat;
    let payments = db.payments();
    let existing = payments
        .find_by_provider_id(PROVIDER, &purchase.transaction_id)
        .await?;
    let payment = match existing {
        Some(payment) => payment,
        None => {
            let payment = Payment {
                id: PaymentId::new(),
                customer_id: purchase.customer_id,
                plan_id: Some(purchase.plan.id),
                amount: purchase.paid,
                status: PaymentStatus::Pending,
                provider: PROVIDER,
                provider_payment_id: Some(purchase.transaction_id.clone()),
                days: u32::from(purchase.plan.duration.days()),
                invoice_url: None,
                // Paid already: nothing to wait for, so nothing to expire.
                expires_at: None,
                completed_at: None,
                review_reason: None,
                promo_code_id: None,
                refunded_at: None,
                refund_reason: None,
                created_at: now,
                updated_at: now,
            };
            match payments.create(payment).await {
                Ok(payment) => payment,
                // The same transaction reported twice at once: the other report recorded it.
                Err(DbError::Domain(DomainError::Conflict { .. })) => payments
                    .find_by_provider_id(PROVIDER, &purchase.transaction_id)
                    .await?
                    .ok_or(DomainError::NotFound { entity: "payment" })?,
                Err(err) => return Err(err),
            }
        }
    };
    let notice = PaidNotice {
        payment_id: payment.id,
        provider: PROVIDER,
        provider_payment_id: purchase.transaction_id.clone(),
        paid: purchase.paid,
    };
    let completion = complete_payment(db, &notice, now).await?;
    Ok((payment.id, completion))
}
