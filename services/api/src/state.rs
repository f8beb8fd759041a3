//! Shared state handed to every handler.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use actix_web::web::Bytes;
use cybervpn_config::Config;
use cybervpn_db::Db;
use cybervpn_kv::Kv;
use cybervpn_telemetry::Metrics;

/// Everything a request may need, cloned cheaply into each worker.
pub(crate) struct AppState {
    /// Database pool.
    pub(crate) db: Db,
    /// Redis, when configured.
    pub(crate) kv: Option<Kv>,
    /// The VPN panel client, when `remnawave.url` is configured (connection links for customers).
    pub(crate) panel: Option<cybervpn_remnawave::Panel>,
    /// Payment gateway clients, for the gateways with credentials.
    pub(crate) gateways: crate::routes::payments::Gateways,
    /// The job queue (dead-letter views); `None` for a service without Redis.
    pub(crate) queue: Option<cybervpn_jobs::Queue>,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// Live events for the staff WebSockets (this process's subscription to the store's live channel).
    pub(crate) events: cybervpn_kv::Events,
    /// Staff WebSocket metrics.
    pub(crate) ws: crate::routes::ws::WsMetrics,
    /// Business gauges, read from the database when scraped.
    pub(crate) business: crate::business::BusinessMetrics,
    /// Configuration in effect.
    pub(crate) config: Arc<Config>,
    /// The serialized public plan catalogue.
    pub(crate) plans: CachedBody,
    /// Keys, password hasher and shared state for authentication.
    pub(crate) auth: crate::auth::AuthState,
    /// Turns true when the api is stopping (live connections close first).
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
    /// Serialized customer profiles for `GET /auth/me`, which mobile apps poll.
    pub(crate) profiles: TtlCache<cybervpn_domain::CustomerId, Bytes>,
}

impl AppState {
    /// Tells the staff live views (every api replica's WebSockets) that something happened; best effort.
    pub(crate) async fn publish_live(
        &self,
        topic: cybervpn_domain::LiveTopic,
        kind: &str,
        data: serde_json::Value,
    ) {
        let event = cybervpn_domain::LiveEvent::new(topic, kind, chrono::Utc::now(), data);
        cybervpn_worker::live::publish(&self.auth.store, &event).await;
    }
}

