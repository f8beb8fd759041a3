//! Prometheus metrics of the job queue, labelled by job name (a bounded set of static names).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Job queue metrics; clones share the same series.
#[derive(Clone, Debug)]
pub struct JobMetrics {
    /// `jobs_enqueued_total{job}`: jobs pushed, re-drives included (retries are not).
    pub enqueued: IntCounterVec,
    /// `jobs_succeeded_total{job}`: attempts that completed the job.
    pub succeeded: IntCounterVec,
    /// `jobs_failed_total{job}`: jobs dead-lettered (permanent failure or attempts exhausted).
    pub failed: IntCounterVec,
    /// `jobs_retried_total{job}`: failed attempts scheduled to run again.
    pub retried: IntCounterVec,
    /// `job_duration_seconds{job}`: time a handler ran, per attempt.
    pub duration: HistogramVec,
    /// `jobs_queue_depth{job}`: jobs waiting to run (ready or delayed), sampled by workers and `Queue::depth`.
    pub queue_depth: IntGaugeVec,
    /// `jobs_dead_letter`: jobs in the dead-letter set, sampled by workers and dead-letter operations.
    pub dead_letter: IntGauge,
}

impl JobMetrics {
    /// Creates the metrics and registers them on `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["job"]);
        let metrics = Self {
            enqueued: counter(
                "jobs_enqueued_total",
                "Jobs pushed to a queue, re-drives included",
            )?,
            succeeded: counter("jobs_succeeded_total", "Job attempts that succeeded")?,
            failed: counter("jobs_failed_total", "Jobs moved to the dead-letter set")?,
            retried: counter(
                "jobs_retried_total",
                "Failed job attempts scheduled to run again",
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "job_duration_seconds",
                    "Time a job handler ran, per attempt",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0,
                ]),
                &["job"],
            )?,
            queue_depth: IntGaugeVec::new(
                Opts::new(
                    "jobs_queue_depth",
                    "Jobs waiting in a queue, ready or delayed",
                ),
                &["job"],
            )?,
            dead_letter: IntGauge::new("jobs_dead_letter", "Jobs in the dead-letter set")?,
        };
        registry.register(Box::new(metrics.enqueued.clone()))?;
        registry.register(Box::new(metrics.succeeded.clone()))?;
        registry.register(Box::new(metrics.failed.clone()))?;
        registry.register(Box::new(metrics.retried.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.dead_letter.clone()))?;
        Ok(metrics)
    }

    pub(crate) fn set_depth(&self, job: &str, depth: u64) {
        self.queue_depth
            .with_label_values(&[job])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_dead(&self, count: u64) {
        self.dead_letter
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
