use cybervpn_domain::{
    Currency, CustomerId, DomainError, Money, Payment, PaymentId, PaymentProvider, PaymentStatus,
    PlanId,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use crate::{
    DbError,
    entity::payment::{self, Column, Entity},
};

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
            created_at: Set(payment.created_at),
            updated_at: Set(payment.updated_at),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(payment)
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
        let currency = m.currency.parse::<Currency>().map_err(corrupt)?;
        Ok(Self {
            id: PaymentId::from_uuid(m.id),
            customer_id: CustomerId::from_uuid(m.customer_id),
            plan_id: m.plan_id.map(PlanId::from_uuid),
            amount: Money::new(m.amount_minor, currency).map_err(corrupt)?,
            status: m.status.parse::<PaymentStatus>().map_err(corrupt)?,
            provider: m.provider.parse::<PaymentProvider>().map_err(corrupt)?,
            provider_payment_id: m.provider_payment_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
