use cybervpn_domain::{
    Customer, CustomerId, CustomerStatus, DomainError, Email, Language, NewCustomer, TelegramId,
    Username,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};

use crate::{
    DbError,
    entity::customer::{self, Column, Entity},
};

/// Customer accounts.
#[derive(Debug, Clone, Copy)]
pub struct Customers<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Customers<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Registers a customer; a taken email or Telegram id is a `Conflict`.
    pub async fn create(
        &self,
        new: NewCustomer,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Customer, DbError> {
        let customer = new.into_customer(crate::stored_time(now));
        Entity::insert(to_active(&customer))
            .exec_without_returning(self.conn)
            .await?;
        Ok(customer)
    }

    /// Registers a customer who signs in with a password; a taken email is a `Conflict`.
    pub async fn register(
        &self,
        new: NewCustomer,
        password_hash: String,
        referral_code: Option<String>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Customer, DbError> {
        let customer = new.into_customer(crate::stored_time(now));
        let mut row = to_active(&customer);
        row.password_hash = Set(Some(password_hash));
        row.referral_code_used = Set(referral_code);
        Entity::insert(row)
            .exec_without_returning(self.conn)
            .await?;
        Ok(customer)
    }

    /// The live (not deleted) customer with this email, with their password hash if they have one.
    pub async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<(Customer, Option<String>)>, DbError> {
        let Some(row) = Entity::find()
            .filter(Column::Email.eq(email.as_str()))
            .filter(Column::DeletedAt.is_null())
            .one(self.conn)
            .await?
        else {
            return Ok(None);
        };
        let hash = row.password_hash.clone();
        Ok(Some((Customer::try_from(row)?, hash)))
    }

    /// The customer's password hash, if they have one.
    pub async fn password_hash(&self, id: CustomerId) -> Result<Option<String>, DbError> {
        Ok(self.row(id).await?.password_hash)
    }

    /// Replaces the customer's password hash (after a rehash with stronger parameters).
    pub async fn set_password_hash(&self, id: CustomerId, hash: String) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::PasswordHash, sea_orm::sea_query::Expr::value(hash))
            .filter(Column::Id.eq(id.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(())
    }

    async fn row(&self, id: CustomerId) -> Result<customer::Model, DbError> {
        Ok(Entity::find_by_id(id.as_uuid())
            .filter(Column::DeletedAt.is_null())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "customer" })?)
    }

    /// The live (not deleted) customer with this id.
    pub async fn get(&self, id: CustomerId) -> Result<Customer, DbError> {
        Entity::find_by_id(id.as_uuid())
            .filter(Column::DeletedAt.is_null())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "customer" })?
            .try_into()
    }

    /// The customer linked to this Telegram account, if any.
    pub async fn find_by_telegram_id(&self, id: TelegramId) -> Result<Option<Customer>, DbError> {
        Entity::find()
            .filter(Column::TelegramId.eq(id.get()))
            .one(self.conn)
            .await?
            .map(Customer::try_from)
            .transpose()
    }

    /// The customer with this email, if any.
    pub async fn find_by_email(&self, email: &Email) -> Result<Option<Customer>, DbError> {
        Entity::find()
            .filter(Column::Email.eq(email.as_str()))
            .one(self.conn)
            .await?
            .map(Customer::try_from)
            .transpose()
    }
}

fn to_active(c: &Customer) -> customer::ActiveModel {
    customer::ActiveModel {
        id: Set(c.id.as_uuid()),
        email: Set(c.email.as_ref().map(|e| e.as_str().to_owned())),
        telegram_id: Set(c.telegram_id.map(TelegramId::get)),
        username: Set(c.username.as_str().to_owned()),
        status: Set(c.status.as_str().to_owned()),
        language: Set(c.language.as_str().to_owned()),
        created_at: Set(c.created_at),
        updated_at: Set(c.updated_at),
        ..Default::default()
    }
}

impl TryFrom<customer::Model> for Customer {
    type Error = DbError;

    fn try_from(m: customer::Model) -> Result<Self, DbError> {
        let corrupt = |err: DomainError| DbError::corrupt("customers", err);
        Ok(Self {
            id: CustomerId::from_uuid(m.id),
            email: m
                .email
                .as_deref()
                .map(Email::parse)
                .transpose()
                .map_err(corrupt)?,
            telegram_id: m
                .telegram_id
                .map(TelegramId::new)
                .transpose()
                .map_err(corrupt)?,
            username: Username::parse(&m.username).map_err(corrupt)?,
            status: m.status.parse::<CustomerStatus>().map_err(corrupt)?,
            language: Language::parse_tag(&m.language).map_err(corrupt)?,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
