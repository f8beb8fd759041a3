//! Job queue tests on a real Redis (a key prefix per test) and on the in-process backend.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use cybervpn_jobs::{
    Job, JobContext, JobError, JobMetrics, Queue, QueueError, RetryPolicy, Worker,
};
use cybervpn_testkit::TestRedis;
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Barrier, Semaphore, mpsc, oneshot},
    task::JoinHandle,
};

/// Generous bound for anything a test waits for; tests poll, they never assert on how long things took.
const PATIENCE: Duration = Duration::from_secs(45);

const FAST: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(200),
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

impl Job for Ping {
    const NAME: &'static str = "ping";
    const RETRY: RetryPolicy = FAST;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pong {
    text: String,
}

impl Job for Pong {
    const NAME: &'static str = "pong";
    const RETRY: RetryPolicy = FAST;
}

/// A later version of `Ping` whose payload no longer matches what was queued.
#[derive(Debug, Serialize, Deserialize)]
struct PingV2 {
    n: String,
}

impl Job for PingV2 {
    const NAME: &'static str = "ping";
}

#[derive(Debug, Serialize, Deserialize)]
struct Backoff;

impl Job for Backoff {
    const NAME: &'static str = "backoff";
    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(4),
        max_delay: Duration::from_secs(60),
    };
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Redis,
    Memory,
}

/// Generates, from each `async fn(Kind)`, a module with one test per backend.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(super::Kind::Redis).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(super::Kind::Memory).await;
            }
        }
    )+};
}

on_both_backends!(
    a_pushed_job_runs_exactly_once,
    a_job_retried_twice_then_succeeding_counts_three_attempts,
    a_job_out_of_attempts_is_dead_lettered_and_can_be_redriven,
    a_permanent_failure_is_dead_lettered_at_once,
    an_undecodable_payload_is_dead_lettered_without_calling_the_handler,
    dead_jobs_are_listed_newest_first_across_job_types,
    depth_counts_waiting_jobs_per_queue,
    concurrency_bounds_the_handlers_running_at_once,
    shutdown_waits_for_the_job_in_flight,
    shutdown_after_the_grace_period_returns_the_job_in_flight,
    a_worker_set_up_wrongly_refuses_to_run,
);

struct Harness {
    queue: Queue,
    metrics: JobMetrics,
    registry: prometheus::Registry,
    redis: Option<TestRedis>,
}

impl Harness {
    async fn new(kind: Kind) -> Self {
        let registry = prometheus::Registry::new();
        let metrics = JobMetrics::register(&registry).unwrap();
        let (queue, redis) = match kind {
            Kind::Redis => {
                let redis = TestRedis::new().await;
                let queue = Queue::redis(redis.url(), redis.prefix(), metrics.clone())
                    .await
                    .unwrap();
                (queue, Some(redis))
            }
            Kind::Memory => (Queue::memory(metrics.clone()), None),
        };
        Self {
            queue,
            metrics,
            registry,
            redis,
        }
    }

    fn worker(&self) -> Worker {
        Worker::new(self.queue.clone())
            .poll_interval(Duration::from_millis(50))
            .lease_timeout(Duration::from_secs(3))
            .grace_period(Duration::from_secs(20))
    }

    fn count(&self, counter: &prometheus::IntCounterVec, job: &str) -> u64 {
        counter.with_label_values(&[job]).get()
    }

    async fn wait_dead(&self, count: usize) -> Vec<cybervpn_jobs::DeadJob> {
        let mut dead = Vec::new();
        eventually("jobs dead-lettered", async || {
            dead = self.queue.dead(100).await.unwrap();
            dead.len() >= count
        })
        .await;
        dead
    }

    /// Keys of this test's prefix other than the dead-letter set.
    async fn queue_keys(&self) -> Vec<String> {
        let redis = self.redis.as_ref().expect("a Redis test");
        let mut keys = redis.keys().await;
        keys.retain(|key| !key.contains(":jobs:dead"));
        keys.sort();
        keys
    }
}

