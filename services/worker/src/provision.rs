//! "Make the panel match this subscription": one idempotent operation behind every change.

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_db::{DbError, Subscriptions, TransactionTrait};
use cybervpn_domain::{
    Customer, CustomerId, CustomerStatus, DomainError, PanelIdentity, Subscription, SubscriptionId,
    SubscriptionStatus,
};
use cybervpn_jobs::{JobError, JobResultExt};
use cybervpn_remnawave::{CreateUser, TrafficLimitStrategy, UpdateUser, User, UserKey, UserStatus};
use uuid::Uuid;

use crate::Services;

/// Tag on every panel user we create (`[A-Z0-9_]`, at most 16).
pub(crate) const PANEL_TAG: &str = "CYBERVPN";

/// What provisioning did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionOutcome {
    /// A panel user was created (or found by its username after an interrupted create).
    Created,
    /// The panel user was changed to match.
    Updated,
    /// The panel user already matched.
    Unchanged,
    /// Nothing to serve and no panel user: nothing was done.
    Skipped,
}

/// The panel username of a customer: derived from the id, so a retried create finds the same user.
pub fn panel_username(customer: CustomerId) -> String {
    format!("cv_{}", customer.as_uuid().simple())
}

/// What the panel user should look like.
struct Desired {
    live: bool,
    expire_at: DateTime<Utc>,
    traffic_limit_bytes: i64,
    device_limit: i64,
    squads: Vec<Uuid>,
    telegram_id: Option<i64>,
    email: Option<String>,
}

/// Makes the panel user of `id` match the subscription: creates it while the subscription is live, updates
/// expiry, limits, squads and status, and disables it when the subscription or its customer is not live.
/// Never creates a second user for a customer; recreates a user deleted in the panel only while live.
pub async fn provision(
    services: &Services,
    id: SubscriptionId,
) -> Result<ProvisionOutcome, JobError> {
    let db = &services.db;
    let Some(subscription) = db
        .subscriptions()
        .find(id)
        .await
        .or_retry("load subscription")?
    else {
        return Ok(ProvisionOutcome::Skipped);
    };
    // One panel user per customer: only the customer's current subscription (the one ending last) drives it,
    // so an older subscription ending never disables the user a newer one serves.
    let current = db
        .subscriptions()
        .current_for(subscription.customer_id)
        .await
        .or_retry("load current subscription")?;
    if current.as_ref().is_some_and(|c| c.id != id) {
        return Ok(ProvisionOutcome::Skipped);
    }
    let customer = match db.customers().get(subscription.customer_id).await {
        Ok(customer) => Some(customer),
        Err(DbError::Domain(DomainError::NotFound { .. })) => None,
        Err(err) => return Err(JobError::retry("load customer", err)),
    };
    let now = Utc::now();
    let desired = desired(services, &subscription, customer.as_ref(), now).await?;
    let panel = services.panel()?;
    let username = panel_username(subscription.customer_id);

    let existing = match &subscription.panel {
        Some(identity) => panel
            .user(identity.user_id)
            .await
            .or_retry("remnawave get user")?,
        None => panel
            .user_by_username(&username)
            .await
            .or_retry("remnawave get user by username")?,
    };
    let (user, outcome) = match existing {
        Some(user) => match update_for(&user, &desired, now) {
            Some(update) => (
                panel
                    .update_user(&update)
                    .await
                    .or_retry("remnawave update user")?,
                ProvisionOutcome::Updated,
            ),
            None => (user, ProvisionOutcome::Unchanged),
        },
        None if desired.live => {
            let create = CreateUser {
                status: Some(UserStatus::Active),
                traffic_limit_bytes: Some(desired.traffic_limit_bytes),
                traffic_limit_strategy: Some(TrafficLimitStrategy::NoReset),
                active_internal_squads: desired.squads.clone(),
                telegram_id: desired.telegram_id,
                email: desired.email.clone(),
                hwid_device_limit: Some(desired.device_limit),
                tag: Some(PANEL_TAG.to_owned()),
                description: Some(format!(
                    "CyberVPN customer {}",
                    subscription.customer_id.as_uuid()
                )),
                ..CreateUser::new(username, desired.expire_at)
            };
            (
                panel
                    .ensure_user(&create)
                    .await
                    .or_retry("remnawave create user")?,
                ProvisionOutcome::Created,
            )
        }
        None => {
            // Deleted in the panel (or never made) and nothing to serve: leave it gone.
            if subscription.panel.is_some() {
                db.subscriptions()
                    .set_panel(id, None, now)
                    .await
                    .or_retry("forget panel user")?;
            }
            return Ok(ProvisionOutcome::Skipped);
        }
    };
    let identity = PanelIdentity {
        user_id: user.id,
        short_uuid: user.short_uuid.clone(),
        subscription_url: user.subscription_url.clone(),
    };
    if subscription.panel.as_ref() != Some(&identity) || outcome != ProvisionOutcome::Unchanged {
        let txn = db.conn().begin().await.or_retry("begin")?;
        let subscriptions = Subscriptions::on(&txn);
        // The user moves over from an older subscription of the same customer.
        if let Some(previous) = subscriptions
            .by_panel_user(identity.user_id)
            .await
            .or_retry("find previous holder")?
            .filter(|previous| previous.id != id)
        {
            subscriptions
                .set_panel(previous.id, None, now)
                .await
                .or_retry("release panel user")?;
        }
        subscriptions
            .set_panel(id, Some(&identity), now)
            .await
            .or_retry("store panel user")?;
        txn.commit().await.or_retry("commit panel user")?;
    }
    tracing::info!(
        subscription = %id.as_uuid(),
        panel_user = user.id,
        outcome = ?outcome,
        "provisioned"
    );
    Ok(outcome)
}

