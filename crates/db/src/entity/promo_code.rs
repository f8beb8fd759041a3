//! `promo_codes` table.

use sea_orm::entity::prelude::*;

/// One row of `promo_codes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promo_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub code: String,
    pub kind: String,
    pub percent_off: Option<i32>,
    pub amount_off_minor: Option<i64>,
    pub currency: Option<String>,
    pub bonus_days: Option<i32>,
    pub plan_id: Option<Uuid>,
    pub max_uses: Option<i32>,
    pub used_count: i32,
    pub valid_from: Option<DateTimeUtc>,
    pub valid_until: Option<DateTimeUtc>,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
