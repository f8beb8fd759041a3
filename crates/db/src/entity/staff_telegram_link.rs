//! `staff_telegram_links` table.

use sea_orm::entity::prelude::*;

/// One row of `staff_telegram_links`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_telegram_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub staff_id: Uuid,
    pub telegram_id: i64,
    pub linked_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
