//! Invite rules, promotions and codes.
//!
//! The unique index on `invites.code` keeps codes distinct; the one on `invites.redeemed_by` gives each customer
//! one free grant; redeeming and paying the bonus are conditional updates, so neither happens twice.

use chrono::{DateTime, Utc};
use cybervpn_domain::{
    CustomerId, DomainError, Invite, InvitePromotion, InviteRule, InviteSource, InviteStatus,
    PlanTier, StaffId,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::{invite, invite_promotion, invite_rule},
    stored_time,
};

/// A code to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvite {
    /// The code.
    pub code: String,
    /// Who may hand it out (`None`: staff give it to someone outside).
    pub owner_id: Option<CustomerId>,
    /// How it came to be.
    pub source: InviteSource,
    /// The purchase that earned it.
    pub payment_id: Option<Uuid>,
    /// The staff member issuing it by hand.
    pub issued_by: Option<StaffId>,
    /// Staff's label.
    pub note: Option<String>,
    /// Free days for the friend.
    pub free_days: u32,
    /// Days for the owner when the friend first pays.
    pub bonus_days: u32,
    /// When it stops being redeemable.
    pub expires_at: DateTime<Utc>,
}

/// Filters for staff's list of codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InviteSearch {
    /// Owned by this customer.
    pub owner_id: Option<CustomerId>,
    /// In this state at `now`.
    pub status: Option<InviteStatus>,
    /// Issued this way.
    pub source: Option<InviteSource>,
}

/// Invite rules, promotions and codes.
#[derive(Debug, Clone, Copy)]
pub struct Invites<'a, C = DatabaseConnection> {
    conn: &'a C,
}

fn days(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn stored_days(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl TryFrom<invite_rule::Model> for InviteRule {
    type Error = DbError;

    fn try_from(row: invite_rule::Model) -> Result<Self, DbError> {
        Ok(Self {
            tier: row
                .tier
                .parse()
                .map_err(|err| DbError::corrupt("invite_rules", err))?,
            codes_per_purchase: days(row.codes_per_purchase),
            free_days: days(row.free_days),
            bonus_days: days(row.bonus_days),
            valid_days: days(row.valid_days),
        })
    }
}

impl TryFrom<invite_promotion::Model> for InvitePromotion {
    type Error = DbError;

    fn try_from(row: invite_promotion::Model) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id,
            name: row.name,
            tier: row
                .tier
                .map(|tier| tier.parse())
                .transpose()
                .map_err(|err| DbError::corrupt("invite_promotions", err))?,
            multiplier: days(row.multiplier),
            starts_at: row.starts_at,
            ends_at: row.ends_at,
        })
    }
}

impl TryFrom<invite::Model> for Invite {
    type Error = DbError;

    fn try_from(row: invite::Model) -> Result<Self, DbError> {
        Ok(Self {
            id: row.id,
            code: row.code,
            owner_id: row.owner_id.map(CustomerId::from_uuid),
            source: row
                .source
                .parse()
                .map_err(|err| DbError::corrupt("invites", err))?,
            payment_id: row.payment_id,
            issued_by: row.issued_by.map(StaffId::from_uuid),
            note: row.note,
            free_days: days(row.free_days),
            bonus_days: days(row.bonus_days),
            expires_at: row.expires_at,
            created_at: row.created_at,
            redeemed_by: row.redeemed_by.map(CustomerId::from_uuid),
            redeemed_at: row.redeemed_at,
            revoked_at: row.revoked_at,
            bonus_paid_at: row.bonus_paid_at,
        })
    }
}

/// The rows of codes in `status` at `now`.
fn in_status(status: InviteStatus, now: DateTime<Utc>) -> Condition {
    let now = stored_time(now);
    match status {
        InviteStatus::Used => Condition::all().add(invite::Column::RedeemedAt.is_not_null()),
        InviteStatus::Available => Condition::all()
            .add(invite::Column::RedeemedAt.is_null())
            .add(invite::Column::RevokedAt.is_null())
            .add(invite::Column::ExpiresAt.gt(now)),
        InviteStatus::Expired => Condition::all()
            .add(invite::Column::RedeemedAt.is_null())
            .add(
                Condition::any()
                    .add(invite::Column::RevokedAt.is_not_null())
                    .add(invite::Column::ExpiresAt.lte(now)),
            ),
    }
}

