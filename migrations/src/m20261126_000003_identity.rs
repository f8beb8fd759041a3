//! Identity: password hashes, refresh-token families, TOTP enrolments, backup codes, the staff audit log.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        for column in [
            text_null(Customers::PasswordHash),
            string_len_null(Customers::ReferralCodeUsed, 32),
            timestamp_with_time_zone_null(Customers::DeletedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customers::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(StaffAccounts::Table)
                    .add_column(text_null(StaffAccounts::PasswordHash))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(pk_uuid(RefreshTokens::Id))
                    .col(uuid(RefreshTokens::FamilyId))
                    .col(string_len(RefreshTokens::PrincipalKind, 16))
                    .col(uuid(RefreshTokens::PrincipalId))
                    .col(string_len(RefreshTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "uq_refresh_tokens_hash",
            RefreshTokens::Table,
            &[RefreshTokens::TokenHash],
            true,
        )
        .await?;
        index(
            manager,
            "ix_refresh_tokens_family",
            RefreshTokens::Table,
            &[RefreshTokens::FamilyId],
            false,
        )
        .await?;
        index(
            manager,
            "ix_refresh_tokens_principal",
            RefreshTokens::Table,
            &[RefreshTokens::PrincipalKind, RefreshTokens::PrincipalId],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(TwoFactor::Table)
                    .col(string_len(TwoFactor::PrincipalKind, 16))
                    .col(uuid(TwoFactor::PrincipalId))
                    .col(text(TwoFactor::SecretSealed))
                    .col(timestamp_with_time_zone_null(TwoFactor::ConfirmedAt))
                    .col(big_integer_null(TwoFactor::LastUsedStep))
                    .col(timestamp_with_time_zone(TwoFactor::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(TwoFactor::PrincipalKind)
                            .col(TwoFactor::PrincipalId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BackupCodes::Table)
                    .col(pk_uuid(BackupCodes::Id))
                    .col(string_len(BackupCodes::PrincipalKind, 16))
                    .col(uuid(BackupCodes::PrincipalId))
                    .col(string_len(BackupCodes::CodeHash, 64))
                    .col(timestamp_with_time_zone_null(BackupCodes::UsedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_backup_codes_principal",
            BackupCodes::Table,
            &[BackupCodes::PrincipalKind, BackupCodes::PrincipalId],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_uuid(AuditLog::Id))
                    .col(uuid(AuditLog::StaffId))
                    .col(string_len(AuditLog::Action, 64))
                    .col(string_len(AuditLog::TargetKind, 32))
                    .col(string_len(AuditLog::TargetId, 64))
                    .col(json_null(AuditLog::Before))
                    .col(json_null(AuditLog::After))
                    .col(string_len_null(AuditLog::RequestId, 128))
                    .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_audit_log_created",
            AuditLog::Table,
            &[AuditLog::CreatedAt],
            false,
        )
        .await?;
        index(
            manager,
            "ix_audit_log_staff",
            AuditLog::Table,
            &[AuditLog::StaffId],
            false,
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            BackupCodes::Table.into_iden(),
            TwoFactor::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(StaffAccounts::Table)
                    .drop_column(StaffAccounts::PasswordHash)
                    .to_owned(),
            )
            .await?;
        for column in [
            Customers::DeletedAt,
            Customers::ReferralCodeUsed,
            Customers::PasswordHash,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customers::Table)
                        .drop_column(column)
                        .to_owned(),
                )
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
enum Customers {
    Table,
    PasswordHash,
    ReferralCodeUsed,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StaffAccounts {
    Table,
    PasswordHash,
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    Id,
    FamilyId,
    PrincipalKind,
    PrincipalId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TwoFactor {
    Table,
    PrincipalKind,
    PrincipalId,
    SecretSealed,
    ConfirmedAt,
    LastUsedStep,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum BackupCodes {
    Table,
    Id,
    PrincipalKind,
    PrincipalId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    StaffId,
    Action,
    TargetKind,
    TargetId,
    Before,
    After,
    RequestId,
    CreatedAt,
}
