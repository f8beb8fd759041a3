use chrono::{DateTime, Utc};
use cybervpn_domain::StaffId;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::audit_entry::{self, Column, Entity},
};

/// One staff mutation, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Entry id (time-ordered).
    pub id: Uuid,
    /// Who acted.
    pub staff_id: StaffId,
    /// What they did, e.g. `customer.ban`.
    pub action: String,
    /// Kind of the thing acted on, e.g. `customer`.
    pub target_kind: String,
    /// Its id.
    pub target_id: String,
    /// State before the change.
    pub before: Option<serde_json::Value>,
    /// State after the change.
    pub after: Option<serde_json::Value>,
    /// The request that made the change.
    pub request_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The audit log of staff mutations; write it in the same transaction as the mutation.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Audit<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Appends an entry.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), DbError> {
        Entity::insert(audit_entry::ActiveModel {
            id: Set(entry.id),
            staff_id: Set(entry.staff_id.as_uuid()),
            action: Set(entry.action),
            target_kind: Set(entry.target_kind),
            target_id: Set(entry.target_id),
            before: Set(entry.before),
            after: Set(entry.after),
            request_id: Set(entry.request_id),
            created_at: Set(crate::stored_time(entry.created_at)),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Newest entries first, starting after the entry `before` (an id from a previous page).
    pub async fn list(&self, before: Option<Uuid>, limit: u64) -> Result<Vec<AuditEntry>, DbError> {
        let mut query = Entity::find().order_by_desc(Column::Id).limit(limit);
        if let Some(before) = before {
            query = query.filter(Column::Id.lt(before));
        }
        Ok(query
            .all(self.conn)
            .await?
            .into_iter()
            .map(|m| AuditEntry {
                id: m.id,
                staff_id: StaffId::from_uuid(m.staff_id),
                action: m.action,
                target_kind: m.target_kind,
                target_id: m.target_id,
                before: m.before,
                after: m.after,
                request_id: m.request_id,
                created_at: m.created_at,
            })
            .collect())
    }
}
