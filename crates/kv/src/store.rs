//! Short-lived shared state (deny-lists, counters, rate limits) on Redis, or in-process for standalone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use deadpool_redis::redis;

use crate::{Kv, KvError};

/// Outcome of taking a token from a rate-limit bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The request may proceed.
    Allowed,
    /// The bucket is empty; retry after this long.
    Limited {
        /// Time until a token is available again.
        retry_after: Duration,
    },
}

/// Expiring keys, counters and token buckets: in Redis so every replica sees the same state, or in this
/// process when the platform runs as one binary.
#[derive(Clone)]
pub enum Store {
    /// Shared by every process using the same Redis and prefix.
    Redis(Kv),
    /// Private to this process.
    Memory(Arc<MemoryStore>),
}

/// Token bucket in one round trip: refills by elapsed time (Redis clock), takes one token if it can.
const TOKEN_BUCKET: &str = r"
local capacity = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * per_ms)
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  retry = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / per_ms) + 1000)
return retry
";

/// Takes or renews a lease: set when free, extended when already ours, refused when someone else's.
const LEASE: &str = r"
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes a lease only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Raises a stored number to ARGV[1] if it is lower; returns the previous value (or -1 when there was none).
const ADVANCE: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]))
local next = tonumber(ARGV[1])
if v == nil or v < next then
  redis.call('SET', KEYS[1], ARGV[1])
end
if v == nil then return -1 end
return v
";

impl Store {
    /// A fresh in-process store.
    pub fn memory() -> Self {
        Self::Memory(Arc::new(MemoryStore::default()))
    }