/// A running worker and the means to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), QueueError>>,
}

fn start(worker: Worker) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the worker stops")
            .expect("the worker task does not panic")
            .expect("the worker stops cleanly");
    }
}

/// Polls `check` until it holds; fails the test after [`PATIENCE`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What handlers saw: `(payload number, context)` per call.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(u32, JobContext)>>>);

impl Seen {
    fn record(&self, n: u32, context: &JobContext) {
        self.0.lock().unwrap().push((n, context.clone()));
    }

    fn calls(&self) -> Vec<(u32, JobContext)> {
        self.0.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

async fn a_pushed_job_runs_exactly_once(kind: Kind) {
    let h = Harness::new(kind).await;
    let seen = Seen::default();
    let recorder = seen.clone();
    let worker = start(h.worker().handle(2, move |job: Ping, context: JobContext| {
        let seen = recorder.clone();
        async move {
            seen.record(job.n, &context);
            Ok(())
        }
    }));
    let id = h.queue.push(&Ping { n: 42 }).await.unwrap();
    eventually("the job succeeds", async || {
        h.count(&h.metrics.succeeded, "ping") == 1
    })
    .await;
    worker.stop().await;

    let calls = seen.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, 42);
    assert_eq!(
        (calls[0].1.job_id.as_str(), calls[0].1.attempt),
        (id.as_str(), 1)
    );
    assert_eq!(h.count(&h.metrics.enqueued, "ping"), 1);
    assert_eq!(h.count(&h.metrics.retried, "ping"), 0);
    assert_eq!(h.count(&h.metrics.failed, "ping"), 0);
    assert_eq!(
        h.metrics
            .duration
            .with_label_values(&["ping"])
            .get_sample_count(),
        1
    );
    assert_eq!(h.queue.depth("ping").await.unwrap(), 0);
    let families: Vec<String> = h
        .registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    for name in [
        "jobs_enqueued_total",
        "jobs_succeeded_total",
        "job_duration_seconds",
        "jobs_queue_depth",
        "jobs_dead_letter",
    ] {
        assert!(
            families.iter().any(|family| family == name),
            "{name} in {families:?}"
        );
    }
    if h.redis.is_some() {
        // Finished tasks are swept and the stopped worker deregistered: nothing of the queue is left.
        assert_eq!(h.queue_keys().await, Vec::<String>::new());
    }
}

async fn a_job_retried_twice_then_succeeding_counts_three_attempts(kind: Kind) {
    let h = Harness::new(kind).await;
    let seen = Seen::default();
    let recorder = seen.clone();
    let worker = start(h.worker().handle(1, move |job: Ping, context: JobContext| {
        let seen = recorder.clone();
        async move {
            seen.record(job.n, &context);
            if context.attempt < 3 {
                return Err(JobError::retry("call the panel", "503 Service Unavailable"));
            }
            Ok(())
        }
    }));
    let id = h.queue.push(&Ping { n: 1 }).await.unwrap();
    eventually("the job succeeds", async || {
        h.count(&h.metrics.succeeded, "ping") == 1
    })
    .await;
    worker.stop().await;

    let calls = seen.calls();
    let attempts: Vec<u32> = calls.iter().map(|(_, context)| context.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(
        calls
            .iter()
            .all(|(n, context)| *n == 1 && context.job_id == id && context.max_attempts == 3)
    );
    assert_eq!(h.count(&h.metrics.retried, "ping"), 2);
    assert_eq!(h.count(&h.metrics.failed, "ping"), 0);
    assert_eq!(h.count(&h.metrics.enqueued, "ping"), 1);
    assert!(h.queue.dead(10).await.unwrap().is_empty());
}

async fn a_job_out_of_attempts_is_dead_lettered_and_can_be_redriven(kind: Kind) {
    let h = Harness::new(kind).await;
    let seen = Seen::default();
    let healed = Arc::new(AtomicBool::new(false));
    let (recorder, panel) = (seen.clone(), Arc::clone(&healed));
    let worker = start(h.worker().handle(1, move |job: Ping, context: JobContext| {
        let (seen, panel) = (recorder.clone(), Arc::clone(&panel));
        async move {
            seen.record(job.n, &context);
            if panel.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(JobError::retry("call the panel", "connection refused"))
            }
        }
    }));
    let id = h.queue.push(&Ping { n: 7 }).await.unwrap();
    let dead = h.wait_dead(1).await;
    assert_eq!(dead.len(), 1);
    let job = &dead[0];
    assert_eq!((job.id.as_str(), job.name.as_str()), (id.as_str(), "ping"));
    assert_eq!(job.payload, serde_json::json!({ "n": 7 }));
    assert_eq!(job.error, "call the panel: connection refused");
    assert_eq!(job.attempts, 3);
    assert_eq!(seen.len(), 3);
    assert_eq!(h.count(&h.metrics.retried, "ping"), 2);
    assert_eq!(h.count(&h.metrics.failed, "ping"), 1);
    assert_eq!(h.metrics.dead_letter.get(), 1);
    assert_eq!(h.queue.depth("ping").await.unwrap(), 0);

    healed.store(true, Ordering::SeqCst);
    assert!(h.queue.redrive(&id).await.unwrap());
    eventually("the re-driven job succeeds", async || {
        h.count(&h.metrics.succeeded, "ping") == 1
    })
    .await;
    worker.stop().await;
    let calls = seen.calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(
        (calls[3].1.job_id.as_str(), calls[3].1.attempt),
        (id.as_str(), 1)
    );
    assert!(h.queue.dead(10).await.unwrap().is_empty());
    assert_eq!(h.metrics.dead_letter.get(), 0);
    assert_eq!(h.count(&h.metrics.enqueued, "ping"), 2);
    assert!(
        !h.queue.redrive(&id).await.unwrap(),
        "a job is re-driven once"
    );
    assert!(!h.queue.redrive("no-such-job").await.unwrap());
}

async fn a_permanent_failure_is_dead_lettered_at_once(kind: Kind) {
    let h = Harness::new(kind).await;
    let seen = Seen::default();
    let recorder = seen.clone();
    let worker = start(h.worker().handle(1, move |job: Ping, context: JobContext| {
        let seen = recorder.clone();
        async move {
            seen.record(job.n, &context);
            Err(JobError::permanent(
                "look up the plan",
                "plan 9 does not exist",
            ))
        }
    }));
    let id = h.queue.push(&Ping { n: 9 }).await.unwrap();
    let dead = h.wait_dead(1).await;
    worker.stop().await;
    assert_eq!((dead[0].id.as_str(), dead[0].attempts), (id.as_str(), 1));
    assert_eq!(dead[0].error, "look up the plan: plan 9 does not exist");
    assert_eq!(seen.len(), 1);
    assert_eq!(h.count(&h.metrics.retried, "ping"), 0);
    assert_eq!(h.count(&h.metrics.failed, "ping"), 1);
    assert!(h.queue.discard(&id).await.unwrap());
    assert!(h.queue.dead(10).await.unwrap().is_empty());
    assert!(!h.queue.discard(&id).await.unwrap());
}

async fn an_undecodable_payload_is_dead_lettered_without_calling_the_handler(kind: Kind) {
    let h = Harness::new(kind).await;
    let called = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&called);
    let worker = start(h.worker().handle(1, move |_: PingV2, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    }));
    let id = h.queue.push(&Ping { n: 3 }).await.unwrap();
    let dead = h.wait_dead(1).await;
    worker.stop().await;
    assert_eq!((dead[0].id.as_str(), dead[0].attempts), (id.as_str(), 1));
    assert!(
        dead[0].error.starts_with("decode ping payload: "),
        "{}",
        dead[0].error
    );
    assert_eq!(called.load(Ordering::SeqCst), 0);
}

