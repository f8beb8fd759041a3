use chrono::{DateTime, Utc};
use cybervpn_domain::{PaymentStatus, SubscriptionStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QuerySelect, sea_query::Expr,
};

use crate::{
    DbError,
    entity::{customer, payment, subscription, trial},
};

/// Completed payments in one currency over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revenue {
    /// ISO code: `USD`, `RUB`, `XTR`.
    pub currency: String,
    /// How many payments.
    pub payments: u64,
    /// Their sum, in minor units.
    pub amount_minor: i64,
}

/// Completed payments in one currency through one gateway, ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRevenue {
    /// ISO code: `USD`, `RUB`, `XTR`.
    pub currency: String,
    /// The gateway: `cryptobot`, `stripe`, `yookassa`, `telegram_stars`.
    pub provider: String,
    /// How many payments.
    pub payments: u64,
    /// Their sum, in minor units.
    pub amount_minor: i64,
}

/// The business at a glance, for staff dashboards.
#[derive(Debug, Clone, Copy)]
pub struct Dashboard<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Dashboard<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Customers not deleted.
    pub async fn customers(&self) -> Result<u64, DbError> {
        Ok(customer::Entity::find()
            .filter(customer::Column::DeletedAt.is_null())
            .count(self.conn)
            .await?)
    }

    /// Subscriptions serving at `now`.
    pub async fn active_subscriptions(&self, now: DateTime<Utc>) -> Result<u64, DbError> {
        Ok(subscription::Entity::find()
            .filter(subscription::Column::Status.eq(SubscriptionStatus::Active.as_str()))
            .filter(subscription::Column::ExpiresAt.gt(crate::stored_time(now)))
            .count(self.conn)
            .await?)
    }

    /// Completed (not refunded) payments per currency and gateway, ever.
    pub async fn revenue_by_gateway(&self) -> Result<Vec<GatewayRevenue>, DbError> {
        let rows: Vec<(String, String, i64, i64)> = payment::Entity::find()
            .select_only()
            .column(payment::Column::Currency)
            .column(payment::Column::Provider)
            .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "payments")
            .column_as(
                Expr::cust("CAST(SUM(amount_minor) AS BIGINT)"),
                "amount_minor",
            )
            .filter(payment::Column::Status.eq(PaymentStatus::Completed.as_str()))
            .group_by(payment::Column::Currency)
            .group_by(payment::Column::Provider)
            .into_tuple()
            .all(self.conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(currency, provider, payments, amount_minor)| GatewayRevenue {
                    currency,
                    provider,
                    payments: u64::try_from(payments).unwrap_or(0),
                    amount_minor,
                },
            )
            .collect())
    }

    /// Trials ever taken.
    pub async fn trials(&self) -> Result<u64, DbError> {
        Ok(trial::Entity::find().count(self.conn).await?)
    }

    /// Completed (not refunded) payments credited since `since`, per currency.
    pub async fn revenue_since(&self, since: DateTime<Utc>) -> Result<Vec<Revenue>, DbError> {
        let rows: Vec<(String, i64, i64)> = payment::Entity::find()
            .select_only()
            .column(payment::Column::Currency)
            .column_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "payments")
            .column_as(
                Expr::cust("CAST(SUM(amount_minor) AS BIGINT)"),
                "amount_minor",
            )
            .filter(payment::Column::Status.eq(PaymentStatus::Completed.as_str()))
            .filter(payment::Column::CompletedAt.gte(crate::stored_time(since)))
            .group_by(payment::Column::Currency)
            .into_tuple()
            .all(self.conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(currency, payments, amount_minor)| Revenue {
                currency,
                payments: u64::try_from(payments).unwrap_or(0),
                amount_minor,
            })
            .collect())
    }
}
