//! The consumer: runs typed handlers, applies the retry policy, dead-letters, records metrics.

use std::{
    collections::{HashMap, HashSet},
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures_util::future::BoxFuture;
use tokio::{
    sync::{Semaphore, watch},
    task::{JoinError, JoinHandle, JoinSet},
};
use tracing::Instrument;

use crate::{
    DeadJob, Envelope, Job, JobContext, JobError, Queue, QueueError, RetryPolicy,
    memory::MemoryQueue, queue::Backend,
};

/// How often a worker samples the depth and dead-letter gauges (and sweeps finished Redis tasks).
const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

type Handler = Arc<
    dyn Fn(serde_json::Value, JobContext) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync,
>;

/// One job type a worker consumes.
pub(crate) struct Registration {
    pub(crate) name: &'static str,
    pub(crate) concurrency: usize,
    retry: RetryPolicy,
    handler: Handler,
}

/// Timing knobs of a worker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) lease_timeout: Duration,
    pub(crate) grace_period: Duration,
    pub(crate) poll_interval: Duration,
}

/// Consumes jobs from a [`Queue`] with one typed handler per job type.
pub struct Worker {
    queue: Queue,
    registrations: Vec<Registration>,
    options: Options,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.registrations.iter().map(|r| r.name).collect();
        f.debug_struct("Worker")
            .field("jobs", &names)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker consuming from `queue`, with no job types yet.
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            registrations: Vec::new(),
            options: Options {
                lease_timeout: Duration::from_secs(30),
                grace_period: Duration::from_secs(20),
                poll_interval: Duration::from_secs(1),
            },
        }
    }

    /// Handles jobs of type `J` with `handler`, running at most `concurrency` of them at once.
    pub fn handle<J, F, Fut>(mut self, concurrency: usize, handler: F) -> Self
    where
        J: Job,
        F: Fn(J, JobContext) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler: Handler =
            Arc::new(
                move |payload, context| match serde_json::from_value::<J>(payload) {
                    Ok(job) => Box::pin(handler(job, context)),
                    Err(err) => {
                        let err = JobError::permanent(&format!("decode {} payload", J::NAME), err);
                        Box::pin(std::future::ready(Err(err)))
                    }
                },
            );
        self.registrations.push(Registration {
            name: J::NAME,
            concurrency,
            retry: J::RETRY,
            handler,
        });
        self
    }

    /// Redis only: how long a worker may miss heartbeats before another worker takes back its jobs (default
    /// 30 s, at least 3 s). Jobs of a killed worker run again within about this time once any worker of their
    /// queue is alive.
    pub fn lease_timeout(mut self, timeout: Duration) -> Self {
        self.options.lease_timeout = timeout;
        self
    }

    /// How long shutdown waits for jobs in flight before returning them to the queue (default 20 s; keep it
    /// below the lease timeout, since a worker draining jobs sends no heartbeats).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.options.grace_period = grace;
        self
    }

    /// How often an idle worker looks for new jobs (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// Consumes jobs until `shutdown` resolves, then stops taking jobs and returns once the jobs in flight have
    /// finished or, after the grace period, have been returned to their queue.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), QueueError> {
        let mut names = HashSet::new();
        for registration in &self.registrations {
            if registration.concurrency == 0 {
                return Err(QueueError::Config(format!(
                    "job `{}` has concurrency 0",
                    registration.name
                )));
            }
            if !names.insert(registration.name) {
                return Err(QueueError::Config(format!(
                    "job `{}` is handled twice",
                    registration.name
                )));
            }
        }
        let names: Vec<&'static str> = self.registrations.iter().map(|r| r.name).collect();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut consumers = JoinSet::new();
        consumers.spawn(sample(self.queue.clone(), names.clone(), stop_rx.clone()));
        for registration in self.registrations {
            let registration = Arc::new(registration);
            let stop = stop_rx.clone();
            match &self.queue.backend {
                Backend::Redis(redis) => {
                    consumers.spawn(redis.clone().consume(
                        self.queue.clone(),
                        registration,
                        self.options,
                        stop,
                    ));
                }
                Backend::Memory(memory) => {
                    consumers.spawn(consume_memory(
                        Arc::clone(memory),
                        self.queue.clone(),
                        registration,
                        self.options,
                        stop,
                    ));
                }
            }
        }
        tracing::info!(jobs = ?names, "job worker started");
        let mut shutdown = pin!(shutdown);
        let mut signalled = false;
        let mut crashed = None;
        loop {
            tokio::select! {
                () = &mut shutdown, if !signalled => {
                    signalled = true;
                    tracing::info!("job worker stopping");
                    let _ = stop_tx.send(true);
                }
                joined = consumers.join_next() => match joined {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(err)) => {
                        tracing::error!(error = %err, "job consumer crashed");
                        crashed.get_or_insert(err);
                    }
                },
            }
        }
        tracing::info!("job worker stopped");
        crashed.map_or(Ok(()), |err| Err(QueueError::Crashed(err.to_string())))
    }
}

