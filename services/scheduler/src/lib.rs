//! The scheduler: enqueues the periodic jobs at their intervals; the worker runs them.
//!
//! Exactly one replica is active: it holds a lease in the shared store (renewed well before it lapses; a
//! standby takes over when it does). Each interval slot is claimed once in the store before its job is
//! enqueued, so even two schedulers that both believe they lead never enqueue the same tick twice, and a
//! tick missed while no scheduler ran is enqueued once when one returns, not once per missed slot.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Utc};
use cybervpn_config::Config;
use cybervpn_jobs::{JobMetrics, Queue, catalog::Periodic};
use cybervpn_kv::{Kv, Store};
use cybervpn_telemetry::Metrics;
use prometheus::{IntCounterVec, IntGauge, Opts};

/// Store key of the leader lease.
const LEASE_KEY: &str = "scheduler:lease";

/// When a periodic job is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// Every so many seconds, on multiples of the interval since the Unix epoch.
    Every(u64),
    /// On the first day of each month at 00:00 UTC.
    Monthly,
    /// Once a day at this hour (UTC).
    Daily(u32),
}

/// The configured cadence of each periodic job (jobs switched off are left out).
pub fn schedule(config: &Config) -> Vec<(Periodic, Cadence)> {
    let backup = &config.backup;
    let config = &config.scheduler;
    Periodic::ALL
        .iter()
        .filter(|job| backup.enabled || **job != Periodic::DatabaseBackup)
        .map(|job| {
            let cadence = match job {
                Periodic::NodeSync => Cadence::Every(config.node_sync_secs),
                Periodic::ServerGeolocation => Cadence::Every(config.geolocation_secs),
                Periodic::NodeHealthCheck => Cadence::Every(config.health_check_secs),
                Periodic::BandwidthStats => Cadence::Every(config.bandwidth_secs),
                Periodic::UserTrafficStats => Cadence::Every(config.traffic_stats_secs),
                Periodic::MonthlyTrafficReset => Cadence::Monthly,
                Periodic::ServerConfigs => Cadence::Every(config.server_configs_secs),
                Periodic::ExpiryReminders | Periodic::LoyaltyGrace => {
                    Cadence::Every(config.reminders_secs)
                }
                Periodic::DisableExpired => Cadence::Every(config.disable_expired_secs),
                Periodic::FullReconcile => Cadence::Every(config.reconcile_secs),
                Periodic::PaymentsSweep => Cadence::Every(config.payments_secs),
                Periodic::DatabaseBackup => Cadence::Daily(backup.hour_utc),
            };
            (*job, cadence)
        })
        .collect()
}

/// The slot `now` falls in: the interval number, the month number (`year * 12 + month0`), or the number of
/// days since the epoch counted from the daily hour.
pub fn slot(cadence: Cadence, now: DateTime<Utc>) -> i64 {
    match cadence {
        Cadence::Every(secs) => now.timestamp().div_euclid(secs.max(1) as i64),
        Cadence::Monthly => i64::from(now.year()) * 12 + i64::from(now.month0()),
        Cadence::Daily(hour) => (now.timestamp() - i64::from(hour) * 3600).div_euclid(86_400),
    }
}

/// Scheduler metrics.
#[derive(Clone)]
struct SchedulerMetrics {
    leader: IntGauge,
    ticks: IntCounterVec,
}

impl SchedulerMetrics {
    fn register(metrics: &Metrics) -> anyhow::Result<Self> {
        let leader = IntGauge::new(
            "scheduler_is_leader",
            "1 while this scheduler holds the lease",
        )?;
        let ticks = IntCounterVec::new(
            Opts::new(
                "scheduler_ticks_total",
                "Periodic jobs enqueued by this scheduler",
            ),
            &["job"],
        )?;
        metrics.registry().register(Box::new(leader.clone()))?;
        metrics.registry().register(Box::new(ticks.clone()))?;
        Ok(Self { leader, ticks })
    }
}

/// One scheduler replica.
pub struct Scheduler {
    store: Store,
    queue: Queue,
    schedule: Vec<(Periodic, Cadence)>,
    lease_ttl: Duration,
    holder: i64,
    metrics: SchedulerMetrics,
}

