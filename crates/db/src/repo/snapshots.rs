use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, sea_query::OnConflict,
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    DbError,
    entity::snapshot::{self, Column, Entity},
};

/// Latest values of periodically collected data (panel statistics, bandwidth), shared by every replica.
#[derive(Debug, Clone, Copy)]
pub struct Snapshots<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Snapshots<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Replaces the snapshot called `name`.
    pub async fn put<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let body =
            serde_json::to_string(value).map_err(|err| DbError::corrupt("snapshots", err))?;
        Entity::insert(snapshot::ActiveModel {
            name: Set(name.to_owned()),
            body: Set(body),
            updated_at: Set(crate::stored_time(now)),
        })
        .on_conflict(
            OnConflict::column(Column::Name)
                .update_columns([Column::Body, Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// The snapshot called `name` and when it was taken, if one was.
    pub async fn get<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<(T, DateTime<Utc>)>, DbError> {
        Entity::find_by_id(name.to_owned())
            .one(self.conn)
            .await?
            .map(|m| {
                serde_json::from_str(&m.body)
                    .map(|value| (value, m.updated_at))
                    .map_err(|err| DbError::corrupt("snapshots", err))
            })
            .transpose()
    }
}
