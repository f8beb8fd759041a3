//! Integration tests of the Remnawave client against the fake panel over real HTTP on loopback.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod faults;
mod helpers;
mod nodes;
mod system;
mod users;