impl Scheduler {
    /// A scheduler over `store` (lease and slot claims) and `queue`; `holder` must differ between replicas.
    pub fn new(
        config: &Config,
        store: Store,
        queue: Queue,
        metrics: &Metrics,
        holder: i64,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            store,
            queue,
            schedule: schedule(config),
            lease_ttl: Duration::from_secs(config.scheduler.lease_ttl_secs),
            holder,
            metrics: SchedulerMetrics::register(metrics)?,
        })
    }

    /// Takes or renews the lease; true while this replica leads.
    pub async fn lead(&self) -> anyhow::Result<bool> {
        let leading = self
            .store
            .lease(LEASE_KEY, self.holder, self.lease_ttl)
            .await
            .context("scheduler lease")?;
        self.metrics.leader.set(i64::from(leading));
        Ok(leading)
    }

    /// Enqueues every job whose current slot nobody has claimed yet; returns the jobs enqueued.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Periodic>> {
        let mut enqueued = Vec::new();
        for &(job, cadence) in &self.schedule {
            let slot = slot(cadence, now);
            let due = match cadence {
                Cadence::Every(secs) => self
                    .store
                    .claim(
                        &format!("scheduler:slot:{}:{slot}", job.name()),
                        Duration::from_secs(secs.saturating_mul(2).max(60)),
                    )
                    .await
                    .context("claim slot")?,
                // Month and day slots are remembered for good: a first start does not reset anyone's traffic
                // (nor back up before the hour), and a slot missed while down runs once when the scheduler
                // returns.
                Cadence::Monthly | Cadence::Daily(_) => {
                    let unit = if cadence == Cadence::Monthly {
                        "month"
                    } else {
                        "day"
                    };
                    self.store
                        .advance(&format!("scheduler:{unit}:{}", job.name()), slot)
                        .await
                        .context("claim slot")?
                        .is_some_and(|previous| previous < slot)
                }
            };
            if due {
                job.push(&self.queue, slot)
                    .await
                    .with_context(|| format!("enqueue {}", job.name()))?;
                self.metrics.ticks.with_label_values(&[job.name()]).inc();
                tracing::info!(job = job.name(), slot, "periodic job enqueued");
                enqueued.push(job);
            }
        }
        Ok(enqueued)
    }

    /// Leads and ticks once a second until `shutdown` resolves, then gives the lease up.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut leading = false;
        loop {
            match self.lead().await {
                Ok(now_leading) => {
                    if now_leading != leading {
                        tracing::info!(
                            holder = self.holder,
                            leading = now_leading,
                            "scheduler leadership changed"
                        );
                    }
                    leading = now_leading;
                    if leading && let Err(err) = self.tick(Utc::now()).await {
                        tracing::warn!(error = format!("{err:#}"), "scheduler tick failed");
                    }
                }
                Err(err) => {
                    leading = false;
                    self.metrics.leader.set(0);
                    tracing::warn!(error = format!("{err:#}"), "scheduler lease failed");
                }
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if leading && let Err(err) = self.store.release(LEASE_KEY, self.holder).await {
            tracing::warn!(error = %err, "could not release the scheduler lease");
        }
    }
}

/// A holder id unique to this process run: time-based, so a restarted replica never reuses one.
pub fn holder_id() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Fits 2^53 (exact in the in-process store): microseconds plus the pid's low bits.
    ((nanos / 1000) as i64 & ((1 << 45) - 1)) << 8 | i64::from(std::process::id() as u8)
}

/// The `cybervpn-scheduler` process: Redis lease and queue, `/health` and `/metrics` on `scheduler.listen`.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let redis_url = config
        .redis
        .url
        .clone()
        .context("the scheduler needs Redis: set REDIS_URL")?;
    let metrics = Metrics::new().context("metrics")?;
    let job_metrics = JobMetrics::register(metrics.registry()).context("job metrics")?;
    let queue = Queue::redis(redis_url.expose(), &config.redis.key_prefix, job_metrics)
        .await
        .context("job queue")?;
    let kv = Kv::new(
        redis_url.expose(),
        &config.redis.key_prefix,
        config.redis.pool_size,
    )
    .context("redis")?;
    let scheduler = Scheduler::new(
        &config,
        Store::Redis(kv.clone()),
        queue,
        &metrics,
        holder_id(),
    )?;
    let leader = scheduler.metrics.leader.clone();
    let listener = tokio::net::TcpListener::bind(config.scheduler.listen)
        .await
        .with_context(|| format!("bind {}", config.scheduler.listen))?;
    tracing::info!(listen = %config.scheduler.listen, holder = scheduler.holder, "scheduler started");
    let health: cybervpn_telemetry::HealthCheck = Arc::new(move || {
        let kv = kv.clone();
        let leader = leader.get() == 1;
        Box::pin(async move {
            let redis = kv.ping().await.is_ok();
            let body = serde_json::json!({
                "status": if redis { "ok" } else { "degraded" },
                "redis": redis,
                "leader": leader,
            });
            if redis { Ok(body) } else { Err(body) }
        })
    });
    let ops = cybervpn_telemetry::OpsServer::spawn(listener, metrics, health);
    scheduler
        .run(async {
            cybervpn_telemetry::shutdown_signal().await;
            tracing::info!("shutdown signal received");
        })
        .await;
    ops.stop().await;
    Ok(())
}
