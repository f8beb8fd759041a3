//! `payments` table.

use sea_orm::entity::prelude::*;

/// One row of `payments`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: Uuid,
    pub plan_id: Option<Uuid>,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub provider: String,
    pub provider_payment_id: Option<String>,
    pub days: i32,
    pub invoice_url: Option<String>,
    pub expires_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub review_reason: Option<String>,
    pub promo_code_id: Option<Uuid>,
    pub refunded_at: Option<DateTimeUtc>,
    pub refund_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Relations (joins are written explicitly in repositories).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
