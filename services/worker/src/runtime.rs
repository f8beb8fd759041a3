//! Wiring: the services every handler uses, the job registrations, and the process lifecycle.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use cybervpn_config::Config;
use cybervpn_db::Db;
use cybervpn_domain::SubscriptionId;
use cybervpn_jobs::{
    JobError, JobMetrics, Queue, Worker,
    catalog::{
        BandwidthStats, DatabaseBackup, DisableExpired, ExpiryReminders, FullReconcile,
        LoyaltyGrace, MonthlyTrafficReset, NodeHealthCheck, NodeSync, PanelUserAction,
        PaymentsSweep, ProvisionSubscription, PushNotification, ServerConfigs, ServerGeolocation,
        UserTrafficStats,
    },
};
use cybervpn_kv::{Kv, Store};
use cybervpn_remnawave::{Panel, PanelConfig};
use cybervpn_telemetry::Metrics;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::{actions, backup, loyalty, payments, periodic, provision, push, relay};

/// What every job handler works with; cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// The job queue (for follow-up jobs).
    pub queue: Queue,
    /// Shared short-lived state (done markers).
    pub store: Store,
    /// The panel client; `None` when `remnawave.url` is not configured.
    pub panel: Option<Panel>,
    /// CryptoBot, to find paid invoices whose webhook was missed; `None` without a token.
    pub cryptobot: Option<cybervpn_payments::cryptobot::CryptoBot>,
    /// Firebase Cloud Messaging; `None` when `[push]` is not configured.
    pub fcm: Option<cybervpn_push::Fcm>,
    /// The configuration.
    pub config: Arc<Config>,
    pub(crate) backup_metrics: backup::BackupMetrics,
    squads: Arc<RwLock<Option<Squads>>>,
}

/// The configured squads, resolved to the panel's uuids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Squads {
    /// `remnawave.squads`: every user's.
    pub(crate) base: Vec<Uuid>,
    /// `loyalty.premium_squad`: added for Platinum customers; `None` when not configured.
    pub(crate) premium: Option<Uuid>,
}

