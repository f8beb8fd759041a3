//! `invites` table.

use sea_orm::entity::prelude::*;

/// One row of `invites`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invites")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub code: String,
    pub owner_id: Option<Uuid>,
    pub source: String,
    pub payment_id: Option<Uuid>,
    pub issued_by: Option<Uuid>,
    pub note: Option<String>,
    pub free_days: i32,
    pub bonus_days: i32,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub redeemed_by: Option<Uuid>,
    pub redeemed_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub bonus_paid_at: Option<DateTimeUtc>,
    pub bonus_payment_id: Option<Uuid>,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
