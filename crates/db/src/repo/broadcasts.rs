use chrono::{DateTime, Duration, Utc};
use cybervpn_domain::{
    BroadcastAudience, BroadcastStatus, CustomerId, CustomerStatus, DeliveryOutcome, DomainError,
    StaffId, SubscriptionStatus,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, Query, SelectStatement},
};
use uuid::Uuid;

use crate::{
    DbError,
    entity::{broadcast, broadcast_recipient, customer, subscription, trial},
};

/// How long a claimed recipient may stay unreported before the delivery counts it as unconfirmed: its run
/// died between sending and reporting, so the message may or may not have arrived, and is not sent again.
pub const CLAIM_TIMEOUT: Duration = Duration::seconds(60);

/// A broadcast and its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// Its id.
    pub id: Uuid,
    /// The staff member who wrote it.
    pub created_by: StaffId,
    /// The Telegram chat that receives the report.
    pub admin_chat_id: i64,
    /// Who receives it.
    pub audience: BroadcastAudience,
    /// The text (the caption under a photo).
    pub text: String,
    /// A Telegram `file_id` of the photo, if any.
    pub photo_file_id: Option<String>,
    /// Where it stands.
    pub status: BroadcastStatus,
    /// Recipients when it was confirmed.
    pub total: u32,
    /// Delivered.
    pub sent: u32,
    /// Recipients who blocked the bot.
    pub blocked: u32,
    /// Refused by Telegram for another reason.
    pub failed: u32,
    /// Claimed by a run that died before it reported (not sent again).
    pub unconfirmed: u32,
    /// When staff wrote it.
    pub created_at: DateTime<Utc>,
    /// When it was finished or cancelled.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A new broadcast, before confirmation.
#[derive(Debug, Clone)]
pub struct NewBroadcast {
    /// The staff member who writes it.
    pub created_by: StaffId,
    /// The Telegram chat that receives the report.
    pub admin_chat_id: i64,
    /// Who receives it.
    pub audience: BroadcastAudience,
    /// The text (the caption under a photo).
    pub text: String,
    /// A Telegram `file_id` of the photo, if any.
    pub photo_file_id: Option<String>,
}

/// One customer to deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recipient {
    /// The customer.
    pub customer_id: CustomerId,
    /// Their Telegram chat.
    pub telegram_id: i64,
}

/// What a delivery run does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send to this recipient (claimed by the run), then report.
    Send(Recipient),
    /// Another run still holds claimed recipients: ask again shortly.
    Wait,
    /// Nothing is left; `first` is true for exactly one caller, the one that reports to staff.
    Finished {
        /// The broadcast with its final counts.
        broadcast: Broadcast,
        /// Whether this call finished it.
        first: bool,
    },
    /// Cancelled by staff, never confirmed, or the run asked to claim nothing: stop.
    Stopped,
}

/// Broadcasts and their per-recipient delivery state.
#[derive(Debug, Clone, Copy)]
pub struct Broadcasts<'a, C = DatabaseConnection> {
    conn: &'a C,
}

impl<'a, C: ConnectionTrait> Broadcasts<'a, C> {
    /// The repository on `conn`, a pool or a transaction.
    pub const fn on(conn: &'a C) -> Self {
        Self { conn }
    }

    /// Stores a draft.
    pub async fn create(
        &self,
        new: NewBroadcast,
        now: DateTime<Utc>,
    ) -> Result<Broadcast, DbError> {
        let id = Uuid::now_v7();
        broadcast::Entity::insert(broadcast::ActiveModel {
            id: Set(id),
            created_by: Set(new.created_by.as_uuid()),
            admin_chat_id: Set(new.admin_chat_id),
            audience: Set(new.audience.as_str().to_owned()),
            text: Set(new.text),
            photo_file_id: Set(new.photo_file_id),
            status: Set(BroadcastStatus::Draft.as_str().to_owned()),
            total: Set(0),
            sent: Set(0),
            blocked: Set(0),
            failed: Set(0),
            unconfirmed: Set(0),
            created_at: Set(crate::stored_time(now)),
            started_at: Set(None),
            finished_at: Set(None),
        })
        .exec_without_returning(self.conn)
        .await?;
        self.get(id)
            .await?
            .ok_or_else(|| DbError::corrupt("broadcasts", "inserted row vanished"))
    }