async fn dead_jobs_are_listed_newest_first_across_job_types(kind: Kind) {
    let h = Harness::new(kind).await;
    let worker = start(
        h.worker()
            .handle(1, |_: Ping, _| async {
                Err(JobError::Permanent("ping failed".into()))
            })
            .handle(1, |_: Pong, _| async {
                Err(JobError::Permanent("pong failed".into()))
            }),
    );
    let ping = h.queue.push(&Ping { n: 1 }).await.unwrap();
    h.wait_dead(1).await;
    let pong = h.queue.push(&Pong { text: "hi".into() }).await.unwrap();
    let dead = h.wait_dead(2).await;
    worker.stop().await;
    let listed: Vec<(&str, &str)> = dead
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str()))
        .collect();
    assert_eq!(listed, [(pong.as_str(), "pong"), (ping.as_str(), "ping")]);
    assert_eq!(dead[0].payload, serde_json::json!({ "text": "hi" }));
    let newest = h.queue.dead(1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].id, pong);
    assert!(dead[0].failed_at >= dead[1].failed_at);
}

async fn depth_counts_waiting_jobs_per_queue(kind: Kind) {
    let h = Harness::new(kind).await;
    for n in 0..3 {
        h.queue.push(&Ping { n }).await.unwrap();
    }
    h.queue.push(&Pong { text: "x".into() }).await.unwrap();
    assert_eq!(h.queue.depth("ping").await.unwrap(), 3);
    assert_eq!(h.queue.depth("pong").await.unwrap(), 1);
    assert_eq!(h.queue.depth("nothing").await.unwrap(), 0);
    assert_eq!(h.metrics.queue_depth.with_label_values(&["ping"]).get(), 3);
    assert_eq!(h.count(&h.metrics.enqueued, "ping"), 3);

    let worker = start(h.worker().handle(3, |_: Ping, _| async { Ok(()) }));
    eventually("the queue drains", async || {
        h.queue.depth("ping").await.unwrap() == 0
    })
    .await;
    eventually("the jobs succeed", async || {
        h.count(&h.metrics.succeeded, "ping") == 3
    })
    .await;
    worker.stop().await;
    assert_eq!(h.queue.depth("pong").await.unwrap(), 1);
}

