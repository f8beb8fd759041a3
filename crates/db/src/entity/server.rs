//! `servers` table.

use sea_orm::entity::prelude::*;

/// One row of `servers`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "servers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub port: i32,
    pub country_code: String,
    pub status: String,
    pub is_connected: bool,
    pub is_disabled: bool,
    pub users_online: i32,
    pub panel_uuid: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub traffic_used_bytes: i64,
    pub status_message: Option<String>,
    pub last_status_change: Option<DateTimeUtc>,
    pub synced_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
