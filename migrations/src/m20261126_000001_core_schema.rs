//! Customers, staff, plans and prices, subscriptions, payments, servers.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(pk_uuid(Customers::Id))
                    .col(string_len_null(Customers::Email, 254))
                    .col(big_integer_null(Customers::TelegramId))
                    .col(string_len(Customers::Username, 32))
                    .col(string_len(Customers::Status, 16))
                    .col(string_len(Customers::Language, 8))
                    .col(timestamp_with_time_zone(Customers::CreatedAt))
                    .col(timestamp_with_time_zone(Customers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            "uq_customers_email",
            Customers::Table,
            &[Customers::Email],
        )
        .await?;
        unique(
            manager,
            "uq_customers_telegram_id",
            Customers::Table,
            &[Customers::TelegramId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(StaffAccounts::Table)
                    .col(pk_uuid(StaffAccounts::Id))
                    .col(string_len(StaffAccounts::Email, 254))
                    .col(string_len(StaffAccounts::Username, 32))
                    .col(string_len(StaffAccounts::Role, 16))
                    .col(boolean(StaffAccounts::IsActive))
                    .col(timestamp_with_time_zone(StaffAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(StaffAccounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            "uq_staff_accounts_email",
            StaffAccounts::Table,
            &[StaffAccounts::Email],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Plans::Table)
                    .col(pk_uuid(Plans::Id))
                    .col(string_len(Plans::Code, 32))
                    .col(string_len(Plans::Tier, 16))
                    .col(small_integer(Plans::DurationDays))
                    .col(big_integer_null(Plans::TrafficLimitBytes))
                    .col(small_integer(Plans::DeviceLimit))
                    .col(boolean(Plans::IsActive))
                    .col(integer(Plans::SortOrder))
                    .col(timestamp_with_time_zone(Plans::CreatedAt))
                    .col(timestamp_with_time_zone(Plans::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique(manager, "uq_plans_code", Plans::Table, &[Plans::Code]).await?;

        manager
            .create_table(
                Table::create()
                    .table(PlanPrices::Table)
                    .col(uuid(PlanPrices::PlanId))
                    .col(string_len(PlanPrices::Currency, 3))
                    .col(big_integer(PlanPrices::AmountMinor))
                    .primary_key(
                        Index::create()
                            .col(PlanPrices::PlanId)
                            .col(PlanPrices::Currency),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_plan_prices_plan")
                            .from(PlanPrices::Table, PlanPrices::PlanId)
                            .to(Plans::Table, Plans::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Subscriptions::Table)
                    .col(pk_uuid(Subscriptions::Id))
                    .col(uuid(Subscriptions::CustomerId))
                    .col(uuid_null(Subscriptions::PlanId))
                    .col(string_len(Subscriptions::Status, 16))
                    .col(timestamp_with_time_zone(Subscriptions::ExpiresAt))
                    .col(big_integer(Subscriptions::TrafficUsedBytes))
                    .col(big_integer_null(Subscriptions::TrafficLimitBytes))
                    .col(big_integer_null(Subscriptions::PanelUserId))
                    .col(string_len_null(Subscriptions::PanelShortUuid, 64))
                    .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(Subscriptions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscriptions_customer")
                            .from(Subscriptions::Table, Subscriptions::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_subscriptions_plan")
                            .from(Subscriptions::Table, Subscriptions::PlanId)
                            .to(Plans::Table, Plans::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_subscriptions_customer",
            Subscriptions::Table,
            &[Subscriptions::CustomerId],
        )
        .await?;
        index(
            manager,
            "ix_subscriptions_status_expires",
            Subscriptions::Table,
            &[Subscriptions::Status, Subscriptions::ExpiresAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(pk_uuid(Payments::Id))
                    .col(uuid(Payments::CustomerId))
                    .col(uuid_null(Payments::PlanId))
                    .col(big_integer(Payments::AmountMinor))
                    .col(string_len(Payments::Currency, 3))
                    .col(string_len(Payments::Status, 16))
                    .col(string_len(Payments::Provider, 16))
                    .col(string_len_null(Payments::ProviderPaymentId, 128))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone(Payments::UpdatedAt))
                    .check(Expr::col(Payments::AmountMinor).gte(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_payments_customer")
                            .from(Payments::Table, Payments::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_payments_plan")
                            .from(Payments::Table, Payments::PlanId)
                            .to(Plans::Table, Plans::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            "uq_payments_provider_payment",
            Payments::Table,
            &[Payments::Provider, Payments::ProviderPaymentId],
        )
        .await?;
        index(
            manager,
            "ix_payments_customer",
            Payments::Table,
            &[Payments::CustomerId],
        )
        .await?;
        index(
            manager,
            "ix_payments_status_created",
            Payments::Table,
            &[Payments::Status, Payments::CreatedAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Servers::Table)
                    .col(pk_uuid(Servers::Id))
                    .col(string_len(Servers::Name, 64))
                    .col(string_len(Servers::Address, 253))
                    .col(integer(Servers::Port))
                    .col(string_len(Servers::CountryCode, 2))
                    .col(string_len(Servers::Status, 16))
                    .col(boolean(Servers::IsConnected))
                    .col(boolean(Servers::IsDisabled))
                    .col(integer(Servers::UsersOnline))
                    .col(timestamp_with_time_zone(Servers::CreatedAt))
                    .col(timestamp_with_time_zone(Servers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        unique(manager, "uq_servers_name", Servers::Table, &[Servers::Name]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Servers::Table.into_iden(),
            Payments::Table.into_iden(),
            Subscriptions::Table.into_iden(),
            PlanPrices::Table.into_iden(),
            Plans::Table.into_iden(),
            StaffAccounts::Table.into_iden(),
            Customers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn unique<T: IntoIden + Copy>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[T],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table).unique();
    for col in cols {
        stmt.col(*col);
    }
    manager.create_index(stmt.to_owned()).await
}

async fn index<T: IntoIden + Copy>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[T],
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.name(name).table(table);
    for col in cols {
        stmt.col(*col);
    }
    manager.create_index(stmt.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Customers {
    Table,
    Id,
    Email,
    TelegramId,
    Username,
    Status,
    Language,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StaffAccounts {
    Table,
    Id,
    Email,
    Username,
    Role,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Plans {
    Table,
    Id,
    Code,
    Tier,
    DurationDays,
    TrafficLimitBytes,
    DeviceLimit,
    IsActive,
    SortOrder,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum PlanPrices {
    Table,
    PlanId,
    Currency,
    AmountMinor,
}

#[derive(DeriveIden, Clone, Copy)]
enum Subscriptions {
    Table,
    Id,
    CustomerId,
    PlanId,
    Status,
    ExpiresAt,
    TrafficUsedBytes,
    TrafficLimitBytes,
    PanelUserId,
    PanelShortUuid,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Id,
    CustomerId,
    PlanId,
    AmountMinor,
    Currency,
    Status,
    Provider,
    ProviderPaymentId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Servers {
    Table,
    Id,
    Name,
    Address,
    Port,
    CountryCode,
    Status,
    IsConnected,
    IsDisabled,
    UsersOnline,
    CreatedAt,
    UpdatedAt,
}
