//! Persistence for CyberVPN.
//!
//! Owns the sea-orm entities, the connection pool for PostgreSQL or SQLite, migrations at start-up, and the
//! repositories that return domain types; database errors are mapped here, by constraint, to domain errors.

pub mod entity;
mod error;
mod repo;

use std::time::Duration;

use cybervpn_config::Config;
use cybervpn_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, DatabaseConnection};

pub use error::DbError;
pub use repo::{
    analytics::{
        Analytics, Churn, ChurnBucket, ConversionBucket, ConversionReport, GrowthBucket,
        GrowthReport, OutcomesBucket, OutcomesReport, ProviderOutcomes, RevenueBucket, RevenueLine,
        RevenueReport, StatusCounts, SubscriptionReport, TierCount,
    },
    audit::{Audit, AuditEntry},
    broadcasts::{Broadcast, Broadcasts, CLAIM_TIMEOUT, NewBroadcast, Recipient, Step},
    customers::{CustomerRecord, CustomerSearch, Customers},
    dashboard::{Dashboard, GatewayRevenue, Revenue},
    devices::{Device, DevicePlatform, Devices, MAX_DEVICES, Registration},
    gateway_switches::GatewaySwitches,
    invites::{InviteSearch, Invites, NewInvite},
    loyalty::{Loyalty, LoyaltyAccount, LoyaltyReward},
    notice_templates::NoticeTemplates,
    notifications::{Audience, Notification, Notifications},
    outbox::{Outbox, OutboxMessage},
    payments::{PaymentSearch, Payments},
    plans::Plans,
    promos::Promos,
    referrals::{ReferralStats, Referrals},
    servers::{NodeReport, ServerRecord, Servers, StatusChange},
    sessions::{Rotation, Sessions},
    snapshots::Snapshots,
    staff::Staff,
    staff_links::StaffLinks,
    store_events::{StoreEvent, StoreEvents},
    subscriptions::Subscriptions,
    trials::{Trial, Trials},
    two_factor::{Enrollment, TwoFactor},
};
/// For code generic over a pool or a transaction, like the repositories.
pub use sea_orm::ConnectionTrait;
/// Which database engine a [`Db`] talks to.
pub use sea_orm::DbBackend;
pub use sea_orm::DbErr;
/// For tests that arrange rows no repository writes yet, through [`entity`].
pub use sea_orm::{ActiveValue, EntityTrait};
/// For callers that make several repository calls atomic (a staff mutation and its audit entry): begin with
/// `db.conn().begin()`, pass `&txn` to each repository's `on`, then `txn.commit()`.
pub use sea_orm::{DatabaseTransaction, TransactionTrait};

/// A pooled connection to the platform's database.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
}