async fn desired(
    services: &Services,
    subscription: &Subscription,
    customer: Option<&Customer>,
    now: DateTime<Utc>,
) -> Result<Desired, JobError> {
    let plan = match subscription.plan_id {
        Some(plan) => Some(services.db.plans().get(plan).await.or_retry("load plan")?),
        None => None,
    };
    let device_limit = subscription
        .device_limit
        .or(plan.as_ref().map(|plan| plan.device_limit))
        .unwrap_or(services.config.remnawave.default_device_limit);
    let customer_live = customer.is_some_and(|c| c.status != CustomerStatus::Disabled);
    let live = customer_live && serves(subscription, now);
    Ok(Desired {
        live,
        expire_at: subscription.expires_at,
        traffic_limit_bytes: subscription
            .traffic_limit
            .as_optional_bytes()
            .map_or(0, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        device_limit: i64::from(device_limit),
        squads: squads(services, subscription.customer_id, now).await?,
        telegram_id: customer.and_then(|c| c.telegram_id.map(|t| t.get())),
        email: customer.and_then(|c| c.email.as_ref().map(|e| e.as_str().to_owned())),
    })
}

/// The squads a customer's panel user gets: the configured ones, plus the premium squad while they are
/// Platinum (grace period included).
async fn squads(
    services: &Services,
    customer: CustomerId,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, JobError> {
    let squads = services.squads().await?;
    let mut wanted = squads.base;
    if let Some(premium) = squads.premium
        && !wanted.contains(&premium)
    {
        let account = services
            .db
            .loyalty()
            .account(customer)
            .await
            .or_retry("load loyalty account")?;
        if account.tenure.level_at(now).premium_squad() {
            wanted.push(premium);
        }
    }
    Ok(wanted)
}

/// The PATCH that brings `user` to `desired`, or `None` when it already matches.
fn update_for(user: &User, desired: &Desired, now: DateTime<Utc>) -> Option<UpdateUser> {
    let mut update = UpdateUser::new(UserKey::Id(user.id));
    let mut changed = false;
    // The panel refuses an expiry in the past; an ended subscription is disabled instead.
    let expire_in_future = desired.expire_at > now + TimeDelta::seconds(5);
    if expire_in_future && (user.expire_at - desired.expire_at).num_seconds().abs() >= 1 {
        update.expire_at = Some(desired.expire_at);
        changed = true;
    }
    if user.traffic_limit_bytes != desired.traffic_limit_bytes {
        update.traffic_limit_bytes = Some(desired.traffic_limit_bytes);
        changed = true;
    }
    if user.traffic_limit_strategy != TrafficLimitStrategy::NoReset {
        update.traffic_limit_strategy = Some(TrafficLimitStrategy::NoReset);
        changed = true;
    }
    if user.hwid_device_limit != Some(desired.device_limit) {
        update.hwid_device_limit = Some(desired.device_limit);
        changed = true;
    }
    let mut have: Vec<Uuid> = user.active_internal_squads.iter().map(|s| s.uuid).collect();
    let mut want = desired.squads.clone();
    have.sort_unstable();
    want.sort_unstable();
    if have != want {
        update.active_internal_squads = Some(desired.squads.clone());
        changed = true;
    }
    if desired.telegram_id.is_some() && user.telegram_id != desired.telegram_id {
        update.telegram_id = desired.telegram_id;
        changed = true;
    }
    let status = if desired.live {
        // LIMITED and EXPIRED are the panel's own verdicts; a new expiry or limit lifts them.
        (user.status == UserStatus::Disabled
            || (user.status == UserStatus::Expired && update.expire_at.is_some()))
        .then_some(UserStatus::Active)
    } else {
        (user.status == UserStatus::Active || user.status == UserStatus::Limited)
            .then_some(UserStatus::Disabled)
    };
    if let Some(status) = status {
        update.status = Some(status);
        changed = true;
    }
    changed.then_some(update)
}

/// Whether the panel user differs from what our subscription says (reconciliation's drift test).
pub(crate) fn drifted(
    subscription: &Subscription,
    customer_live: bool,
    user: &User,
    now: DateTime<Utc>,
) -> bool {
    let live = customer_live && serves(subscription, now);
    let status_ok = if live {
        user.status == UserStatus::Active || user.status == UserStatus::Limited
    } else {
        user.status != UserStatus::Active
    };
    let expiry_ok = !live
        || (user.expire_at - subscription.expires_at)
            .num_seconds()
            .abs()
            < 1;
    let limit = subscription
        .traffic_limit
        .as_optional_bytes()
        .map_or(0, |bytes| i64::try_from(bytes).unwrap_or(i64::MAX));
    let identity_ok = subscription
        .panel
        .as_ref()
        .is_some_and(|p| p.user_id == user.id && p.short_uuid == user.short_uuid);
    !(status_ok && expiry_ok && limit == user.traffic_limit_bytes && identity_ok)
}

/// Whether the subscription should have a panel user at `now`: running, or out of traffic (the panel enforces
/// the limit itself) but not ended.
pub(crate) fn serves(subscription: &Subscription, now: DateTime<Utc>) -> bool {
    matches!(
        subscription.status,
        SubscriptionStatus::Active | SubscriptionStatus::Limited
    ) && subscription.expires_at > now
}

/// Whether a subscription's end changed status at `now`: active past its end becomes expired.
pub(crate) fn expire_if_due(subscription: &mut Subscription, now: DateTime<Utc>) -> bool {
    if subscription.status == SubscriptionStatus::Active && subscription.expires_at <= now {
        subscription.status = SubscriptionStatus::Expired;
        subscription.updated_at = now;
        return true;
    }
    false
}
