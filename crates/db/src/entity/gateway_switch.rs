//! `gateway_switches` table.

use sea_orm::entity::prelude::*;

/// One row of `gateway_switches`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "gateway_switches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    pub enabled: bool,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