    /// A broadcast by id.
    pub async fn get(&self, id: Uuid) -> Result<Option<Broadcast>, DbError> {
        broadcast::Entity::find_by_id(id)
            .one(self.conn)
            .await?
            .map(to_broadcast)
            .transpose()
    }

    /// Broadcasts still being delivered (to resume after a restart).
    pub async fn sending(&self) -> Result<Vec<Uuid>, DbError> {
        Ok(broadcast::Entity::find()
            .select_only()
            .column(broadcast::Column::Id)
            .filter(broadcast::Column::Status.eq(BroadcastStatus::Sending.as_str()))
            .into_tuple()
            .all(self.conn)
            .await?)
    }

    /// How many customers `audience` reaches at `now`.
    pub async fn audience_size(
        &self,
        audience: BroadcastAudience,
        now: DateTime<Utc>,
    ) -> Result<u64, DbError> {
        let mut query = customer::Entity::find();
        QuerySelect::query(&mut query).cond_where(audience_filter(audience, now));
        Ok(query.count(self.conn).await?)
    }

    /// Confirms a draft: its recipients are fixed now, and it starts sending. Run it in the transaction that
    /// enqueues the delivery job. `InvalidTransition` unless it is a draft.
    pub async fn start(&self, id: Uuid, now: DateTime<Utc>) -> Result<Broadcast, DbError> {
        let draft = self.get(id).await?.ok_or(DomainError::NotFound {
            entity: "broadcast",
        })?;
        let started = broadcast::Entity::update_many()
            .col_expr(
                broadcast::Column::Status,
                Expr::value(BroadcastStatus::Sending.as_str()),
            )
            .col_expr(
                broadcast::Column::StartedAt,
                Expr::value(crate::stored_time(now)),
            )
            .filter(broadcast::Column::Id.eq(id))
            .filter(broadcast::Column::Status.eq(BroadcastStatus::Draft.as_str()))
            .exec(self.conn)
            .await?;
        if started.rows_affected != 1 {
            return Err(DomainError::InvalidTransition {
                entity: "broadcast",
                from: draft.status.as_str(),
                to: BroadcastStatus::Sending.as_str(),
            }
            .into());
        }
        let mut select = Query::select();
        select
            .expr(Expr::val(id))
            .column((customer::Entity, customer::Column::Id))
            .column((customer::Entity, customer::Column::TelegramId))
            .expr(Expr::val(RecipientState::Pending.as_str()))
            .from(customer::Entity)
            .cond_where(audience_filter(draft.audience, now));
        let insert = Query::insert()
            .into_table(broadcast_recipient::Entity)
            .columns([
                broadcast_recipient::Column::BroadcastId,
                broadcast_recipient::Column::CustomerId,
                broadcast_recipient::Column::TelegramId,
                broadcast_recipient::Column::State,
            ])
            .select_from(select)
            .map_err(|err| DbError::corrupt("broadcast_recipients", err))?
            .to_owned();
        let inserted = self.conn.execute(&insert).await?;
        let total = i32::try_from(inserted.rows_affected()).unwrap_or(i32::MAX);
        broadcast::Entity::update_many()
            .col_expr(broadcast::Column::Total, Expr::value(total))
            .filter(broadcast::Column::Id.eq(id))
            .exec(self.conn)
            .await?;
        self.get(id)
            .await?
            .ok_or_else(|| DbError::corrupt("broadcasts", "started row vanished"))
    }

