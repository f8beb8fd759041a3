//! Promo codes and their redemptions (one per customer and code, one per payment, held by unique indexes),
//! and the promo code and refund record on payments.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PromoCodes::Table)
                    .col(pk_uuid(PromoCodes::Id))
                    .col(string_len(PromoCodes::Code, 32))
                    // percent_off | amount_off | bonus_days, with the one matching value column set.
                    .col(string_len(PromoCodes::Kind, 16))
                    .col(integer_null(PromoCodes::PercentOff))
                    .col(big_integer_null(PromoCodes::AmountOffMinor))
                    .col(string_len_null(PromoCodes::Currency, 3))
                    .col(integer_null(PromoCodes::BonusDays))
                    .col(uuid_null(PromoCodes::PlanId))
                    .col(integer_null(PromoCodes::MaxUses))
                    // Raised and lowered only by conditional updates, so it never passes max_uses.
                    .col(integer(PromoCodes::UsedCount).default(0))
                    .col(timestamp_with_time_zone_null(PromoCodes::ValidFrom))
                    .col(timestamp_with_time_zone_null(PromoCodes::ValidUntil))
                    .col(boolean(PromoCodes::IsActive).default(true))
                    .col(timestamp_with_time_zone(PromoCodes::CreatedAt))
                    .col(timestamp_with_time_zone(PromoCodes::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_promo_codes_code",
            PromoCodes::Table,
            &[PromoCodes::Code],
        )
        .await?;

        // A redemption lives while its payment is pending or completed; releasing it deletes the row.
        manager
            .create_table(
                Table::create()
                    .table(PromoRedemptions::Table)
                    .col(pk_uuid(PromoRedemptions::Id))
                    .col(uuid(PromoRedemptions::PromoCodeId))
                    .col(uuid(PromoRedemptions::CustomerId))
                    .col(uuid(PromoRedemptions::PaymentId))
                    .col(timestamp_with_time_zone(PromoRedemptions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_promo_redemptions_customer",
            PromoRedemptions::Table,
            &[PromoRedemptions::PromoCodeId, PromoRedemptions::CustomerId],
        )
        .await?;
        index(
            manager,
            "uq_promo_redemptions_payment",
            PromoRedemptions::Table,
            &[PromoRedemptions::PaymentId],
        )
        .await?;

        // SQLite takes one column per ALTER TABLE.
        for column in [
            uuid_null(Payments::PromoCodeId),
            timestamp_with_time_zone_null(Payments::RefundedAt),
            text_null(Payments::RefundReason),
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
            Payments::PromoCodeId,
            Payments::RefundedAt,
            Payments::RefundReason,
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
        for table in [
            PromoRedemptions::Table.into_iden(),
            PromoCodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn index<T: IntoIden + Copy>(
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

#[derive(DeriveIden, Clone, Copy)]
enum PromoCodes {
    Table,
    Id,
    Code,
    Kind,
    PercentOff,
    AmountOffMinor,
    Currency,
    BonusDays,
    PlanId,
    MaxUses,
    UsedCount,
    ValidFrom,
    ValidUntil,
    IsActive,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PromoRedemptions {
    Table,
    Id,
    PromoCodeId,
    CustomerId,
    PaymentId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    PromoCodeId,
    RefundedAt,
    RefundReason,
}
