//! Scheduler tests on real Redis: one leader, each slot enqueued once, missed ticks collapsed.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use cybervpn_config::{Config, SchedulerConfig};
use cybervpn_jobs::{JobMetrics, Queue, catalog::Periodic};
use cybervpn_kv::Store;
use cybervpn_scheduler::Scheduler;
use cybervpn_telemetry::Metrics;
use cybervpn_testkit::TestRedis;

async fn scheduler(redis: &TestRedis, holder: i64, config: &SchedulerConfig) -> (Scheduler, Queue) {
    let config = Config {
        scheduler: config.clone(),
        ..Config::default()
    };
    scheduler_for(redis, holder, &config).await
}

async fn scheduler_for(redis: &TestRedis, holder: i64, config: &Config) -> (Scheduler, Queue) {
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

/// `remembered`: the monthly traffic reset and the daily backup, which do not run on a first start.
fn expect_depths(actual: &[(&'static str, u64)], interval: u64, remembered: u64) {
    for (name, depth) in actual {
        let expected = if [Periodic::MonthlyTrafficReset, Periodic::DatabaseBackup]
            .iter()
            .any(|job| job.name() == *name)
        {
            remembered
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
    // Each interval job once; the monthly and daily jobs not at all on a first start.
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

#[tokio::test]
async fn the_backup_runs_once_a_day_at_its_hour_unless_switched_off() {
    let redis = TestRedis::new().await;
    let mut config = Config::default();
    config.backup.hour_utc = 3;
    let (scheduler, queue) = scheduler_for(&redis, 11, &config).await;
    let backup = Periodic::DatabaseBackup.name();
    let before = Utc.with_ymd_and_hms(2026, 11, 27, 2, 59, 59).unwrap();
    scheduler.tick(before).await.unwrap();
    assert_eq!(
        queue.depth(backup).await.unwrap(),
        0,
        "not on a first start"
    );
    scheduler
        .tick(before + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(queue.depth(backup).await.unwrap(), 1, "03:00 UTC");
    scheduler.tick(before + TimeDelta::hours(20)).await.unwrap();
    assert_eq!(queue.depth(backup).await.unwrap(), 1, "once that day");
    scheduler
        .tick(before + TimeDelta::days(1) + TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(queue.depth(backup).await.unwrap(), 2, "03:00 the next day");

    config.backup.enabled = false;
    let (off, _) = scheduler_for(&redis, 12, &config).await;
    let enqueued = off.tick(before + TimeDelta::days(5)).await.unwrap();
    assert!(
        !enqueued.contains(&Periodic::DatabaseBackup),
        "{enqueued:?}"
    );
    assert_eq!(queue.depth(backup).await.unwrap(), 2);
}
