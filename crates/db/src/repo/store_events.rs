use chrono::{DateTime, Utc};
use cybervpn_domain::PaymentId;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::OnConflict,
};

use crate::{
    DbError,
    entity::revenuecat_event::{self, Column, Entity},
};

/// A RevenueCat webhook event and what was done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    /// RevenueCat's event id.
    pub id: String,
    /// The event type as sent (`INITIAL_PURCHASE`, …).
    pub event_type: String,
    /// The app user id it names.
    pub app_user_id: Option<String>,
    /// The store's product id.
    pub product_id: Option<String>,
    /// The store's transaction id.
    pub transaction_id: Option<String>,
    /// `PRODUCTION` or `SANDBOX`.
    pub environment: Option<String>,
    /// What was done: `applied`, `duplicate`, `refunded`, `ignored`, `set_aside`, …
    pub outcome: String,
    /// Our payment it credited or refunded, if any.
    pub payment_id: Option<PaymentId>,
    /// Why it was set aside or ignored.
    pub detail: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// RevenueCat webhook events already handled.
#[derive(Debug, Clone, Copy)]
pub struct StoreEvents<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> StoreEvents<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Whether the event with this id was handled before.
    pub async fn seen(&self, id: &str) -> Result<bool, DbError> {
        Ok(Entity::find_by_id(id.to_owned())
            .select_only()
            .column(Column::Id)
            .into_tuple::<String>()
            .one(self.conn)
            .await?
            .is_some())
    }

    /// Records a handled event; false (nothing written) if its id was recorded before.
    pub async fn record(&self, event: &StoreEvent) -> Result<bool, DbError> {
        let inserted = Entity::insert(revenuecat_event::ActiveModel {
            id: Set(event.id.clone()),
            event_type: Set(event.event_type.clone()),
            app_user_id: Set(event.app_user_id.clone()),
            product_id: Set(event.product_id.clone()),
            transaction_id: Set(event.transaction_id.clone()),
            environment: Set(event.environment.clone()),
            outcome: Set(event.outcome.clone()),
            payment_id: Set(event.payment_id.map(|id| id.as_uuid())),
            detail: Set(event.detail.clone()),
            received_at: Set(crate::stored_time(event.received_at)),
        })
        .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
        .exec_without_returning(self.conn)
        .await?;
        Ok(inserted == 1)
    }

    /// Events with this outcome, newest first.
    pub async fn with_outcome(
        &self,
        outcome: &str,
        limit: u64,
    ) -> Result<Vec<StoreEvent>, DbError> {
        Ok(Entity::find()
            .filter(Column::Outcome.eq(outcome))
            .order_by_desc(Column::ReceivedAt)
            .limit(limit)
            .all(self.conn)
            .await?
            .into_iter()
            .map(|m| StoreEvent {
                id: m.id,
                event_type: m.event_type,
                app_user_id: m.app_user_id,
                product_id: m.product_id,
                transaction_id: m.transaction_id,
                environment: m.environment,
                outcome: m.outcome,
                payment_id: m.payment_id.map(PaymentId::from_uuid),
                detail: m.detail,
                received_at: m.received_at,
            })
            .collect())
    }
}
