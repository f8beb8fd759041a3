use chrono::{DateTime, Utc};
use cybervpn_domain::{
    Customer, CustomerId, CustomerStatus, DomainError, Email, Language, NewCustomer, PlanId,
    TelegramId, Username,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, Func, LikeExpr, Query},
};

use crate::{
    DbError,
    entity::{
        customer::{self, Column, Entity},
        subscription,
    },
};

/// What staff look for in the customer list; every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerSearch {
    /// Case-insensitive substring of the email or username; when all digits, also an exact Telegram id.
    pub text: Option<String>,
    /// Only customers in this status.
    pub status: Option<CustomerStatus>,
    /// Only customers with a subscription to this plan.
    pub plan_id: Option<PlanId>,
    /// Only customers with a subscription that expires before this instant (with `plan_id`: the same
    /// subscription).
    pub expiring_before: Option<DateTime<Utc>>,
}

/// A customer as staff see them: the account and the referral code it signed up with.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// The account.
    pub customer: Customer,
    /// Referral code given at sign-up.
    pub referral_code_used: Option<String>,
}

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

    /// The customer's own referral code, if one was issued.
    pub async fn referral_code(&self, id: CustomerId) -> Result<Option<String>, DbError> {
        Ok(self.row(id).await?.referral_code)
    }

    /// Issues `code` as the customer's referral code unless they already have one; true if stored. A code
    /// held by another customer is a `Conflict`.
    pub async fn set_referral_code(&self, id: CustomerId, code: &str) -> Result<bool, DbError> {
        let result = Entity::update_many()
            .col_expr(Column::ReferralCode, Expr::value(code))
            .filter(Column::Id.eq(id.as_uuid()))
            .filter(Column::ReferralCode.is_null())
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// The live customer whose referral code this is, if any.
    pub async fn find_by_referral_code(&self, code: &str) -> Result<Option<Customer>, DbError> {
        Entity::find()
            .filter(Column::ReferralCode.eq(code))
            .filter(Column::DeletedAt.is_null())
            .one(self.conn)
            .await?
            .map(Customer::try_from)
            .transpose()
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

    /// Live customers matching `search`, newest first, limited to ids below `before` (the last id of the
    /// previous page): keyset pagination over time-ordered ids, stable while customers sign up.
    pub async fn search(
        &self,
        search: &CustomerSearch,
        before: Option<CustomerId>,
        limit: u64,
    ) -> Result<Vec<CustomerRecord>, DbError> {
        let mut query = Entity::find().filter(Column::DeletedAt.is_null());
        if let Some(before) = before {
            query = query.filter(Column::Id.lt(before.as_uuid()));
        }
        if let Some(text) = search
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            query = query.filter(text_matches(text));
        }
        if let Some(status) = search.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        if search.plan_id.is_some() || search.expiring_before.is_some() {
            let mut subscribed = Query::select();
            subscribed
                .column((subscription::Entity, subscription::Column::CustomerId))
                .from(subscription::Entity);
            if let Some(plan_id) = search.plan_id {
                subscribed.and_where(subscription::Column::PlanId.eq(plan_id.as_uuid()));
            }
            if let Some(instant) = search.expiring_before {
                subscribed.and_where(subscription::Column::ExpiresAt.lt(instant));
            }
            query = query.filter(Column::Id.in_subquery(subscribed.to_owned()));
        }
        query
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(self.conn)
            .await?
            .into_iter()
            .map(CustomerRecord::try_from)
            .collect()
    }

    /// Which of `ids` are live: not deleted and not disabled by staff.
    pub async fn live_among(
        &self,
        ids: &[CustomerId],
    ) -> Result<std::collections::HashSet<CustomerId>, DbError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let live: Vec<uuid::Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Id.is_in(ids))
            .filter(Column::DeletedAt.is_null())
            .filter(Column::Status.ne(cybervpn_domain::CustomerStatus::Disabled.as_str()))
            .into_tuple()
            .all(self.conn)
            .await?;
        Ok(live.into_iter().map(CustomerId::from_uuid).collect())
    }

    /// The live customer with this id and their referral code.
    pub async fn record(&self, id: CustomerId) -> Result<CustomerRecord, DbError> {
        self.row(id).await?.try_into()
    }

    /// Like [`Customers::record`], locking the row until the transaction ends, so a change and the audit
    /// entry describing it see the same state (PostgreSQL; SQLite serialises writers anyway).
    pub async fn lock(&self, id: CustomerId) -> Result<CustomerRecord, DbError> {
        Entity::find_by_id(id.as_uuid())
            .filter(Column::DeletedAt.is_null())
            .lock_exclusive()
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "customer" })?
            .try_into()
    }

    /// Stores what staff may change on a live customer: username, language, status and `updated_at`.
    pub async fn update(&self, customer: &Customer) -> Result<(), DbError> {
        let result = Entity::update_many()
            .col_expr(Column::Username, Expr::value(customer.username.as_str()))
            .col_expr(Column::Language, Expr::value(customer.language.as_str()))
            .col_expr(Column::Status, Expr::value(customer.status.as_str()))
            .col_expr(
                Column::UpdatedAt,
                Expr::value(crate::stored_time(customer.updated_at)),
            )
            .filter(Column::Id.eq(customer.id.as_uuid()))
            .filter(Column::DeletedAt.is_null())
            .exec(self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(DomainError::NotFound { entity: "customer" }.into());
        }
        Ok(())
    }

    /// Soft-deletes a live customer: the row stays for payments and audit, but every personal field is
    /// scrubbed (email, Telegram id, password hash, referral code) and the username becomes
    /// `deleted_<last 8 hex digits of the id>` (the random part of a UUID v7).
    pub async fn soft_delete(&self, id: CustomerId, now: DateTime<Utc>) -> Result<(), DbError> {
        let now = crate::stored_time(now);
        let hex = id.as_uuid().simple().to_string();
        let username = format!("deleted_{}", hex.get(hex.len() - 8..).unwrap_or(&hex));
        let result = Entity::update_many()
            .col_expr(Column::DeletedAt, Expr::value(now))
            .col_expr(Column::UpdatedAt, Expr::value(now))
            .col_expr(Column::Email, Expr::value(Option::<String>::None))
            .col_expr(Column::TelegramId, Expr::value(Option::<i64>::None))
            .col_expr(Column::Username, Expr::value(username))
            .col_expr(Column::PasswordHash, Expr::value(Option::<String>::None))
            .col_expr(
                Column::ReferralCodeUsed,
                Expr::value(Option::<String>::None),
            )
            .filter(Column::Id.eq(id.as_uuid()))
            .filter(Column::DeletedAt.is_null())
            .exec(self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(DomainError::NotFound { entity: "customer" }.into());
        }
        Ok(())
    }
}

