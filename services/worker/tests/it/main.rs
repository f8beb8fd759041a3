//! Worker integration tests: real databases (PostgreSQL and SQLite), the real panel client against the panel
//! fake on loopback, and jobs run by the real worker on the in-process queue.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod backup;
mod loyalty;
mod payments;
mod periodic;
mod provisioning;
mod push;
mod rig;
