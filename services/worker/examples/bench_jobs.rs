//! Job benchmarks for `make bench` (`scripts/bench.sh` runs this in release): no-op jobs through the Redis
//! queue, provisioning jobs against the panel fake, and a full reconcile of many panel users.
//!
//! Each benchmark prints one line `bench <name> key=value …` on stdout for the script to record; progress goes
//! to stderr. PostgreSQL and Redis must run on 127.0.0.1 (`CYBERVPN_TEST_PG_URL` and `CYBERVPN_TEST_REDIS_URL`
//! override them, as for the tests); every database and Redis key created is removed at the end.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use clap::Parser;
use cybervpn_config::{Config, Secret};
use cybervpn_db::{
    ActiveValue::Set,
    Db, EntityTrait,
    entity::{customer, subscription},
};
use cybervpn_domain::{CustomerStatus, Language, SubscriptionStatus};
use cybervpn_jobs::{
    Job, JobMetrics, Queue, Worker,
    catalog::{FullReconcile, ProvisionSubscription},
};
use cybervpn_kv::Store;
use cybervpn_panel_fake::{FakeOptions, PanelFake};
use cybervpn_telemetry::Metrics;
use cybervpn_testkit::{TestDb, TestRedis};
use cybervpn_worker::{Services, panel_username};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

/// Job benchmarks; each count of 0 skips that benchmark.
#[derive(Debug, Parser)]
struct Cli {
    /// No-op jobs pushed through the Redis queue.
    #[arg(long, default_value_t = 20_000)]
    noop_jobs: usize,
    /// Concurrent producers pushing the no-op jobs (api replicas and requests push concurrently).
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Provisioning jobs (one new customer each) run against the panel fake; at most 7,500, see `MAX_BACKLOG`.
    #[arg(long, default_value_t = 2_000)]
    provision_jobs: usize,
    /// Panel users (and subscriptions) in the full reconcile.
    #[arg(long, default_value_t = 100_000)]
    reconcile_users: usize,
    /// Every n-th panel user of the reconcile has drifted (another expiry than its subscription).
    #[arg(long, default_value_t = 100)]
    drift_every: usize,
    /// Jobs of one type running at once (`worker.concurrency`; defaults to the shipped default).
    #[arg(long)]
    concurrency: Option<usize>,
}

/// A job that does nothing but count itself.
#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    n: usize,
}

impl Job for Noop {
    const NAME: &'static str = "bench_noop";
}

/// How long the reconcile may take before the benchmark fails.
const PATIENCE: Duration = Duration::from_secs(900);

/// How long a count of handled jobs may stand still before the benchmark fails.
const STALL: Duration = Duration::from_secs(60);

/// apalis-redis 1.0 puts every pushed job in its `scheduled` set and each fetch moves all the due ones to the
/// ready list with one Lua `unpack`, which fails beyond about 8,000 elements: a queue with more due jobs than that
/// at one fetch stops consuming for good. Pre-pushed backlogs stay below it.
const MAX_BACKLOG: usize = 7_500;

