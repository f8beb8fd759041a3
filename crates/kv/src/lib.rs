//! Redis access shared by the services.
//!
//! Owns the connection pool and the key namespace every key of a deployment (or of a test) lives under, so
//! two deployments — or two parallel tests — sharing one Redis never see each other's keys.

use std::time::Duration;

use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts, redis};

pub use deadpool_redis::redis::AsyncCommands;

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The pool could not be built from the configuration.
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// No connection could be obtained in time.
    #[error("Redis unavailable: {0}")]
    Unavailable(String),
    /// A command failed.
    #[error("Redis command failed: {0}")]
    Command(#[from] redis::RedisError),
}

/// A pooled Redis client whose keys all start with one prefix.
#[derive(Clone)]
pub struct Kv {
    pool: Pool,
    prefix: String,
    client: redis::Client,
}

impl Kv {
    /// Builds a pool for `url` (no connection is opened until first use).
    pub fn new(url: &str, prefix: &str, pool_size: usize) -> Result<Self, KvError> {
        let mut config = deadpool_redis::Config::from_url(url);
        let mut pool = PoolConfig::new(pool_size);
        pool.timeouts = Timeouts {
            wait: Some(Duration::from_secs(2)),
            create: Some(Duration::from_secs(2)),
            recycle: Some(Duration::from_secs(2)),
        };
        config.pool = Some(pool);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|err| KvError::Config(err.to_string()))?;
        Ok(Self {
            pool,
            prefix: prefix.to_owned(),
            client: events::client(url)?,
        })
    }

    /// The full key for `name` inside this namespace.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The namespace prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A pooled connection.
    pub async fn connection(&self) -> Result<deadpool_redis::Connection, KvError> {
        self.pool
            .get()
            .await
            .map_err(|err| KvError::Unavailable(err.to_string()))
    }

    /// Round-trips a `PING`, for readiness checks.
    pub async fn ping(&self) -> Result<(), KvError> {
        let mut conn = self.connection().await?;
        let _pong: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

mod events;
mod store;

pub use events::{BUFFER as EVENT_BUFFER, Events};

pub use store::{RateDecision, Store};
