//! Redis backend: apalis-redis queues, plus our dead-letter set and housekeeping scripts.
//!
//! Keys (`P` is the prefix without its trailing `:`):
//! - `P:jobs:<name>:*`: the apalis-redis queue of job `<name>` (`scheduled` zset and `active` list of waiting
//!   task ids, `data` hash of envelopes, `meta:<task>` hashes, `workers` zset of heartbeats, `inflight:<worker>`
//!   sets of taken tasks, `done` set until swept).
//! - `P:jobs:dead`: hash job id → [`DeadJob`] JSON; `P:jobs:dead:at`: zset job id → dead-lettered at (ms).

use std::{pin::pin, sync::Arc, time::Duration};

use apalis::prelude::{BackendExt, TaskBuilder, WorkerBuilder, WorkerBuilderExt, WorkerContext};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use futures_util::StreamExt;
use redis::{AsyncCommands, Script};
use tokio::sync::watch;

use crate::{
    DeadJob, Envelope, Queue, QueueError,
    worker::{Options, Registration, process_payload, stopped},
};

/// Pause before a consumer whose apalis worker failed (Redis unreachable, lease lost) starts a new one; it
/// doubles while workers keep failing fast, up to [`MAX_RESTART_DELAY`].
const RESTART_DELAY: Duration = Duration::from_secs(1);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// Finished tasks deleted per sweep script call.
const SWEEP_BATCH: usize = 500;

/// Returns what a worker still holds to the head of its queue and deregisters it; the last worker of a queue
/// also removes it from apalis' global queue index.
const RELEASE: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
if #ids > 0 then
  redis.call('LPUSH', KEYS[2], unpack(ids))
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[4])
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[5], KEYS[3])
  redis.call('DEL', KEYS[6])
end
return #ids
";

/// Deletes the data and metadata of finished tasks (apalis-redis keeps them forever).
/// Moves due jobs from a queue's scheduled set to its ready list, at most ARGV[1] at a time (Redis clock,
/// seconds, as apalis-redis scores them). apalis-redis promotes every due job in one `unpack`, which fails
/// beyond about 8,000 and then stalls the queue; keeping the due backlog small avoids that.
const PROMOTE: &str = r"
local now = tonumber(redis.call('TIME')[1])
local ids = redis.call('zrangebyscore', KEYS[1], 0, now, 'LIMIT', 0, tonumber(ARGV[1]))
if #ids > 0 then
  redis.call('rpush', KEYS[2], unpack(ids))
  redis.call('zrem', KEYS[1], unpack(ids))
  redis.call('del', KEYS[3])
  redis.call('lpush', KEYS[3], 1)
end
return #ids
";

/// Jobs moved per promotion call.
const PROMOTE_BATCH: usize = 1000;

const SWEEP: &str = r"
local ids = redis.call('SPOP', KEYS[1], ARGV[2])
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('DEL', ARGV[1] .. ':' .. id)
end
return #ids
";

/// The global index apalis-redis adds every queue's worker set to (for its dashboard).
const APALIS_QUEUE_INDEX: &str = "core:apalis:queues:list";

/// A connection to the Redis holding the queues of one prefix.
#[derive(Clone)]
pub(crate) struct RedisQueue {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    pub(crate) async fn connect(url: &str, prefix: &str) -> Result<Self, QueueError> {
        let conn = apalis_redis::connect(url)
            .await
            .map_err(QueueError::redis("connect to Redis"))?;
        let prefix = prefix.trim_end_matches(':');
        Ok(Self {
            conn,
            prefix: if prefix.is_empty() {
                "jobs".to_owned()
            } else {
                format!("{prefix}:jobs")
            },
        })
    }

