//! The commerce operations against real databases (PostgreSQL and SQLite).
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod completion;
mod invites;
mod loyalty;
mod stars;
mod support;
