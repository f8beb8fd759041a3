use chrono::{DateTime, Utc};
use cybervpn_domain::{
    CustomerId, DomainError, PanelIdentity, PlanId, Subscription, SubscriptionId,
    SubscriptionStatus, TrafficBytes, TrafficLimit,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, LockType},
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::{
        plan,
        subscription::{self, Column, Entity},
    },
};

/// Subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct Subscriptions<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Subscriptions<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Stores a new subscription.
    pub async fn create(&self, subscription: &Subscription) -> Result<(), DbError> {
        let m = to_model(subscription)?;
        Entity::insert(subscription::ActiveModel {
            id: Set(m.id),
            customer_id: Set(m.customer_id),
            plan_id: Set(m.plan_id),
            status: Set(m.status),
            expires_at: Set(m.expires_at),
            traffic_used_bytes: Set(m.traffic_used_bytes),
            traffic_limit_bytes: Set(m.traffic_limit_bytes),
            panel_user_id: Set(m.panel_user_id),
            panel_short_uuid: Set(m.panel_short_uuid),
            subscription_url: Set(m.subscription_url),
            device_limit: Set(m.device_limit),
            panel_synced_at: Set(None),
            created_at: Set(m.created_at),
            updated_at: Set(m.updated_at),
        })
        .exec_without_returning(self.conn)
        .await?;
        Ok(())
    }

    /// The subscription with this id.
    pub async fn get(&self, id: SubscriptionId) -> Result<Subscription, DbError> {
        self.find(id).await?.ok_or_else(|| {
            DomainError::NotFound {
                entity: "subscription",
            }
            .into()
        })
    }

    /// The subscription with this id, if any.
    pub async fn find(&self, id: SubscriptionId) -> Result<Option<Subscription>, DbError> {
        Entity::find_by_id(id.as_uuid())
            .one(self.conn)
            .await?
            .map(Subscription::try_from)
            .transpose()
    }

    /// The subscription with this id, locked until the transaction ends (PostgreSQL; SQLite writers are
    /// serialised anyway).
    pub async fn lock(&self, id: SubscriptionId) -> Result<Subscription, DbError> {
        let mut query = Entity::find_by_id(id.as_uuid());
        if self.conn.get_database_backend() == DbBackend::Postgres {
            query = query.lock(LockType::Update);
        }
        query
            .one(self.conn)
            .await?
            .ok_or(DomainError::NotFound {
                entity: "subscription",
            })?
            .try_into()
    }

    /// The customer's current subscription: the one ending last.
    pub async fn current_for(&self, customer: CustomerId) -> Result<Option<Subscription>, DbError> {
        Entity::find()
            .filter(Column::CustomerId.eq(customer.as_uuid()))
            .order_by_desc(Column::ExpiresAt)
            .order_by_desc(Column::Id)
            .one(self.conn)
            .await?
            .map(Subscription::try_from)
            .transpose()
    }

    /// Every subscription of the customer, newest first.
    pub async fn of_customer(&self, customer: CustomerId) -> Result<Vec<Subscription>, DbError> {
        self.all_where(
            Entity::find()
                .filter(Column::CustomerId.eq(customer.as_uuid()))
                .order_by_desc(Column::CreatedAt)
                .order_by_desc(Column::Id),
        )
        .await
    }

    /// The subscription provisioned as this panel user, if any.
    pub async fn by_panel_user(&self, panel_user_id: i64) -> Result<Option<Subscription>, DbError> {
        Entity::find()
            .filter(Column::PanelUserId.eq(panel_user_id))
            .one(self.conn)
            .await?
            .map(Subscription::try_from)
            .transpose()
    }

    /// Stores status, end date, limits and traffic of a subscription read (and locked) before.
    pub async fn save(&self, subscription: &Subscription) -> Result<(), DbError> {
        let m = to_model(subscription)?;
        let result = Entity::update_many()
            .col_expr(Column::PlanId, Expr::value(m.plan_id))
            .col_expr(Column::Status, Expr::value(m.status))
            .col_expr(Column::ExpiresAt, Expr::value(m.expires_at))
            .col_expr(Column::TrafficUsedBytes, Expr::value(m.traffic_used_bytes))
            .col_expr(
                Column::TrafficLimitBytes,
                Expr::value(m.traffic_limit_bytes),
            )
            .col_expr(Column::DeviceLimit, Expr::value(m.device_limit))
            .col_expr(Column::UpdatedAt, Expr::value(m.updated_at))
            .filter(Column::Id.eq(m.id))
            .exec(self.conn)
            .await?;
        if result.rows_affected == 0 {
            return Err(DomainError::NotFound {
                entity: "subscription",
            }
            .into());
        }
        Ok(())
    }

    /// Records the panel user that serves this subscription (or forgets it with `None`).
    pub async fn set_panel(
        &self,
        id: SubscriptionId,
        panel: Option<&PanelIdentity>,
        now: DateTime<Utc>,
    ) -> Result<(), DbError> {
        Entity::update_many()
            .col_expr(Column::PanelUserId, Expr::value(panel.map(|p| p.user_id)))
            .col_expr(
                Column::PanelShortUuid,
                Expr::value(panel.map(|p| p.short_uuid.clone())),
            )
            .col_expr(
                Column::SubscriptionUrl,
                Expr::value(panel.map(|p| p.subscription_url.clone())),
            )
            .col_expr(Column::PanelSyncedAt, Expr::value(crate::stored_time(now)))
            .filter(Column::Id.eq(id.as_uuid()))
            .exec(self.conn)
            .await?;
        Ok(())
    }

    /// Sets the traffic used by the subscription served by this panel user; false if none is.
    pub async fn set_traffic_used(
        &self,
        panel_user_id: i64,
        used: TrafficBytes,
    ) -> Result<bool, DbError> {
        let used = i64::try_from(used.bytes()).unwrap_or(i64::MAX);
        let result = Entity::update_many()
            .col_expr(Column::TrafficUsedBytes, Expr::value(used))
            .filter(Column::PanelUserId.eq(panel_user_id))
            .filter(Column::TrafficUsedBytes.ne(used))
            .exec(self.conn)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Active subscriptions ending in `[from, to)`.
    pub async fn active_ending_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Subscription>, DbError> {
        self.all_where(
            Entity::find()
                .filter(Column::Status.eq(SubscriptionStatus::Active.as_str()))
                .filter(Column::ExpiresAt.gte(from))
                .filter(Column::ExpiresAt.lt(to)),
        )
        .await
    }

    /// Subscriptions that ended in `[from, to)`, whatever their status.
    pub async fn ended_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Subscription>, DbError> {
        self.all_where(
            Entity::find()
                .filter(Column::ExpiresAt.gte(from))
                .filter(Column::ExpiresAt.lt(to)),
        )
        .await
    }

    /// Ids of subscriptions still marked active although they ended before `now`.
    pub async fn overdue(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<SubscriptionId>, DbError> {
        Ok(Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Status.eq(SubscriptionStatus::Active.as_str()))
            .filter(Column::ExpiresAt.lte(now))
            .limit(limit)
            .into_tuple::<Uuid>()
            .all(self.conn)
            .await?
            .into_iter()
            .map(SubscriptionId::from_uuid)
            .collect())
    }

    /// Ids of live subscriptions whose plan renews its traffic allowance monthly.
    pub async fn monthly_reset_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<SubscriptionId>, DbError> {
        let plans: Vec<Uuid> = plan::Entity::find()
            .select_only()
            .column(plan::Column::Id)
            .filter(plan::Column::ResetsTrafficMonthly.eq(true))
            .into_tuple()
            .all(self.conn)
            .await?;
        Ok(Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::PlanId.is_in(plans))
            .filter(Column::ExpiresAt.gt(now))
            .filter(Column::Status.is_in([
                SubscriptionStatus::Active.as_str(),
                SubscriptionStatus::Limited.as_str(),
            ]))
            .into_tuple::<Uuid>()
            .all(self.conn)
            .await?
            .into_iter()
            .map(SubscriptionId::from_uuid)
            .collect())
    }

    /// One page of subscriptions in id order, after `after` (reconciliation walks them all).
    pub async fn page(
        &self,
        after: Option<SubscriptionId>,
        limit: u64,
    ) -> Result<Vec<Subscription>, DbError> {
        let mut query = Entity::find().order_by_asc(Column::Id).limit(limit);
        if let Some(after) = after {
            query = query.filter(Column::Id.gt(after.as_uuid()));
        }
        self.all_where(query).await
    }

    async fn all_where(
        &self,
        query: sea_orm::Select<Entity>,
    ) -> Result<Vec<Subscription>, DbError> {
        query
            .all(self.conn)
            .await?
            .into_iter()
            .map(Subscription::try_from)
            .collect()
    }
}