/// Resolves once `stop` is set (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Periodically refreshes the queue gauges and sweeps finished Redis tasks.
async fn sample(queue: Queue, names: Vec<&'static str>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(err) = queue.sample(&names).await {
            tracing::warn!(error = %err, "could not sample job queues");
        }
        if let Backend::Redis(redis) = &queue.backend
            && let Err(err) = redis.sweep_all(&names).await
        {
            tracing::warn!(error = %err, "could not sweep finished jobs");
        }
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(SAMPLE_INTERVAL) => {}
        }
    }
}

/// Consumes queue `registration.name` of the in-process backend until `stop` is set.
async fn consume_memory(
    memory: Arc<MemoryQueue>,
    queue: Queue,
    registration: Arc<Registration>,
    options: Options,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(registration.concurrency));
    let mut running = JoinSet::new();
    let mut in_flight = HashMap::new();
    loop {
        while let Some(joined) = running.try_join_next_with_id() {
            in_flight.remove(&joined_id(&joined));
        }
        let slot = tokio::select! {
            () = stopped(&mut stop) => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let envelope = tokio::select! {
            () = stopped(&mut stop) => break,
            envelope = memory.next(registration.name, options.poll_interval) => envelope,
        };
        let job = {
            let queue = queue.clone();
            let registration = Arc::clone(&registration);
            let envelope = envelope.clone();
            async move {
                let _slot = slot;
                // Enqueueing and dead-lettering in memory cannot fail.
                let _ = process(&queue, &registration, envelope).await;
            }
        };
        in_flight.insert(running.spawn(job).id(), envelope);
    }
    let drained = tokio::time::timeout(options.grace_period, async {
        while let Some(joined) = running.join_next_with_id().await {
            in_flight.remove(&joined_id(&joined));
        }
    })
    .await;
    if drained.is_err() {
        running.abort_all();
        while let Some(joined) = running.join_next_with_id().await {
            if joined.is_ok() {
                in_flight.remove(&joined_id(&joined));
            }
        }
        tracing::warn!(
            job = registration.name,
            returned = in_flight.len(),
            "grace period over, jobs returned to the queue"
        );
        memory.give_back(registration.name, in_flight.into_values());
    }
}

fn joined_id(joined: &Result<(tokio::task::Id, ()), JoinError>) -> tokio::task::Id {
    match joined {
        Ok((id, ())) => *id,
        Err(err) => err.id(),
    }
}

/// Runs one delivery read from Redis; an undecodable envelope is dead-lettered as it is.
pub(crate) async fn process_payload(
    queue: &Queue,
    registration: &Registration,
    raw: serde_json::Value,
) -> Result<(), QueueError> {
    match serde_json::from_value::<Envelope>(raw.clone()) {
        Ok(envelope) => process(queue, registration, envelope).await,
        Err(err) => {
            let dead = DeadJob {
                id: uuid::Uuid::now_v7().to_string(),
                name: registration.name.to_owned(),
                payload: raw,
                error: format!("decode job envelope: {err}"),
                attempts: 0,
                failed_at: Utc::now(),
            };
            tracing::error!(job = registration.name, job_id = %dead.id, error = %dead.error, "job dead-lettered");
            queue.bury(&dead).await?;
            queue
                .metrics
                .failed
                .with_label_values(&[registration.name])
                .inc();
            Ok(())
        }
    }
}

