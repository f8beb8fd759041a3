//! `broadcasts` table.

use sea_orm::entity::prelude::*;

/// One row of `broadcasts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "broadcasts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub created_by: Uuid,
    pub admin_chat_id: i64,
    pub audience: String,
    pub text: String,
    pub photo_file_id: Option<String>,
    pub status: String,
    pub total: i32,
    pub sent: i32,
    pub blocked: i32,
    pub failed: i32,
    pub unconfirmed: i32,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
