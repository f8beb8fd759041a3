//! Trials and referrals: one free trial per customer and per Telegram account, a referral code per
//! customer, and one referral (and bonus) per referred customer — each rule held by a unique index.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Trials::Table)
                    .col(pk_uuid(Trials::Id))
                    .col(uuid(Trials::CustomerId))
                    // Copied from the customer at activation: the trial stays taken for the Telegram
                    // account even if it is later linked to another customer.
                    .col(big_integer_null(Trials::TelegramId))
                    .col(uuid(Trials::SubscriptionId))
                    .col(timestamp_with_time_zone(Trials::ActivatedAt))
                    .col(timestamp_with_time_zone(Trials::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        // Both databases allow several NULLs in a unique index: customers without Telegram do not clash.
        index(
            manager,
            "uq_trials_customer_id",
            Trials::Table,
            &[Trials::CustomerId],
            true,
        )
        .await?;
        index(
            manager,
            "uq_trials_telegram_id",
            Trials::Table,
            &[Trials::TelegramId],
            true,
        )
        .await?;

        let mut code = string_len_null(Customers::ReferralCode, 16);
        manager
            .alter_table(
                Table::alter()
                    .table(Customers::Table)
                    .add_column(&mut code)
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_customers_referral_code",
            Customers::Table,
            &[Customers::ReferralCode],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Referrals::Table)
                    .col(pk_uuid(Referrals::Id))
                    .col(uuid(Referrals::ReferrerId))
                    .col(uuid(Referrals::ReferredId))
                    // Days granted for this referral; 0 once the referrer reached the cap.
                    .col(integer(Referrals::BonusDays))
                    .col(timestamp_with_time_zone(Referrals::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_referrals_referred_id",
            Referrals::Table,
            &[Referrals::ReferredId],
            true,
        )
        .await?;
        index(
            manager,
            "ix_referrals_referrer_id",
            Referrals::Table,
            &[Referrals::ReferrerId],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Referrals::Table.into_iden(), Trials::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("uq_customers_referral_code")
                    .table(Customers::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Customers::Table)
                    .drop_column(Customers::ReferralCode)
                    .to_owned(),
            )
            .await
    }
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
enum Trials {
    Table,
    Id,
    CustomerId,
    TelegramId,
    SubscriptionId,
    ActivatedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Customers {
    Table,
    ReferralCode,
}

#[derive(DeriveIden, Clone, Copy)]
enum Referrals {
    Table,
    Id,
    ReferrerId,
    ReferredId,
    BonusDays,
    CreatedAt,
}
