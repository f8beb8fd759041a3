//! The invite system: per-tier rules (seeded with defaults), promotions that multiply the codes a purchase
//! earns, and the codes themselves. A unique index on `invites.redeemed_by` gives each customer one free grant.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// Default rules: (tier, codes per purchase, free days for the friend).
const DEFAULT_RULES: [(&str, i32, i32); 4] = [
    ("basic", 1, 7),
    ("pro", 2, 14),
    ("ultra", 3, 21),
    ("cyber", 5, 30),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InviteRules::Table)
                    .col(string_len(InviteRules::Tier, 16).primary_key())
                    .col(integer(InviteRules::CodesPerPurchase))
                    .col(integer(InviteRules::FreeDays))
                    .col(integer(InviteRules::BonusDays))
                    .col(integer(InviteRules::ValidDays))
                    .col(timestamp_with_time_zone(InviteRules::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let now = chrono::Utc::now();
        for (tier, codes, free_days) in DEFAULT_RULES {
            let insert = Query::insert()
                .into_table(InviteRules::Table)
                .columns([
                    InviteRules::Tier,
                    InviteRules::CodesPerPurchase,
                    InviteRules::FreeDays,
                    InviteRules::BonusDays,
                    InviteRules::ValidDays,
                    InviteRules::UpdatedAt,
                ])
                .values_panic([
                    tier.into(),
                    codes.into(),
                    free_days.into(),
                    7.into(),
                    60.into(),
                    now.into(),
                ])
                .to_owned();
            manager.get_connection().execute(&insert).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(InvitePromotions::Table)
                    .col(pk_uuid(InvitePromotions::Id))
                    .col(string_len(InvitePromotions::Name, 100))
                    .col(string_len_null(InvitePromotions::Tier, 16))
                    .col(integer(InvitePromotions::Multiplier))
                    .col(timestamp_with_time_zone(InvitePromotions::StartsAt))
                    .col(timestamp_with_time_zone(InvitePromotions::EndsAt))
                    .col(timestamp_with_time_zone(InvitePromotions::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Invites::Table)
                    .col(pk_uuid(Invites::Id))
                    .col(string_len(Invites::Code, 16))
                    .col(uuid_null(Invites::OwnerId))
                    .col(string_len(Invites::Source, 16))
                    .col(uuid_null(Invites::PaymentId))
                    .col(uuid_null(Invites::IssuedBy))
                    .col(string_len_null(Invites::Note, 200))
                    .col(integer(Invites::FreeDays))
                    .col(integer(Invites::BonusDays))
                    .col(timestamp_with_time_zone(Invites::ExpiresAt))
                    .col(timestamp_with_time_zone(Invites::CreatedAt))
                    .col(uuid_null(Invites::RedeemedBy))
                    .col(timestamp_with_time_zone_null(Invites::RedeemedAt))
                    .col(timestamp_with_time_zone_null(Invites::RevokedAt))
                    .col(timestamp_with_time_zone_null(Invites::BonusPaidAt))
                    .col(uuid_null(Invites::BonusPaymentId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_invites_owner")
                            .from(Invites::Table, Invites::OwnerId)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_invites_redeemed_by")
                            .from(Invites::Table, Invites::RedeemedBy)
                            .to(Customers::Table, Customers::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns, unique) in [
            ("uq_invites_code", &[Invites::Code][..], true),
            ("uq_invites_redeemed_by", &[Invites::RedeemedBy][..], true),
            (
                "ix_invites_owner_created",
                &[Invites::OwnerId, Invites::CreatedAt][..],
                false,
            ),
            ("ix_invites_payment", &[Invites::PaymentId][..], false),
            ("ix_invites_created", &[Invites::CreatedAt][..], false),
        ] {
            let mut index = Index::create();
            index.name(name).table(Invites::Table);
            for column in columns {
                index.col(column.clone());
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Invites::Table.into_iden(),
            InvitePromotions::Table.into_iden(),
            InviteRules::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum InviteRules {
    Table,
    Tier,
    CodesPerPurchase,
    FreeDays,
    BonusDays,
    ValidDays,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum InvitePromotions {
    Table,
    Id,
    Name,
    Tier,
    Multiplier,
    StartsAt,
    EndsAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone)]
enum Invites {
    Table,
    Id,
    Code,
    OwnerId,
    Source,
    PaymentId,
    IssuedBy,
    Note,
    FreeDays,
    BonusDays,
    ExpiresAt,
    CreatedAt,
    RedeemedBy,
    RedeemedAt,
    RevokedAt,
    BonusPaidAt,
    BonusPaymentId,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
}
