use chrono::{DateTime, Utc};
use cybervpn_domain::Principal;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    TransactionSession, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::refresh_token::{self, Column, Entity},
};

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now used and its successor is stored in the same family.
    Rotated {
        /// Whose session it is.
        principal: Principal,
    },
    /// The token had already been used or revoked: the whole family is now revoked.
    Reused {
        /// Whose session was compromised.
        principal: Principal,
    },
    /// The token is past its expiry.
    Expired,
    /// No such token.
    Unknown,
}

/// Refresh-token families: one per sign-in, rotated on every use.
#[derive(Debug, Clone, Copy)]
pub struct Sessions<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait + TransactionTrait> Sessions<'a, C> {
    /// The repository on `conn`.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Starts a new family with its first token (stored by hash only).
    pub async fn start(
        &self,
        principal: Principal,
        token_hash: String,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        insert(
            self.conn,
            principal,
            Uuid::now_v7(),
            token_hash,
            expires_at,
            now,
        )
        .await
    }

    /// Uses the token with `old_hash` once, storing `new_hash` as its successor; a second use revokes the family.
    pub async fn rotate(
        &self,
        old_hash: &str,
        new_hash: String,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Rotation, DbError> {
        let now = crate::stored_time(now);
        let txn = self.conn.begin().await?;
        // The conditional update is the lock: of two concurrent uses, exactly one sees a row affected.
        let claimed = Entity::update_many()
            .col_expr(Column::UsedAt, Expr::value(now))
            .filter(Column::TokenHash.eq(old_hash))
            .filter(Column::UsedAt.is_null())
            .filter(Column::RevokedAt.is_null())
            .filter(Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        let Some(row) = Entity::find()
            .filter(Column::TokenHash.eq(old_hash))
            .one(&txn)
            .await?
        else {
            return Ok(Rotation::Unknown);
        };
        let principal = principal_of(&row)?;
        let outcome = if claimed {
            insert(&txn, principal, row.family_id, new_hash, expires_at, now).await?;
            Rotation::Rotated { principal }
        } else if row.used_at.is_some() || row.revoked_at.is_some() {
            revoke_family(&txn, row.family_id, now).await?;
            Rotation::Reused { principal }
        } else {
            Rotation::Expired
        };
        txn.commit().await?;
        Ok(outcome)
    }

    /// Revokes the family of the token with `token_hash` if it belongs to `principal`; true if it did.
    pub async fn revoke_family_of(
        &self,
        principal: Principal,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let Some(row) = Entity::find()
            .filter(Column::TokenHash.eq(token_hash))
            .filter(Column::PrincipalKind.eq(principal.kind()))
            .filter(Column::PrincipalId.eq(principal.id()))
            .one(self.conn)
            .await?
        else {
            return Ok(false);
        };
        revoke_family(self.conn, row.family_id, crate::stored_time(now)).await?;
        Ok(true)
    }

    /// Revokes every session of `principal` (sign out everywhere, password change, ban).
    pub async fn revoke_all(
        &self,
        principal: Principal,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        Ok(Entity::update_many()
            .col_expr(Column::RevokedAt, Expr::value(crate::stored_time(now)))
            .filter(Column::PrincipalKind.eq(principal.kind()))
            .filter(Column::PrincipalId.eq(principal.id()))
            .filter(Column::RevokedAt.is_null())
            .exec(self.conn)
            .await?
            .rows_affected)
    }
}

async fn insert(
    conn: &impl ConnectionTrait,
    principal: Principal,
    family_id: Uuid,
    token_hash: String,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    Entity::insert(refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        family_id: Set(family_id),
        principal_kind: Set(principal.kind().to_owned()),
        principal_id: Set(principal.id()),
        token_hash: Set(token_hash),
        expires_at: Set(crate::stored_time(expires_at)),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(crate::stored_time(now)),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

async fn revoke_family(
    conn: &impl ConnectionTrait,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    Entity::update_many()
        .col_expr(Column::RevokedAt, Expr::value(now))
        .filter(Column::FamilyId.eq(family_id))
        .filter(Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

fn principal_of(row: &refresh_token::Model) -> Result<Principal, DbError> {
    Principal::from_parts(&row.principal_kind, row.principal_id)
        .ok_or_else(|| DbError::corrupt("refresh_tokens", "unknown principal kind"))
}
