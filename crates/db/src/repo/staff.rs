use cybervpn_domain::{DomainError, Email, StaffAccount, StaffId, StaffRole, Username};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};

use crate::{
    DbError,
    entity::staff_account::{self, Column, Entity},
};

/// Staff accounts.
#[derive(Debug, Clone, Copy)]
pub struct Staff<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Staff<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Creates an active staff account; a taken email is a `Conflict`.
    pub async fn create(
        &self,
        email: Email,
        username: Username,
        role: StaffRole,
        password_hash: String,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<StaffAccount, DbError> {
        let now = crate::stored_time(now);
        let account = StaffAccount {
            id: StaffId::new(),
            email,
            username,
            role,
            is_active: true,
            created_at: now,
        };
        Entity::insert(staff_account::ActiveModel {
            id: Set(account.id.as_uuid()),
            email: Set(account.email.as_str().to_owned()),
            username: Set(account.username.as_str().to_owned()),
            role: Set(role.as_str().to_owned()),
            is_active: Set(true),
            password_hash: Set(Some(password_hash)),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(account)
    }

    /// The staff account with this id.
    pub async fn get(&self, id: StaffId) -> Result<StaffAccount, DbError> {
        Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound {
                entity: "staff account",
            })?
            .try_into()
    }

    /// The staff account with this email and its password hash.
    pub async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(StaffAccount, Option<String>)>, DbError> {
        let Some(row) = Entity::find()
            .filter(Column::Email.eq(email.as_str()))
            .one(self.conn)
            .await?
        else {
            return Ok(None);
        };
        let hash = row.password_hash.clone();
        Ok(Some((StaffAccount::try_from(row)?, hash)))
    }

    /// Every staff account, oldest first.
    pub async fn list(&self) -> Result<Vec<StaffAccount>, DbError> {
        Entity::find()
            .order_by_asc(Column::CreatedAt)
            .all(self.conn)
            .await?
            .into_iter()
            .map(StaffAccount::try_from)
            .collect()
    }

    /// Stores a changed role or active flag.
    pub async fn update(&self, account: &StaffAccount) -> Result<(), DbError> {
        let result = Entity::update_many()
            .col_expr(Column::Role, Expr::value(account.role.as_str()))
            .col_expr(Column::IsActive, Expr::value(account.is_active))
            .col_expr(
                Column::UpdatedAt,
                Expr::value(crate::stored_time(chrono::Utc::now())),
            )
            .filter(Column::Id.eq(account.id.as_uuid()))
            .exec(self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(DomainError::NotFound {
                entity: "staff account",
            }
            .into());
        }
        Ok(())
    }

    /// The account's password hash, if set.
    pub async fn password_hash(&self, id: StaffId) -> Result<Option<String>, DbError> {
        Ok(Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound {
                entity: "staff account",
            })?
            .password_hash)
    }

    /// Replaces the account's password hash.
    pub async fn set_password_hash(&self, id: StaffId, hash: String) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::PasswordHash, Expr::value(hash))
            .filter(Column::Id.eq(id.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(())
    }
}

impl TryFrom<staff_account::Model> for StaffAccount {
    type Error = DbError;

    fn try_from(m: staff_account::Model) -> Result<Self, DbError> {
        let corrupt = |err: DomainError| DbError::corrupt("staff_accounts", err);
        Ok(Self {
            id: StaffId::from_uuid(m.id),
            email: Email::parse(&m.email).map_err(corrupt)?,
            username: Username::parse(&m.username).map_err(corrupt)?,
            role: m.role.parse::<StaffRole>().map_err(corrupt)?,
            is_active: m.is_active,
            created_at: m.created_at,
        })
    }
}
