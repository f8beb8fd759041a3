//! Operations: the transactional outbox, panel identities on subscriptions, node details on servers,
//! notifications sent at most once, and snapshots of panel statistics.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(pk_uuid(Outbox::Id))
                    .col(string_len(Outbox::Job, 64))
                    .col(text(Outbox::Payload))
                    .col(text_null(Outbox::TraceContext))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(text_null(Outbox::LastError))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_outbox_pending",
            Outbox::Table,
            &[Outbox::SentAt, Outbox::CreatedAt],
            false,
        )
        .await?;

        // SQLite takes one column per ALTER TABLE.
        for column in [
            text_null(Subscriptions::SubscriptionUrl),
            small_integer_null(Subscriptions::DeviceLimit),
            timestamp_with_time_zone_null(Subscriptions::PanelSyncedAt),
        ] {
            add_column(manager, Subscriptions::Table, column).await?;
        }
        index(
            manager,
            "uq_subscriptions_panel_user",
            Subscriptions::Table,
            &[Subscriptions::PanelUserId],
            true,
        )
        .await?;

        add_column(
            manager,
            Plans::Table,
            boolean(Plans::ResetsTrafficMonthly).default(false).take(),
        )
        .await?;
        // Plans with a traffic allowance renew it every month.
        manager
            .exec_stmt(
                Query::update()
                    .table(Plans::Table)
                    .value(Plans::ResetsTrafficMonthly, true)
                    .and_where(Expr::col(Plans::TrafficLimitBytes).is_not_null())
                    .to_owned(),
            )
            .await?;

        for column in [
            string_len_null(Servers::PanelUuid, 36),
            double_null(Servers::Latitude),
            double_null(Servers::Longitude),
            big_integer(Servers::TrafficUsedBytes).default(0).take(),
            text_null(Servers::StatusMessage),
            timestamp_with_time_zone_null(Servers::LastStatusChange),
            timestamp_with_time_zone_null(Servers::SyncedAt),
        ] {
            add_column(manager, Servers::Table, column).await?;
        }
        index(
            manager,
            "uq_servers_panel_uuid",
            Servers::Table,
            &[Servers::PanelUuid],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(pk_uuid(Notifications::Id))
                    .col(string_len(Notifications::DedupKey, 160))
                    .col(string_len(Notifications::Audience, 16))
                    .col(uuid_null(Notifications::CustomerId))
                    .col(string_len(Notifications::Kind, 48))
                    .col(text(Notifications::Body))
                    .col(timestamp_with_time_zone(Notifications::CreatedAt))
                    .col(timestamp_with_time_zone_null(Notifications::SentAt))
                    .col(integer(Notifications::Attempts).default(0))
                    .col(text_null(Notifications::LastError))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_notifications_dedup_key",
            Notifications::Table,
            &[Notifications::DedupKey],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Snapshots::Table)
                    .col(string_len(Snapshots::Name, 32).primary_key())
                    .col(text(Snapshots::Body))
                    .col(timestamp_with_time_zone(Snapshots::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Snapshots::Table.into_iden(),
            Notifications::Table.into_iden(),
            Outbox::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("uq_servers_panel_uuid")
                    .table(Servers::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Servers::PanelUuid,
            Servers::Latitude,
            Servers::Longitude,
            Servers::TrafficUsedBytes,
            Servers::StatusMessage,
            Servers::LastStatusChange,
            Servers::SyncedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Servers::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Plans::Table)
                    .drop_column(Plans::ResetsTrafficMonthly)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("uq_subscriptions_panel_user")
                    .table(Subscriptions::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Subscriptions::SubscriptionUrl,
            Subscriptions::DeviceLimit,
            Subscriptions::PanelSyncedAt,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Subscriptions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

async fn add_column<T: IntoIden>(
    manager: &SchemaManager<'_>,
    table: T,
    column: ColumnDef,
) -> Result<(), DbErr> {
    let mut column = column;
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(&mut column)
                .to_owned(),
        )
        .await
}

async fn index<T: IntoIden + Copy>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[T],
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    if unique {
        stmt.unique();
    }
    for col in cols {
        stmt.col(*col);
    }
    manager.create_index(stmt.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    Id,
    Job,
    Payload,
    TraceContext,
    CreatedAt,
    SentAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden, Clone, Copy)]
enum Subscriptions {
    Table,
    PanelUserId,
    SubscriptionUrl,
    DeviceLimit,
    PanelSyncedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Plans {
    Table,
    TrafficLimitBytes,
    ResetsTrafficMonthly,
}

#[derive(DeriveIden, Clone, Copy)]
enum Servers {
    Table,
    PanelUuid,
    Latitude,
    Longitude,
    TrafficUsedBytes,
    StatusMessage,
    LastStatusChange,
    SyncedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    Id,
    DedupKey,
    Audience,
    CustomerId,
    Kind,
    Body,
    CreatedAt,
    SentAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden, Clone, Copy)]
enum Snapshots {
    Table,
    Name,
    Body,
    UpdatedAt,
}