async fn concurrency_bounds_the_handlers_running_at_once(kind: Kind) {
    let h = Harness::new(kind).await;
    // Each handler waits for a second one: with a concurrency of 2 all four jobs pass, in pairs.
    let pair = Arc::new(Barrier::new(2));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (p, r, m) = (Arc::clone(&pair), Arc::clone(&running), Arc::clone(&most));
    let worker = start(h.worker().handle(2, move |_: Ping, _| {
        let (pair, running, most) = (Arc::clone(&p), Arc::clone(&r), Arc::clone(&m));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            pair.wait().await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }));
    for n in 0..4 {
        h.queue.push(&Ping { n }).await.unwrap();
    }
    eventually("all jobs succeed", async || {
        h.count(&h.metrics.succeeded, "ping") == 4
    })
    .await;
    worker.stop().await;
    assert_eq!(most.load(Ordering::SeqCst), 2);
}

async fn shutdown_waits_for_the_job_in_flight(kind: Kind) {
    let h = Harness::new(kind).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let (gate, done) = (Arc::clone(&release), Arc::clone(&finished));
    let worker = start(h.worker().handle(1, move |_: Ping, _| {
        let (started, gate, done) = (started_tx.clone(), Arc::clone(&gate), Arc::clone(&done));
        async move {
            let _ = started.send(());
            let _permit = gate.acquire().await;
            done.store(true, Ordering::SeqCst);
            Ok(())
        }
    }));
    h.queue.push(&Ping { n: 1 }).await.unwrap();
    tokio::time::timeout(PATIENCE, started.recv())
        .await
        .unwrap()
        .unwrap();

    let _ = worker.stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !worker.task.is_finished(),
        "the worker waits for the job in flight"
    );
    release.add_permits(1);
    tokio::time::timeout(PATIENCE, worker.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(h.count(&h.metrics.succeeded, "ping"), 1);
    assert_eq!(h.queue.depth("ping").await.unwrap(), 0);
    if h.redis.is_some() {
        assert_eq!(h.queue_keys().await, Vec::<String>::new());
    }
}

