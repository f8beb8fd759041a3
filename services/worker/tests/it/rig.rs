use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use cybervpn_config::{Config, Secret};
use cybervpn_db::Db;
use cybervpn_domain::{
    CustomerId, Email, Language, NewCustomer, Subscription, TelegramId, TrafficLimit, Username,
};
use cybervpn_jobs::{Job, JobMetrics, Queue};
use cybervpn_kv::Store;
use cybervpn_panel_fake::{FakeOptions, PanelFake};
use cybervpn_telemetry::Metrics;
use cybervpn_testkit::{Backend, TestDb};
use cybervpn_worker::Services;

/// A worker's world: a fresh database, the panel fake, and the services wired as the binary wires them.
pub(crate) struct Rig {
    pub(crate) db: Db,
    pub(crate) fake: PanelFake,
    pub(crate) services: Services,
    pub(crate) queue: Queue,
    _db: TestDb,
}

impl Rig {
    pub(crate) async fn new(backend: Backend) -> Self {
        Self::with(backend, |_| {}).await
    }

    pub(crate) async fn with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let test_db = TestDb::new(backend).await;
        let fake = PanelFake::start("127.0.0.1:0".parse().unwrap(), FakeOptions::default())
            .await
            .unwrap();
        let mut config = cybervpn_testkit::config(&test_db, None);
        config.remnawave.url = Some(fake.url());
        config.remnawave.token = Some(Secret::new(fake.token().to_owned()));
        config.remnawave.squads = vec!["Default-Squad".to_owned()];
        config.remnawave.timeout_secs = 2;
        config.remnawave.default_device_limit = 2;
        tweak(&mut config);
        let db = Db::from_connection(test_db.connect().await);
        let metrics = Metrics::new().unwrap();
        let queue = Queue::memory(JobMetrics::register(metrics.registry()).unwrap());
        let services = Services::new(
            Arc::new(config),
            db.clone(),
            queue.clone(),
            Store::memory(),
            &metrics,
        )
        .unwrap();
        Self {
            db,
            fake,
            services,
            queue,
            _db: test_db,
        }
    }

    /// A registered customer with an email and a Telegram id.
    pub(crate) async fn customer(&self, name: &str) -> CustomerId {
        let new = NewCustomer::new(
            Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            Some(TelegramId::new(rand_telegram()).unwrap()),
            Username::parse(name).unwrap(),
            Language::En,
        )
        .unwrap();
        self.db
            .customers()
            .create(new, Utc::now())
            .await
            .unwrap()
            .id
    }

    /// A subscription of `customer` ending at `expires_at` (active unless that is past).
    pub(crate) async fn subscription(
        &self,
        customer: CustomerId,
        expires_at: DateTime<Utc>,
        limit: TrafficLimit,
    ) -> Subscription {
        let now = Utc::now();
        let mut subscription = Subscription::start(customer, None, 1, limit, None, now).unwrap();
        subscription.expires_at = expires_at;
        self.db.subscriptions().create(&subscription).await.unwrap();
        self.db.subscriptions().get(subscription.id).await.unwrap()
    }

    pub(crate) async fn live_subscription(&self, customer: CustomerId) -> Subscription {
        self.subscription(
            customer,
            Utc::now() + TimeDelta::days(30),
            TrafficLimit::Unlimited,
        )
        .await
    }

    /// The panel user of `customer` as the fake holds it.
    pub(crate) fn panel_user(&self, customer: CustomerId) -> Option<serde_json::Value> {
        self.fake
            .user_by_username(&cybervpn_worker::panel_username(customer))
    }

    /// How many times the fake answered `method route`.
    pub(crate) fn calls(&self, method: &str, route: &str) -> usize {
        self.fake
            .exchanges()
            .iter()
            .filter(|e| e.method == method && e.route == route)
            .count()
    }

    /// Runs the worker (relay included) until `done` holds, failing after 20 s.
    pub(crate) async fn run_until<F, Fut>(&self, what: &str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let services = self.services.clone();
        let worker = tokio::spawn(cybervpn_worker::start(services, async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut ok = false;
        while tokio::time::Instant::now() < deadline {
            if done().await {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.send(true).unwrap();
        worker.await.unwrap().unwrap();
        assert!(ok, "timed out waiting for: {what}");
    }

    /// Pushes `job` and runs the worker until the queue has no job of its kind left and `done` holds.
    pub(crate) async fn run_job<J: Job, F, Fut>(&self, job: &J, done: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        self.queue.push(job).await.unwrap();
        self.run_until(J::NAME, done).await;
    }
}

fn rand_telegram() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    i64::from(nanos % 1_000_000_000) + 1
}