    fn queue_key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    fn dead_key(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    fn dead_index_key(&self) -> String {
        format!("{}:dead:at", self.prefix)
    }

    /// apalis-redis settings of queue `name` for a consumer (a producer only needs the key names).
    pub(crate) fn config(&self, name: &str, options: &Options, concurrency: usize) -> Config {
        // apalis-redis counts heartbeats in whole seconds; a worker silent for `lease` is presumed dead.
        let lease = options.lease_timeout.as_secs().max(3);
        let heartbeat = (lease / 3).max(1);
        Config::default()
            .queue(self.queue_key(name))
            .batch_size(concurrency.max(1))
            .heartbeat_interval(Duration::from_secs(heartbeat))
            .missed_heartbeats(usize::try_from(lease / heartbeat).unwrap_or(3))
            .lock_tasks(false)
            .emit_events(false)
            .persist_results(true)
    }

    pub(crate) async fn enqueue(
        &self,
        name: &str,
        envelope: &Envelope,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        let bytes = serde_json::to_vec(envelope).map_err(QueueError::json("encode job"))?;
        let mut task = TaskBuilder::new(bytes);
        if let Some(delay) = delay {
            task = task.run_after(delay);
        }
        let config = Config::default()
            .queue(self.queue_key(name))
            .emit_events(false);
        apalis_redis::queries::push_tasks(&mut self.conn.clone(), &config, &[task.build()])
            .await
            .map_err(|err| from_apalis("push job", err))?;
        if delay.is_none() {
            self.promote(&config).await?;
        }
        Ok(())
    }

    /// Moves due jobs to the ready list in bounded batches; returns how many moved.
    async fn promote(&self, config: &Config) -> Result<usize, QueueError> {
        Script::new(PROMOTE)
            .key(config.scheduled_jobs_set())
            .key(config.active_jobs_list())
            .key(config.signal_list())
            .arg(PROMOTE_BATCH)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(QueueError::redis("promote due jobs"))
    }

    pub(crate) async fn depth(&self, name: &str) -> Result<u64, QueueError> {
        let config = Config::default().queue(self.queue_key(name));
        let (ready, delayed): (u64, u64) = redis::pipe()
            .llen(config.active_jobs_list())
            .zcard(config.scheduled_jobs_set())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(QueueError::redis("read queue depth"))?;
        Ok(ready + delayed)
    }

    pub(crate) async fn bury(&self, job: &DeadJob) -> Result<(), QueueError> {
        let json = serde_json::to_string(job).map_err(QueueError::json("encode dead job"))?;
        let () = redis::pipe()
            .atomic()
            .hset(self.dead_key(), &job.id, json)
            .ignore()
            .zadd(
                self.dead_index_key(),
                &job.id,
                job.failed_at.timestamp_millis(),
            )
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(QueueError::redis("dead-letter job"))?;
        Ok(())
    }

    /// Up to `limit` dead jobs, newest first, and how many there are.
    pub(crate) async fn dead(&self, limit: usize) -> Result<(Vec<DeadJob>, u64), QueueError> {
        let mut conn = self.conn.clone();
        let total = self.dead_count().await?;
        if limit == 0 {
            return Ok((Vec::new(), total));
        }
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let ids: Vec<String> = conn
            .zrevrange(self.dead_index_key(), 0, stop)
            .await
            .map_err(QueueError::redis("list dead jobs"))?;
        if ids.is_empty() {
            return Ok((Vec::new(), total));
        }
        let records: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.dead_key())
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .map_err(QueueError::redis("read dead jobs"))?;
        let jobs = records
            .into_iter()
            .flatten()
            .map(|json| serde_json::from_str(&json).map_err(QueueError::json("decode dead job")))
            .collect::<Result<_, _>>()?;
        Ok((jobs, total))
    }

    pub(crate) async fn dead_count(&self) -> Result<u64, QueueError> {
        self.conn
            .clone()
            .zcard(self.dead_index_key())
            .await
            .map_err(QueueError::redis("count dead jobs"))
    }

    /// Moves dead job `id` back to its queue; its job name if it was dead.
    pub(crate) async fn redrive(&self, id: &str) -> Result<Option<String>, QueueError> {
        let json: Option<String> = self
            .conn
            .clone()
            .hget(self.dead_key(), id)
            .await
            .map_err(QueueError::redis("read dead job"))?;
        let Some(json) = json else {
            return Ok(None);
        };
        let job: DeadJob =
            serde_json::from_str(&json).map_err(QueueError::json("decode dead job"))?;
        let envelope = Envelope {
            id: job.id,
            attempt: 1,
            payload: job.payload,
            // A re-drive is the admin's request: its trace, if any, follows the job.
            trace_context: cybervpn_telemetry::current_traceparent(),
        };
        // Pushed before it leaves the dead set: a crash in between re-runs the job rather than losing it.
        self.enqueue(&job.name, &envelope, None).await?;
        self.discard(id).await?;
        Ok(Some(job.name))
    }

    pub(crate) async fn discard(&self, id: &str) -> Result<bool, QueueError> {
        let (removed,): (u32,) = redis::pipe()
            .atomic()
            .hdel(self.dead_key(), id)
            .zrem(self.dead_index_key(), id)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
            .map_err(QueueError::redis("remove dead job"))?;
        Ok(removed > 0)
    }

    /// Deletes finished tasks of queue `config`.
    async fn sweep(&self, config: &Config) -> Result<(), QueueError> {
        let script = Script::new(SWEEP);
        loop {
            let swept: usize = script
                .key(config.done_jobs_set())
                .key(config.job_data_hash())
                .arg(config.job_meta_hash())
                .arg(SWEEP_BATCH)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(QueueError::redis("sweep finished jobs"))?;
            if swept < SWEEP_BATCH {
                return Ok(());
            }
        }
    }