    /// Sets `key` to exist for `ttl`.
    pub async fn set_expiring(&self, key: &str, ttl: Duration) -> Result<(), KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                redis::cmd("SET")
                    .arg(kv.key(key))
                    .arg(1)
                    .arg("PX")
                    .arg(millis)
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(())
            }
            Self::Memory(memory) => {
                memory.write(key, ttl, |_| 1.0);
                Ok(())
            }
        }
    }

    /// Deletes `key` if it is set; true for the one caller that deleted it (single-use tickets).
    pub async fn take(&self, key: &str) -> Result<bool, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let deleted: u64 = redis::cmd("DEL")
                    .arg(kv.key(key))
                    .query_async(&mut conn)
                    .await?;
                Ok(deleted == 1)
            }
            Self::Memory(memory) => {
                let now = Instant::now();
                Ok(memory
                    .lock()
                    .remove(key)
                    .is_some_and(|entry| entry.expires_at > now))
            }
        }
    }

    /// Publishes `payload` to every [`crate::Events`] hub listening on `channel`, in every process sharing this
    /// store; nobody listening is not an error.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                redis::cmd("PUBLISH")
                    .arg(kv.key(channel))
                    .arg(payload)
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(())
            }
            Self::Memory(memory) => {
                let _ = memory.channel(channel).send(Arc::from(payload));
                Ok(())
            }
        }
    }

    /// Stores the integer `value` at `key` for `ttl`.
    pub async fn set_number(&self, key: &str, value: i64, ttl: Duration) -> Result<(), KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                redis::cmd("SET")
                    .arg(kv.key(key))
                    .arg(value)
                    .arg("PX")
                    .arg(millis)
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(())
            }
            Self::Memory(memory) => {
                // Integers up to 2^53 (millisecond timestamps for millennia) are exact in an f64.
                memory.write(key, ttl, |_| value as f64);
                Ok(())
            }
        }
    }

    /// The integers stored at `keys` (absent, expired or non-numeric: `None`), in one round trip.
    pub async fn numbers(&self, keys: &[String]) -> Result<Vec<Option<i64>>, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let mut command = redis::cmd("MGET");
                for key in keys {
                    command.arg(kv.key(key));
                }
                let values: Vec<Option<String>> = command.query_async(&mut conn).await?;
                Ok(values
                    .into_iter()
                    .map(|v| v.and_then(|v| v.parse().ok()))
                    .collect())
            }
            Self::Memory(memory) => Ok(keys
                .iter()
                .map(|key| memory.read(key).map(|(value, _)| value as i64))
                .collect()),
        }
    }

    /// Sets `key` for `ttl` only if it is absent; true for the one caller that set it.
    pub async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let set: Option<String> = redis::cmd("SET")
                    .arg(kv.key(key))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis)
                    .query_async(&mut conn)
                    .await?;
                Ok(set.is_some())
            }
            Self::Memory(memory) => Ok(memory.claim(key, ttl)),
        }
    }

    /// Increments the counter at `key`, starting its `ttl` window on first use; returns the new count.
    pub async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let (count,): (u64,) = redis::pipe()
                    .atomic()
                    .incr(kv.key(key), 1)
                    .cmd("PEXPIRE")
                    .arg(kv.key(key))
                    .arg(millis)
                    .arg("NX")
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
                Ok(count)
            }
            Self::Memory(memory) => Ok(memory.write_keep_ttl(key, ttl, |old| old + 1)),
        }
    }

    /// Removes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                redis::cmd("DEL")
                    .arg(kv.key(key))
                    .query_async::<()>(&mut conn)
                    .await?;
                Ok(())
            }
            Self::Memory(memory) => {
                memory.remove(key);
                Ok(())
            }
        }
    }

    /// Time left before `key` expires, if it exists.
    pub async fn time_to_live(&self, key: &str) -> Result<Option<Duration>, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let millis: i64 = redis::cmd("PTTL")
                    .arg(kv.key(key))
                    .query_async(&mut conn)
                    .await?;
                Ok(u64::try_from(millis).ok().map(Duration::from_millis))
            }
            Self::Memory(memory) => Ok(memory.read(key).map(|(_, left)| left)),
        }
    }

    /// Takes the lease at `key` for `holder` (or renews it if `holder` has it) for `ttl`; false while another
    /// holder's lease is live.
    pub async fn lease(&self, key: &str, holder: i64, ttl: Duration) -> Result<bool, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let held: i64 = redis::cmd("EVAL")
                    .arg(LEASE)
                    .arg(1)
                    .arg(kv.key(key))
                    .arg(holder)
                    .arg(millis(ttl))
                    .query_async(&mut conn)
                    .await?;
                Ok(held == 1)
            }
            Self::Memory(memory) => Ok(memory.lease(key, holder, ttl)),
        }
    }

    /// Gives up the lease at `key` if `holder` still has it.
    pub async fn release(&self, key: &str, holder: i64) -> Result<(), KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(kv.key(key))
                    .arg(holder)
                    .query_async::<i64>(&mut conn)
                    .await?;
                Ok(())
            }
            Self::Memory(memory) => {
                if memory
                    .read(key)
                    .is_some_and(|(value, _)| value == holder as f64)
                {
                    memory.remove(key);
                }
                Ok(())
            }
        }
    }

    /// Raises the never-expiring number at `key` to `value` if it is lower; returns what it was before.
    pub async fn advance(&self, key: &str, value: i64) -> Result<Option<i64>, KvError> {
        match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                let previous: i64 = redis::cmd("EVAL")
                    .arg(ADVANCE)
                    .arg(1)
                    .arg(kv.key(key))
                    .arg(value)
                    .query_async(&mut conn)
                    .await?;
                Ok((previous >= 0).then_some(previous))
            }
            Self::Memory(memory) => Ok(memory.advance(key, value)),
        }
    }

    /// Takes one token from the bucket at `key` holding `capacity` tokens and refilling `per_minute`.
    pub async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        per_minute: u32,
    ) -> Result<RateDecision, KvError> {
        let per_ms = f64::from(per_minute.max(1)) / 60_000.0;
        let retry_ms = match self {
            Self::Redis(kv) => {
                let mut conn = kv.connection().await?;
                redis::cmd("EVAL")
                    .arg(TOKEN_BUCKET)
                    .arg(1)
                    .arg(kv.key(key))
                    .arg(capacity)
                    .arg(per_ms)
                    .query_async::<u64>(&mut conn)
                    .await?
            }
            Self::Memory(memory) => memory.take_token(key, f64::from(capacity), per_ms),
        };
        Ok(if retry_ms == 0 {
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after: Duration::from_millis(retry_ms),
            }
        })
    }
}

