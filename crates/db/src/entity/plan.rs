//! `plans` table.

use sea_orm::entity::prelude::*;

/// One row of `plans`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub code: String,
    pub tier: String,
    pub duration_days: i16,
    pub traffic_limit_bytes: Option<i64>,
    pub device_limit: i16,
    pub is_active: bool,
    pub sort_order: i32,
    pub resets_traffic_monthly: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
