//! The loyalty program: one account per customer (the paid streak in paid days, when the paid coverage ends,
//! the coverage end a grace reminder was sent for) and the bonus granted per level reached (unique per
//! customer and level, so each level's bonus is granted once; the payment that earned it is kept for refunds).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LoyaltyAccounts::Table)
                    .col(uuid(LoyaltyAccounts::CustomerId).primary_key())
                    .col(integer(LoyaltyAccounts::TenureDays).default(0))
                    .col(timestamp_with_time_zone_null(
                        LoyaltyAccounts::StreakStartedAt,
                    ))
                    .col(timestamp_with_time_zone_null(LoyaltyAccounts::PaidUntil))
                    .col(timestamp_with_time_zone_null(
                        LoyaltyAccounts::GraceNotifiedFor,
                    ))
                    .col(timestamp_with_time_zone(LoyaltyAccounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_loyalty_accounts_customer")
                            .from(LoyaltyAccounts::Table, LoyaltyAccounts::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_loyalty_accounts_paid_until")
                    .table(LoyaltyAccounts::Table)
                    .col(LoyaltyAccounts::PaidUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoyaltyRewards::Table)
                    .col(pk_uuid(LoyaltyRewards::Id))
                    .col(uuid(LoyaltyRewards::CustomerId))
                    .col(string_len(LoyaltyRewards::Level, 16))
                    .col(uuid(LoyaltyRewards::PaymentId))
                    .col(integer(LoyaltyRewards::Days))
                    .col(timestamp_with_time_zone(LoyaltyRewards::GrantedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_loyalty_rewards_customer")
                            .from(LoyaltyRewards::Table, LoyaltyRewards::CustomerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_loyalty_rewards_customer_level")
                    .table(LoyaltyRewards::Table)
                    .col(LoyaltyRewards::CustomerId)
                    .col(LoyaltyRewards::Level)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_loyalty_rewards_payment")
                    .table(LoyaltyRewards::Table)
                    .col(LoyaltyRewards::PaymentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoyaltyRewards::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(LoyaltyAccounts::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LoyaltyAccounts {
    Table,
    CustomerId,
    TenureDays,
    StreakStartedAt,
    PaidUntil,
    GraceNotifiedFor,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LoyaltyRewards {
    Table,
    Id,
    CustomerId,
    Level,
    PaymentId,
    Days,
    GrantedAt,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}
