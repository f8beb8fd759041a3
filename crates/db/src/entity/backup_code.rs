//! `backup_codes` table.

use sea_orm::entity::prelude::*;

/// One row of `backup_codes`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "backup_codes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub principal_kind: String,
    pub principal_id: Uuid,
    pub code_hash: String,
    pub used_at: Option<DateTimeUtc>,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
