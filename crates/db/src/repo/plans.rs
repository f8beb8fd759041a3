use std::collections::HashMap;

use cybervpn_domain::{
    Currency, DomainError, Money, Plan, PlanDuration, PlanId, PlanTier, TrafficLimit,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
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
