//! Staff accounts linked to Telegram users (for the bot's admin panel), by one-time codes.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StaffTelegramLinks::Table)
                    .col(pk_uuid(StaffTelegramLinks::StaffId))
                    .col(big_integer(StaffTelegramLinks::TelegramId))
                    .col(timestamp_with_time_zone(StaffTelegramLinks::LinkedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_staff_telegram_links_telegram_id")
                    .table(StaffTelegramLinks::Table)
                    .col(StaffTelegramLinks::TelegramId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Only the SHA-256 of a code is stored; a code links once, before it expires.
        manager
            .create_table(
                Table::create()
                    .table(StaffLinkCodes::Table)
                    .col(string_len(StaffLinkCodes::CodeHash, 64).primary_key())
                    .col(uuid(StaffLinkCodes::StaffId))
                    .col(timestamp_with_time_zone(StaffLinkCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(StaffLinkCodes::UsedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StaffLinkCodes::Table.into_iden(),
            StaffTelegramLinks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum StaffTelegramLinks {
    Table,
    StaffId,
    TelegramId,
    LinkedAt,
}

#[derive(DeriveIden)]
enum StaffLinkCodes {
    Table,
    CodeHash,
    StaffId,
    ExpiresAt,
    UsedAt,
}
