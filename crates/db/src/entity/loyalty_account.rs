//! `loyalty_accounts` table.

use sea_orm::entity::prelude::*;

/// One row of `loyalty_accounts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "loyalty_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: Uuid,
    pub tenure_days: i32,
    pub streak_started_at: Option<DateTimeUtc>,
    pub paid_until: Option<DateTimeUtc>,
    pub grace_notified_for: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