/// `LOWER(email) LIKE %text% OR LOWER(username) LIKE %text%`, or the exact Telegram id when `text` is a
/// number; the same SQL on PostgreSQL and SQLite (whose `LIKE` has no default escape character).
fn text_matches(text: &str) -> Condition {
    let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
    let like = |column: Column| {
        Expr::expr(Func::lower(Expr::col((Entity, column))))
            .like(LikeExpr::new(pattern.clone()).escape('\\'))
    };
    let mut any = Condition::any()
        .add(like(Column::Email))
        .add(like(Column::Username));
    if text.bytes().all(|b| b.is_ascii_digit())
        && let Ok(id) = text.parse::<i64>()
    {
        any = any.add(Column::TelegramId.eq(id));
    }
    any
}

/// Escapes `LIKE` wildcards so user input matches literally.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl TryFrom<customer::Model> for CustomerRecord {
    type Error = DbError;

    fn try_from(mut m: customer::Model) -> Result<Self, DbError> {
        let referral_code_used = m.referral_code_used.take();
        Ok(Self {
            customer: m.try_into()?,
            referral_code_used,
        })
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

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_in_input_are_escaped() {
        assert_eq!(escape_like("neo"), "neo");
        assert_eq!(escape_like("100%_x\\y"), "100\\%\\_x\\\\y");
    }
}
