use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::outbox::{self, Column, Entity},
};

/// A job recorded in the outbox, waiting to be relayed to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// The row's id (time-ordered).
    pub id: Uuid,
    /// The job's name.
    pub job: String,
    /// The job's JSON payload.
    pub payload: serde_json::Value,
    /// W3C trace context of the transaction that wrote it, if traced.
    pub trace_context: Option<String>,
    /// Failed relay attempts so far.
    pub attempts: i32,
}

/// The transactional outbox: jobs written in the same transaction as the state change they follow.
#[derive(Debug, Clone, Copy)]
pub struct Outbox<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Outbox<'a, C> {
    /// The repository on `conn`; call `push` on the transaction that makes the state change.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Records a job to relay once the surrounding transaction commits, with the W3C `traceparent` of the
    /// work that made it, if traced.
    pub async fn push(
        &self,
        job: &str,
        payload: &impl serde::Serialize,
        trace_context: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Uuid, DbError> {
        let id = Uuid::now_v7();
        let payload =
            serde_json::to_string(payload).map_err(|err| DbError::corrupt("outbox", err))?;
        Entity::insert(outbox::ActiveModel {
            id: Set(id),
            job: Set(job.to_owned()),
            payload: Set(payload),
            trace_context: Set(trace_context.map(str::to_owned)),
            created_at: Set(crate::stored_time(now)),
            sent_at: Set(None),
            attempts: Set(0),
            last_error: Set(None),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(id)
    }

    /// The oldest unsent messages; on PostgreSQL they stay locked (skipped by other relays) until the
    /// transaction ends, so run this in the transaction that marks them sent.
    pub async fn claim(&self, limit: u64) -> Result<Vec<OutboxMessage>, DbError> {
        let mut query = Entity::find()
            .filter(Column::SentAt.is_null())
            .order_by_asc(Column::Id)
            .limit(limit);
        if self.conn.get_database_backend() == DbBackend::Postgres {
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        query
            .all(self.conn)
            .await?
            .into_iter()
            .map(|m| {
                Ok(OutboxMessage {
                    payload: serde_json::from_str(&m.payload)
                        .map_err(|err| DbError::corrupt("outbox", err))?,
                    id: m.id,
                    job: m.job,
                    trace_context: m.trace_context,
                    attempts: m.attempts,
                })
            })
            .collect()
    }

    /// Marks a message relayed.
    pub async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::SentAt, Expr::value(crate::stored_time(now)))
            .filter(Column::Id.eq(id))
            .exec(self.conn)
            .await?;
        Ok(())
    }

    /// Records a failed relay attempt; the message stays pending.
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

    /// Messages not yet relayed.
    pub async fn pending_count(&self) -> Result<u64, DbError> {
        use sea_orm::PaginatorTrait;
        Ok(Entity::find()
            .filter(Column::SentAt.is_null())
            .count(self.conn)
            .await?)
    }

    /// Deletes relayed messages older than `before`; returns how many.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64, DbError> {
        Ok(Entity::delete_many()
            .filter(Column::SentAt.lt(before))
            .exec(self.conn)
            .await?
            .rows_affected)
    }
}
