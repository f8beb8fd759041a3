//! `invite_rules` table.

use sea_orm::entity::prelude::*;

/// One row of `invite_rules`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invite_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tier: String,
    pub codes_per_purchase: i32,
    pub free_days: i32,
    pub bonus_days: i32,
    pub valid_days: i32,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
