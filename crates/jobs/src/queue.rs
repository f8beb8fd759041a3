//! The producer handle: push jobs, watch queue depth, list and re-drive dead letters.

use std::{sync::Arc, time::Duration};

use crate::{
    DeadJob, Envelope, Job, JobMetrics, QueueError, memory::MemoryQueue, redis_backend::RedisQueue,
};

/// A handle on the job queues (Redis in production, in-process in standalone); cheap to clone.
#[derive(Clone, Debug)]
pub struct Queue {
    pub(crate) backend: Backend,
    pub(crate) metrics: JobMetrics,
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Redis(RedisQueue),
    Memory(Arc<MemoryQueue>),
}

impl Queue {
    /// Connects to Redis at `url`; every key the queues use starts with `prefix` (except that, while workers
    /// run, apalis-redis lists their queue in its global `core:apalis:queues:list`).
    pub async fn redis(url: &str, prefix: &str, metrics: JobMetrics) -> Result<Self, QueueError> {
        Ok(Self {
            backend: Backend::Redis(RedisQueue::connect(url, prefix).await?),
            metrics,
        })
    }

    /// An in-process queue (standalone mode): jobs live in memory and are shared by every clone of this handle.
    pub fn memory(metrics: JobMetrics) -> Self {
        Self {
            backend: Backend::Memory(Arc::new(MemoryQueue::default())),
            metrics,
        }
    }

    /// Enqueues `job` for its first attempt and returns its id.
    pub async fn push<J: Job>(&self, job: &J) -> Result<String, QueueError> {
        let envelope = Envelope {
            id: uuid::Uuid::now_v7().to_string(),
            attempt: 1,
            payload: serde_json::to_value(job).map_err(QueueError::json("encode job payload"))?,
            trace_context: cybervpn_telemetry::current_traceparent(),
        };
        self.enqueue(J::NAME, &envelope, None).await?;
        self.metrics.enqueued.with_label_values(&[J::NAME]).inc();
        tracing::debug!(job = J::NAME, job_id = %envelope.id, "job enqueued");
        Ok(envelope.id)
    }

    /// Jobs of queue `name` waiting to run, ready or delayed (in-flight jobs are not counted).
    pub async fn depth(&self, name: &str) -> Result<u64, QueueError> {
        let depth = match &self.backend {
            Backend::Redis(redis) => redis.depth(name).await?,
            Backend::Memory(memory) => memory.depth(name),
        };
        self.metrics.set_depth(name, depth);
        Ok(depth)
    }

    /// Up to `limit` dead-lettered jobs of every queue, newest first.
    pub async fn dead(&self, limit: usize) -> Result<Vec<DeadJob>, QueueError> {
        let (jobs, total) = match &self.backend {
            Backend::Redis(redis) => redis.dead(limit).await?,
            Backend::Memory(memory) => memory.dead(limit),
        };
        self.metrics.set_dead(total);
        Ok(jobs)
    }

    /// Moves dead job `id` back to its queue with its attempts reset; `false` if no such dead job.
    pub async fn redrive(&self, id: &str) -> Result<bool, QueueError> {
        let redriven = match &self.backend {
            Backend::Redis(redis) => redis.redrive(id).await?,
            Backend::Memory(memory) => memory.redrive(id),
        };
        let Some(name) = redriven else {
            return Ok(false);
        };
        self.metrics.enqueued.with_label_values(&[&name]).inc();
        self.refresh_dead_gauge().await;
        tracing::info!(job = %name, job_id = %id, "dead job re-driven");
        Ok(true)
    }

    /// Deletes dead job `id` for good; `false` if no such dead job.
    pub async fn discard(&self, id: &str) -> Result<bool, QueueError> {
        let discarded = match &self.backend {
            Backend::Redis(redis) => redis.discard(id).await?,
            Backend::Memory(memory) => memory.discard(id),
        };
        if discarded {
            self.refresh_dead_gauge().await;
        }
        Ok(discarded)
    }

    /// Puts `envelope` on queue `name`, to run after `delay` if given.
    pub(crate) async fn enqueue(
        &self,
        name: &str,
        envelope: &Envelope,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Redis(redis) => redis.enqueue(name, envelope, delay).await,
            Backend::Memory(memory) => {
                memory.enqueue(name, envelope.clone(), delay);
                Ok(())
            }
        }
    }

    /// Adds `job` to the dead-letter set.
    pub(crate) async fn bury(&self, job: &DeadJob) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Redis(redis) => redis.bury(job).await?,
            Backend::Memory(memory) => memory.bury(job.clone()),
        }
        self.refresh_dead_gauge().await;
        Ok(())
    }

    /// Sets the dead-letter gauge from the set itself (another process may have changed it); best effort.
    async fn refresh_dead_gauge(&self) {
        match self.dead_count().await {
            Ok(count) => self.metrics.set_dead(count),
            Err(err) => tracing::debug!(error = %err, "could not count dead jobs"),
        }
    }

    async fn dead_count(&self) -> Result<u64, QueueError> {
        match &self.backend {
            Backend::Redis(redis) => redis.dead_count().await,
            Backend::Memory(memory) => Ok(memory.dead(0).1),
        }
    }

    /// Refreshes the depth gauge of each queue in `names` and the dead-letter gauge.
    pub(crate) async fn sample(&self, names: &[&'static str]) -> Result<(), QueueError> {
        for name in names {
            self.depth(name).await?;
        }
        self.metrics.set_dead(self.dead_count().await?);
        Ok(())
    }
}