/// Rows per `INSERT` when seeding the database.
const BATCH: usize = 1000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cybervpn_telemetry::init_logging(&cybervpn_config::LogConfig {
        level: "warn".to_owned(),
        format: cybervpn_config::LogFormat::Pretty,
    })
    .context("logging")?;
    let concurrency = cli
        .concurrency
        .unwrap_or(cybervpn_config::WorkerConfig::default().concurrency);
    ensure!(
        concurrency > 0 && cli.producers > 0 && cli.drift_every > 0,
        "--concurrency, --producers and --drift-every must be at least 1"
    );
    // On Ctrl-C the benchmark is dropped, and with it the databases and Redis keys it made.
    tokio::select! {
        ran = run(&cli, concurrency) => ran,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

async fn run(cli: &Cli, concurrency: usize) -> anyhow::Result<()> {
    if cli.noop_jobs > 0 {
        noop_jobs(cli.noop_jobs, cli.producers, concurrency).await?;
    }
    if cli.provision_jobs > 0 {
        provision_jobs(cli.provision_jobs, concurrency).await?;
    }
    if cli.reconcile_users > 0 {
        full_reconcile(cli.reconcile_users, cli.drift_every, concurrency).await?;
    }
    Ok(())
}

fn progress(message: &str) {
    eprintln!("[bench_jobs] {message}");
}

/// Pushes `jobs` no-op jobs from `producers` tasks while a worker consumes them; times the pushes and the
/// whole run, from the first push until every job has been handled.
async fn noop_jobs(jobs: usize, producers: usize, concurrency: usize) -> anyhow::Result<()> {
    progress(&format!(
        "no-op: {jobs} jobs, {producers} producers, concurrency {concurrency}"
    ));
    let redis = TestRedis::new().await;
    let metrics = Metrics::new().context("metrics")?;
    let queue = Queue::redis(
        redis.url(),
        redis.prefix(),
        JobMetrics::register(metrics.registry()).context("job metrics")?,
    )
    .await
    .context("job queue")?;
    let handled = Arc::new(AtomicUsize::new(0));
    let worker = {
        let handled = Arc::clone(&handled);
        Worker::new(queue.clone())
            .handle(concurrency, move |_: Noop, _| {
                let handled = Arc::clone(&handled);
                async move {
                    handled.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            })
            // An idle worker looks for jobs every second by default; the producers push more than
            // `MAX_BACKLOG` in that time. A busy worker fetches again at once, so this only shortens the start.
            .poll_interval(Duration::from_millis(100))
    };
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(worker.run(wait(stopped)));
    // Let the worker register and find its queue empty, as a worker waiting for work would.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut pushers = tokio::task::JoinSet::new();
    for producer in 0..producers {
        let queue = queue.clone();
        pushers.spawn(async move {
            for n in (producer..jobs).step_by(producers) {
                queue.push(&Noop { n }).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(pushed) = pushers.join_next().await {
        pushed.context("producer task")??;
    }
    let push_secs = started.elapsed().as_secs_f64();
    let all_handled = progresses_to(jobs, || handled.load(Ordering::Relaxed)).await;
    let total_secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    running.await.context("worker task")?.context("worker")?;
    ensure!(
        all_handled,
        "only {} of {jobs} no-op jobs were handled",
        handled.load(Ordering::Relaxed)
    );
    let dead = queue.dead(1).await.context("dead jobs")?;
    ensure!(dead.is_empty(), "no-op jobs were dead-lettered: {dead:?}");
    println!(
        "bench noop jobs={jobs} producers={producers} concurrency={concurrency} push_secs={push_secs:.3} \
         push_per_sec={:.0} total_secs={total_secs:.3} per_sec={:.0}",
        rate(jobs, push_secs),
        rate(jobs, total_secs),
    );
    Ok(())
}

/// Provisions `jobs` new customers: the jobs wait in Redis, then the worker (as `cybervpn-worker` runs it)
/// creates their panel users in the fake. Timed from the worker's start until every job has succeeded.
async fn provision_jobs(jobs: usize, concurrency: usize) -> anyhow::Result<()> {
    progress(&format!(
        "provisioning: {jobs} customers, concurrency {concurrency}"
    ));
    ensure!(
        jobs <= MAX_BACKLOG,
        "--provision-jobs must be at most {MAX_BACKLOG}: the jobs wait in one queue before the worker starts"
    );
    let world = World::new(concurrency).await?;
    let now = Utc::now().trunc_subsecs(0);
    let seeds: Vec<Seed> = (0..jobs)
        .map(|n| Seed::new(n, now + TimeDelta::days(30), None))
        .collect();
    world.insert(&seeds).await?;

    let pushed = Instant::now();
    for seed in &seeds {
        world
            .queue
            .push(&ProvisionSubscription {
                subscription_id: seed.subscription,
            })
            .await
            .context("push provisioning job")?;
    }
    let push_secs = pushed.elapsed().as_secs_f64();

    let started = Instant::now();
    let succeeded = world.succeeded(ProvisionSubscription::NAME);
    let (stop, running) = world.start_worker();
    let done = progresses_to(jobs, &succeeded).await;
    let secs = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    running.await.context("worker task")?.context("worker")?;
    ensure!(
        done,
        "only {} of {jobs} provisioning jobs succeeded",
        succeeded()
    );
    ensure!(
        world.fake.user_count() == jobs,
        "the fake holds {} users, expected {jobs}",
        world.fake.user_count()
    );
    println!(
        "bench provision jobs={jobs} concurrency={concurrency} push_secs={push_secs:.3} secs={secs:.3} per_sec={:.0}",
        rate(jobs, secs),
    );
    Ok(())
}

/// Reconciles `users` panel users carrying our tag with as many subscriptions, every `drift_every`-th with an
/// expiry the panel disagrees with. Times the reconcile job alone (push to its report), then how long the
/// repairs it queued took to apply.
async fn full_reconcile(
    users: usize,
    drift_every: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    progress(&format!(
        "reconcile: seeding {users} panel users and subscriptions (1 in {drift_every} drifted)"
    ));
    ensure!(
        users / drift_every <= MAX_BACKLOG,
        "at most {MAX_BACKLOG} drifted users: the reconcile queues their repairs in one burst"
    );
    let world = World::new(concurrency).await?;
    world.fake.set_recording(false);
    let seeding = Instant::now();
    let now = Utc::now().trunc_subsecs(0);
    let mut drifted = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..users {
        // Spread over two months, with some traffic limits, as a real customer base would be.
        let expires_at = now + TimeDelta::days(1 + (n % 60) as i64) + TimeDelta::seconds(n as i64);
        let limit = (n % 3 == 0).then_some(100 * 1024 * 1024 * 1024);
        let mut seed = Seed::new(n, expires_at, limit);
        let drifts = n % drift_every == drift_every / 2;
        let panel_expiry = if drifts {
            expires_at + TimeDelta::days(3)
        } else {
            expires_at
        };
        let user = world
            .fake
            .seed_user(
                &seed.username(),
                panel_expiry,
                limit.unwrap_or(0),
                Some("CYBERVPN"),
            )
            .context("seed panel user: username taken")?;
        if drifts {
            drifted.push(seed.username());
        }
        seed.panel = Some(user);
        batch.push(seed);
        if batch.len() == BATCH {
            world.insert(&batch).await?;
            batch.clear();
        }
    }
    world.insert(&batch).await?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    progress(&format!("reconcile: seeded in {seed_secs:.1} s"));

    ensure!(
        world
            .db
            .snapshots()
            .get::<serde_json::Value>("reconcile")
            .await?
            .is_none(),
        "a fresh database has no reconcile report"
    );
    let started = Instant::now();
    world
        .queue
        .push(&FullReconcile { slot: 1 })
        .await
        .context("push reconcile job")?;
    let succeeded = world.succeeded(ProvisionSubscription::NAME);
    let (stop, running) = world.start_worker();
    let report = report_after(&world.db, started + PATIENCE).await;
    let secs = started.elapsed().as_secs_f64();
    let repairs_done = match &report {
        Some(report) => progresses_to(report.repaired, &succeeded).await,
        None => false,
    };
    let repairs_secs = started.elapsed().as_secs_f64() - secs;
    let _ = stop.send(true);
    running.await.context("worker task")?.context("worker")?;
    let Some(report) = report else {
        bail!("the reconcile wrote no report within {PATIENCE:?}");
    };
    ensure!(
        repairs_done,
        "only {} of {} repairs were applied",
        succeeded(),
        report.repaired
    );
    ensure!(
        report.panel_users == users && report.subscriptions == users,
        "the reconcile saw {} panel users and {} subscriptions, expected {users}",
        report.panel_users,
        report.subscriptions
    );
    ensure!(
        report.repaired == drifted.len(),
        "the reconcile repaired {}, expected {}",
        report.repaired,
        drifted.len()
    );
    println!(
        "bench reconcile panel_users={} subscriptions={} repaired={} orphans={} secs={secs:.3} \
         repairs_secs={repairs_secs:.3} seed_secs={seed_secs:.3}",
        report.panel_users, report.subscriptions, report.repaired, report.orphans,
    );
    Ok(())
}

/// Polls for the `reconcile` snapshot every 10 ms until `deadline`.
async fn report_after(db: &Db, deadline: Instant) -> Option<ReconcileReport> {
    while Instant::now() < deadline {
        match db.snapshots().get::<ReconcileReport>("reconcile").await {
            Ok(Some((report, _))) => return Some(report),
            Ok(None) => {}
            Err(err) => progress(&format!("reading the reconcile report failed: {err}")),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The counts the reconcile job stores in its `reconcile` snapshot.
#[derive(Debug, Deserialize)]
struct ReconcileReport {
    panel_users: usize,
    subscriptions: usize,
    repaired: usize,
    orphans: usize,
}

/// A fresh PostgreSQL database, a Redis prefix, the panel fake, and the worker's services wired as
/// `cybervpn-worker` wires them.
struct World {
    db: Db,
    queue: Queue,
    job_metrics: JobMetrics,
    fake: PanelFake,
    services: Services,
    _redis: TestRedis,
    _db: TestDb,
}

impl World {
    async fn new(concurrency: usize) -> anyhow::Result<Self> {
        let test_db = TestDb::postgres().await;
        let redis = TestRedis::new().await;
        let fake = PanelFake::start(([127, 0, 0, 1], 0).into(), FakeOptions::default())
            .await
            .context("panel fake")?;
        let mut config = Config::default();
        config.database.url = Some(Secret::new(test_db.url().to_owned()));
        config.redis.url = Some(Secret::new(redis.url().to_owned()));
        config.redis.key_prefix = redis.prefix().to_owned();
        config.remnawave.url = Some(fake.url());
        config.remnawave.token = Some(Secret::new(fake.token().to_owned()));
        config.remnawave.squads = vec!["Default-Squad".to_owned()];
        config.worker.concurrency = concurrency;
        config.worker.shutdown_timeout_secs = 5;
        let db = Db::connect(&config).await.context("database")?;
        let metrics = Metrics::new().context("metrics")?;
        let job_metrics = JobMetrics::register(metrics.registry()).context("job metrics")?;
        let queue = Queue::redis(redis.url(), redis.prefix(), job_metrics.clone())
            .await
            .context("job queue")?;
        let services = Services::new(
            Arc::new(config),
            db.clone(),
            queue.clone(),
            Store::Redis(redis.kv().clone()),
            &metrics,
        )?;
        Ok(Self {
            db,
            queue,
            job_metrics,
            fake,
            services,
            _redis: redis,
            _db: test_db,
        })
    }

    /// Stores the customers and subscriptions of `seeds`, `BATCH` rows per statement.
    async fn insert(&self, seeds: &[Seed]) -> anyhow::Result<()> {
        for chunk in seeds.chunks(BATCH) {
            customer::Entity::insert_many(chunk.iter().map(Seed::customer))
                .exec_without_returning(self.db.conn())
                .await
                .context("insert customers")?;
            subscription::Entity::insert_many(chunk.iter().map(Seed::subscription))
                .exec_without_returning(self.db.conn())
                .await
                .context("insert subscriptions")?;
        }
        Ok(())
    }

    /// Reads how many jobs named `name` have succeeded so far.
    fn succeeded(&self, name: &str) -> impl Fn() -> usize + use<> {
        let counter = self.job_metrics.succeeded.with_label_values(&[name]);
        move || usize::try_from(counter.get()).unwrap_or(usize::MAX)
    }

    /// Starts the worker as `cybervpn-worker` does (outbox relay and every job), until the returned sender fires.
    fn start_worker(
        &self,
    ) -> (
        watch::Sender<bool>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(cybervpn_worker::start(self.services.clone(), wait(stopped)));
        (stop, running)
    }
}

/// One customer with one live subscription, and its panel user if it has one already.
struct Seed {
    n: usize,
    customer: Uuid,
    subscription: Uuid,
    expires_at: DateTime<Utc>,
    traffic_limit_bytes: Option<i64>,
    panel: Option<cybervpn_panel_fake::SeededUser>,
    now: DateTime<Utc>,
}

impl Seed {
    fn new(n: usize, expires_at: DateTime<Utc>, traffic_limit_bytes: Option<i64>) -> Self {
        Self {
            n,
            customer: Uuid::now_v7(),
            subscription: Uuid::now_v7(),
            expires_at,
            traffic_limit_bytes,
            panel: None,
            now: Utc::now().trunc_subsecs(6),
        }
    }

    fn username(&self) -> String {
        panel_username(cybervpn_domain::CustomerId::from_uuid(self.customer))
    }

    fn customer(&self) -> customer::ActiveModel {
        customer::ActiveModel {
            id: Set(self.customer),
            email: Set(Some(format!("bench{}@example.com", self.n))),
            telegram_id: Set(Some(1_000_000_000 + self.n as i64)),
            username: Set(format!("bench_{}", self.n)),
            status: Set(CustomerStatus::Active.as_str().to_owned()),
            language: Set(Language::En.as_str().to_owned()),
            created_at: Set(self.now),
            updated_at: Set(self.now),
            // The rest (password, referrals, deletion) is empty: their database defaults.
            ..Default::default()
        }
    }

    fn subscription(&self) -> subscription::ActiveModel {
        subscription::ActiveModel {
            id: Set(self.subscription),
            customer_id: Set(self.customer),
            plan_id: Set(None),
            status: Set(SubscriptionStatus::Active.as_str().to_owned()),
            expires_at: Set(self.expires_at),
            traffic_used_bytes: Set(0),
            traffic_limit_bytes: Set(self.traffic_limit_bytes),
            panel_user_id: Set(self.panel.as_ref().map(|p| p.id)),
            panel_short_uuid: Set(self.panel.as_ref().map(|p| p.short_uuid.clone())),
            subscription_url: Set(self.panel.as_ref().map(|p| p.subscription_url.clone())),
            panel_synced_at: Set(self.panel.as_ref().map(|_| self.now)),
            created_at: Set(self.now),
            updated_at: Set(self.now),
            // The rest (device limit) is empty: its database default.
            ..Default::default()
        }
    }
}

/// Polls `count` every 10 ms until it reaches `target` (true) or stands still for [`STALL`] (false).
async fn progresses_to(target: usize, count: impl Fn() -> usize) -> bool {
    let mut last = count();
    let mut moved = Instant::now();
    while last < target {
        if moved.elapsed() > STALL {
            progress(&format!(
                "stalled at {last} of {target} for {STALL:?} (see the warnings above)"
            ));
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = count();
        if now != last {
            last = now;
            moved = Instant::now();
        }
    }
    true
}

async fn wait(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

fn rate(count: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        f64::INFINITY
    }
}
