//! Integration tests of the api over HTTP, on PostgreSQL (with Redis) and on SQLite (standalone).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step fails the test"
)]

mod admin;
mod analytics;
mod auth;
mod devices;
mod errors;
mod grpc;
mod health;
mod helpers;
mod invites;
mod lifecycle;
mod loyalty;
mod openapi;
mod operations;
mod payments;
mod plans;
mod promo;
mod rbac;
mod referral;
mod refunds;
mod revenuecat;
mod subscriptions;
mod telegram_auth;
mod trial;
mod webhook_property;
mod webhooks;
mod ws;
