//! Customer notice texts reworded by staff, per kind and language (the built-in text applies otherwise).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NoticeTemplates::Table)
                    .col(string_len(NoticeTemplates::Kind, 32))
                    .col(string_len(NoticeTemplates::Language, 8))
                    .col(text(NoticeTemplates::Body))
                    .col(timestamp_with_time_zone(NoticeTemplates::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(NoticeTemplates::Kind)
                            .col(NoticeTemplates::Language),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NoticeTemplates::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum NoticeTemplates {
    Table,
    Kind,
    Language,
    Body,
    UpdatedAt,
}
