//! Typed background jobs: Redis (apalis) and in-process queues, retries with backoff, dead letters, metrics.
