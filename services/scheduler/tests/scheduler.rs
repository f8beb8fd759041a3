//! Scheduler tests on real Redis: one leader, each slot enqueued once, missed ticks collapsed.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use cybervpn_config::SchedulerConfig;
use cybervpn_jobs::{JobMetrics, Queue, catalog::Periodic};
use cybervpn_kv::Store;
use cybervpn_scheduler::Scheduler;
use cybervpn_telemetry::Metrics;
use cybervpn_testkit::TestRedis;

async fn scheduler(redis: &TestRedis, holder: i64, config: &SchedulerConfig) -> (Scheduler, Queue) {
    let metrics = Metrics::new().unwrap();
    let queue = Queue::redis(
        redis.url(),
        redis.prefix(),
        JobMetrics::register(metrics.registry()).unwrap(),
    )
    .await
    .unwrap();
    let store = Store::Redis(redis.kv().clone());
    let scheduler = Scheduler::new(config, store, queue.clone(), &metrics, holder).unwrap();
    (scheduler, queue)
}

async fn depths(queue: &Queue) -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    for job in Periodic::ALL {
        out.push((job.name(), queue.depth(job.name()).await.unwrap()));
    }
    out
}

fn expect_depths(actual: &[(&'static str, u64)], interval: u64, monthly: u64) {
    for (name, depth) in actual {
        let expected = if *name == Periodic::MonthlyTrafficReset.name() {
            monthly
        } else {
            interval
        };
        assert_eq!(*depth, expected, "{name}: {actual:?}");
    }
}

#[tokio::test]
async fn only_one_scheduler_leads_until_its_lease_lapses() {
    let redis = TestRedis::new().await;
    let config = SchedulerConfig {
        lease_ttl_secs: 3,
        ..SchedulerConfig::default()
    };
    let (a, _) = scheduler(&redis, 1, &config).await;
    let (b, _) = scheduler(&redis, 2, &config).await;
    assert!(a.lead().await.unwrap());
    assert!(!b.lead().await.unwrap(), "the lease is taken");
    assert!(a.lead().await.unwrap(), "the leader renews");
    // The leader stops renewing (crashed): the standby takes over once the lease lapses.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    assert!(b.lead().await.unwrap());
    assert!(!a.lead().await.unwrap());
}

#[tokio::test]
async fn two_schedulers_never_enqueue_the_same_tick() {
    let redis = TestRedis::new().await;
    let config = SchedulerConfig::default();
    let (a, queue) = scheduler(&redis, 1, &config).await;
    let (b, _) = scheduler(&redis, 2, &config).await;
    let now = Utc::now();
    // Both believe they lead (a split brain) and tick the same instant, repeatedly and concurrently.
    for _ in 0..5 {
        let (x, y) = tokio::join!(a.tick(now), b.tick(now));
        x.unwrap();
        y.unwrap();
    }
    // Each interval job once; the monthly job not at all on a first start.
    expect_depths(&depths(&queue).await, 1, 0);
}

#[tokio::test]
async fn a_long_downtime_runs_each_missed_job_once() {
    let redis = TestRedis::new().await;
    let config = SchedulerConfig::default();
    let (scheduler, queue) = scheduler(&redis, 7, &config).await;
    let start = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
    scheduler.tick(start).await.unwrap();
    expect_depths(&depths(&queue).await, 1, 0);
    // Down for two months: every interval slot and two month boundaries were missed.
    let back = start + TimeDelta::days(60);
    scheduler.tick(back).await.unwrap();
    scheduler.tick(back + TimeDelta::seconds(1)).await.unwrap();
    expect_depths(&depths(&queue).await, 2, 1);
}

#[tokio::test]
async fn the_monthly_reset_runs_on_the_first_of_the_month() {
    let redis = TestRedis::new().await;
    let (scheduler, queue) = scheduler(&redis, 9, &SchedulerConfig::default()).await;
    let monthly = Periodic::MonthlyTrafficReset.name();
    let last_day = Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap();
    scheduler.tick(last_day).await.unwrap();
    assert_eq!(
        queue.depth(monthly).await.unwrap(),
        0,
        "a first start resets nobody"
    );
    scheduler
        .tick(last_day + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(queue.depth(monthly).await.unwrap(), 1, "00:00 on the 1st");
    scheduler
        .tick(last_day + TimeDelta::hours(5))
        .await
        .unwrap();
    assert_eq!(queue.depth(monthly).await.unwrap(), 1, "once per month");
}