fn to_model(s: &Subscription) -> Result<subscription::Model, DbError> {
    let bytes = |value: u64, field| {
        i64::try_from(value).map_err(|_| DomainError::invalid(field, "must be below 2^63 bytes"))
    };
    Ok(subscription::Model {
        id: s.id.as_uuid(),
        customer_id: s.customer_id.as_uuid(),
        plan_id: s.plan_id.map(|p| p.as_uuid()),
        status: s.status.as_str().to_owned(),
        expires_at: crate::stored_time(s.expires_at),
        traffic_used_bytes: bytes(s.traffic_used.bytes(), "traffic_used_bytes")?,
        traffic_limit_bytes: s
            .traffic_limit
            .as_optional_bytes()
            .map(|b| bytes(b, "traffic_limit_bytes"))
            .transpose()?,
        panel_user_id: s.panel.as_ref().map(|p| p.user_id),
        panel_short_uuid: s.panel.as_ref().map(|p| p.short_uuid.clone()),
        subscription_url: s.panel.as_ref().map(|p| p.subscription_url.clone()),
        device_limit: s
            .device_limit
            .map(i16::try_from)
            .transpose()
            .map_err(|_| DomainError::invalid("device_limit", "must be at most 32767"))?,
        panel_synced_at: None,
        created_at: crate::stored_time(s.created_at),
        updated_at: crate::stored_time(s.updated_at),
    })
}

