//! Opening payments: the price from the plan and the promo code, frozen on the payment with the promo use it
//! holds; and closing the ones that failed or ran out, which gives the promo use back.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cybervpn_db::{ConnectionTrait, Db, DbError, Payments, Plans, Promos, TransactionTrait};
use cybervpn_domain::{
    Currency, CustomerId, DomainError, Money, Payment, PaymentId, PaymentProvider, PaymentStatus,
    Plan, PlanId, PromoCode,
};

/// What a customer wants to buy, and how they pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Who buys.
    pub customer_id: CustomerId,
    /// The plan.
    pub plan_id: PlanId,
    /// The gateway.
    pub provider: PaymentProvider,
    /// The currency; the gateway's default when `None`.
    pub currency: Option<Currency>,
    /// A promo code as the customer typed it.
    pub promo_code: Option<String>,
}

/// The price of a plan for one customer, with a promo code applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The plan.
    pub plan: Plan,
    /// The plan's price before the promo code.
    pub list_price: Money,
    /// What the customer pays.
    pub price: Money,
    /// Days the purchase adds (the plan's, plus promo bonus days).
    pub days: u32,
    /// The promo code applied, if any.
    pub promo: Option<PromoCode>,
}

/// The currency used when the customer names none.
pub const fn default_currency(provider: PaymentProvider) -> Currency {
    match provider {
        PaymentProvider::CryptoBot | PaymentProvider::Stripe | PaymentProvider::RevenueCat => {
            Currency::Usd
        }
        PaymentProvider::YooKassa => Currency::Rub,
        PaymentProvider::TelegramStars => Currency::Xtr,
    }
}

/// The currency of a payment through `provider`: `requested` if the gateway takes it, else why not.
pub fn currency_for(
    provider: PaymentProvider,
    requested: Option<Currency>,
) -> Result<Currency, DomainError> {
    if !provider.takes_checkout() {
        return Err(DomainError::invalid(
            "provider",
            format!("{} purchases are made in the mobile app", provider.as_str()),
        ));
    }
    let currency = requested.unwrap_or(default_currency(provider));
    // Stars are paid only in XTR, and XTR only through Stars.
    if (provider == PaymentProvider::TelegramStars) != (currency == Currency::Xtr) {
        return Err(DomainError::invalid(
            "currency",
            format!("{} does not take {currency}", provider.as_str()),
        ));
    }
    Ok(currency)
}

/// Prices `plan` in `currency` for `customer`, with `promo_code` if given (reads only).
pub async fn quote<C: ConnectionTrait>(
    conn: &C,
    customer: CustomerId,
    plan: PlanId,
    currency: Currency,
    promo_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Quote, DbError> {
    let plan = Plans::on(conn).get(plan).await?;
    if !plan.is_active {
        return Err(DomainError::NotFound { entity: "plan" }.into());
    }
    let list_price = plan.price_in(currency).ok_or_else(|| {
        DomainError::invalid(
            "currency",
            format!("plan {} has no price in {currency}", plan.code),
        )
    })?;
    let days = u32::from(plan.duration.days());
    let Some(typed) = promo_code else {
        return Ok(Quote {
            plan,
            list_price,
            price: list_price,
            days,
            promo: None,
        });
    };
    let promo = find_promo(conn, typed).await?;
    promo.check(plan.id, currency, now)?;
    if Promos::on(conn).used_by(promo.id, customer).await? {
        return Err(already_used().into());
    }
    let (price, days) = promo.apply(list_price, days)?;
    Ok(Quote {
        plan,
        list_price,
        price,
        days,
        promo: Some(promo),
    })
}

/// The promo code customers type as `typed`.
pub async fn find_promo<C: ConnectionTrait>(conn: &C, typed: &str) -> Result<PromoCode, DbError> {
    let code = PromoCode::normalize(typed)?;
    Promos::on(conn).find_by_code(&code).await?.ok_or_else(|| {
        DomainError::NotFound {
            entity: "promo code",
        }
        .into()
    })
}

/// The promo code customers type as `typed`, if `customer` may use it now (for any plan it applies to).
pub async fn usable_promo<C: ConnectionTrait>(
    conn: &C,
    customer: CustomerId,
    typed: &str,
    now: DateTime<Utc>,
) -> Result<PromoCode, DbError> {
    let promo = find_promo(conn, typed).await?;
    promo.check_usable(now)?;
    if Promos::on(conn).used_by(promo.id, customer).await? {
        return Err(already_used().into());
    }
    Ok(promo)
}

fn already_used() -> DomainError {
    DomainError::invalid("promo_code", "you have already used this code")
}

/// Opens a pending payment at the quoted price, frozen on it, with the promo use it holds (one transaction).
///
/// The gateway's invoice is created afterwards, outside the transaction; if that fails, call
/// [`fail_payment`].
pub async fn open_payment(
    db: &Db,
    order: &Order,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<(Payment, Quote), DbError> {
    let currency = currency_for(order.provider, order.currency)?;
    let txn = db.conn().begin().await?;
    let quote = quote(
        &txn,
        order.customer_id,
        order.plan_id,
        currency,
        order.promo_code.as_deref(),
        now,
    )
    .await?;
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    let payment = Payment {
        id: PaymentId::new(),
        customer_id: order.customer_id,
        plan_id: Some(quote.plan.id),
        amount: quote.price,
        status: PaymentStatus::Pending,
        provider: order.provider,
        provider_payment_id: None,
        days: quote.days,
        invoice_url: None,
        expires_at: Some(now + ttl),
        completed_at: None,
        review_reason: None,
        promo_code_id: quote.promo.as_ref().map(|promo| promo.id),
        refunded_at: None,
        refund_reason: None,
        created_at: now,
        updated_at: now,
    };
    let payment = Payments::on(&txn).create(payment).await?;
    if let Some(promo) = &quote.promo {
        match Promos::on(&txn)
            .redeem(promo.id, order.customer_id, payment.id, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(DomainError::invalid("promo_code", "has been used up").into()),
            // Another payment of this customer took the code at the same moment.
            Err(DbError::Domain(DomainError::Conflict { .. })) => {
                return Err(already_used().into());
            }
            Err(err) => return Err(err),
        }
    }
    txn.commit().await?;
    Ok((payment, quote))
}

/// Closes a pending payment whose invoice could not be created, giving its promo use back; false if it was no
/// longer pending.
pub async fn fail_payment(db: &Db, id: PaymentId, now: DateTime<Utc>) -> Result<bool, DbError> {
    let txn = db.conn().begin().await?;
    let failed = Payments::on(&txn)
        .close(id, PaymentStatus::Failed, now)
        .await?;
    if failed {
        Promos::on(&txn).release(id).await?;
    }
    txn.commit().await?;
    Ok(failed)
}

/// Closes pending payments past their expiry, giving their promo uses back; returns how many were closed.
pub async fn expire_unpaid(db: &Db, now: DateTime<Utc>) -> Result<usize, DbError> {
    const BATCH: u64 = 500;
    let mut closed = 0;
    loop {
        let overdue = db.payments().overdue(now, BATCH).await?;
        let batch = overdue.len();
        for id in overdue {
            // One transaction each: conditional, so a payment completed meanwhile stays completed.
            let txn = db.conn().begin().await?;
            if Payments::on(&txn)
                .close(id, PaymentStatus::Expired, now)
                .await?
            {
                Promos::on(&txn).release(id).await?;
                closed += 1;
            }
            txn.commit().await?;
        }
        if batch < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            return Ok(closed);
        }
    }
}