async fn shutdown_after_the_grace_period_returns_the_job_in_flight(kind: Kind) {
    let h = Harness::new(kind).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let stuck = start(h.worker().grace_period(Duration::from_millis(200)).handle(
        1,
        move |_: Ping, context: JobContext| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(context);
                std::future::pending::<()>().await;
                Ok(())
            }
        },
    ));
    let id = h.queue.push(&Ping { n: 5 }).await.unwrap();
    tokio::time::timeout(PATIENCE, started.recv())
        .await
        .unwrap()
        .unwrap();
    stuck.stop().await;
    assert_eq!(
        h.queue.depth("ping").await.unwrap(),
        1,
        "the job is back in its queue"
    );

    let seen = Seen::default();
    let recorder = seen.clone();
    let worker = start(h.worker().handle(1, move |job: Ping, context: JobContext| {
        let seen = recorder.clone();
        async move {
            seen.record(job.n, &context);
            Ok(())
        }
    }));
    eventually("the returned job runs", async || seen.len() == 1).await;
    worker.stop().await;
    let calls = seen.calls();
    assert_eq!(
        (calls[0].1.job_id.as_str(), calls[0].1.attempt),
        (id.as_str(), 1)
    );
}

async fn a_worker_set_up_wrongly_refuses_to_run(kind: Kind) {
    let h = Harness::new(kind).await;
    let twice = h
        .worker()
        .handle(1, |_: Ping, _| async { Ok(()) })
        .handle(1, |_: PingV2, _| async { Ok(()) });
    let err = twice.run(async {}).await.unwrap_err();
    assert!(matches!(err, QueueError::Config(_)), "{err}");
    let idle = h.worker().handle(0, |_: Ping, _| async { Ok(()) });
    assert!(matches!(
        idle.run(async {}).await,
        Err(QueueError::Config(_))
    ));
}

/// A worker killed mid-job (no shutdown, no acknowledgement) loses the job only until its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_killed_worker_is_picked_up_by_another_after_the_lease() {
    let h = Harness::new(Kind::Redis).await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let killed = start(h.worker().handle(1, move |_: Ping, context: JobContext| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(context);
            std::future::pending::<()>().await;
            Ok(())
        }
    }));
    let id = h.queue.push(&Ping { n: 8 }).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, started.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.job_id, id);
    killed.task.abort();
    assert!(killed.task.await.unwrap_err().is_cancelled());
    assert_eq!(
        h.queue.depth("ping").await.unwrap(),
        0,
        "the job is still leased to the killed worker"
    );

    let seen = Seen::default();
    let recorder = seen.clone();
    let rescuer = start(h.worker().handle(1, move |job: Ping, context: JobContext| {
        let seen = recorder.clone();
        async move {
            seen.record(job.n, &context);
            Ok(())
        }
    }));
    eventually("another worker runs the orphaned job", async || {
        seen.len() == 1
    })
    .await;
    rescuer.stop().await;
    let calls = seen.calls();
    assert_eq!((calls[0].0, calls[0].1.job_id.as_str()), (8, id.as_str()));
    assert_eq!(h.count(&h.metrics.succeeded, "ping"), 1);
}

/// A worker that lost its registration (say, Redis was flushed or it was presumed dead) is replaced and carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_registration_is_replaced() {
    let h = Harness::new(Kind::Redis).await;
    let seen = Seen::default();
    let recorder = seen.clone();
    let worker = start(h.worker().handle(1, move |job: Ping, context: JobContext| {
        let seen = recorder.clone();
        async move {
            seen.record(job.n, &context);
            Ok(())
        }
    }));
    h.queue.push(&Ping { n: 1 }).await.unwrap();
    eventually("the first job runs", async || seen.len() == 1).await;
    let redis = h.redis.as_ref().unwrap();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let workers = format!("{}jobs:ping:workers", redis.prefix());
    let () = redis::cmd("DEL")
        .arg(&workers)
        .query_async(&mut conn)
        .await
        .unwrap();

    h.queue.push(&Ping { n: 2 }).await.unwrap();
    eventually("the second job runs", async || seen.len() == 2).await;
    worker.stop().await;
    let numbers: Vec<u32> = seen.calls().iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(h.queue_keys().await, Vec::<String>::new());
}

