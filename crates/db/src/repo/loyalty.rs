//! Loyalty accounts (a customer's paid streak) and the level bonuses granted; the unique index on
//! `(customer_id, level)` holds "each level's bonus once".

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_domain::{CustomerId, LoyaltyLevel, PaymentId, Tenure, loyalty::GRACE_DAYS};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    DbError,
    entity::{loyalty_account, loyalty_reward},
};

/// A customer's loyalty account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoyaltyAccount {
    /// Whose.
    pub customer_id: CustomerId,
    /// The paid streak.
    pub tenure: Tenure,
    /// When the current streak started (payments credited before it do not count in it).
    pub streak_started_at: Option<DateTime<Utc>>,
    /// The coverage end a grace reminder was sent for.
    pub grace_notified_for: Option<DateTime<Utc>>,
}

impl LoyaltyAccount {
    /// A customer who has paid nothing yet.
    pub const fn new(customer_id: CustomerId) -> Self {
        Self {
            customer_id,
            tenure: Tenure {
                days: 0,
                paid_until: None,
            },
            streak_started_at: None,
            grace_notified_for: None,
        }
    }
}

/// A level bonus granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoyaltyReward {
    /// The level reached.
    pub level: LoyaltyLevel,
    /// The payment that reached it.
    pub payment_id: PaymentId,
    /// Bonus days granted.
    pub days: u32,
    /// When.
    pub granted_at: DateTime<Utc>,
}

