//! Repositories: one per aggregate, each borrowing the connection and returning domain types.

pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod broadcasts;
pub(crate) mod customers;
pub(crate) mod dashboard;
pub(crate) mod devices;
pub(crate) mod gateway_switches;
pub(crate) mod invites;
pub(crate) mod loyalty;
pub(crate) mod notice_templates;
pub(crate) mod notifications;
pub(crate) mod outbox;
pub(crate) mod payments;
pub(crate) mod plans;
pub(crate) mod promos;
pub(crate) mod referrals;
pub(crate) mod servers;
pub(crate) mod sessions;
pub(crate) mod snapshots;
pub(crate) mod staff;
pub(crate) mod staff_links;
pub(crate) mod store_events;
pub(crate) mod subscriptions;
pub(crate) mod trials;
pub(crate) mod two_factor;