/// Runs one delivery of a job and settles it: done, scheduled again, or dead-lettered.
///
/// Errs only when the outcome could not be recorded; the delivery is then not acknowledged and runs again.
pub(crate) async fn process(
    queue: &Queue,
    registration: &Registration,
    envelope: Envelope,
) -> Result<(), QueueError> {
    let context = JobContext {
        job_id: envelope.id.clone(),
        attempt: envelope.attempt.max(1),
        max_attempts: registration.retry.max_attempts.max(1),
    };
    let name = registration.name;
    let span =
        tracing::info_span!("job", job = name, job_id = %context.job_id, attempt = context.attempt);
    // The job continues the trace of whatever pushed it (a request, through the outbox relay).
    cybervpn_telemetry::continue_from(&span, envelope.trace_context.as_deref());
    async move {
        let started = Instant::now();
        let run = (registration.handler)(envelope.payload.clone(), context.clone());
        // Spawned so that a panic is caught and a dropped delivery (shutdown) stops the handler too.
        let outcome = match AbortOnDrop(tokio::spawn(run.in_current_span())).await {
            Ok(outcome) => outcome,
            Err(err) => Err(JobError::Retry(panic_message(err))),
        };
        let metrics = &queue.metrics;
        metrics
            .duration
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                metrics.succeeded.with_label_values(&[name]).inc();
                tracing::debug!("job succeeded");
            }
            Err(JobError::Retry(error)) if !context.is_last_attempt() => {
                let delay = registration.retry.delay(context.attempt);
                let next = Envelope {
                    attempt: context.attempt + 1,
                    ..envelope
                };
                queue.enqueue(name, &next, Some(delay)).await?;
                metrics.retried.with_label_values(&[name]).inc();
                tracing::warn!(%error, retry_in = ?delay, "job failed, will retry");
            }
            Err(err) => {
                let dead = DeadJob {
                    id: envelope.id,
                    name: name.to_owned(),
                    payload: envelope.payload,
                    error: err.message().to_owned(),
                    attempts: context.attempt,
                    failed_at: Utc::now(),
                };
                queue.bury(&dead).await?;
                metrics.failed.with_label_values(&[name]).inc();
                tracing::error!(error = %dead.error, "job dead-lettered");
            }
        }
        Ok(())
    }
    .instrument(span)
    .await
}

fn panic_message(err: JoinError) -> String {
    if !err.is_panic() {
        return "handler cancelled".to_owned();
    }
    let panic = err.into_panic();
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    format!("handler panicked: {message}")
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    use super::{Registration, process};
    use crate::{Envelope, Job, JobError, JobMetrics, Queue, RetryPolicy, Worker, queue::Backend};

    #[derive(Serialize, Deserialize)]
    struct Flaky;

    impl Job for Flaky {
        const NAME: &'static str = "flaky";
        const RETRY: RetryPolicy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(600),
        };
    }

    fn registration(queue: &Queue) -> Registration {
        let mut worker = Worker::new(queue.clone()).handle(1, |_: Flaky, _| async {
            Err(JobError::Retry("try later".into()))
        });
        worker.registrations.remove(0)
    }

    #[tokio::test]
    async fn each_retry_is_scheduled_further_out_than_the_last() {
        let queue = Queue::memory(JobMetrics::register(&prometheus::Registry::new()).unwrap());
        let Backend::Memory(memory) = &queue.backend else {
            unreachable!()
        };
        let registration = registration(&queue);
        let mut envelope = Envelope {
            id: "j1".into(),
            attempt: 1,
            payload: serde_json::json!(null),
            trace_context: None,
        };
        let mut delays = Vec::new();
        for attempt in 1..5 {
            let before = tokio::time::Instant::now();
            process(&queue, &registration, envelope).await.unwrap();
            let mut delayed = memory.take_delayed("flaky");
            assert_eq!(delayed.len(), 1, "attempt {attempt} is retried once");
            let (due, next) = delayed.remove(0);
            assert_eq!(next.attempt, attempt + 1);
            let delay = due - before;
            let ceiling = Flaky::RETRY.ceiling(attempt);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling + Duration::from_secs(1),
                "{delay:?} vs {ceiling:?}"
            );
            delays.push(delay);
            envelope = next;
        }
        assert!(
            delays.windows(2).all(|pair| pair[1] >= pair[0]),
            "{delays:?}"
        );
        assert!(delays[3] > delays[0], "{delays:?}");
        process(&queue, &registration, envelope).await.unwrap();
        assert!(memory.take_delayed("flaky").is_empty());
        let dead = queue.dead(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].attempts, dead[0].error.as_str()), (5, "try later"));
    }
}