/// Heartbeats continue while a handler runs, so a job outliving the lease is not taken by another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_longer_than_the_lease_is_not_run_twice() {
    let h = Harness::new(Kind::Redis).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = |calls: Arc<AtomicUsize>| {
        move |_: Ping, _: JobContext| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                // More than twice the 3 s lease of both workers.
                tokio::time::sleep(Duration::from_secs(7)).await;
                Ok(())
            }
        }
    };
    let first = start(h.worker().handle(1, slow(Arc::clone(&calls))));
    let second = start(h.worker().handle(1, slow(Arc::clone(&calls))));
    h.queue.push(&Ping { n: 1 }).await.unwrap();
    eventually("the job succeeds", async || {
        h.count(&h.metrics.succeeded, "ping") == 1
    })
    .await;
    first.stop().await;
    second.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Retries are scheduled further out each time (read from the scheduled set, in whole seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_delays_grow_on_redis() {
    let h = Harness::new(Kind::Redis).await;
    let (attempts_tx, mut attempts) = mpsc::unbounded_channel();
    let worker = start(
        h.worker()
            .handle(1, move |_: Backoff, context: JobContext| {
                let attempts = attempts_tx.clone();
                async move {
                    let _ = attempts.send((context.attempt, unix_seconds()));
                    Err(JobError::Retry("still failing".into()))
                }
            }),
    );
    h.queue.push(&Backoff).await.unwrap();
    let redis = h.redis.as_ref().unwrap();
    let scheduled = format!("{}jobs:backoff:scheduled", redis.prefix());
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut waits = Vec::new();
    for attempt in 1..=3 {
        let (seen, failed_at) = tokio::time::timeout(PATIENCE, attempts.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen, attempt);
        let mut due = Vec::new();
        eventually("the retry is scheduled", async || {
            due = redis::cmd("ZRANGE")
                .arg(&scheduled)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async::<Vec<(String, f64)>>(&mut conn)
                .await
                .unwrap();
            !due.is_empty()
        })
        .await;
        let wait = due[0].1 - failed_at;
        let ceiling = Backoff::RETRY.ceiling(attempt).as_secs_f64();
        // Equal jitter waits within [ceiling/2, ceiling]; Redis rounds the due time down to a second.
        assert!(
            wait > ceiling / 2.0 - 1.1 && wait <= ceiling + 0.1,
            "attempt {attempt}: {wait} vs {ceiling}"
        );
        waits.push(wait);
    }
    worker.stop().await;
    assert!(waits[2] > waits[0], "{waits:?}");
    assert_eq!(h.count(&h.metrics.retried, "backoff"), 3);
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// apalis-redis promotes every due job in one Lua `unpack`, which fails beyond about 8,000 and stalled the
/// queue for good; a backlog larger than that must still drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_ten_thousand_jobs_drains() {
    let h = Harness::new(Kind::Redis).await;
    for start_at in (0..10_000_u32).step_by(500) {
        let jobs: Vec<Ping> = (start_at..start_at + 500).map(|n| Ping { n }).collect();
        let pushes = jobs.iter().map(|job| h.queue.push(job));
        for pushed in futures_util::future::join_all(pushes).await {
            pushed.unwrap();
        }
    }
    let done = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&done);
    let worker = start(h.worker().handle(8, move |_: Ping, _| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }));
    eventually("the backlog drains", async || {
        done.load(Ordering::Relaxed) == 10_000
    })
    .await;
    worker.stop().await;
    assert_eq!(h.queue.depth("ping").await.unwrap(), 0);
}