impl Services {
    /// Builds the panel and CryptoBot clients from `config`.
    pub fn new(
        config: Arc<Config>,
        db: Db,
        queue: Queue,
        store: Store,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let panel = match (&config.remnawave.url, &config.remnawave.token) {
            (Some(url), Some(token)) => {
                let mut panel = PanelConfig::new(url.clone(), token.expose().clone());
                panel.timeout = Duration::from_secs(config.remnawave.timeout_secs);
                panel.extra_headers = config
                    .remnawave
                    .extra_headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.expose().clone()))
                    .collect();
                Some(Panel::new(panel, metrics.external.clone()).context("remnawave client")?)
            }
            _ => None,
        };
        let cryptobot = match &config.payments.cryptobot_token {
            Some(token) => {
                let mut settings =
                    cybervpn_payments::cryptobot::CryptoBotConfig::new(token.expose().clone());
                settings
                    .api_url
                    .clone_from(&config.payments.cryptobot_api_url);
                Some(
                    cybervpn_payments::cryptobot::CryptoBot::new(
                        settings,
                        metrics.external.clone(),
                    )
                    .context("cryptobot client")?,
                )
            }
            None => None,
        };
        let fcm = match (
            &config.push.fcm_project_id,
            &config.push.fcm_service_account_json,
        ) {
            (Some(project_id), Some(account)) => Some(
                cybervpn_push::Fcm::new(&cybervpn_push::FcmConfig {
                    project_id: project_id.clone(),
                    service_account_json: account.expose().clone(),
                    api_url: config.push.fcm_api_url.clone(),
                    timeout: Duration::from_secs(10),
                })
                .context("fcm client")?,
            ),
            _ => None,
        };
        let backup_metrics =
            backup::BackupMetrics::register(metrics.registry(), &config.backup_dir())
                .context("backup metrics")?;
        Ok(Self {
            db,
            queue,
            store,
            panel,
            cryptobot,
            fcm,
            config,
            backup_metrics,
            squads: Arc::default(),
        })
    }

    /// Checks the panel before work starts: refuses a panel older than 3.0 and resolves the squads; a panel
    /// that cannot be reached yet is only logged (jobs retry until it answers).
    pub async fn check_panel(&self) -> anyhow::Result<()> {
        let Some(panel) = &self.panel else {
            tracing::warn!("REMNAWAVE_URL is not set: panel jobs will fail until it is");
            return Ok(());
        };
        match panel.check_version().await {
            Ok(metadata) => tracing::info!(version = %metadata.version, "remnawave panel"),
            Err(err @ cybervpn_remnawave::PanelError::UnsupportedVersion { .. }) => {
                return Err(err).context("remnawave panel");
            }
            Err(err) => tracing::warn!(error = %err, "remnawave panel not reachable yet"),
        }
        if let Err(err) = self.squads().await {
            tracing::warn!(error = %err, "could not resolve remnawave.squads yet");
        }
        Ok(())
    }

    /// The panel client, or a permanent failure naming the missing configuration.
    pub(crate) fn panel(&self) -> Result<&Panel, JobError> {
        self.panel.as_ref().ok_or_else(|| {
            JobError::permanent("remnawave", "the panel is not configured (REMNAWAVE_URL)")
        })
    }

    /// The configured squads as uuids, resolved once and refreshed by the server-configs job.
    pub(crate) async fn squads(&self) -> Result<Squads, JobError> {
        if let Some(squads) = self.squads.read().await.as_ref() {
            return Ok(squads.clone());
        }
        self.refresh_squads().await
    }

    /// Resolves the configured squad names again (`remnawave.squads`, then `loyalty.premium_squad`).
    pub(crate) async fn refresh_squads(&self) -> Result<Squads, JobError> {
        let mut names = self.config.remnawave.squads.clone();
        let premium = self.config.loyalty.premium_squad.trim();
        if !premium.is_empty() {
            names.push(premium.to_owned());
        }
        let mut resolved = if names.is_empty() {
            Vec::new()
        } else {
            self.panel()?.resolve_squads(&names).await.map_err(|err| {
                if err.is_retryable() {
                    JobError::retry("resolve squads", err)
                } else {
                    JobError::permanent("resolve squads", err)
                }
            })?
        };
        let premium = if premium.is_empty() {
            None
        } else {
            resolved.pop()
        };
        let squads = Squads {
            base: resolved,
            premium,
        };
        *self.squads.write().await = Some(squads.clone());
        Ok(squads)
    }
}

/// Registers a handler for every job the platform runs.
pub fn register(worker: Worker, services: &Services) -> Worker {
    let n = services.config.worker.concurrency;
    macro_rules! periodic {
        ($worker:expr, $job:ty, $run:path) => {{
            let services = services.clone();
            $worker.handle(1, move |_: $job, _| {
                let services = services.clone();
                async move { $run(&services).await.map(|_| ()) }
            })
        }};
    }
    let worker = {
        let services = services.clone();
        worker.handle(n, move |job: ProvisionSubscription, _| {
            let services = services.clone();
            async move {
                provision(&services, SubscriptionId::from_uuid(job.subscription_id))
                    .await
                    .map(|_| ())
            }
        })
    };
    let worker = {
        let services = services.clone();
        worker.handle(n, move |job: PanelUserAction, _| {
            let services = services.clone();
            async move { actions::run(&services, &job).await }
        })
    };
    let worker = {
        let services = services.clone();
        worker.handle(n, move |job: PushNotification, _| {
            let services = services.clone();
            async move { push::push(&services, &job).await }
        })
    };
    let worker = {
        let services = services.clone();
        worker.handle(1, move |job: MonthlyTrafficReset, _| {
            let services = services.clone();
            async move { periodic::monthly_reset(&services, &job).await }
        })
    };
    let worker = periodic!(worker, NodeSync, periodic::sync_nodes);
    let worker = periodic!(worker, NodeHealthCheck, periodic::health_check);
    let worker = periodic!(worker, ServerGeolocation, periodic::geolocate);
    let worker = periodic!(worker, BandwidthStats, periodic::bandwidth);
    let worker = periodic!(worker, UserTrafficStats, periodic::traffic_stats);
    let worker = periodic!(worker, ServerConfigs, periodic::server_configs);
    let worker = periodic!(worker, ExpiryReminders, periodic::expiry_reminders);
    let worker = periodic!(worker, DisableExpired, periodic::disable_expired);
    let worker = periodic!(worker, FullReconcile, periodic::reconcile);
    let worker = periodic!(worker, DatabaseBackup, backup::backup);
    let worker = periodic!(worker, LoyaltyGrace, loyalty::grace);
    periodic!(worker, PaymentsSweep, payments::sweep)
}

