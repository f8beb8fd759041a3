//! Customer devices for push notifications: one row per FCM registration token (unique, so a token that
//! changes hands moves to its new owner), deleted with the customer.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(pk_uuid(Devices::Id))
                    .col(uuid(Devices::CustomerId))
                    .col(string_len(Devices::Platform, 16))
                    .col(text(Devices::Token))
                    .col(timestamp_with_time_zone(Devices::CreatedAt))
                    .col(timestamp_with_time_zone(Devices::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_devices_customer")
                            .from(Devices::Table, Devices::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_devices_token")
                    .table(Devices::Table)
                    .col(Devices::Token)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_devices_customer_created")
                    .table(Devices::Table)
                    .col(Devices::CustomerId)
                    .col(Devices::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Devices::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    CustomerId,
    Platform,
    Token,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}