/// In-process map of expiring values, and the in-process publish/subscribe channels.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    channels: Mutex<HashMap<String, tokio::sync::broadcast::Sender<Arc<str>>>>,
}

struct Entry {
    value: f64,
    stamp: Instant,
    expires_at: Instant,
}

/// Expired entries are swept once the map grows past this many keys.
const SWEEP_THRESHOLD: usize = 10_000;

/// Hard bound on live keys: past it the store starts over (limits reset, which errs towards availability).
const MAX_KEYS: usize = 200_000;

impl MemoryStore {
    /// The local channel named `name`, created on first use.
    pub(crate) fn channel(&self, name: &str) -> tokio::sync::broadcast::Sender<Arc<str>> {
        self.channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| tokio::sync::broadcast::channel(crate::events::BUFFER).0)
            .clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self, key: &str) -> Option<(f64, Duration)> {
        let now = Instant::now();
        self.lock()
            .get(key)
            .filter(|e| e.expires_at > now)
            .map(|e| (e.value, e.expires_at - now))
    }

    fn write(&self, key: &str, ttl: Duration, f: impl FnOnce(f64) -> f64) -> f64 {
        let now = Instant::now();
        let mut entries = self.lock();
        sweep(&mut entries, now);
        let old = entries
            .get(key)
            .filter(|e| e.expires_at > now)
            .map_or(0.0, |e| e.value);
        let value = f(old);
        entries.insert(
            key.to_owned(),
            Entry {
                value,
                stamp: now,
                expires_at: now + ttl,
            },
        );
        value
    }

    fn write_keep_ttl(&self, key: &str, ttl: Duration, f: impl FnOnce(u64) -> u64) -> u64 {
        let now = Instant::now();
        let mut entries = self.lock();
        sweep(&mut entries, now);
        let live = entries.get_mut(key).filter(|e| e.expires_at > now);
        match live {
            Some(entry) => {
                // Counters hold small integers, exact in an f64.
                let next = f(entry.value as u64);
                entry.value = next as f64;
                next
            }
            None => {
                let next = f(0);
                entries.insert(
                    key.to_owned(),
                    Entry {
                        value: next as f64,
                        stamp: now,
                        expires_at: now + ttl,
                    },
                );
                next
            }
        }
    }

    fn claim(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        sweep(&mut entries, now);
        if entries.get(key).is_some_and(|e| e.expires_at > now) {
            return false;
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value: 1.0,
                stamp: now,
                expires_at: now + ttl,
            },
        );
        true
    }

    fn lease(&self, key: &str, holder: i64, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut entries = self.lock();
        let holder = holder as f64;
        if entries
            .get(key)
            .is_some_and(|e| e.expires_at > now && e.value != holder)
        {
            return false;
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value: holder,
                stamp: now,
                expires_at: now + ttl,
            },
        );
        true
    }

    fn advance(&self, key: &str, value: i64) -> Option<i64> {
        let now = Instant::now();
        let mut entries = self.lock();
        let previous = entries.get(key).map(|e| e.value as i64);
        if previous.is_none_or(|previous| previous < value) {
            entries.insert(
                key.to_owned(),
                Entry {
                    value: value as f64,
                    stamp: now,
                    // Never expires in practice: a century.
                    expires_at: now + Duration::from_secs(100 * 365 * 24 * 3600),
                },
            );
        }
        previous
    }

    fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    fn take_token(&self, key: &str, capacity: f64, per_ms: f64) -> u64 {
        let now = Instant::now();
        let mut entries = self.lock();
        sweep(&mut entries, now);
        let (mut tokens, last) = entries
            .get(key)
            .filter(|e| e.expires_at > now)
            .map_or((capacity, now), |e| (e.value, e.stamp));
        let elapsed_ms = now.duration_since(last).as_secs_f64() * 1000.0;
        tokens = (tokens + elapsed_ms * per_ms).min(capacity);
        let retry_ms = if tokens >= 1.0 {
            tokens -= 1.0;
            0
        } else {
            ((1.0 - tokens) / per_ms).ceil() as u64
        };
        let full_in = Duration::from_secs_f64(capacity / per_ms / 1000.0) + Duration::from_secs(1);
        entries.insert(
            key.to_owned(),
            Entry {
                value: tokens,
                stamp: now,
                expires_at: now + full_in,
            },
        );
        retry_ms
    }
}

