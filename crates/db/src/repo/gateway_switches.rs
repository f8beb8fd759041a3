use chrono::{DateTime, Utc};
use cybervpn_domain::PaymentProvider;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, sea_query::OnConflict,
};

use crate::{DbError, entity::gateway_switch};

/// Which configured payment gateways staff switched off for new payments.
#[derive(Debug, Clone, Copy)]
pub struct GatewaySwitches<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> GatewaySwitches<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Whether staff left `provider` on (the default).
    pub async fn is_enabled(&self, provider: PaymentProvider) -> Result<bool, DbError> {
        Ok(
            gateway_switch::Entity::find_by_id(provider.as_str().to_owned())
                .one(self.conn)
                .await?
                .is_none_or(|row| row.enabled),
        )
    }

    /// Switches `provider` on or off.
    pub async fn set(
        &self,
        provider: PaymentProvider,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        gateway_switch::Entity::insert(gateway_switch::ActiveModel {
            provider: Set(provider.as_str().to_owned()),
            enabled: Set(enabled),
            updated_at: Set(crate::stored_time(now)),
        })
        .on_conflict(
            OnConflict::column(gateway_switch::Column::Provider)
                .update_columns([
                    gateway_switch::Column::Enabled,
                    gateway_switch::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }
}
