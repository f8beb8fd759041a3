//! Broadcasts from the bot's admin panel: the message, and one row per recipient so a delivery interrupted by
//! a restart resumes without sending anyone the message twice.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // status: draft → sending → done | cancelled. Counters are kept with the recipients' states.
        manager
            .create_table(
                Table::create()
                    .table(Broadcasts::Table)
                    .col(pk_uuid(Broadcasts::Id))
                    .col(uuid(Broadcasts::CreatedBy))
                    .col(big_integer(Broadcasts::AdminChatId))
                    .col(string_len(Broadcasts::Audience, 16))
                    .col(text(Broadcasts::Text))
                    .col(string_len_null(Broadcasts::PhotoFileId, 256))
                    .col(string_len(Broadcasts::Status, 16))
                    .col(integer(Broadcasts::Total).default(0))
                    .col(integer(Broadcasts::Sent).default(0))
                    .col(integer(Broadcasts::Blocked).default(0))
                    .col(integer(Broadcasts::Failed).default(0))
                    .col(integer(Broadcasts::Unconfirmed).default(0))
                    .col(timestamp_with_time_zone(Broadcasts::CreatedAt))
                    .col(timestamp_with_time_zone_null(Broadcasts::StartedAt))
                    .col(timestamp_with_time_zone_null(Broadcasts::FinishedAt))
                    .to_owned(),
            )
            .await?;
        // state: pending → sending (claimed by one delivery run) → sent | blocked | failed | unconfirmed.
        manager
            .create_table(
                Table::create()
                    .table(BroadcastRecipients::Table)
                    .col(uuid(BroadcastRecipients::BroadcastId))
                    .col(uuid(BroadcastRecipients::CustomerId))
                    .col(big_integer(BroadcastRecipients::TelegramId))
                    .col(string_len(BroadcastRecipients::State, 16))
                    .col(uuid_null(BroadcastRecipients::ClaimedBy))
                    .col(timestamp_with_time_zone_null(
                        BroadcastRecipients::ClaimedAt,
                    ))
                    .col(string_len_null(BroadcastRecipients::Error, 256))
                    .primary_key(
                        Index::create()
                            .col(BroadcastRecipients::BroadcastId)
                            .col(BroadcastRecipients::CustomerId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_broadcast_recipients_state")
                    .table(BroadcastRecipients::Table)
                    .col(BroadcastRecipients::BroadcastId)
                    .col(BroadcastRecipients::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            BroadcastRecipients::Table.into_iden(),
            Broadcasts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Broadcasts {
    Table,
    Id,
    CreatedBy,
    AdminChatId,
    Audience,
    Text,
    PhotoFileId,
    Status,
    Total,
    Sent,
    Blocked,
    Failed,
    Unconfirmed,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum BroadcastRecipients {
    Table,
    BroadcastId,
    CustomerId,
    TelegramId,
    State,
    ClaimedBy,
    ClaimedAt,
    Error,
}
