//! Repositories: one per aggregate, each borrowing the connection and returning domain types.

pub(crate) mod audit;
pub(crate) mod customers;
pub(crate) mod payments;
pub(crate) mod plans;
pub(crate) mod sessions;
pub(crate) mod staff;
pub(crate) mod two_factor;
