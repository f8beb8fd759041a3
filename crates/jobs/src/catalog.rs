//! The platform's jobs: what the api and the scheduler enqueue and the worker runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Job, Queue, QueueError, RetryPolicy};

/// Panel calls get many patient retries: the panel may be down for minutes.
const PANEL_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 10,
    base_delay: Duration::from_secs(2),
    max_delay: Duration::from_secs(300),
};

/// Periodic jobs are superseded by the next tick, so they retry briefly.
const PERIODIC_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_secs(5),
    max_delay: Duration::from_secs(60),
};

/// Make the panel user of a subscription match the subscription (create, update, disable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionSubscription {
    /// Our subscription id.
    pub subscription_id: Uuid,
}

impl Job for ProvisionSubscription {
    const NAME: &'static str = "provision_subscription";
    const RETRY: RetryPolicy = PANEL_RETRY;
}

/// A one-off panel action on a subscription's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelAction {
    /// Zero the used traffic.
    ResetTraffic,
    /// Issue a new subscription link, invalidating the old one.
    RevokeSubscription,
}

/// Runs a [`PanelAction`] once per request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelUserAction {
    /// Our subscription id.
    pub subscription_id: Uuid,
    /// What to do.
    pub action: PanelAction,
    /// Identifies the request, so a redelivered job does not act twice.
    pub request_id: Uuid,
}

impl Job for PanelUserAction {
    const NAME: &'static str = "panel_user_action";
    const RETRY: RetryPolicy = PANEL_RETRY;
}

/// Deliver a recorded notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverNotification {
    /// The notification's id.
    pub notification_id: Uuid,
}

impl Job for DeliverNotification {
    const NAME: &'static str = "deliver_notification";
    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_secs(5),
        max_delay: Duration::from_secs(600),
    };
}

/// Push a recorded customer notification to each of the customer's devices through FCM (run by the worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushNotification {
    /// The notification's id.
    pub notification_id: Uuid,
}

impl Job for PushNotification {
    const NAME: &'static str = "push_notification";
    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(600),
    };
}

/// Deliver a confirmed broadcast, one recipient at a time, paced under Telegram's limits (run by the bot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBroadcast {
    /// The broadcast's id.
    pub broadcast_id: Uuid,
}

impl Job for SendBroadcast {
    const NAME: &'static str = "send_broadcast";
    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 20,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(60),
    };
}

/// Send a database backup to the admin chats (run by the bot, which reads the file from the shared backup
/// directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverBackup {
    /// The staff notification announcing the backup (its body is the document's caption).
    pub notification_id: Uuid,
    /// Where the worker wrote the backup.
    pub path: String,
}

impl Job for DeliverBackup {
    const NAME: &'static str = "deliver_backup";
    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(600),
    };
}

macro_rules! periodic_jobs {
    ($($(#[doc = $doc:literal])* $name:ident => $job:literal,)*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name {
                /// The schedule slot that enqueued it (interval number, or month number).
                pub slot: i64,
            }

            impl Job for $name {
                const NAME: &'static str = $job;
                const RETRY: RetryPolicy = PERIODIC_RETRY;
            }
        )*

        /// The periodic jobs the scheduler enqueues.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Periodic {
            $($(#[doc = $doc])* $name,)*
        }

        impl Periodic {
            /// Every periodic job.
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];

            /// The job's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$name => $job,)*
                }
            }

            /// Enqueues this job for `slot`.
            pub async fn push(self, queue: &Queue, slot: i64) -> Result<String, QueueError> {
                match self {
                    $(Self::$name => queue.push(&$name { slot }).await,)*
                }
            }
        }
    };
}

periodic_jobs! {
    /// Copy node state from the panel into `servers`.
    NodeSync => "node_sync",
    /// Place servers on the globe from their country.
    ServerGeolocation => "server_geolocation",
    /// Check the panel and its nodes; status changes notify the admins.
    NodeHealthCheck => "node_health_check",
    /// Snapshot the panel's bandwidth statistics.
    BandwidthStats => "bandwidth_stats",
    /// Copy per-user traffic from the panel into subscriptions.
    UserTrafficStats => "user_traffic_stats",
    /// Reset traffic of plans that renew monthly (the 1st, 00:00 UTC).
    MonthlyTrafficReset => "monthly_traffic_reset",
    /// Refresh the panel's squads (server configurations).
    ServerConfigs => "server_configs",
    /// Remind customers before and when their subscription ends.
    ExpiryReminders => "expiry_reminders",
    /// Mark ended subscriptions expired and disable their panel users.
    DisableExpired => "disable_expired",
    /// Compare every panel user with our subscriptions and repair drift.
    FullReconcile => "full_reconcile",
    /// Close unpaid payments past their expiry and credit CryptoBot invoices whose webhook was missed.
    PaymentsSweep => "payments_sweep",
    /// Dump the database, compress it, keep the newest copies and send it to the admin chats.
    DatabaseBackup => "database_backup",
    /// Remind loyal customers whose grace period after their paid coverage ends soon; restart the streak of
    /// those whose grace ended (and take Platinum's premium squad back through provisioning).
    LoyaltyGrace => "loyalty_grace",
}

/// Every job name, on-demand and periodic (for queue-depth views).
pub const NAMES: &[&str] = &[
    ProvisionSubscription::NAME,
    PanelUserAction::NAME,
    DeliverNotification::NAME,
    PushNotification::NAME,
    SendBroadcast::NAME,
    DeliverBackup::NAME,
    NodeSync::NAME,
    ServerGeolocation::NAME,
    NodeHealthCheck::NAME,
    BandwidthStats::NAME,
    UserTrafficStats::NAME,
    MonthlyTrafficReset::NAME,
    ServerConfigs::NAME,
    ExpiryReminders::NAME,
    DisableExpired::NAME,
    FullReconcile::NAME,
    PaymentsSweep::NAME,
    DatabaseBackup::NAME,
    LoyaltyGrace::NAME,
];

/// Enqueues a job recorded in the outbox by its name; `Ok(None)` for a name this build does not know.
pub async fn push_named(
    queue: &Queue,
    name: &str,
    payload: serde_json::Value,
) -> Result<Option<String>, QueueError> {
    fn decode<J: Job>(payload: serde_json::Value) -> Result<J, QueueError> {
        serde_json::from_value(payload).map_err(QueueError::json("decode outbox payload"))
    }
    let id = match name {
        ProvisionSubscription::NAME => {
            queue
                .push(&decode::<ProvisionSubscription>(payload)?)
                .await?
        }
        PanelUserAction::NAME => queue.push(&decode::<PanelUserAction>(payload)?).await?,
        DeliverNotification::NAME => queue.push(&decode::<DeliverNotification>(payload)?).await?,
        PushNotification::NAME => queue.push(&decode::<PushNotification>(payload)?).await?,
        SendBroadcast::NAME => queue.push(&decode::<SendBroadcast>(payload)?).await?,
        DeliverBackup::NAME => queue.push(&decode::<DeliverBackup>(payload)?).await?,
        _ => return Ok(None),
    };
    Ok(Some(id))
}