impl TryFrom<subscription::Model> for Subscription {
    type Error = DbError;

    fn try_from(m: subscription::Model) -> Result<Self, DbError> {
        let corrupt = |reason: String| DbError::Corrupt {
            table: "subscriptions",
            reason,
        };
        let unsigned = |value: i64| u64::try_from(value).map_err(|err| corrupt(err.to_string()));
        let panel = match (m.panel_user_id, m.panel_short_uuid, m.subscription_url) {
            (Some(user_id), Some(short_uuid), Some(subscription_url)) => Some(PanelIdentity {
                user_id,
                short_uuid,
                subscription_url,
            }),
            _ => None,
        };
        Ok(Self {
            id: SubscriptionId::from_uuid(m.id),
            customer_id: CustomerId::from_uuid(m.customer_id),
            plan_id: m.plan_id.map(PlanId::from_uuid),
            status: m
                .status
                .parse()
                .map_err(|err: DomainError| corrupt(err.to_string()))?,
            expires_at: m.expires_at,
            traffic_used: TrafficBytes::from_bytes(unsigned(m.traffic_used_bytes)?),
            traffic_limit: TrafficLimit::from_optional_bytes(
                m.traffic_limit_bytes.map(unsigned).transpose()?,
            ),
            device_limit: m
                .device_limit
                .map(u16::try_from)
                .transpose()
                .map_err(|err| corrupt(err.to_string()))?,
            panel,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
