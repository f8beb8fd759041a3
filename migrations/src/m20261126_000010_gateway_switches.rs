//! Payment gateways staff switched off for new payments (a configured gateway is on unless a row says off).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GatewaySwitches::Table)
                    .col(string_len(GatewaySwitches::Provider, 32).primary_key())
                    .col(boolean(GatewaySwitches::Enabled))
                    .col(timestamp_with_time_zone(GatewaySwitches::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GatewaySwitches::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum GatewaySwitches {
    Table,
    Provider,
    Enabled,
    UpdatedAt,
}
