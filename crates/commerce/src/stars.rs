//! Telegram Stars: the bot's pre-checkout answer and its successful-payment grant.
//!
//! Stars have no webhook of their own: the bot receives `pre_checkout_query` and
//! `message.successful_payment` updates and calls these operations. The invoice payload is our payment id.

use chrono::{DateTime, Utc};
use cybervpn_db::{Db, DbError, Payments, TransactionTrait};
use cybervpn_domain::{
    Currency, DomainError, Money, Payment, PaymentId, PaymentProvider, PaymentStatus,
};

use crate::{Completion, PaidNotice, complete_payment};

/// A Telegram `pre_checkout_query` as the bot receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreCheckout {
    /// The invoice payload: our payment id.
    pub invoice_payload: String,
    /// The currency Telegram reports (always "XTR" for Stars).
    pub currency: String,
    /// The total in whole Stars.
    pub total_amount: i64,
    /// The Telegram user who is paying.
    pub telegram_user_id: i64,
}

/// How to answer `answerPreCheckoutQuery`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreCheckoutAnswer {
    /// `ok: true`: let the customer pay.
    Ok,
    /// `ok: false` with this short customer-facing `error_message`.
    Reject(String),
}

/// A Telegram `message.successful_payment` as the bot receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessfulPayment {
    /// The invoice payload: our payment id.
    pub invoice_payload: String,
    /// The currency Telegram reports (always "XTR" for Stars).
    pub currency: String,
    /// The total in whole Stars.
    pub total_amount: i64,
    /// Telegram's id of the charge; credits are idempotent on it.
    pub telegram_payment_charge_id: String,
    /// The payment provider's id of the charge (absent for Stars).
    pub provider_payment_charge_id: Option<String>,
}

/// Re-checks the order and its price before Telegram takes the Stars (two reads, no writes).
pub async fn pre_checkout(
    db: &Db,
    query: &PreCheckout,
    now: DateTime<Utc>,
) -> Result<PreCheckoutAnswer, DbError> {
    let reject = |message: &str| Ok(PreCheckoutAnswer::Reject(message.to_owned()));
    let Ok(payment_id) = query.invoice_payload.parse::<PaymentId>() else {
        return reject("This invoice is not valid. Please request a new one.");
    };
    let Some(payment) = not_found_as_none(db.payments().get(payment_id).await)? else {
        return reject("This invoice is not valid. Please request a new one.");
    };
    if payment.provider != PaymentProvider::TelegramStars {
        return reject("This invoice is not valid. Please request a new one.");
    }
    match payment.status {
        PaymentStatus::Pending => {}
        PaymentStatus::Completed => return reject("This invoice has already been paid."),
        _ => return reject("This invoice has expired. Please request a new one."),
    }
    if payment
        .expires_at
        .is_some_and(|expires_at| expires_at <= now)
    {
        return reject("This invoice has expired. Please request a new one.");
    }
    if query.currency != Currency::Xtr.as_str()
        || payment.amount.currency() != Currency::Xtr
        || payment.amount.amount_minor() != query.total_amount
    {
        return reject("The price has changed. Please request a new invoice.");
    }
    let Some(customer) = not_found_as_none(db.customers().get(payment.customer_id).await)? else {
        return reject("This invoice is not valid. Please request a new one.");
    };
    if customer.telegram_id.map(|id| id.get()) != Some(query.telegram_user_id) {
        return reject("This invoice belongs to another account.");
    }
    Ok(PreCheckoutAnswer::Ok)
}

/// Grants a Stars payment through [`complete_payment`], idempotent on `telegram_payment_charge_id`.
pub async fn successful_payment(
    db: &Db,
    paid: &SuccessfulPayment,
    now: DateTime<Utc>,
) -> Result<Completion, DbError> {
    let Ok(payment_id) = paid.invoice_payload.parse::<PaymentId>() else {
        tracing::warn!(payload = %paid.invoice_payload, "Stars payment with an unknown payload");
        return Ok(Completion::Unknown);
    };
    let money = paid
        .currency
        .parse::<Currency>()
        .and_then(|currency| Money::new(paid.total_amount, currency));
    match money {
        Ok(money) => {
            let notice = PaidNotice {
                payment_id,
                provider: PaymentProvider::TelegramStars,
                provider_payment_id: paid.telegram_payment_charge_id.clone(),
                paid: money,
            };
            complete_payment(db, &notice, now).await
        }
        Err(_) => set_aside_unreadable(db, payment_id, paid, now).await,
    }
}

/// Flags the payment when the reported amount is not money we know (unknown currency, negative total).
async fn set_aside_unreadable(
    db: &Db,
    payment_id: PaymentId,
    paid: &SuccessfulPayment,
    now: DateTime<Utc>,
) -> Result<Completion, DbError> {
    let txn = db.conn().begin().await?;
    let payments = Payments::on(&txn);
    let Some(payment) = payments.lock(payment_id).await? else {
        return Ok(Completion::Unknown);
    };
    let reason = unreadable_reason(&payment, paid);
    payments.flag(payment.id, &reason, now).await?;
    txn.commit().await?;
    tracing::warn!(payment = %payment.id.as_uuid(), reason = %reason, "payment set aside for review");
    Ok(Completion::NeedsReview(reason))
}

/// The review reason for an amount that is not readable as money.
fn unreadable_reason(payment: &Payment, paid: &SuccessfulPayment) -> String {
    format!(
        "paid {} {} but the price is {} {}",
        paid.total_amount,
        paid.currency,
        payment.amount.to_major_string(),
        payment.amount.currency().as_str()
    )
}

/// A missing row as `None`; other failures stay errors.
fn not_found_as_none<T>(result: Result<T, DbError>) -> Result<Option<T>, DbError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(DbError::Domain(DomainError::NotFound { .. })) => Ok(None),
        Err(other) => Err(other),
    }
}