    /// Sweeps finished tasks of every queue in `names`.
    pub(crate) async fn sweep_all(&self, names: &[&'static str]) -> Result<(), QueueError> {
        for name in names {
            let config = Config::default().queue(self.queue_key(name));
            while self.promote(&config).await? == PROMOTE_BATCH {}
            self.sweep(&config).await?;
        }
        Ok(())
    }

    /// Returns the tasks worker `worker` still holds to its queue and deregisters it.
    async fn release(&self, config: &Config, worker: &str) -> Result<u32, QueueError> {
        Script::new(RELEASE)
            .key(format!("{}:{worker}", config.inflight_jobs_set()))
            .key(config.active_jobs_list())
            .key(config.workers_set())
            .key(format!(
                "{}:workers:metadata:{worker}",
                config.queue.as_ref()
            ))
            .key(APALIS_QUEUE_INDEX)
            // A write-only "jobs available" flag apalis-redis keeps; nothing reads it.
            .key(config.signal_list())
            .arg(worker)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(QueueError::redis("release worker"))
    }

    /// Consumes queue `registration.name` until `stop` is set, replacing the apalis worker if it fails.
    pub(crate) async fn consume(
        self,
        queue: Queue,
        registration: Arc<Registration>,
        options: Options,
        mut stop: watch::Receiver<bool>,
    ) {
        let config = self.config(registration.name, &options, registration.concurrency);
        let mut restart_delay = RESTART_DELAY;
        loop {
            let worker = format!("{}@{}", registration.name, uuid::Uuid::new_v4().simple());
            let started = tokio::time::Instant::now();
            self.run_worker(&queue, &registration, &config, &worker, &options, &mut stop)
                .await;
            match self.release(&config, &worker).await {
                Ok(0) => {}
                Ok(returned) => {
                    tracing::warn!(
                        job = registration.name,
                        returned,
                        "unfinished jobs returned to the queue"
                    );
                }
                Err(err) => {
                    tracing::warn!(job = registration.name, error = %err, "could not release worker")
                }
            }
            if let Err(err) = self.sweep(&config).await {
                tracing::warn!(job = registration.name, error = %err, "could not sweep finished jobs");
            }
            if *stop.borrow() {
                return;
            }
            restart_delay = if started.elapsed() > MAX_RESTART_DELAY {
                RESTART_DELAY
            } else {
                (restart_delay * 2).min(MAX_RESTART_DELAY)
            };
            tokio::select! {
                () = stopped(&mut stop) => return,
                () = tokio::time::sleep(restart_delay) => {}
            }
        }
    }

    /// Runs one apalis worker until it fails, or until `stop` is set and its in-flight jobs finish or the grace
    /// period ends (then the unfinished jobs are dropped here and released by the caller).
    async fn run_worker(
        &self,
        queue: &Queue,
        registration: &Arc<Registration>,
        config: &Config,
        name: &str,
        options: &Options,
        stop: &mut watch::Receiver<bool>,
    ) {
        let context = WorkerContext::new(name);
        let backend = RedisStorage::<serde_json::Value>::new(self.conn.clone())
            .with_config(config.clone())
            .poll_with_interval(options.poll_interval);
        let service = {
            let queue = queue.clone();
            let registration = Arc::clone(registration);
            move |payload: serde_json::Value| {
                let queue = queue.clone();
                let registration = Arc::clone(&registration);
                async move { process_payload(&queue, &registration, payload).await }
            }
        };
        let worker = WorkerBuilder::new(context.clone())
            .backend(backend)
            .concurrency(registration.concurrency)
            .build(service);
        let mut events = pin!(worker.stream());
        let mut grace = pin!(tokio::time::sleep(Duration::from_secs(u64::from(u32::MAX))));
        let mut stopping = false;
        let mut failed = false;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    None => return,
                    Some(Ok(_)) => {}
                    Some(Err(err)) => {
                        tracing::warn!(job = registration.name, worker = name, error = %err, "job worker failed");
                        // Stopping lets the jobs in flight finish; a second failure gives up on them.
                        if failed || context.stop().is_err() {
                            return;
                        }
                        failed = true;
                    }
                },
                () = stopped(stop), if !stopping => {
                    stopping = true;
                    if context.stop().is_err() {
                        return;
                    }
                    grace.as_mut().reset(tokio::time::Instant::now() + options.grace_period);
                }
                () = &mut grace, if stopping => {
                    tracing::warn!(job = registration.name, worker = name, "grace period over, abandoning jobs in flight");
                    return;
                }
            }
        }
    }
}

fn from_apalis(operation: &'static str, err: apalis_redis::Error) -> QueueError {
    match err {
        apalis_redis::Error::Database(source) => QueueError::Redis { operation, source },
        apalis_redis::Error::Json(source) => QueueError::Json { operation, source },
        other => QueueError::Redis {
            operation,
            source: std::io::Error::other(other.to_string()).into(),
        },
    }
}
