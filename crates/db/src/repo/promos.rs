use chrono::{DateTime, Utc};
use cybervpn_domain::{
    Currency, CustomerId, DomainError, Money, PaymentId, PlanId, PromoBenefit, PromoCode,
    PromoCodeId,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};

use crate::{
    DbError,
    entity::{
        promo_code::{self, Column, Entity},
        promo_redemption,
    },
};

/// Promo codes and their redemptions: a redemption holds one use of a code for one payment.
#[derive(Debug, Clone, Copy)]
pub struct Promos<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Promos<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Stores a new code; an existing code is a `Conflict`.
    pub async fn create(&self, promo: &PromoCode) -> Result<(), DbError> {
        Entity::insert(active_model(promo)?)
            .exec_without_returning(self.conn)
            .await?;
        Ok(())
    }

    /// Saves staff's changes to a code (its use count is left as the database has it).
    pub async fn save(&self, promo: &PromoCode) -> Result<(), DbError> {
        let mut model = active_model(promo)?;
        model.used_count = sea_orm::ActiveValue::NotSet;
        model.created_at = sea_orm::ActiveValue::NotSet;
        Entity::update(model).exec(self.conn).await?;
        Ok(())
    }

    /// The code with this id.
    pub async fn get(&self, id: PromoCodeId) -> Result<PromoCode, DbError> {
        Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound {
                entity: "promo code",
            })?
            .try_into()
    }

    /// The code customers type as `code` (already normalised), if it exists.
    pub async fn find_by_code(&self, code: &str) -> Result<Option<PromoCode>, DbError> {
        Entity::find()
            .filter(Column::Code.eq(code))
            .one(self.conn)
            .await?
            .map(PromoCode::try_from)
            .transpose()
    }

    /// Codes newest first, starting after `before` (an id from a previous page).
    pub async fn list(
        &self,
        before: Option<PromoCodeId>,
        limit: u64,
    ) -> Result<Vec<PromoCode>, DbError> {
        let mut query = Entity::find().order_by_desc(Column::Id).limit(limit);
        if let Some(before) = before {
            query = query.filter(Column::Id.lt(before.as_uuid()));
        }
        query
            .all(self.conn)
            .await?
            .into_iter()
            .map(PromoCode::try_from)
            .collect()
    }

    /// Whether the customer holds or used this code (through a pending or completed payment).
    pub async fn used_by(&self, promo: PromoCodeId, customer: CustomerId) -> Result<bool, DbError> {
        Ok(promo_redemption::Entity::find()
            .filter(promo_redemption::Column::PromoCodeId.eq(promo.as_uuid()))
            .filter(promo_redemption::Column::CustomerId.eq(customer.as_uuid()))
            .count(self.conn)
            .await?
            > 0)
    }

    /// Takes one use of an active code for `payment`; false (nothing changed) if none is left. A second use by
    /// the same customer is a `Conflict`: call it inside the payment's transaction.
    pub async fn redeem(
        &self,
        promo: PromoCodeId,
        customer: CustomerId,
        payment: PaymentId,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        // One conditional update: two customers taking the last use at once cannot both succeed.
        let taken = Entity::update_many()
            .col_expr(Column::UsedCount, Expr::col(Column::UsedCount).add(1))
            .filter(Column::Id.eq(promo.as_uuid()))
            .filter(Column::IsActive.eq(true))
            .filter(
                Condition::any()
                    .add(Column::MaxUses.is_null())
                    .add(Expr::col(Column::UsedCount).lt(Expr::col(Column::MaxUses))),
            )
            .exec(self.conn)
            .await?;
        if taken.rows_affected != 1 {
            return Ok(false);
        }
        promo_redemption::Entity::insert(promo_redemption::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            promo_code_id: Set(promo.as_uuid()),
            customer_id: Set(customer.as_uuid()),
            payment_id: Set(payment.as_uuid()),
            created_at: Set(crate::stored_time(now)),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(true)
    }

    /// Gives back the use `payment` held, if it held one (its payment failed or expired); true if released.
    pub async fn release(&self, payment: PaymentId) -> Result<bool, DbError> {
        let Some(redemption) = promo_redemption::Entity::find()
            .filter(promo_redemption::Column::PaymentId.eq(payment.as_uuid()))
            .one(self.conn)
            .await?
        else {
            return Ok(false);
        };
        let deleted = promo_redemption::Entity::delete_by_id(redemption.id)
            .exec(self.conn)
            .await?;
        if deleted.rows_affected != 1 {
            // Released concurrently by someone else.
            return Ok(false);
        }
        Entity::update_many()
            .col_expr(Column::UsedCount, Expr::col(Column::UsedCount).sub(1))
            .filter(Column::Id.eq(redemption.promo_code_id))
            .filter(Column::UsedCount.gt(0))
            .exec(self.conn)
            .await?;
        Ok(true)
    }
}

