use chrono::{DateTime, Utc};
use cybervpn_domain::CustomerId;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::notification::{self, Column, Entity},
};

/// Who a notification is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// One customer.
    Customer(CustomerId),
    /// The staff's admin chats.
    Staff,
}

/// A notification recorded for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The row's id.
    pub id: Uuid,
    /// Who it is for.
    pub audience: Audience,
    /// What happened, e.g. `expiry_reminder`.
    pub kind: String,
    /// The message text.
    pub body: String,
    /// When it was delivered, if it was.
    pub sent_at: Option<DateTime<Utc>>,
    /// Failed delivery attempts.
    pub attempts: i32,
}

/// Notifications, each recorded at most once per deduplication key.
#[derive(Debug, Clone, Copy)]
pub struct Notifications<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Notifications<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Records a notification unless one with `dedup_key` exists; returns its id when it is new.
    pub async fn record_once(
        &self,
        dedup_key: &str,
        audience: Audience,
        kind: &str,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Uuid>, DbError> {
        let id = Uuid::now_v7();
        let (audience_name, customer_id) = match audience {
            Audience::Customer(customer) => ("customer", Some(customer.as_uuid())),
            Audience::Staff => ("staff", None),
        };
        let inserted = Entity::insert(notification::ActiveModel {
            id: Set(id),
            dedup_key: Set(dedup_key.to_owned()),
            audience: Set(audience_name.to_owned()),
            customer_id: Set(customer_id),
            kind: Set(kind.to_owned()),
            body: Set(body.to_owned()),
            created_at: Set(crate::stored_time(now)),
            sent_at: Set(None),
            attempts: Set(0),
            last_error: Set(None),
        })
        .on_conflict(OnConflict::column(Column::DedupKey).do_nothing().to_owned())
        .exec_without_returning(self.conn)
        .await?;
        Ok((inserted > 0).then_some(id))
    }

    /// The notification with this id, if any.
    pub async fn get(&self, id: Uuid) -> Result<Option<Notification>, DbError> {
        Entity::find_by_id(id)
            .one(self.conn)
            .await?
            .map(Notification::try_from)
            .transpose()
    }

    /// Notifications not yet delivered, oldest first.
    pub async fn pending(&self, limit: u64) -> Result<Vec<Notification>, DbError> {
        Entity::find()
            .filter(Column::SentAt.is_null())
            .order_by_asc(Column::Id)
            .limit(limit)
            .all(self.conn)
            .await?
            .into_iter()
            .map(Notification::try_from)
            .collect()
    }

    /// Notifications of one kind, newest first (admin views and tests).
    pub async fn of_kind(&self, kind: &str, limit: u64) -> Result<Vec<Notification>, DbError> {
        Entity::find()
            .filter(Column::Kind.eq(kind))
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(self.conn)
            .await?
            .into_iter()
            .map(Notification::try_from)
            .collect()
    }

    /// Marks a notification delivered; false if it already was.
    pub async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, DbError> {
        let result = Entity::update_many()
            .col_expr(Column::SentAt, Expr::value(crate::stored_time(now)))
            .filter(Column::Id.eq(id))
            .filter(Column::SentAt.is_null())
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Records a failed delivery attempt.
    pub async fn mark_failed(&self, id: Uuid, error: &str) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(
                Column::Attempts,
                Expr::col(Column::Attempts).add(Expr::value(1)),
            )
            .col_expr(
                Column::LastError,
                Expr::value(error.chars().take(500).collect::<String>()),
            )
            .filter(Column::Id.eq(id))
            .exec(self.conn)
            .await?;
        Ok(())
    }
}

impl TryFrom<notification::Model> for Notification {
    type Error = DbError;

    fn try_from(m: notification::Model) -> Result<Self, DbError> {
        let audience = match (m.audience.as_str(), m.customer_id) {
            ("customer", Some(id)) => Audience::Customer(CustomerId::from_uuid(id)),
            ("staff", None) => Audience::Staff,
            (other, _) => {
                return Err(DbError::corrupt(
                    "notifications",
                    format!("audience {other}"),
                ));
            }
        };
        Ok(Self {
            id: m.id,
            audience,
            kind: m.kind,
            body: m.body,
            sent_at: m.sent_at,
            attempts: m.attempts,
        })
    }
}