/// Loyalty accounts and rewards.
#[derive(Debug, Clone, Copy)]
pub struct Loyalty<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Loyalty<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// The customer's account (a fresh one if they never paid).
    pub async fn account(&self, customer: CustomerId) -> Result<LoyaltyAccount, DbError> {
        loyalty_account::Entity::find_by_id(customer.as_uuid())
            .one(self.conn)
            .await?
            .map_or(Ok(LoyaltyAccount::new(customer)), LoyaltyAccount::try_from)
    }

    /// Stores the account (insert or update). Callers hold the customer's lock.
    pub async fn save(&self, account: &LoyaltyAccount, now: DateTime<Utc>) -> Result<(), DbError> {
        let days = i32::try_from(account.tenure.days)
            .map_err(|err| DbError::corrupt("loyalty_accounts", err))?;
        let row = loyalty_account::ActiveModel {
            customer_id: Set(account.customer_id.as_uuid()),
            tenure_days: Set(days),
            streak_started_at: Set(account.streak_started_at.map(crate::stored_time)),
            paid_until: Set(account.tenure.paid_until.map(crate::stored_time)),
            grace_notified_for: Set(account.grace_notified_for.map(crate::stored_time)),
            updated_at: Set(crate::stored_time(now)),
        };
        let exists = loyalty_account::Entity::find_by_id(account.customer_id.as_uuid())
            .one(self.conn)
            .await?
            .is_some();
        if exists {
            loyalty_account::Entity::update(row).exec(self.conn).await?;
        } else {
            loyalty_account::Entity::insert(row)
                .exec_without_returning(self.conn)
                .await?;
        }
        Ok(())
    }

    /// The bonuses granted to the customer, lowest level first.
    pub async fn rewards(&self, customer: CustomerId) -> Result<Vec<LoyaltyReward>, DbError> {
        let mut rewards = loyalty_reward::Entity::find()
            .filter(loyalty_reward::Column::CustomerId.eq(customer.as_uuid()))
            .all(self.conn)
            .await?
            .into_iter()
            .map(LoyaltyReward::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        rewards.sort_by_key(|reward| reward.level);
        Ok(rewards)
    }

    /// Records a granted bonus; a second one for the same level is a `Conflict`.
    pub async fn record_reward(
        &self,
        customer: CustomerId,
        reward: &LoyaltyReward,
    ) -> Result<(), DbError> {
        loyalty_reward::Entity::insert(loyalty_reward::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            customer_id: Set(customer.as_uuid()),
            level: Set(reward.level.as_str().to_owned()),
            payment_id: Set(reward.payment_id.as_uuid()),
            days: Set(i32::try_from(reward.days)
                .map_err(|err| DbError::corrupt("loyalty_rewards", err))?),
            granted_at: Set(crate::stored_time(reward.granted_at)),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Removes and returns the bonuses `payment` earned (it was refunded), so the levels can be earned again.
    pub async fn revoke_rewards_of(
        &self,
        payment: PaymentId,
    ) -> Result<Vec<LoyaltyReward>, DbError> {
        let rows = loyalty_reward::Entity::find()
            .filter(loyalty_reward::Column::PaymentId.eq(payment.as_uuid()))
            .all(self.conn)
            .await?;
        loyalty_reward::Entity::delete_many()
            .filter(loyalty_reward::Column::PaymentId.eq(payment.as_uuid()))
            .exec(self.conn)
            .await?;
        rows.into_iter().map(LoyaltyReward::try_from).collect()
    }

    /// Customers at each level at `now` (streaks within their grace period count), Bronze excluded.
    pub async fn level_counts(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(LoyaltyLevel, u64)>, DbError> {
        use sea_orm::PaginatorTrait;
        let live = crate::stored_time(now - TimeDelta::days(GRACE_DAYS));
        let days = |level: LoyaltyLevel| i32::try_from(level.threshold_days()).unwrap_or(i32::MAX);
        let mut counts = Vec::new();
        for level in LoyaltyLevel::ALL
            .iter()
            .copied()
            .filter(|l| l.bonus_days() > 0)
        {
            let mut query = loyalty_account::Entity::find()
                .filter(loyalty_account::Column::PaidUntil.gt(live))
                .filter(loyalty_account::Column::TenureDays.gte(days(level)));
            if let Some(next) = level.next() {
                query = query.filter(loyalty_account::Column::TenureDays.lt(days(next)));
            }
            counts.push((level, query.count(self.conn).await?));
        }
        Ok(counts)
    }

    /// Accounts whose paid coverage ended and whose grace period ends within `ahead` of `now`, with a level
    /// above Bronze and no reminder yet for this coverage end.
    pub async fn grace_ending(
        &self,
        now: DateTime<Utc>,
        ahead: TimeDelta,
    ) -> Result<Vec<LoyaltyAccount>, DbError> {
        let grace = TimeDelta::days(GRACE_DAYS);
        let rows = loyalty_account::Entity::find()
            .filter(loyalty_account::Column::PaidUntil.gt(crate::stored_time(now - grace)))
            .filter(loyalty_account::Column::PaidUntil.lte(crate::stored_time(now + ahead - grace)))
            .filter(
                loyalty_account::Column::TenureDays
                    .gte(i32::try_from(LoyaltyLevel::Silver.threshold_days()).unwrap_or(i32::MAX)),
            )
            .filter(
                Condition::any()
                    .add(loyalty_account::Column::GraceNotifiedFor.is_null())
                    .add(ExprTrait::ne(
                        Expr::col(loyalty_account::Column::GraceNotifiedFor),
                        Expr::col(loyalty_account::Column::PaidUntil),
                    )),
            )
            .order_by_asc(loyalty_account::Column::PaidUntil)
            .all(self.conn)
            .await?;
        rows.into_iter().map(LoyaltyAccount::try_from).collect()
    }

    /// Accounts whose grace period ended at `now` but whose streak is still stored, oldest first, at most
    /// `limit`.
    pub async fn lapsed(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<LoyaltyAccount>, DbError> {
        let rows = loyalty_account::Entity::find()
            .filter(loyalty_account::Column::TenureDays.gt(0))
            .filter(
                loyalty_account::Column::PaidUntil
                    .lte(crate::stored_time(now - TimeDelta::days(GRACE_DAYS))),
            )
            .order_by_asc(loyalty_account::Column::PaidUntil)
            .limit(limit)
            .all(self.conn)
            .await?;
        rows.into_iter().map(LoyaltyAccount::try_from).collect()
    }

    /// Stores that the streak ending with the coverage end `paid_until` is broken (no paid days left in it, no
    /// start, so refunds of its payments take nothing from the next one); false if it already was, or a renewal
    /// moved the coverage end since.
    pub async fn reset_streak(
        &self,
        customer: CustomerId,
        paid_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let result = loyalty_account::Entity::update_many()
            .col_expr(loyalty_account::Column::TenureDays, Expr::value(0))
            .col_expr(
                loyalty_account::Column::StreakStartedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                loyalty_account::Column::UpdatedAt,
                Expr::value(crate::stored_time(now)),
            )
            .filter(loyalty_account::Column::CustomerId.eq(customer.as_uuid()))
            .filter(loyalty_account::Column::PaidUntil.eq(crate::stored_time(paid_until)))
            .filter(loyalty_account::Column::TenureDays.gt(0))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Records that the grace reminder for the coverage end `paid_until` was sent; false if it already was
    /// (or the coverage changed since).
    pub async fn mark_grace_notified(
        &self,
        customer: CustomerId,
        paid_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let paid_until = crate::stored_time(paid_until);
        let result = loyalty_account::Entity::update_many()
            .col_expr(
                loyalty_account::Column::GraceNotifiedFor,
                Expr::value(paid_until),
            )
            .col_expr(
                loyalty_account::Column::UpdatedAt,
                Expr::value(crate::stored_time(now)),
            )
            .filter(loyalty_account::Column::CustomerId.eq(customer.as_uuid()))
            .filter(loyalty_account::Column::PaidUntil.eq(paid_until))
            .filter(
                Condition::any()
                    .add(loyalty_account::Column::GraceNotifiedFor.is_null())
                    .add(loyalty_account::Column::GraceNotifiedFor.ne(paid_until)),
            )
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

impl TryFrom<loyalty_account::Model> for LoyaltyAccount {
    type Error = DbError;

    fn try_from(m: loyalty_account::Model) -> Result<Self, DbError> {
        Ok(Self {
            customer_id: CustomerId::from_uuid(m.customer_id),
            tenure: Tenure {
                days: u32::try_from(m.tenure_days)
                    .map_err(|err| DbError::corrupt("loyalty_accounts", err))?,
                paid_until: m.paid_until,
            },
            streak_started_at: m.streak_started_at,
            grace_notified_for: m.grace_notified_for,
        })
    }
}

impl TryFrom<loyalty_reward::Model> for LoyaltyReward {
    type Error = DbError;

    fn try_from(m: loyalty_reward::Model) -> Result<Self, DbError> {
        Ok(Self {
            level: m
                .level
                .parse()
                .map_err(|err| DbError::corrupt("loyalty_rewards", err))?,
            payment_id: PaymentId::from_uuid(m.payment_id),
            days: u32::try_from(m.days).map_err(|err| DbError::corrupt("loyalty_rewards", err))?,
            granted_at: m.granted_at,
        })
    }
}