impl Db {
    /// Opens a pool for the configured database (SQLite files are created, in WAL mode).
    pub async fn connect(config: &Config) -> Result<Self, DbErr> {
        let url = config.database_url();
        let url = url.expose();
        if let Some(parent) = sqlite_file(url).and_then(|path| std::path::Path::new(path).parent())
        {
            std::fs::create_dir_all(parent).map_err(|err| {
                DbErr::Custom(format!("cannot create {}: {err}", parent.display()))
            })?;
        }
        let mut options = ConnectOptions::new(url.clone());
        options
            .max_connections(config.database.max_connections)
            .min_connections(config.database.min_connections)
            .connect_timeout(Duration::from_secs(config.database.connect_timeout_secs))
            .acquire_timeout(Duration::from_secs(config.database.connect_timeout_secs))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5))
            });
        let conn = sea_orm::Database::connect(options).await?;
        Ok(Self { conn })
    }

    /// Wraps an open connection.
    pub const fn from_connection(conn: DatabaseConnection) -> Self {
        Self { conn }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.conn, None).await
    }

    /// Names of migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, DbErr> {
        Ok(Migrator::get_pending_migrations(&self.conn)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// Checks that the database answers a query.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.execute_unprepared("SELECT 1").await.map(|_| ())
    }

    /// Which database engine this is.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// The underlying connection, for repositories and transactions.
    pub const fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Writes a consistent copy of this SQLite database to the new file `dest` while it stays in use.
    pub async fn copy_sqlite_to(&self, dest: &std::path::Path) -> Result<(), DbErr> {
        if self.backend() != DbBackend::Sqlite {
            return Err(DbErr::Custom("not a SQLite database".to_owned()));
        }
        let dest = dest
            .to_str()
            .ok_or_else(|| DbErr::Custom("the copy's path is not UTF-8".to_owned()))?;
        // VACUUM INTO takes a file name expression: a string literal with its quotes doubled.
        let sql = format!("VACUUM INTO '{}'", dest.replace('\'', "''"));
        self.conn.execute_unprepared(&sql).await.map(|_| ())
    }

    /// Closes every pooled connection.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }

    /// Customer accounts.
    pub const fn customers(&self) -> Customers<'_> {
        Customers::on(&self.conn)
    }

    /// The plan catalogue.
    pub const fn plans(&self) -> Plans<'_> {
        Plans::on(&self.conn)
    }

    /// Payments.
    pub const fn payments(&self) -> Payments<'_> {
        Payments::on(&self.conn)
    }

    /// Promo codes.
    pub const fn promos(&self) -> Promos<'_> {
        Promos::on(&self.conn)
    }

    /// Staff accounts.
    pub const fn staff(&self) -> Staff<'_> {
        Staff::on(&self.conn)
    }

    /// Refresh-token sessions.
    pub const fn sessions(&self) -> Sessions<'_> {
        Sessions::on(&self.conn)
    }

    /// TOTP enrolments and backup codes.
    pub const fn two_factor(&self) -> TwoFactor<'_> {
        TwoFactor::on(&self.conn)
    }

    /// The staff audit log.
    pub const fn audit(&self) -> Audit<'_> {
        Audit::on(&self.conn)
    }

    /// Subscriptions.
    pub const fn subscriptions(&self) -> Subscriptions<'_> {
        Subscriptions::on(&self.conn)
    }

    /// The transactional outbox.
    pub const fn outbox(&self) -> Outbox<'_> {
        Outbox::on(&self.conn)
    }

    /// Servers (panel nodes).
    pub const fn servers(&self) -> Servers<'_> {
        Servers::on(&self.conn)
    }

    /// Customer devices that receive push notifications.
    pub const fn devices(&self) -> Devices<'_> {
        Devices::on(&self.conn)
    }

    /// Notifications.
    pub const fn notifications(&self) -> Notifications<'_> {
        Notifications::on(&self.conn)
    }

    /// Free trials taken.
    pub const fn trials(&self) -> Trials<'_> {
        Trials::on(&self.conn)
    }

    /// Referrals between customers.
    pub const fn referrals(&self) -> Referrals<'_> {
        Referrals::on(&self.conn)
    }

    /// Loyalty accounts and level bonuses.
    pub const fn loyalty(&self) -> Loyalty<'_> {
        Loyalty::on(&self.conn)
    }

    /// RevenueCat webhook events already handled.
    pub const fn store_events(&self) -> StoreEvents<'_> {
        StoreEvents::on(&self.conn)
    }

    /// Business analytics reports.
    pub const fn analytics(&self) -> Analytics<'_> {
        Analytics::on(&self.conn)
    }

    /// Invite rules, promotions and codes.
    pub const fn invites(&self) -> Invites<'_> {
        Invites::on(&self.conn)
    }

    /// Snapshots of periodically collected data.
    pub const fn snapshots(&self) -> Snapshots<'_> {
        Snapshots::on(&self.conn)
    }
}

/// `time` at the precision both databases store (microseconds), so what is written is what is read back.
pub(crate) fn stored_time(time: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(time, 6)
}

/// The file path of a `sqlite://` URL, without its query string; `None` for in-memory or other databases.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;

    #[test]
    fn finds_the_sqlite_file_path() {
        assert_eq!(
            sqlite_file("sqlite://./data/cybervpn.db?mode=rwc"),
            Some("./data/cybervpn.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://db/x"), None);
    }
}