/// Runs the relay and the job worker until `shutdown` resolves; returns when in-flight jobs are done.
pub async fn start(
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = &services.config.worker;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(relay::run(
        services.db.clone(),
        services.queue.clone(),
        Duration::from_millis(config.relay_interval_ms),
        wait(stopped.clone()),
    ));
    let worker = register(Worker::new(services.queue.clone()), &services)
        .lease_timeout(Duration::from_secs(config.job_lease_secs))
        .grace_period(Duration::from_secs(config.shutdown_timeout_secs));
    let run = tokio::spawn(worker.run(wait(stopped)));
    shutdown.await;
    let _ = stop.send(true);
    let _ = relay.await;
    run.await.context("worker task")?.context("worker")?;
    Ok(())
}

async fn wait(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The `cybervpn-worker` process: PostgreSQL + Redis, `/health` and `/metrics` on `worker.listen`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let redis_url = config
        .redis
        .url
        .clone()
        .context("the worker needs Redis: set REDIS_URL")?;
    let config = Arc::new(config);
    let metrics = Metrics::new().context("metrics")?;
    let job_metrics = JobMetrics::register(metrics.registry()).context("job metrics")?;
    let db = Db::connect(&config).await.context("database")?;
    let pending = db.pending_migrations().await.context("database")?;
    anyhow::ensure!(
        pending.is_empty(),
        "the database schema is not migrated ({} pending); run `cybervpn-api migrate`",
        pending.len()
    );
    let queue = Queue::redis(redis_url.expose(), &config.redis.key_prefix, job_metrics)
        .await
        .context("job queue")?;
    let kv = Kv::new(
        redis_url.expose(),
        &config.redis.key_prefix,
        config.redis.pool_size,
    )
    .context("redis")?;
    let services = Services::new(
        config.clone(),
        db.clone(),
        queue,
        Store::Redis(kv.clone()),
        &metrics,
    )?;
    services.check_panel().await?;
    let listener = tokio::net::TcpListener::bind(config.worker.listen)
        .await
        .with_context(|| format!("bind {}", config.worker.listen))?;
    tracing::info!(listen = %config.worker.listen, "worker started");
    let health: cybervpn_telemetry::HealthCheck = Arc::new(move || {
        let db = db.clone();
        let kv = kv.clone();
        Box::pin(async move {
            let database = db.ping().await.is_ok();
            let redis = kv.ping().await.is_ok();
            let body = serde_json::json!({
                "status": if database && redis { "ok" } else { "degraded" },
                "database": database,
                "redis": redis,
            });
            if database && redis {
                Ok(body)
            } else {
                Err(body)
            }
        })
    });
    let ops = cybervpn_telemetry::OpsServer::spawn(listener, metrics, health);
    start(services, async {
        cybervpn_telemetry::shutdown_signal().await;
        tracing::info!("shutdown signal received, finishing jobs in flight");
    })
    .await?;
    ops.stop().await;
    tracing::info!("worker stopped");
    Ok(())
}
