use chrono::{DateTime, Utc};
use cybervpn_domain::{DomainError, ServerId, ServerStatus};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    DbError,
    entity::server::{self, Column, Entity},
};

/// A node as the panel reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    /// The panel's node uuid.
    pub panel_uuid: String,
    /// Display name.
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    /// Port.
    pub port: i32,
    /// ISO 3166-1 alpha-2 country, upper case (`XX` when unknown).
    pub country_code: String,
    /// Whether the panel reaches the node.
    pub is_connected: bool,
    /// Whether the node is switched off in the panel.
    pub is_disabled: bool,
    /// Users online now.
    pub users_online: i32,
    /// Traffic used, in bytes.
    pub traffic_used_bytes: i64,
    /// The panel's last status message.
    pub status_message: Option<String>,
}

impl NodeReport {
    /// The status this report implies.
    pub fn status(&self) -> ServerStatus {
        match (self.is_disabled, self.is_connected) {
            (true, _) => ServerStatus::Maintenance,
            (false, true) => ServerStatus::Online,
            (false, false) => ServerStatus::Offline,
        }
    }
}

/// A server as stored, with everything the admin views show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerRecord {
    /// Our id.
    pub id: ServerId,
    /// The panel's node uuid.
    pub panel_uuid: Option<String>,
    /// Display name.
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    /// Port.
    pub port: i32,
    /// Country code.
    pub country_code: String,
    /// Health as last seen.
    pub status: ServerStatus,
    /// Whether the panel reaches the node.
    pub is_connected: bool,
    /// Whether the node is switched off.
    pub is_disabled: bool,
    /// Users online at the last sync.
    pub users_online: i32,
    /// Traffic used, in bytes.
    pub traffic_used_bytes: i64,
    /// Latitude of the country's centre, for the admin globe.
    pub latitude: Option<f64>,
    /// Longitude of the country's centre.
    pub longitude: Option<f64>,
    /// The panel's last status message.
    pub status_message: Option<String>,
    /// When the status last changed.
    pub last_status_change: Option<DateTime<Utc>>,
    /// When the panel was last asked.
    pub synced_at: Option<DateTime<Utc>>,
}

/// What an upsert changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    /// Our id of the server.
    pub id: ServerId,
    /// The status before (`None` for a server seen for the first time).
    pub before: Option<ServerStatus>,
    /// The status now.
    pub after: ServerStatus,
}

/// Servers (panel nodes).
#[derive(Debug, Clone, Copy)]
pub struct Servers<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Servers<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Every server, by name.
    pub async fn list(&self) -> Result<Vec<ServerRecord>, DbError> {
        Entity::find()
            .order_by_asc(Column::Name)
            .all(self.conn)
            .await?
            .into_iter()
            .map(ServerRecord::try_from)
            .collect()
    }

    /// The server with this id.
    pub async fn get(&self, id: ServerId) -> Result<ServerRecord, DbError> {
        Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "server" })?
            .try_into()
    }

    /// Inserts or updates the server behind a panel node and says how its status moved.
    pub async fn upsert(
        &self,
        node: &NodeReport,
        now: DateTime<Utc>,
    ) -> Result<StatusChange, DbError> {
        let now = crate::stored_time(now);
        let after = node.status();
        let existing = Entity::find()
            .filter(Column::PanelUuid.eq(node.panel_uuid.as_str()))
            .one(self.conn)
            .await?;
        let Some(existing) = existing else {
            let id = Uuid::now_v7();
            Entity::insert(server::ActiveModel {
                id: Set(id),
                name: Set(node.name.clone()),
                address: Set(node.address.clone()),
                port: Set(node.port),
                country_code: Set(node.country_code.clone()),
                status: Set(after.as_str().to_owned()),
                is_connected: Set(node.is_connected),
                is_disabled: Set(node.is_disabled),
                users_online: Set(node.users_online),
                panel_uuid: Set(Some(node.panel_uuid.clone())),
                latitude: Set(None),
                longitude: Set(None),
                traffic_used_bytes: Set(node.traffic_used_bytes),
                status_message: Set(node.status_message.clone()),
                last_status_change: Set(Some(now)),
                synced_at: Set(Some(now)),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .exec_without_returning(self.conn)
            .await?;
            return Ok(StatusChange {
                id: ServerId::from_uuid(id),
                before: None,
                after,
            });
        };
        let before: ServerStatus = existing
            .status
            .parse()
            .map_err(|err| DbError::corrupt("servers", err))?;
        let mut update = Entity::update_many()
            .col_expr(Column::Name, Expr::value(node.name.clone()))
            .col_expr(Column::Address, Expr::value(node.address.clone()))
            .col_expr(Column::Port, Expr::value(node.port))
            .col_expr(Column::CountryCode, Expr::value(node.country_code.clone()))
            .col_expr(Column::Status, Expr::value(after.as_str()))
            .col_expr(Column::IsConnected, Expr::value(node.is_connected))
            .col_expr(Column::IsDisabled, Expr::value(node.is_disabled))
            .col_expr(Column::UsersOnline, Expr::value(node.users_online))
            .col_expr(
                Column::TrafficUsedBytes,
                Expr::value(node.traffic_used_bytes),
            )
            .col_expr(
                Column::StatusMessage,
                Expr::value(node.status_message.clone()),
            )
            .col_expr(Column::SyncedAt, Expr::value(now))
            .col_expr(Column::UpdatedAt, Expr::value(now));
        if before != after {
            update = update.col_expr(Column::LastStatusChange, Expr::value(now));
        }
        if existing.country_code != node.country_code {
            // The centre of the old country is wrong now; geolocation fills it in again.
            update = update
                .col_expr(Column::Latitude, Expr::value(Option::<f64>::None))
                .col_expr(Column::Longitude, Expr::value(Option::<f64>::None));
        }
        update
            .filter(Column::Id.eq(existing.id))
            .exec(self.conn)
            .await?;
        Ok(StatusChange {
            id: ServerId::from_uuid(existing.id),
            before: Some(before),
            after,
        })
    }

    /// Records where a server stands on the globe.
    pub async fn set_location(
        &self,
        id: ServerId,
        location: Option<(f64, f64)>,
    ) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::Latitude, Expr::value(location.map(|l| l.0)))
            .col_expr(Column::Longitude, Expr::value(location.map(|l| l.1)))
            .filter(Column::Id.eq(id.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(())
    }
}

impl TryFrom<server::Model> for ServerRecord {
    type Error = DbError;

    fn try_from(m: server::Model) -> Result<Self, DbError> {
        Ok(Self {
            id: ServerId::from_uuid(m.id),
            status: m
                .status
                .parse()
                .map_err(|err| DbError::corrupt("servers", err))?,
            panel_uuid: m.panel_uuid,
            name: m.name,
            address: m.address,
            port: m.port,
            country_code: m.country_code,
            is_connected: m.is_connected,
            is_disabled: m.is_disabled,
            users_online: m.users_online,
            traffic_used_bytes: m.traffic_used_bytes,
            latitude: m.latitude,
            longitude: m.longitude,
            status_message: m.status_message,
            last_status_change: m.last_status_change,
            synced_at: m.synced_at,
        })
    }
}
