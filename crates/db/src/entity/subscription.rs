//! `subscriptions` table.

use sea_orm::entity::prelude::*;

/// One row of `subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub plan_id: Option<Uuid>,
    pub status: String,
    pub expires_at: DateTimeUtc,
    pub traffic_used_bytes: i64,
    pub traffic_limit_bytes: Option<i64>,
    pub panel_user_id: Option<i64>,
    pub panel_short_uuid: Option<String>,
    pub subscription_url: Option<String>,
    pub device_limit: Option<i16>,
    pub panel_synced_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