/// A TTL in whole milliseconds, at least one.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn sweep(entries: &mut HashMap<String, Entry>, now: Instant) {
    if entries.len() > SWEEP_THRESHOLD {
        entries.retain(|_, e| e.expires_at > now);
        if entries.len() > MAX_KEYS {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn stores() -> Vec<(Store, &'static str)> {
        let url = std::env::var("CYBERVPN_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let prefix = format!("test:kv:{}:", uuid_like());
        let kv = Kv::new(&url, &prefix, 2).unwrap();
        kv.ping()
            .await
            .unwrap_or_else(|err| panic!("Redis at {url} is unreachable: {err}"));
        vec![(Store::Redis(kv), "redis"), (Store::memory(), "memory")]
    }

    fn uuid_like() -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("{nanos:x}{}", std::process::id())
    }

    async fn cleanup(store: &Store) {
        if let Store::Redis(kv) = store {
            let mut conn = kv.connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", kv.prefix()))
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn expiring_keys_disappear_after_their_ttl() {
        for (store, name) in stores().await {
            store
                .set_expiring("deny:a", Duration::from_millis(150))
                .await
                .unwrap();
            let present = |store: &Store| {
                let store = store.clone();
                async move {
                    store
                        .numbers(&["deny:a".to_owned(), "deny:b".to_owned()])
                        .await
                        .unwrap()
                }
            };
            assert_eq!(present(&store).await, vec![Some(1), None], "{name}");
            let left = store.time_to_live("deny:a").await.unwrap().unwrap();
            assert!(left <= Duration::from_millis(150), "{name}: {left:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
            assert_eq!(present(&store).await, vec![None, None], "{name}");
            assert_eq!(store.time_to_live("deny:a").await.unwrap(), None, "{name}");
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn numbers_and_claims() {
        for (store, name) in stores().await {
            let minute = Duration::from_secs(60);
            store
                .set_number("revoked", 1_700_000_000_123, minute)
                .await
                .unwrap();
            store.set_expiring("flag", minute).await.unwrap();
            assert_eq!(
                store
                    .numbers(&[
                        "revoked".to_owned(),
                        "flag".to_owned(),
                        "missing".to_owned()
                    ])
                    .await
                    .unwrap(),
                vec![Some(1_700_000_000_123), Some(1), None],
                "{name}"
            );
            assert!(store.claim("once", minute).await.unwrap(), "{name}");
            assert!(
                !store.claim("once", minute).await.unwrap(),
                "{name}: second claim"
            );
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn counters_count_within_their_window() {
        for (store, name) in stores().await {
            let window = Duration::from_secs(60);
            assert_eq!(store.increment("fails", window).await.unwrap(), 1, "{name}");
            assert_eq!(store.increment("fails", window).await.unwrap(), 2, "{name}");
            assert_eq!(store.increment("fails", window).await.unwrap(), 3, "{name}");
            store.delete("fails").await.unwrap();
            assert_eq!(store.increment("fails", window).await.unwrap(), 1, "{name}");
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn token_bucket_allows_its_capacity_then_says_when_to_retry() {
        for (store, name) in stores().await {
            for _ in 0..3 {
                assert_eq!(
                    store.take_token("login:ip", 3, 3).await.unwrap(),
                    RateDecision::Allowed,
                    "{name}"
                );
            }
            match store.take_token("login:ip", 3, 3).await.unwrap() {
                RateDecision::Limited { retry_after } => {
                    // Three tokens a minute: one every 20 s.
                    assert!(
                        retry_after > Duration::from_secs(18),
                        "{name}: {retry_after:?}"
                    );
                    assert!(
                        retry_after <= Duration::from_secs(20),
                        "{name}: {retry_after:?}"
                    );
                }
                RateDecision::Allowed => {
                    panic!("{name}: fourth request within a second was allowed")
                }
            }
            // Other keys have their own bucket.
            assert_eq!(
                store.take_token("login:other", 3, 3).await.unwrap(),
                RateDecision::Allowed,
                "{name}"
            );
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_expires_or_is_released() {
        for (store, name) in stores().await {
            let ttl = Duration::from_millis(300);
            assert!(store.lease("leader", 1, ttl).await.unwrap(), "{name}");
            assert!(
                !store.lease("leader", 2, ttl).await.unwrap(),
                "{name}: taken"
            );
            assert!(
                store.lease("leader", 1, ttl).await.unwrap(),
                "{name}: renewed"
            );
            store.release("leader", 2).await.unwrap();
            assert!(
                !store.lease("leader", 2, ttl).await.unwrap(),
                "{name}: not 2's to release"
            );
            store.release("leader", 1).await.unwrap();
            assert!(
                store.lease("leader", 2, ttl).await.unwrap(),
                "{name}: released"
            );
            tokio::time::sleep(Duration::from_millis(450)).await;
            assert!(
                store.lease("leader", 3, ttl).await.unwrap(),
                "{name}: expired"
            );
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn advance_only_moves_forward_and_reports_the_previous_value() {
        for (store, name) in stores().await {
            assert_eq!(store.advance("month", 10).await.unwrap(), None, "{name}");
            assert_eq!(store.advance("month", 9).await.unwrap(), Some(10), "{name}");
            assert_eq!(
                store.advance("month", 12).await.unwrap(),
                Some(10),
                "{name}"
            );
            assert_eq!(
                store.advance("month", 12).await.unwrap(),
                Some(12),
                "{name}"
            );
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn a_ticket_is_taken_once() {
        for (store, name) in stores().await {
            assert!(!store.take("ticket").await.unwrap(), "{name}: never set");
            store
                .set_expiring("ticket", Duration::from_secs(30))
                .await
                .unwrap();
            let (a, b) = tokio::join!(store.take("ticket"), store.take("ticket"));
            assert!(a.unwrap() ^ b.unwrap(), "{name}: exactly one taker");
            store
                .set_expiring("late", Duration::from_millis(50))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(120)).await;
            assert!(!store.take("late").await.unwrap(), "{name}: expired");
            cleanup(&store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_reach_every_listening_process() {
        for (store, name) in stores().await {
            // Two hubs on the same store stand for two processes (two api replicas on one Redis).
            let (one, two) = (
                crate::Events::listen(&store, "events"),
                crate::Events::listen(&store, "events"),
            );
            let (mut a, mut b) = (one.subscribe(), two.subscribe());
            let other = crate::Events::listen(&store, "elsewhere");
            let mut c = other.subscribe();
            // A Redis subscription takes a moment: publish until each hub hears one.
            for receiver in [&mut a, &mut b] {
                loop {
                    store.publish("events", "hello").await.unwrap();
                    if let Ok(Ok(message)) =
                        tokio::time::timeout(Duration::from_millis(100), receiver.recv()).await
                    {
                        assert_eq!(&*message, "hello", "{name}");
                        break;
                    }
                }
            }
            store.publish("events", "node down").await.unwrap();
            let mut seen = Vec::new();
            while let Ok(Ok(message)) =
                tokio::time::timeout(Duration::from_millis(500), b.recv()).await
            {
                seen.push(message.to_string());
                if seen.last().is_some_and(|m| m == "node down") {
                    break;
                }
            }
            assert_eq!(seen.last().map(String::as_str), Some("node down"), "{name}");
            assert!(c.try_recv().is_err(), "{name}: other channels hear nothing");
            cleanup(&store).await;
        }
    }

    #[tokio::test]
    async fn a_receiver_that_falls_behind_lags_instead_of_growing() {
        let store = Store::memory();
        let events = crate::Events::listen(&store, "events");
        let mut slow = events.subscribe();
        for n in 0..(crate::EVENT_BUFFER + 10) {
            store.publish("events", &n.to_string()).await.unwrap();
        }
        assert!(matches!(
            slow.recv().await,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(10))
        ));
    }
}