impl<'a, C: ConnectionTrait> Invites<'a, C> {
    /// The repository on `conn` (a pool or a transaction).
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Every tier's rule, in tier order.
    pub async fn rules(&self) -> Result<Vec<InviteRule>, DbError> {
        let mut rules = invite_rule::Entity::find()
            .all(self.conn)
            .await?
            .into_iter()
            .map(InviteRule::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        rules.sort_by_key(|rule| PlanTier::ALL.iter().position(|t| *t == rule.tier));
        Ok(rules)
    }

    /// The rule of `tier`, if one is set.
    pub async fn rule(&self, tier: PlanTier) -> Result<Option<InviteRule>, DbError> {
        invite_rule::Entity::find_by_id(tier.as_str().to_owned())
            .one(self.conn)
            .await?
            .map(InviteRule::try_from)
            .transpose()
    }

    /// Sets `rule` for its tier.
    pub async fn save_rule(&self, rule: &InviteRule, now: DateTime<Utc>) -> Result<(), DbError> {
        let row = invite_rule::ActiveModel {
            tier: Set(rule.tier.as_str().to_owned()),
            codes_per_purchase: Set(stored_days(rule.codes_per_purchase)),
            free_days: Set(stored_days(rule.free_days)),
            bonus_days: Set(stored_days(rule.bonus_days)),
            valid_days: Set(stored_days(rule.valid_days)),
            updated_at: Set(stored_time(now)),
        };
        invite_rule::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(invite_rule::Column::Tier)
                    .update_columns([
                        invite_rule::Column::CodesPerPurchase,
                        invite_rule::Column::FreeDays,
                        invite_rule::Column::BonusDays,
                        invite_rule::Column::ValidDays,
                        invite_rule::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(self.conn)
            .await?;
        Ok(())
    }

    /// Promotions that have not ended by `now`, soonest first.
    pub async fn promotions(&self, now: DateTime<Utc>) -> Result<Vec<InvitePromotion>, DbError> {
        invite_promotion::Entity::find()
            .filter(invite_promotion::Column::EndsAt.gt(stored_time(now)))
            .order_by_asc(invite_promotion::Column::StartsAt)
            .all(self.conn)
            .await?
            .into_iter()
            .map(InvitePromotion::try_from)
            .collect()
    }

    /// Records a new promotion.
    pub async fn create_promotion(
        &self,
        promotion: &InvitePromotion,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        invite_promotion::Entity::insert(invite_promotion::ActiveModel {
            id: Set(promotion.id),
            name: Set(promotion.name.trim().to_owned()),
            tier: Set(promotion.tier.map(|tier| tier.as_str().to_owned())),
            multiplier: Set(stored_days(promotion.multiplier)),
            starts_at: Set(stored_time(promotion.starts_at)),
            ends_at: Set(stored_time(promotion.ends_at)),
            created_at: Set(stored_time(now)),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// Deletes a promotion; false if there was none.
    pub async fn delete_promotion(&self, id: Uuid) -> Result<bool, DbError> {
        let result = invite_promotion::Entity::delete_by_id(id)
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Issues `invites` and returns them; a code clash is a `Conflict` on `invite code`.
    pub async fn issue(
        &self,
        invites: &[NewInvite],
        now: DateTime<Utc>,
    ) -> Result<Vec<Invite>, DbError> {
        let now = stored_time(now);
        let issued: Vec<Invite> = invites
            .iter()
            .map(|new| Invite {
                id: Uuid::now_v7(),
                code: new.code.clone(),
                owner_id: new.owner_id,
                source: new.source,
                payment_id: new.payment_id,
                issued_by: new.issued_by,
                note: new.note.clone(),
                free_days: new.free_days,
                bonus_days: new.bonus_days,
                expires_at: stored_time(new.expires_at),
                created_at: now,
                redeemed_by: None,
                redeemed_at: None,
                revoked_at: None,
                bonus_paid_at: None,
            })
            .collect();
        if issued.is_empty() {
            return Ok(issued);
        }
        let rows = issued.iter().map(|invite| invite::ActiveModel {
            id: Set(invite.id),
            code: Set(invite.code.clone()),
            owner_id: Set(invite.owner_id.as_ref().map(CustomerId::as_uuid)),
            source: Set(invite.source.as_str().to_owned()),
            payment_id: Set(invite.payment_id),
            issued_by: Set(invite.issued_by.as_ref().map(StaffId::as_uuid)),
            note: Set(invite.note.clone()),
            free_days: Set(stored_days(invite.free_days)),
            bonus_days: Set(stored_days(invite.bonus_days)),
            expires_at: Set(invite.expires_at),
            created_at: Set(now),
            redeemed_by: Set(None),
            redeemed_at: Set(None),
            revoked_at: Set(None),
            bonus_paid_at: Set(None),
            bonus_payment_id: Set(None),
        });
        invite::Entity::insert_many(rows)
            .exec_without_returning(self.conn)
            .await?;
        Ok(issued)
    }

    /// The invite with `code`, locked until the transaction ends (PostgreSQL).
    pub async fn lock_by_code(&self, code: &str) -> Result<Option<Invite>, DbError> {
        invite::Entity::find()
            .filter(invite::Column::Code.eq(code))
            .lock_exclusive()
            .one(self.conn)
            .await?
            .map(Invite::try_from)
            .transpose()
    }

    /// The invite with this id.
    pub async fn get(&self, id: Uuid) -> Result<Invite, DbError> {
        invite::Entity::find_by_id(id)
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "invite" })?
            .try_into()
    }

    /// Marks the invite redeemed by `customer`; false if it was redeemed or withdrawn meanwhile. A customer who
    /// redeemed another invite is a `Conflict`.
    pub async fn redeem(
        &self,
        id: Uuid,
        customer: CustomerId,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let result = invite::Entity::update_many()
            .col_expr(invite::Column::RedeemedBy, Expr::value(customer.as_uuid()))
            .col_expr(invite::Column::RedeemedAt, Expr::value(stored_time(now)))
            .filter(invite::Column::Id.eq(id))
            .filter(invite::Column::RedeemedAt.is_null())
            .filter(invite::Column::RevokedAt.is_null())
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// The invite `customer` redeemed, if any.
    pub async fn redeemed_by(&self, customer: CustomerId) -> Result<Option<Invite>, DbError> {
        invite::Entity::find()
            .filter(invite::Column::RedeemedBy.eq(customer.as_uuid()))
            .one(self.conn)
            .await?
            .map(Invite::try_from)
            .transpose()
    }

    /// Records that the owner got the bonus for the friend's `payment`; false if it was paid before.
    pub async fn mark_bonus_paid(
        &self,
        id: Uuid,
        payment: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, DbError> {
        let result = invite::Entity::update_many()
            .col_expr(invite::Column::BonusPaidAt, Expr::value(stored_time(now)))
            .col_expr(invite::Column::BonusPaymentId, Expr::value(payment))
            .filter(invite::Column::Id.eq(id))
            .filter(invite::Column::BonusPaidAt.is_null())
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// The invite whose owner's bonus `payment` paid, and forgets that (the payment was refunded, so a later
    /// first payment may earn it); `None` if that payment paid no bonus.
    pub async fn take_back_bonus(&self, payment: Uuid) -> Result<Option<Invite>, DbError> {
        let Some(row) = invite::Entity::find()
            .filter(invite::Column::BonusPaymentId.eq(payment))
            .one(self.conn)
            .await?
        else {
            return Ok(None);
        };
        let result = invite::Entity::update_many()
            .col_expr(
                invite::Column::BonusPaidAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                invite::Column::BonusPaymentId,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(invite::Column::Id.eq(row.id))
            .filter(invite::Column::BonusPaymentId.eq(payment))
            .exec(self.conn)
            .await?;
        if result.rows_affected == 1 {
            Invite::try_from(row).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Withdraws the codes `payment` earned that nobody redeemed; how many.
    pub async fn revoke_unused_of_payment(
        &self,
        payment: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let result = invite::Entity::update_many()
            .col_expr(invite::Column::RevokedAt, Expr::value(stored_time(now)))
            .filter(invite::Column::PaymentId.eq(payment))
            .filter(invite::Column::RedeemedAt.is_null())
            .filter(invite::Column::RevokedAt.is_null())
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected)
    }

    /// Withdraws one code; false if it was redeemed or withdrawn already.
    pub async fn revoke(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, DbError> {
        let result = invite::Entity::update_many()
            .col_expr(invite::Column::RevokedAt, Expr::value(stored_time(now)))
            .filter(invite::Column::Id.eq(id))
            .filter(invite::Column::RedeemedAt.is_null())
            .filter(invite::Column::RevokedAt.is_null())
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// How many codes are in each status at `now`.
    pub async fn status_counts(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(InviteStatus, u64)>, DbError> {
        use sea_orm::PaginatorTrait;
        let mut counts = Vec::new();
        for status in InviteStatus::ALL.iter().copied() {
            let count = invite::Entity::find()
                .filter(in_status(status, now))
                .count(self.conn)
                .await?;
            counts.push((status, count));
        }
        Ok(counts)
    }

    /// The codes `owner` may hand out or handed out, newest first.
    pub async fn owned_by(&self, owner: CustomerId) -> Result<Vec<Invite>, DbError> {
        invite::Entity::find()
            .filter(invite::Column::OwnerId.eq(owner.as_uuid()))
            .order_by_desc(invite::Column::CreatedAt)
            .order_by_desc(invite::Column::Id)
            .all(self.conn)
            .await?
            .into_iter()
            .map(Invite::try_from)
            .collect()
    }

    /// Codes matching `filter` at `now`, newest first, a page of `limit` after the `before` cursor.
    pub async fn search(
        &self,
        filter: &InviteSearch,
        now: DateTime<Utc>,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Invite>, DbError> {
        let mut query = invite::Entity::find()
            .order_by_desc(invite::Column::Id)
            .limit(limit);
        if let Some(before) = before {
            query = query.filter(invite::Column::Id.lt(before));
        }
        if let Some(owner) = filter.owner_id {
            query = query.filter(invite::Column::OwnerId.eq(owner.as_uuid()));
        }
        if let Some(source) = filter.source {
            query = query.filter(invite::Column::Source.eq(source.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(in_status(status, now));
        }
        query
            .all(self.conn)
            .await?
            .into_iter()
            .map(Invite::try_from)
            .collect()
    }
}
