//! Schema migrations of the CyberVPN database.
//!
//! Written with sea-query's schema builder so the same files run on PostgreSQL (production) and SQLite
//! (standalone). Migrations are append-only: never edit one that has shipped, add a new one.

use sea_orm_migration::prelude::*;

mod m20261126_000001_core_schema;
mod m20261126_000002_seed_plans;
mod m20261126_000003_identity;
mod m20261126_000004_operations;
mod m20261126_000005_trials_referrals;
mod m20261126_000006_payment_terms;
mod m20261126_000007_promo_refunds;
mod m20261126_000008_staff_telegram;
mod m20261126_000009_broadcasts;
mod m20261126_000010_gateway_switches;
mod m20261126_000011_notice_templates;
mod m20261126_000013_analytics;
mod m20261126_000014_revenuecat_events;
mod m20261126_000015_devices;
mod m20261126_000016_invites;
mod m20261126_000017_loyalty;

pub use sea_orm_migration::MigratorTrait;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_core_schema::Migration),
            Box::new(m20261126_000002_seed_plans::Migration),
            Box::new(m20261126_000003_identity::Migration),
            Box::new(m20261126_000004_operations::Migration),
            Box::new(m20261126_000005_trials_referrals::Migration),
            Box::new(m20261126_000006_payment_terms::Migration),
            Box::new(m20261126_000007_promo_refunds::Migration),
            Box::new(m20261126_000008_staff_telegram::Migration),
            Box::new(m20261126_000009_broadcasts::Migration),
            Box::new(m20261126_000010_gateway_switches::Migration),
            Box::new(m20261126_000011_notice_templates::Migration),
            Box::new(m20261126_000013_analytics::Migration),
            Box::new(m20261126_000014_revenuecat_events::Migration),
            Box::new(m20261126_000015_devices::Migration),
            Box::new(m20261126_000016_invites::Migration),
            Box::new(m20261126_000017_loyalty::Migration),
        ]
    }
}

/// Hash of the migration sources: changes whenever any migration does (names test template databases).
pub const FINGERPRINT: &str = env!("CYBERVPN_MIGRATIONS_FINGERPRINT");
