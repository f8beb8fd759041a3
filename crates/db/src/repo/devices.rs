//! Customer devices that receive push notifications, one per FCM registration token.
//!
//! The unique index on `devices.token` holds "one owner per token": registering a known token moves it to the
//! caller (a phone that changed hands).

use chrono::{DateTime, Utc};
use cybervpn_domain::{CustomerId, DomainError};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::device::{self, Column, Entity},
};

/// Devices a customer may register; registering one more drops the oldest.
pub const MAX_DEVICES: u64 = 10;

/// The platform of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevicePlatform {
    /// An Android app.
    Android,
    /// An iOS app.
    Ios,
    /// A web browser.
    Web,
}

impl DevicePlatform {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
            Self::Web => "web",
        }
    }

    /// The platform named `name`, if known.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "android" => Some(Self::Android),
            "ios" => Some(Self::Ios),
            "web" => Some(Self::Web),
            _ => None,
        }
    }
}

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The device's id.
    pub id: Uuid,
    /// Its owner.
    pub customer_id: CustomerId,
    /// Its platform.
    pub platform: DevicePlatform,
    /// The FCM registration token.
    pub token: String,
    /// When its owner registered it.
    pub created_at: DateTime<Utc>,
    /// When it was last registered again.
    pub last_used_at: DateTime<Utc>,
}

impl TryFrom<device::Model> for Device {
    type Error = DbError;

    fn try_from(row: device::Model) -> Result<Self, DbError> {
        let platform = DevicePlatform::parse(&row.platform).ok_or_else(|| DbError::Corrupt {
            table: "devices",
            reason: format!("unknown platform {:?}", row.platform),
        })?;
        Ok(Self {
            id: row.id,
            customer_id: CustomerId::from_uuid(row.customer_id),
            platform,
            token: row.token,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        })
    }
}

/// What registering a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The token was new.
    Created,
    /// The token was known (to this customer or another) and now belongs to the caller.
    Updated,
}

/// Customer devices.
#[derive(Debug, Clone, Copy)]
pub struct Devices<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Devices<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Registers `token` for `customer` (moving it from another owner if needed), then drops the customer's
    /// oldest devices beyond [`MAX_DEVICES`]. Run it in a transaction.
    pub async fn register(
        &self,
        customer: CustomerId,
        platform: DevicePlatform,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Device, Registration), DbError> {
        let now = crate::stored_time(now);
        let existing = Entity::find()
            .filter(Column::Token.eq(token))
            .one(self.conn)
            .await?;
        let (row, registration) = if let Some(row) = existing {
            let moved = row.customer_id != customer.as_uuid();
            let mut active: device::ActiveModel = row.clone().into();
            active.customer_id = Set(customer.as_uuid());
            active.platform = Set(platform.as_str().to_owned());
            active.last_used_at = Set(now);
            if moved {
                // A new owner: the device counts as their newest.
                active.created_at = Set(now);
            }
            Entity::update(active).exec(self.conn).await?;
            let row = Entity::find_by_id(row.id)
                .one(self.conn)
                .await?
                .ok_or(DomainError::NotFound { entity: "device" })?;
            (row, Registration::Updated)
        } else {
            let row = device::Model {
                id: Uuid::now_v7(),
                customer_id: customer.as_uuid(),
                platform: platform.as_str().to_owned(),
                token: token.to_owned(),
                created_at: now,
                last_used_at: now,
            };
            Entity::insert(device::ActiveModel::from(row.clone()))
                .exec_without_returning(self.conn)
                .await?;
            (row, Registration::Created)
        };
        // Newest first; at most MAX_DEVICES + 1 rows exist, so reading them all is cheap (and SQLite has no
        // OFFSET without LIMIT).
        let ids: Vec<Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::CustomerId.eq(customer.as_uuid()))
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .into_tuple()
            .all(self.conn)
            .await?;
        let keep = usize::try_from(MAX_DEVICES).unwrap_or(usize::MAX);
        let extra: Vec<Uuid> = ids.into_iter().skip(keep).collect();
        if !extra.is_empty() {
            Entity::delete_many()
                .filter(Column::Id.is_in(extra))
                .exec(self.conn)
                .await?;
        }
        Ok((Device::try_from(row)?, registration))
    }

    /// The customer's devices, oldest first.
    pub async fn for_customer(&self, customer: CustomerId) -> Result<Vec<Device>, DbError> {
        Entity::find()
            .filter(Column::CustomerId.eq(customer.as_uuid()))
            .order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(self.conn)
            .await?
            .into_iter()
            .map(Device::try_from)
            .collect()
    }

    /// Deletes the customer's device `id`; false if they have no such device.
    pub async fn delete_own(&self, customer: CustomerId, id: Uuid) -> Result<bool, DbError> {
        let result = Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::CustomerId.eq(customer.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Deletes device `id` (FCM said its token is gone); false if it was already deleted.
    pub async fn delete(&self, id: Uuid) -> Result<bool, DbError> {
        let result = Entity::delete_by_id(id).exec(self.conn).await?;
        Ok(result.rows_affected > 0)
    }
}
