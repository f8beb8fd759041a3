//! Client for the Remnawave panel 3.x API: users, nodes, squads, system stats.
//!
//! Owns the panel's wire format (the shared `contracts/remnawave.md`): authentication and forwarding
//! headers, the `{"response": …}` envelope, error codes, which calls are safe to retry, and the
//! `external_*{service="remnawave"}` metrics. Callers get typed values, never raw JSON.

mod client;
mod error;
mod nodes;
mod system;
mod types;
mod users;
mod wire;

pub use client::{Panel, PanelConfig};
pub use error::PanelError;
pub use types::{
    Bandwidth, BandwidthPeriod, CpuStats, CreateUser, InternalSquad, MemoryStats, Metadata, Node,
    NodeSystem, NodeSystemStats, NodeTotals, NodeVersions, OnlineStats, ResolvedUser, Squad,
    SquadInfo, StreamQuery, SubscriptionInfo, SubscriptionUser, SystemStats, TrafficLimitStrategy,
    UpdateUser, User, UserCounts, UserKey, UserList, UserPage, UserRef, UserStatus, UserTraffic,
};
