//! Repositories: one per aggregate, each borrowing the connection and returning domain types.

pub(crate) mod customers;
pub(crate) mod payments;
pub(crate) mod plans;
