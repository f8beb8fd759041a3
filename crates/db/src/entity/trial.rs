//! `trials` table.

use sea_orm::entity::prelude::*;

/// One row of `trials`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "trials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub telegram_id: Option<i64>,
    pub subscription_id: Uuid,
    pub activated_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// When the customer's first payment after the trial's start was credited.
    pub converted_at: Option<DateTimeUtc>,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
