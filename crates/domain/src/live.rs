//! Live events for staff views (the api's WebSockets): what happened, under a topic each role may or may not see.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Permission, macros::string_enum};

/// The store channel live events are published on.
pub const LIVE_CHANNEL: &str = "events:live";

string_enum! {
    /// What a live event is about.
    pub enum LiveTopic (field = "topic") {
        /// Node status and load, as the worker sees the panel.
        Monitoring => "monitoring",
        /// Payments credited.
        Payments => "payments",
        /// Customers who signed up.
        Customers => "customers",
        /// Outages: a server going offline or coming back.
        Incidents => "incidents",
    }
}

impl LiveTopic {
    /// The permission a staff member needs to receive the topic.
    pub const fn permission(self) -> Permission {
        match self {
            Self::Monitoring | Self::Incidents => Permission::ViewServers,
            Self::Payments => Permission::ViewPayments,
            Self::Customers => Permission::ViewCustomers,
        }
    }
}

/// One live event, as published and as sent to WebSocket clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    /// Its topic.
    pub topic: LiveTopic,
    /// What happened, e.g. `node_status`, `payment_completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The details, specific to the kind.
    pub data: serde_json::Value,
}

impl LiveEvent {
    /// An event of `kind` under `topic` that happened `at`.
    pub fn new(topic: LiveTopic, kind: &str, at: DateTime<Utc>, data: serde_json::Value) -> Self {
        Self {
            topic,
            kind: kind.to_owned(),
            at,
            data,
        }
    }
}
