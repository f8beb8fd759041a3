use chrono::{DateTime, Utc};
use cybervpn_domain::{DomainError, Principal};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionSession,
    TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::{backup_code, two_factor},
};

/// A TOTP enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// The secret, sealed with the platform's encryption key.
    pub secret_sealed: String,
    /// Whether a code has confirmed it (only then does it guard sign-in).
    pub confirmed: bool,
}

/// TOTP enrolments and backup codes.
#[derive(Debug, Clone, Copy)]
pub struct TwoFactor<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait + TransactionTrait> TwoFactor<'a, C> {
    /// The repository on `conn`.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// The enrolment of `principal`, if any.
    pub async fn get(&self, principal: Principal) -> Result<Option<Enrollment>, DbError> {
        Ok(find(principal).one(self.conn).await?.map(|row| Enrollment {
            secret_sealed: row.secret_sealed,
            confirmed: row.confirmed_at.is_some(),
        }))
    }

    /// Starts (or restarts) an unconfirmed enrolment; a confirmed one is a `Conflict`.
    pub async fn begin(
        &self,
        principal: Principal,
        secret_sealed: String,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        let txn = self.conn.begin().await?;
        if let Some(existing) = find(principal).one(&txn).await? {
            if existing.confirmed_at.is_some() {
                return Err(DomainError::Conflict {
                    what: "two-factor enrolment",
                }
                .into());
            }
            find_delete(principal).exec(&txn).await?;
        }
        two_factor::Entity::insert(two_factor::ActiveModel {
            principal_kind: Set(principal.kind().to_owned()),
            principal_id: Set(principal.id()),
            secret_sealed: Set(secret_sealed),
            confirmed_at: Set(None),
            last_used_step: Set(None),
            created_at: Set(crate::stored_time(now)),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Confirms a pending enrolment with the step of a valid code and stores the backup-code hashes.
    pub async fn confirm(
        &self,
        principal: Principal,
        step: u64,
        backup_code_hashes: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let txn = self.conn.begin().await?;
        let confirmed = two_factor::Entity::update_many()
            .col_expr(
                two_factor::Column::ConfirmedAt,
                Expr::value(crate::stored_time(now)),
            )
            .col_expr(
                two_factor::Column::LastUsedStep,
                Expr::value(step_value(step)),
            )
            .filter(two_factor::Column::PrincipalKind.eq(principal.kind()))
            .filter(two_factor::Column::PrincipalId.eq(principal.id()))
            .filter(two_factor::Column::ConfirmedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !confirmed {
            return Ok(false);
        }
        backup_code::Entity::delete_many()
            .filter(backup_code::Column::PrincipalKind.eq(principal.kind()))
            .filter(backup_code::Column::PrincipalId.eq(principal.id()))
            .exec(&txn)
            .await?;
        backup_code::Entity::insert_many(backup_code_hashes.into_iter().map(|hash| {
            backup_code::ActiveModel {
                id: Set(Uuid::now_v7()),
                principal_kind: Set(principal.kind().to_owned()),
                principal_id: Set(principal.id()),
                code_hash: Set(hash),
                used_at: Set(None),
            }
        }))
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Records that the code of `step` was used; false if that step (or a later one) already was, so a code
    /// is accepted at most once even under concurrent requests.
    pub async fn use_step(&self, principal: Principal, step: u64) -> Result<bool, DbError> {
        let step = step_value(step);
        Ok(two_factor::Entity::update_many()
            .col_expr(two_factor::Column::LastUsedStep, Expr::value(step))
            .filter(two_factor::Column::PrincipalKind.eq(principal.kind()))
            .filter(two_factor::Column::PrincipalId.eq(principal.id()))
            .filter(two_factor::Column::ConfirmedAt.is_not_null())
            .filter(
                two_factor::Column::LastUsedStep
                    .is_null()
                    .or(two_factor::Column::LastUsedStep.lt(step)),
            )
            .exec(self.conn)
            .await?
            .rows_affected
            == 1)
    }

    /// Spends one unused backup code with this hash; false if there is none.
    pub async fn use_backup_code(
        &self,
        principal: Principal,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        Ok(backup_code::Entity::update_many()
            .col_expr(
                backup_code::Column::UsedAt,
                Expr::value(crate::stored_time(now)),
            )
            .filter(backup_code::Column::PrincipalKind.eq(principal.kind()))
            .filter(backup_code::Column::PrincipalId.eq(principal.id()))
            .filter(backup_code::Column::CodeHash.eq(code_hash))
            .filter(backup_code::Column::UsedAt.is_null())
            .exec(self.conn)
            .await?
            .rows_affected
            >= 1)
    }

    /// Removes the enrolment and its backup codes.
    pub async fn remove(&self, principal: Principal) -> Result<(), DbError> {
        let txn = self.conn.begin().await?;
        find_delete(principal).exec(&txn).await?;
        backup_code::Entity::delete_many()
            .filter(backup_code::Column::PrincipalKind.eq(principal.kind()))
            .filter(backup_code::Column::PrincipalId.eq(principal.id()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }
}

fn find(principal: Principal) -> sea_orm::Select<two_factor::Entity> {
    two_factor::Entity::find()
        .filter(two_factor::Column::PrincipalKind.eq(principal.kind()))
        .filter(two_factor::Column::PrincipalId.eq(principal.id()))
}

fn find_delete(principal: Principal) -> sea_orm::DeleteMany<two_factor::Entity> {
    two_factor::Entity::delete_many()
        .filter(two_factor::Column::PrincipalKind.eq(principal.kind()))
        .filter(two_factor::Column::PrincipalId.eq(principal.id()))
}

/// TOTP steps (seconds / 30) fit an `i64` for billions of years.
fn step_value(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}
