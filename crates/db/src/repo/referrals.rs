use chrono::{DateTime, Utc};
use cybervpn_domain::CustomerId;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect,
};

use crate::{
    DbError,
    entity::referral::{self, Column, Entity},
};

/// What a customer's invitations earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReferralStats {
    /// Customers who signed up with their code.
    pub referrals: u64,
    /// Bonus days granted for them.
    pub days_earned: u64,
}

/// Referrals: who invited whom; a unique index holds one per referred customer, so a bonus is paid once.
#[derive(Debug, Clone, Copy)]
pub struct Referrals<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Referrals<'a, C> {
    /// The repository on `conn`; record in the transaction that grants the bonus.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Records that `referrer` invited `referred`, earning `bonus_days`; a second referral of the same
    /// customer is a `Conflict`.
    pub async fn record(
        &self,
        referrer: CustomerId,
        referred: CustomerId,
        bonus_days: u32,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        Entity::insert(referral::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            referrer_id: Set(referrer.as_uuid()),
            referred_id: Set(referred.as_uuid()),
            bonus_days: Set(i32::try_from(bonus_days).unwrap_or(i32::MAX)),
            created_at: Set(crate::stored_time(now)),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Who invited `referred`, if anyone.
    pub async fn referrer_of(&self, referred: CustomerId) -> Result<Option<CustomerId>, DbError> {
        Ok(Entity::find()
            .filter(Column::ReferredId.eq(referred.as_uuid()))
            .one(self.conn)
            .await?
            .map(|m| CustomerId::from_uuid(m.referrer_id)))
    }

    /// Referrals of `referrer` that earned a bonus.
    pub async fn rewarded_count(&self, referrer: CustomerId) -> Result<u64, DbError> {
        Ok(Entity::find()
            .filter(Column::ReferrerId.eq(referrer.as_uuid()))
            .filter(Column::BonusDays.gt(0))
            .count(self.conn)
            .await?)
    }

    /// How many customers `referrer` invited and the days that earned.
    pub async fn stats(&self, referrer: CustomerId) -> Result<ReferralStats, DbError> {
        let days: Vec<i32> = Entity::find()
            .select_only()
            .column(Column::BonusDays)
            .filter(Column::ReferrerId.eq(referrer.as_uuid()))
            .into_tuple()
            .all(self.conn)
            .await?;
        Ok(ReferralStats {
            referrals: days.len() as u64,
            days_earned: days.iter().map(|d| u64::try_from(*d).unwrap_or(0)).sum(),
        })
    }
}
