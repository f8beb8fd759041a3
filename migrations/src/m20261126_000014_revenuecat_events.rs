//! RevenueCat webhook events as they were handled: one row per event id, so a redelivered event does nothing
//! twice, and the record of events set aside (unknown customer or product, unreadable price) for staff.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RevenuecatEvents::Table)
                    .col(string_len(RevenuecatEvents::Id, 128).primary_key())
                    .col(string_len(RevenuecatEvents::EventType, 48))
                    .col(string_len_null(RevenuecatEvents::AppUserId, 128))
                    .col(string_len_null(RevenuecatEvents::ProductId, 200))
                    .col(string_len_null(RevenuecatEvents::TransactionId, 128))
                    .col(string_len_null(RevenuecatEvents::Environment, 16))
                    .col(string_len(RevenuecatEvents::Outcome, 32))
                    .col(uuid_null(RevenuecatEvents::PaymentId))
                    .col(text_null(RevenuecatEvents::Detail))
                    .col(timestamp_with_time_zone(RevenuecatEvents::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_revenuecat_events_outcome_received")
                    .table(RevenuecatEvents::Table)
                    .col(RevenuecatEvents::Outcome)
                    .col(RevenuecatEvents::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RevenuecatEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RevenuecatEvents {
    Table,
    Id,
    EventType,
    AppUserId,
    ProductId,
    TransactionId,
    Environment,
    Outcome,
    PaymentId,
    Detail,
    ReceivedAt,
}
