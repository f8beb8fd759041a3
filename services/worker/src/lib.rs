//! The background worker: relays the transactional outbox to the job queue, makes the Remnawave panel match
//! our subscriptions, and runs the periodic jobs the scheduler enqueues.
//!
//! Every handler is idempotent: a job delivered twice (after a crash, or relayed twice) has one effect.

mod actions;
mod backup;
mod geo;
pub mod live;
mod loyalty;
mod notify;
mod payments;
mod periodic;
mod provision;
mod push;
mod relay;
mod runtime;

pub use backup::{Backup, backup};
pub use notify::notify;
pub use periodic::record_node;
pub use provision::{ProvisionOutcome, panel_username, provision};
pub use relay::relay_once;
pub use runtime::{Services, register, run, start};
