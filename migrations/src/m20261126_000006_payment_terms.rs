//! Payment terms frozen at creation (days bought, invoice, expiry) and the completion record.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [
            integer(Payments::Days).default(0).take(),
            text_null(Payments::InvoiceUrl),
            timestamp_with_time_zone_null(Payments::ExpiresAt),
            timestamp_with_time_zone_null(Payments::CompletedAt),
            text_null(Payments::ReviewReason),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            Payments::Days,
            Payments::InvoiceUrl,
            Payments::ExpiresAt,
            Payments::CompletedAt,
            Payments::ReviewReason,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Days,
    InvoiceUrl,
    ExpiresAt,
    CompletedAt,
    ReviewReason,
}