    /// Cancels a draft or a delivery in progress (what was sent stays sent); false if already over.
    pub async fn cancel(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, DbError> {
        let cancelled = broadcast::Entity::update_many()
            .col_expr(
                broadcast::Column::Status,
                Expr::value(BroadcastStatus::Cancelled.as_str()),
            )
            .col_expr(
                broadcast::Column::FinishedAt,
                Expr::value(crate::stored_time(now)),
            )
            .filter(broadcast::Column::Id.eq(id))
            .filter(broadcast::Column::Status.is_in([
                BroadcastStatus::Draft.as_str(),
                BroadcastStatus::Sending.as_str(),
            ]))
            .exec(self.conn)
            .await?;
        Ok(cancelled.rows_affected == 1)
    }

    /// Records the outcome of the recipient `run` sent to last (if any) and, if `claim`, claims the next one
    /// for `run`. Run it in a transaction. A recipient is claimed by one run only, and an outcome counts once.
    pub async fn advance(
        &self,
        id: Uuid,
        run: Uuid,
        report: Option<(CustomerId, DeliveryOutcome, Option<String>)>,
        claim: bool,
        now: DateTime<Utc>,
    ) -> Result<Step, DbError> {
        let now = crate::stored_time(now);
        if let Some((customer, outcome, error)) = report {
            let recorded = broadcast_recipient::Entity::update_many()
                .col_expr(
                    broadcast_recipient::Column::State,
                    Expr::value(outcome.as_str()),
                )
                .col_expr(
                    broadcast_recipient::Column::Error,
                    Expr::value(error.map(|e| e.chars().take(256).collect::<String>())),
                )
                .filter(broadcast_recipient::Column::BroadcastId.eq(id))
                .filter(broadcast_recipient::Column::CustomerId.eq(customer.as_uuid()))
                .filter(broadcast_recipient::Column::State.eq(RecipientState::Sending.as_str()))
                .filter(broadcast_recipient::Column::ClaimedBy.eq(run))
                .exec(self.conn)
                .await?;
            if recorded.rows_affected == 1 {
                self.count(id, outcome_column(outcome), 1).await?;
            }
        }
        let Some(current) = self.get(id).await? else {
            return Err(DomainError::NotFound {
                entity: "broadcast",
            }
            .into());
        };
        match current.status {
            BroadcastStatus::Sending => {}
            BroadcastStatus::Done => {
                return Ok(Step::Finished {
                    broadcast: current,
                    first: false,
                });
            }
            BroadcastStatus::Draft | BroadcastStatus::Cancelled => return Ok(Step::Stopped),
        }
        if !claim {
            return Ok(Step::Stopped);
        }
        let mut next = broadcast_recipient::Entity::find()
            .filter(broadcast_recipient::Column::BroadcastId.eq(id))
            .filter(broadcast_recipient::Column::State.eq(RecipientState::Pending.as_str()))
            .order_by_asc(broadcast_recipient::Column::CustomerId)
            .limit(1);
        if self.conn.get_database_backend() == DbBackend::Postgres {
            next = next.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        if let Some(recipient) = next.one(self.conn).await? {
            let claimed = broadcast_recipient::Entity::update_many()
                .col_expr(
                    broadcast_recipient::Column::State,
                    Expr::value(RecipientState::Sending.as_str()),
                )
                .col_expr(broadcast_recipient::Column::ClaimedBy, Expr::value(run))
                .col_expr(broadcast_recipient::Column::ClaimedAt, Expr::value(now))
                .filter(broadcast_recipient::Column::BroadcastId.eq(id))
                .filter(broadcast_recipient::Column::CustomerId.eq(recipient.customer_id))
                .filter(broadcast_recipient::Column::State.eq(RecipientState::Pending.as_str()))
                .exec(self.conn)
                .await?;
            return Ok(if claimed.rows_affected == 1 {
                Step::Send(Recipient {
                    customer_id: CustomerId::from_uuid(recipient.customer_id),
                    telegram_id: recipient.telegram_id,
                })
            } else {
                Step::Wait
            });
        }
        // Nothing pending: claims of runs that died are settled as unconfirmed, never sent again.
        let stale = broadcast_recipient::Entity::update_many()
            .col_expr(
                broadcast_recipient::Column::State,
                Expr::value(RecipientState::Unconfirmed.as_str()),
            )
            .filter(broadcast_recipient::Column::BroadcastId.eq(id))
            .filter(broadcast_recipient::Column::State.eq(RecipientState::Sending.as_str()))
            .filter(broadcast_recipient::Column::ClaimedAt.lt(now - CLAIM_TIMEOUT))
            .exec(self.conn)
            .await?;
        if stale.rows_affected > 0 {
            self.count(id, broadcast::Column::Unconfirmed, stale.rows_affected)
                .await?;
        }
        let in_flight = broadcast_recipient::Entity::find()
            .filter(broadcast_recipient::Column::BroadcastId.eq(id))
            .filter(broadcast_recipient::Column::State.eq(RecipientState::Sending.as_str()))
            .count(self.conn)
            .await?;
        if in_flight > 0 {
            return Ok(Step::Wait);
        }
        let finished = broadcast::Entity::update_many()
            .col_expr(
                broadcast::Column::Status,
                Expr::value(BroadcastStatus::Done.as_str()),
            )
            .col_expr(broadcast::Column::FinishedAt, Expr::value(now))
            .filter(broadcast::Column::Id.eq(id))
            .filter(broadcast::Column::Status.eq(BroadcastStatus::Sending.as_str()))
            .exec(self.conn)
            .await?;
        let broadcast = self
            .get(id)
            .await?
            .ok_or_else(|| DbError::corrupt("broadcasts", "finished row vanished"))?;
        Ok(Step::Finished {
            broadcast,
            first: finished.rows_affected == 1,
        })
    }

    async fn count(&self, id: Uuid, column: broadcast::Column, by: u64) -> Result<(), DbError> {
        let by = i32::try_from(by).unwrap_or(i32::MAX);
        broadcast::Entity::update_many()
            .col_expr(column, Expr::col(column).add(by))
            .filter(broadcast::Column::Id.eq(id))
            .exec(self.conn)
            .await?;
        Ok(())
    }
}

/// A recipient's delivery state as stored.
#[derive(Debug, Clone, Copy)]
enum RecipientState {
    Pending,
    Sending,
    Unconfirmed,
}

impl RecipientState {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

const fn outcome_column(outcome: DeliveryOutcome) -> broadcast::Column {
    match outcome {
        DeliveryOutcome::Sent => broadcast::Column::Sent,
        DeliveryOutcome::Blocked => broadcast::Column::Blocked,
        DeliveryOutcome::Failed => broadcast::Column::Failed,
    }
}

/// Customers `audience` reaches at `now`: with a Telegram account, active (not banned), not deleted.
fn audience_filter(audience: BroadcastAudience, now: DateTime<Utc>) -> sea_orm::Condition {
    let base = sea_orm::Condition::all()
        .add(Expr::col((customer::Entity, customer::Column::TelegramId)).is_not_null())
        .add(Expr::col((customer::Entity, customer::Column::DeletedAt)).is_null())
        .add(
            Expr::col((customer::Entity, customer::Column::Status))
                .eq(CustomerStatus::Active.as_str()),
        );
    match audience {
        BroadcastAudience::All => base,
        BroadcastAudience::Active => base.add(Expr::exists(running(now, false))),
        BroadcastAudience::Trial => base.add(Expr::exists(running(now, true))),
    }
}

/// A running subscription of the outer customer that is (or is not) a trial.
fn running(now: DateTime<Utc>, trial_only: bool) -> SelectStatement {
    let sub = Alias::new("s");
    let mut trials = Query::select();
    trials
        .column(trial::Column::SubscriptionId)
        .from(trial::Entity);
    let trial_condition = if trial_only {
        Expr::col((sub.clone(), subscription::Column::Id)).in_subquery(trials)
    } else {
        Expr::col((sub.clone(), subscription::Column::Id)).not_in_subquery(trials)
    };
    Query::select()
        .expr(Expr::val(1))
        .from_as(subscription::Entity, sub.clone())
        .and_where(
            Expr::col((sub.clone(), subscription::Column::CustomerId))
                .equals((customer::Entity, customer::Column::Id)),
        )
        .and_where(
            Expr::col((sub.clone(), subscription::Column::Status))
                .eq(SubscriptionStatus::Active.as_str()),
        )
        .and_where(
            Expr::col((sub.clone(), subscription::Column::ExpiresAt)).gt(crate::stored_time(now)),
        )
        .and_where(trial_condition)
        .to_owned()
}

fn to_broadcast(model: broadcast::Model) -> Result<Broadcast, DbError> {
    let count = |n: i32| u32::try_from(n).unwrap_or(0);
    Ok(Broadcast {
        id: model.id,
        created_by: StaffId::from_uuid(model.created_by),
        admin_chat_id: model.admin_chat_id,
        audience: model
            .audience
            .parse()
            .map_err(|err| DbError::corrupt("broadcasts", err))?,
        text: model.text,
        photo_file_id: model.photo_file_id,
        status: model
            .status
            .parse()
            .map_err(|err| DbError::corrupt("broadcasts", err))?,
        total: count(model.total),
        sent: count(model.sent),
        blocked: count(model.blocked),
        failed: count(model.failed),
        unconfirmed: count(model.unconfirmed),
        created_at: model.created_at,
        finished_at: model.finished_at,
    })
}
