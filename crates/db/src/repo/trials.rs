use chrono::{DateTime, Utc};
use cybervpn_domain::{CustomerId, SubscriptionId, TelegramId};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, sea_query::Expr,
};

use crate::{
    DbError,
    entity::trial::{self, Column, Entity},
};

/// A free trial a customer took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// Who took it.
    pub customer_id: CustomerId,
    /// Their Telegram account at activation, if linked.
    pub telegram_id: Option<TelegramId>,
    /// The subscription the trial created.
    pub subscription_id: SubscriptionId,
    /// When it was activated.
    pub activated_at: DateTime<Utc>,
    /// When the trial subscription ended (or ends) as first granted.
    pub expires_at: DateTime<Utc>,
}

/// Free trials: unique indexes hold one per customer and one per Telegram account.
#[derive(Debug, Clone, Copy)]
pub struct Trials<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Trials<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Records a trial; a second one for the customer or the Telegram account is a `Conflict`.
    pub async fn record(&self, trial: &Trial) -> Result<(), DbError> {
        Entity::insert(trial::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            customer_id: Set(trial.customer_id.as_uuid()),
            telegram_id: Set(trial.telegram_id.map(TelegramId::get)),
            subscription_id: Set(trial.subscription_id.as_uuid()),
            activated_at: Set(crate::stored_time(trial.activated_at)),
            expires_at: Set(crate::stored_time(trial.expires_at)),
            converted_at: Set(None),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Records that the customer paid at `at`: their trial, if they took one before `at` and it has not
    /// converted yet, converted then. True if this payment converted it; idempotent.
    pub async fn mark_converted(
        &self,
        customer: CustomerId,
        at: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let at = crate::stored_time(at);
        let result = Entity::update_many()
            .col_expr(Column::ConvertedAt, Expr::value(at))
            .filter(Column::CustomerId.eq(customer.as_uuid()))
            .filter(Column::ConvertedAt.is_null())
            .filter(Column::ActivatedAt.lte(at))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// The customer's trial, if they took one.
    pub async fn for_customer(&self, customer: CustomerId) -> Result<Option<Trial>, DbError> {
        Entity::find()
            .filter(Column::CustomerId.eq(customer.as_uuid()))
            .one(self.conn)
            .await?
            .map(Trial::try_from)
            .transpose()
    }

    /// Whether a trial was taken with this Telegram account.
    pub async fn taken_by_telegram(&self, telegram_id: TelegramId) -> Result<bool, DbError> {
        Ok(Entity::find()
            .filter(Column::TelegramId.eq(telegram_id.get()))
            .count(self.conn)
            .await?
            > 0)
    }
}

impl TryFrom<trial::Model> for Trial {
    type Error = DbError;

    fn try_from(m: trial::Model) -> Result<Self, DbError> {
        Ok(Self {
            customer_id: CustomerId::from_uuid(m.customer_id),
            telegram_id: m
                .telegram_id
                .map(TelegramId::new)
                .transpose()
                .map_err(|err| DbError::corrupt("trials", err))?,
            subscription_id: SubscriptionId::from_uuid(m.subscription_id),
            activated_at: m.activated_at,
            expires_at: m.expires_at,
        })
    }
}
