//! `revenuecat_events` table.

use sea_orm::entity::prelude::*;

/// One row of `revenuecat_events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "revenuecat_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub event_type: String,
    pub app_user_id: Option<String>,
    pub product_id: Option<String>,
    pub transaction_id: Option<String>,
    pub environment: Option<String>,
    pub outcome: String,
    pub payment_id: Option<Uuid>,
    pub detail: Option<String>,
    pub received_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
