//! Business gauges for Prometheus — customers, active subscriptions by tier, revenue by currency and gateway,
//! servers by status, users online per server, invite codes by status and loyalty levels — read from the database when `/metrics` is scraped, at most
//! once per [`REFRESH`], so every api replica reports the same fresh numbers.

use std::time::{Duration, Instant};

use chrono::Utc;
use cybervpn_db::{Dashboard, Db, DbError};
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use tokio::sync::Mutex;

/// How old the numbers may get before a scrape reads them again.
const REFRESH: Duration = Duration::from_secs(30);

/// The gauges and when they were last read.
pub(crate) struct BusinessMetrics {
    customers: IntGauge,
    trials: IntGauge,
    active_subscriptions: IntGaugeVec,
    revenue: IntGaugeVec,
    payments: IntGaugeVec,
    servers: IntGaugeVec,
    users_online: IntGaugeVec,
    invites: IntGaugeVec,
    loyalty: IntGaugeVec,
    read_at: Mutex<Option<Instant>>,
}

impl BusinessMetrics {
    /// Registers the gauges in `registry`.
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<Self> {
        let customers = IntGauge::new("business_customers", "Customers (not deleted)")?;
        let trials = IntGauge::new("business_trials", "Free trials ever taken")?;
        registry.register(Box::new(customers.clone()))?;
        registry.register(Box::new(trials.clone()))?;
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntGaugeVec> {
            let gauge = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        Ok(Self {
            customers,
            trials,
            active_subscriptions: vec(
                "business_active_subscriptions",
                "Subscriptions serving now, by plan tier (`trial` for subscriptions without a plan)",
                &["tier"],
            )?,
            revenue: vec(
                "business_revenue_minor",
                "Sum of completed (not refunded) payments ever, in minor units of the currency",
                &["currency", "provider"],
            )?,
            payments: vec(
                "business_payments_completed",
                "Completed (not refunded) payments ever",
                &["currency", "provider"],
            )?,
            servers: vec(
                "business_servers",
                "VPN servers by status at the last node sync",
                &["status"],
            )?,
            users_online: vec(
                "business_server_users_online",
                "Users online per VPN server at the last node sync",
                &["server"],
            )?,
            invites: vec(
                "business_invites",
                "Invite codes by status (available, used, expired)",
                &["status"],
            )?,
            loyalty: vec(
                "business_loyalty_customers",
                "Customers at each loyalty level above Bronze (grace period included)",
                &["level"],
            )?,
            read_at: Mutex::new(None),
        })
    }

    /// Reads the numbers again unless they are fresher than [`REFRESH`]; on a database error the gauges keep
    /// their last values.
    pub(crate) async fn refresh(&self, db: &Db) {
        let mut read_at = self.read_at.lock().await;
        if read_at.is_some_and(|at| at.elapsed() < REFRESH) {
            return;
        }
        match self.read(db).await {
            Ok(()) => *read_at = Some(Instant::now()),
            Err(err) => tracing::warn!(error = %err, "business metrics not refreshed"),
        }
    }

    async fn read(&self, db: &Db) -> Result<(), DbError> {
        let dashboard = Dashboard::on(db.conn());
        let customers = dashboard.customers().await?;
        let trials = dashboard.trials().await?;
        let active = db.analytics().active_by_tier(Utc::now()).await?;
        let revenue = dashboard.revenue_by_gateway().await?;
        let servers = db.servers().list().await?;
        let invites = db.invites().status_counts(Utc::now()).await?;
        let levels = db.loyalty().level_counts(Utc::now()).await?;

        self.customers.set(clamp(customers));
        self.trials.set(clamp(trials));
        self.active_subscriptions.reset();
        for count in active {
            let tier = count.tier.map_or("trial", |tier| tier.as_str());
            self.active_subscriptions
                .with_label_values(&[tier])
                .set(clamp(count.active));
        }
        self.revenue.reset();
        self.payments.reset();
        for row in revenue {
            let labels = [row.currency.as_str(), row.provider.as_str()];
            self.revenue
                .with_label_values(&labels)
                .set(row.amount_minor);
            self.payments
                .with_label_values(&labels)
                .set(clamp(row.payments));
        }
        self.servers.reset();
        self.users_online.reset();
        for server in servers {
            self.servers
                .with_label_values(&[server.status.as_str()])
                .inc();
            self.users_online
                .with_label_values(&[server.name.as_str()])
                .set(i64::from(server.users_online));
        }
        for (status, count) in invites {
            self.invites
                .with_label_values(&[status.as_str()])
                .set(clamp(count));
        }
        for (level, count) in levels {
            self.loyalty
                .with_label_values(&[level.as_str()])
                .set(clamp(count));
        }
        Ok(())
    }
}

fn clamp(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
