use cybervpn_domain::{
    Currency, CustomerId, DomainError, Money, Payment, PaymentId, PaymentProvider, PaymentStatus,
    PlanId, PromoCodeId,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, sea_query::Expr,
};

use crate::{
    DbError,
    entity::payment::{self, Column, Entity},
};

/// What staff search payments by; every set field must match.
#[derive(Debug, Clone, Default)]
pub struct PaymentSearch {
    /// In this state.
    pub status: Option<PaymentStatus>,
    /// Through this gateway.
    pub provider: Option<PaymentProvider>,
    /// Of this customer.
    pub customer_id: Option<CustomerId>,
    /// Only those set aside for staff.
    pub needs_review: bool,
    /// The gateway's id of the payment.
    pub provider_payment_id: Option<String>,
    /// Created at or after.
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before.
    pub created_to: Option<chrono::DateTime<chrono::Utc>>,
}

/// Payments.
#[derive(Debug, Clone, Copy)]
pub struct Payments<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Payments<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Stores a new payment and returns it as stored; a provider payment id seen before is a `Conflict`.
    pub async fn create(&self, mut payment: Payment) -> Result<Payment, DbError> {
        payment.created_at = crate::stored_time(payment.created_at);
        payment.updated_at = crate::stored_time(payment.updated_at);
        Entity::insert(payment::ActiveModel {
            id: Set(payment.id.as_uuid()),
            customer_id: Set(payment.customer_id.as_uuid()),
            plan_id: Set(payment.plan_id.map(|id| id.as_uuid())),
            amount_minor: Set(payment.amount.amount_minor()),
            currency: Set(payment.amount.currency().as_str().to_owned()),
            status: Set(payment.status.as_str().to_owned()),
            provider: Set(payment.provider.as_str().to_owned()),
            provider_payment_id: Set(payment.provider_payment_id.clone()),
            days: Set(i32::try_from(payment.days)
                .map_err(|_| DomainError::invalid("days", "is too large"))?),
            invoice_url: Set(payment.invoice_url.clone()),
            expires_at: Set(payment.expires_at.map(crate::stored_time)),
            completed_at: Set(payment.completed_at.map(crate::stored_time)),
            review_reason: Set(payment.review_reason.clone()),
            promo_code_id: Set(payment.promo_code_id.map(|id| id.as_uuid())),
            refunded_at: Set(payment.refunded_at.map(crate::stored_time)),
            refund_reason: Set(payment.refund_reason.clone()),
            created_at: Set(payment.created_at),
            updated_at: Set(payment.updated_at),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(payment)
    }

    /// The payment with this id, locked until the transaction ends (PostgreSQL; SQLite serialises writers).
    pub async fn lock(&self, id: PaymentId) -> Result<Option<Payment>, DbError> {
        let mut query = Entity::find_by_id(id.as_uuid());
        if self.conn.get_database_backend() == sea_orm::DbBackend::Postgres {
            query = query.lock(sea_orm::sea_query::LockType::Update);
        }
        query
            .one(self.conn)
            .await?
            .map(Payment::try_from)
            .transpose()
    }

    /// Marks a pending payment completed; false (and nothing changed) if it was no longer pending.
    pub async fn complete(
        &self,
        id: PaymentId,
        provider_payment_id: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DbError> {
        let now = crate::stored_time(now);
        let mut update = Entity::update_many()
            .col_expr(
                Column::Status,
                Expr::value(PaymentStatus::Completed.as_str()),
            )
            .col_expr(Column::CompletedAt, Expr::value(now))
            .col_expr(Column::UpdatedAt, Expr::value(now));
        if let Some(reference) = provider_payment_id {
            update = update.col_expr(Column::ProviderPaymentId, Expr::value(reference));
        }
        let result = update
            .filter(Column::Id.eq(id.as_uuid()))
            .filter(Column::Status.eq(PaymentStatus::Pending.as_str()))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Records the gateway's reference and the page where the customer pays.
    pub async fn set_invoice(
        &self,
        id: PaymentId,
        provider_payment_id: &str,
        invoice_url: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::ProviderPaymentId, Expr::value(provider_payment_id))
            .col_expr(Column::InvoiceUrl, Expr::value(invoice_url))
            .col_expr(Column::UpdatedAt, Expr::value(crate::stored_time(now)))
            .filter(Column::Id.eq(id.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(())
    }

    /// Closes a pending payment as `closed` (failed or expired); false (nothing changed) if it was no longer
    /// pending.
    pub async fn close(
        &self,
        id: PaymentId,
        closed: PaymentStatus,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DbError> {
        PaymentStatus::Pending.transition(closed)?;
        let result = Entity::update_many()
            .col_expr(Column::Status, Expr::value(closed.as_str()))
            .col_expr(Column::UpdatedAt, Expr::value(crate::stored_time(now)))
            .filter(Column::Id.eq(id.as_uuid()))
            .filter(Column::Status.eq(PaymentStatus::Pending.as_str()))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Sets a pending payment aside for staff with the reason; it is not credited.
    pub async fn flag(
        &self,
        id: PaymentId,
        reason: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::ReviewReason, Expr::value(reason))
            .col_expr(Column::UpdatedAt, Expr::value(crate::stored_time(now)))
            .filter(Column::Id.eq(id.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(())
    }

    /// Pending payments of `provider` that have the gateway's reference, oldest first.
    pub async fn pending_with_reference(
        &self,
        provider: PaymentProvider,
        limit: u64,
    ) -> Result<Vec<Payment>, DbError> {
        use sea_orm::QueryOrder;
        Entity::find()
            .filter(Column::Provider.eq(provider.as_str()))
            .filter(Column::Status.eq(PaymentStatus::Pending.as_str()))
            .filter(Column::ProviderPaymentId.is_not_null())
            .order_by_asc(Column::CreatedAt)
            .limit(limit)
            .all(self.conn)
            .await?
            .into_iter()
            .map(Payment::try_from)
            .collect()
    }

    /// Pending payments whose time ran out, oldest first.
    pub async fn overdue(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u64,
    ) -> Result<Vec<PaymentId>, DbError> {
        use sea_orm::QueryOrder;
        let ids: Vec<uuid::Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Status.eq(PaymentStatus::Pending.as_str()))
            .filter(Column::ExpiresAt.lte(crate::stored_time(now)))
            .order_by_asc(Column::ExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(self.conn)
            .await?;
        Ok(ids.into_iter().map(PaymentId::from_uuid).collect())
    }

    /// Marks a completed payment refunded with the reason; false (nothing changed) if it was not completed.
    pub async fn refund(
        &self,
        id: PaymentId,
        reason: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, DbError> {
        let now = crate::stored_time(now);
        let result = Entity::update_many()
            .col_expr(
                Column::Status,
                Expr::value(PaymentStatus::Refunded.as_str()),
            )
            .col_expr(Column::RefundedAt, Expr::value(now))
            .col_expr(Column::RefundReason, Expr::value(reason))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .filter(Column::Id.eq(id.as_uuid()))
            .filter(Column::Status.eq(PaymentStatus::Completed.as_str()))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Payments matching `filter`, newest first, starting after `before` (an id from a previous page).
    pub async fn search(
        &self,
        filter: &PaymentSearch,
        before: Option<PaymentId>,
        limit: u64,
    ) -> Result<Vec<Payment>, DbError> {
        use sea_orm::QueryOrder;
        let mut query = Entity::find().order_by_desc(Column::Id).limit(limit);
        if let Some(before) = before {
            query = query.filter(Column::Id.lt(before.as_uuid()));
        }
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        if let Some(provider) = filter.provider {
            query = query.filter(Column::Provider.eq(provider.as_str()));
        }
        if let Some(customer) = filter.customer_id {
            query = query.filter(Column::CustomerId.eq(customer.as_uuid()));
        }
        if filter.needs_review {
            query = query.filter(Column::ReviewReason.is_not_null());
        }
        if let Some(reference) = &filter.provider_payment_id {
            query = query.filter(Column::ProviderPaymentId.eq(reference.as_str()));
        }
        if let Some(from) = filter.created_from {
            query = query.filter(Column::CreatedAt.gte(crate::stored_time(from)));
        }
        if let Some(to) = filter.created_to {
            query = query.filter(Column::CreatedAt.lt(crate::stored_time(to)));
        }
        query
            .all(self.conn)
            .await?
            .into_iter()
            .map(Payment::try_from)
            .collect()
    }

    /// The payment with this id.
    pub async fn get(&self, id: PaymentId) -> Result<Payment, DbError> {
        Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "payment" })?
            .try_into()
    }

    /// The payment a provider knows by `provider_payment_id`, if any.
    pub async fn find_by_provider_id(
        &self,
        provider: PaymentProvider,
        provider_payment_id: &str,
    ) -> Result<Option<Payment>, DbError> {
        Entity::find()
            .filter(Column::Provider.eq(provider.as_str()))
            .filter(Column::ProviderPaymentId.eq(provider_payment_id))
            .one(self.conn)
            .await?
            .map(Payment::try_from)
            .transpose()
    }
}

impl TryFrom<payment::Model> for Payment {
    type Error = DbError;

    fn try_from(m: payment::Model) -> Result<Self, DbError> {
        let corrupt = |err: DomainError| DbError::corrupt("payments", err);
        let corrupt_int = |err: std::num::TryFromIntError| DbError::corrupt("payments", err);
        let currency = m.currency.parse::<Currency>().map_err(corrupt)?;
        Ok(Self {
            id: PaymentId::from_uuid(m.id),
            customer_id: CustomerId::from_uuid(m.customer_id),
            plan_id: m.plan_id.map(PlanId::from_uuid),
            amount: Money::new(m.amount_minor, currency).map_err(corrupt)?,
            status: m.status.parse::<PaymentStatus>().map_err(corrupt)?,
            provider: m.provider.parse::<PaymentProvider>().map_err(corrupt)?,
            provider_payment_id: m.provider_payment_id,
            days: u32::try_from(m.days).map_err(corrupt_int)?,
            invoice_url: m.invoice_url,
            expires_at: m.expires_at,
            completed_at: m.completed_at,
            review_reason: m.review_reason,
            promo_code_id: m.promo_code_id.map(PromoCodeId::from_uuid),
            refunded_at: m.refunded_at,
            refund_reason: m.refund_reason,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
