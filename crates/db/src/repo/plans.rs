use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cybervpn_domain::{
    Currency, DomainError, Money, Plan, PlanDuration, PlanId, PlanTier, TrafficLimit,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::{plan, plan_price},
};

/// The plan catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Plans<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Plans<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Plans on sale, in display order, with their prices.
    pub async fn list_active(&self) -> Result<Vec<Plan>, DbError> {
        let plans = plan::Entity::find()
            .filter(plan::Column::IsActive.eq(true))
            .order_by_asc(plan::Column::SortOrder)
            .order_by_asc(plan::Column::Code)
            .all(self.conn)
            .await?;
        self.with_prices(plans).await
    }

    /// The plan with this id, on sale or not.
    pub async fn get(&self, id: PlanId) -> Result<Plan, DbError> {
        let found = plan::Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "plan" })?;
        self.with_prices(vec![found])
            .await?
            .pop()
            .ok_or(DbError::Domain(DomainError::NotFound { entity: "plan" }))
    }

    /// The plan with this code, on sale or not.
    pub async fn find_by_code(&self, code: &str) -> Result<Option<Plan>, DbError> {
        let Some(found) = plan::Entity::find()
            .filter(plan::Column::Code.eq(code))
            .one(self.conn)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.with_prices(vec![found]).await?.pop())
    }

    /// Every plan, on sale or retired, in display order.
    pub async fn list_all(&self) -> Result<Vec<Plan>, DbError> {
        let plans = plan::Entity::find()
            .order_by_asc(plan::Column::SortOrder)
            .order_by_asc(plan::Column::Code)
            .all(self.conn)
            .await?;
        self.with_prices(plans).await
    }

    /// Like [`Plans::get`], locking the row until the transaction ends, so a change and the audit entry
    /// describing it see the same state (PostgreSQL; SQLite serialises writers anyway).
    pub async fn lock(&self, id: PlanId) -> Result<Plan, DbError> {
        let found = plan::Entity::find_by_id(id.as_uuid())
            .lock_exclusive()
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound { entity: "plan" })?;
        self.with_prices(vec![found])
            .await?
            .pop()
            .ok_or(DbError::Domain(DomainError::NotFound { entity: "plan" }))
    }

    /// Adds a plan with its prices; a taken code is a `Conflict`. Run it in a transaction so the plan
    /// never exists without its prices.
    pub async fn create(&self, plan: &Plan, now: DateTime<Utc>) -> Result<(), DbError> {
        let now = crate::stored_time(now);
        let columns = Columns::of(plan)?;
        plan::Entity::insert(plan::ActiveModel {
            id: Set(plan.id.as_uuid()),
            code: Set(plan.code.clone()),
            tier: Set(plan.tier.as_str().to_owned()),
            duration_days: Set(columns.duration_days),
            traffic_limit_bytes: Set(columns.traffic_limit_bytes),
            device_limit: Set(columns.device_limit),
            is_active: Set(plan.is_active),
            sort_order: Set(plan.sort_order),
            resets_traffic_monthly: Set(plan.traffic_limit.as_optional_bytes().is_some()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(self.conn)
        .await?;
        self.insert_prices(plan).await
    }

    /// Stores a plan's limits, status and position and replaces its whole price list. Tier and duration
    /// (and so the code) never change. Run it in a transaction so buyers never see a half-replaced list.
    pub async fn update(&self, plan: &Plan, now: DateTime<Utc>) -> Result<(), DbError> {
        let columns = Columns::of(plan)?;
        let result = plan::Entity::update_many()
            .col_expr(
                plan::Column::TrafficLimitBytes,
                Expr::value(columns.traffic_limit_bytes),
            )
            .col_expr(plan::Column::DeviceLimit, Expr::value(columns.device_limit))
            .col_expr(plan::Column::IsActive, Expr::value(plan.is_active))
            .col_expr(plan::Column::SortOrder, Expr::value(plan.sort_order))
            .col_expr(
                plan::Column::UpdatedAt,
                Expr::value(crate::stored_time(now)),
            )
            .filter(plan::Column::Id.eq(plan.id.as_uuid()))
            .exec(self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(DomainError::NotFound { entity: "plan" }.into());
        }
        plan_price::Entity::delete_many()
            .filter(plan_price::Column::PlanId.eq(plan.id.as_uuid()))
            .exec(self.conn)
            .await?;
        self.insert_prices(plan).await
    }

    async fn insert_prices(&self, plan: &Plan) -> Result<(), DbError> {
        plan_price::Entity::insert_many(plan.prices().iter().map(|price| {
            plan_price::ActiveModel {
                plan_id: Set(plan.id.as_uuid()),
                currency: Set(price.currency().as_str().to_owned()),
                amount_minor: Set(price.amount_minor()),
            }
        }))
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    async fn with_prices(&self, plans: Vec<plan::Model>) -> Result<Vec<Plan>, DbError> {
        if plans.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = plans.iter().map(|p| p.id).collect();
        let mut prices: HashMap<Uuid, Vec<Money>> = HashMap::with_capacity(plans.len());
        for price in plan_price::Entity::find()
            .filter(plan_price::Column::PlanId.is_in(ids))
            .all(self.conn)
            .await?
        {
            let currency = price
                .currency
                .parse::<Currency>()
                .map_err(|err| DbError::corrupt("plan_prices", err))?;
            let money = Money::new(price.amount_minor, currency)
                .map_err(|err| DbError::corrupt("plan_prices", err))?;
            prices.entry(price.plan_id).or_default().push(money);
        }
        plans
            .into_iter()
            .map(|m| {
                let plan_prices = prices.remove(&m.id).unwrap_or_default();
                to_plan(m, plan_prices)
            })
            .collect()
    }
}

/// A plan's numeric columns, checked against the narrower column types.
struct Columns {
    duration_days: i16,
    traffic_limit_bytes: Option<i64>,
    device_limit: i16,
}

impl Columns {
    fn of(plan: &Plan) -> Result<Self, DomainError> {
        Ok(Self {
            duration_days: i16::try_from(plan.duration.days())
                .map_err(|_| DomainError::invalid("duration_days", "is too large"))?,
            traffic_limit_bytes: plan
                .traffic_limit
                .as_optional_bytes()
                .map(i64::try_from)
                .transpose()
                .map_err(|_| {
                    DomainError::invalid("traffic_limit_bytes", "must be below 2^63 bytes")
                })?,
            device_limit: i16::try_from(plan.device_limit)
                .map_err(|_| DomainError::invalid("device_limit", "must be at most 32767"))?,
        })
    }
}

fn to_plan(m: plan::Model, prices: Vec<Money>) -> Result<Plan, DbError> {
    let corrupt = |err: DomainError| DbError::corrupt("plans", err);
    let duration = u16::try_from(m.duration_days)
        .map_err(|err| DbError::corrupt("plans", err))
        .and_then(|days| PlanDuration::try_from(days).map_err(corrupt))?;
    let traffic = m
        .traffic_limit_bytes
        .map(u64::try_from)
        .transpose()
        .map_err(|err| DbError::corrupt("plans", err))?;
    let device_limit =
        u16::try_from(m.device_limit).map_err(|err| DbError::corrupt("plans", err))?;
    Plan::new(
        PlanId::from_uuid(m.id),
        m.tier.parse::<PlanTier>().map_err(corrupt)?,
        duration,
        prices,
        TrafficLimit::from_optional_bytes(traffic),
        device_limit,
        m.is_active,
        m.sort_order,
    )
    .map_err(corrupt)
}