/// A small map whose entries expire after a fixed time; bounded, it starts over when full.
pub(crate) struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: std::sync::Mutex<std::collections::HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> TtlCache<K, V> {
    /// An empty cache.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<K, (Instant, V)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value stored under `key` within the last TTL.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.lock()
            .get(key)
            .filter(|(stored, _)| stored.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Stores `value` under `key`.
    pub(crate) fn put(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    /// Drops the entry for `key` (after it changed).
    pub(crate) fn forget(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// A response body computed rarely and served often, refreshed after a time-to-live.
///
/// One request at a time recomputes an expired body while the others keep serving the previous one, so an
/// expiry never sends every in-flight request to the database at once. `clear` (after an admin change)
/// drops the body at once; other api replicas catch up within one TTL.
pub(crate) struct CachedBody {
    ttl: Duration,
    slot: RwLock<Slot>,
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Slot {
    body: Option<(Instant, Bytes)>,
    /// Bumped by `clear`, so a refresh that read the old catalogue cannot store it afterwards.
    generation: u64,
}

impl CachedBody {
    /// An empty cache whose entries live for `ttl` (zero disables caching).
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: RwLock::new(Slot::default()),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The body: fresh from cache, stale while another request refreshes it, or recomputed by `refresh`.
    pub(crate) async fn get_or_refresh<F, Fut, E>(&self, refresh: F) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let (current, generation) = self.snapshot();
        if let Some((stored, body)) = &current
            && stored.elapsed() < self.ttl
        {
            return Ok(body.clone());
        }
        let _guard = match (self.refreshing.try_lock(), current) {
            (Ok(guard), _) => guard,
            // Someone is refreshing: the previous body is good enough meanwhile.
            (Err(_), Some((_, body))) => return Ok(body.clone()),
            (Err(_), None) => self.refreshing.lock().await,
        };
        // Whoever held the lock before us may have just refreshed it.
        if let (Some((stored, body)), now_generation) = self.snapshot()
            && stored.elapsed() < self.ttl
            && now_generation == generation
        {
            return Ok(body);
        }
        let generation = self.snapshot().1;
        let body = refresh().await?;
        if let Ok(mut slot) = self.slot.write()
            && slot.generation == generation
        {
            slot.body = Some((Instant::now(), body.clone()));
        }
        Ok(body)
    }

    fn snapshot(&self) -> (Option<(Instant, Bytes)>, u64) {
        self.slot
            .read()
            .map(|slot| (slot.body.clone(), slot.generation))
            .unwrap_or_default()
    }

    /// Drops the cached body, so the next request recomputes it (after the catalogue changed).
    pub(crate) fn clear(&self) {
        if let Ok(mut slot) = self.slot.write() {
            slot.body = None;
            slot.generation += 1;
        }
    }

    /// The configured time-to-live.
    pub(crate) const fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &'static str) -> Result<Bytes, ()> {
        Ok(Bytes::from_static(text.as_bytes()))
    }

    #[test]
    fn ttl_cache_expires_forgets_and_stays_bounded() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.put(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        cache.forget(&1);
        assert_eq!(cache.get(&1), None);
        cache.put(1, "a");
        cache.put(2, "b");
        cache.put(3, "c");
        assert_eq!(cache.get(&3), Some("c"));
        assert_eq!(cache.get(&1), None, "full: started over");

        let expired = TtlCache::new(Duration::ZERO, 2);
        expired.put(1, "a");
        assert_eq!(expired.get(&1), None);
    }

    #[tokio::test]
    async fn serves_fresh_bodies_and_recomputes_expired_ones() {
        let cache = CachedBody::new(Duration::from_secs(60));
        assert_eq!(
            cache.get_or_refresh(|| async { body("a") }).await,
            body("a")
        );
        assert_eq!(
            cache.get_or_refresh(|| async { body("b") }).await,
            body("a"),
            "fresh: not recomputed"
        );
        cache.clear();
        assert_eq!(
            cache.get_or_refresh(|| async { body("c") }).await,
            body("c")
        );

        let expiring = CachedBody::new(Duration::ZERO);
        assert_eq!(
            expiring.get_or_refresh(|| async { body("a") }).await,
            body("a")
        );
        assert_eq!(
            expiring.get_or_refresh(|| async { body("b") }).await,
            body("b")
        );
    }

    #[tokio::test]
    async fn a_stale_body_is_served_while_another_request_refreshes() {
        let cache = std::sync::Arc::new(CachedBody::new(Duration::ZERO));
        cache
            .get_or_refresh(|| async { body("old") })
            .await
            .unwrap();
        let (started, wait) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let refresher = {
            let cache = std::sync::Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get_or_refresh(|| async move {
                        let _ = started.send(());
                        let _ = released.await;
                        body("new")
                    })
                    .await
            })
        };
        wait.await.unwrap();
        assert_eq!(
            cache.get_or_refresh(|| async { body("other") }).await,
            body("old"),
            "only one refresh at a time; the rest get the previous body"
        );
        release.send(()).unwrap();
        assert_eq!(refresher.await.unwrap(), body("new"));
    }

    #[tokio::test]
    async fn a_refresh_overtaken_by_clear_is_not_stored() {
        let cache = std::sync::Arc::new(CachedBody::new(Duration::from_secs(60)));
        let (started, wait) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let refresher = {
            let cache = std::sync::Arc::clone(&cache);
            tokio::spawn(async move {
                cache
                    .get_or_refresh(|| async move {
                        let _ = started.send(());
                        let _ = released.await;
                        body("read before the change")
                    })
                    .await
            })
        };
        wait.await.unwrap();
        cache.clear();
        release.send(()).unwrap();
        refresher.await.unwrap().unwrap();
        assert_eq!(
            cache
                .get_or_refresh(|| async { body("after the change") })
                .await,
            body("after the change")
        );
    }
}