fn active_model(promo: &PromoCode) -> Result<promo_code::ActiveModel, DbError> {
    let to_i32 = |field: &'static str, value: u32| {
        i32::try_from(value).map_err(|_| DomainError::invalid(field, "is too large"))
    };
    let (percent, amount, days) = match promo.benefit {
        PromoBenefit::PercentOff { percent } => (Some(i32::from(percent)), None, None),
        PromoBenefit::AmountOff { amount } => (None, Some(amount), None),
        PromoBenefit::BonusDays { days } => (None, None, Some(to_i32("bonus_days", days)?)),
    };
    Ok(promo_code::ActiveModel {
        id: Set(promo.id.as_uuid()),
        code: Set(promo.code.clone()),
        kind: Set(promo.benefit.kind().to_owned()),
        percent_off: Set(percent),
        amount_off_minor: Set(amount.map(|a| a.amount_minor())),
        currency: Set(amount.map(|a| a.currency().as_str().to_owned())),
        bonus_days: Set(days),
        plan_id: Set(promo.plan_id.map(|id| id.as_uuid())),
        max_uses: Set(promo
            .max_uses
            .map(|max| to_i32("max_uses", max))
            .transpose()?),
        used_count: Set(to_i32("used_count", promo.used_count)?),
        valid_from: Set(promo.valid_from.map(crate::stored_time)),
        valid_until: Set(promo.valid_until.map(crate::stored_time)),
        is_active: Set(promo.is_active),
        created_at: Set(crate::stored_time(promo.created_at)),
        updated_at: Set(crate::stored_time(promo.updated_at)),
    })
}

impl TryFrom<promo_code::Model> for PromoCode {
    type Error = DbError;

    fn try_from(m: promo_code::Model) -> Result<Self, DbError> {
        let corrupt = |reason: &str| DbError::corrupt("promo_codes", reason);
        let unsigned = |value: i32| u32::try_from(value).map_err(|_| corrupt("negative count"));
        let benefit = match m.kind.as_str() {
            "percent_off" => PromoBenefit::PercentOff {
                percent: m
                    .percent_off
                    .and_then(|p| u8::try_from(p).ok())
                    .ok_or_else(|| corrupt("percent_off"))?,
            },
            "amount_off" => {
                let currency = m
                    .currency
                    .as_deref()
                    .ok_or_else(|| corrupt("currency"))?
                    .parse::<Currency>()
                    .map_err(|_| corrupt("currency"))?;
                let minor = m.amount_off_minor.ok_or_else(|| corrupt("amount_off"))?;
                PromoBenefit::AmountOff {
                    amount: Money::new(minor, currency).map_err(|_| corrupt("amount_off"))?,
                }
            }
            "bonus_days" => PromoBenefit::BonusDays {
                days: unsigned(m.bonus_days.ok_or_else(|| corrupt("bonus_days"))?)?,
            },
            _ => return Err(corrupt("kind")),
        };
        Ok(Self {
            id: PromoCodeId::from_uuid(m.id),
            code: m.code,
            benefit,
            plan_id: m.plan_id.map(PlanId::from_uuid),
            max_uses: m.max_uses.map(unsigned).transpose()?,
            used_count: unsigned(m.used_count)?,
            valid_from: m.valid_from,
            valid_until: m.valid_until,
            is_active: m.is_active,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
