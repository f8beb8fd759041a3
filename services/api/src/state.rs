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
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// Configuration in effect.
    pub(crate) config: Arc<Config>,
    /// The serialized public plan catalogue.
    pub(crate) plans: CachedBody,
    /// Keys, password hasher and shared state for authentication.
    pub(crate) auth: crate::auth::AuthState,
}

/// A response body computed rarely and served often, refreshed after a time-to-live.
///
/// Every api replica refreshes on its own, so a catalogue change is visible everywhere within one TTL.
pub(crate) struct CachedBody {
    ttl: Duration,
    slot: RwLock<Option<(Instant, Bytes)>>,
}

impl CachedBody {
    /// An empty cache whose entries live for `ttl` (zero disables caching).
    pub(crate) const fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: RwLock::new(None),
        }
    }

    /// The cached body if still fresh.
    pub(crate) fn get(&self) -> Option<Bytes> {
        let slot = self.slot.read().ok()?;
        slot.as_ref()
            .filter(|(stored, _)| stored.elapsed() < self.ttl)
            .map(|(_, body)| body.clone())
    }

    /// Stores a freshly computed body.
    pub(crate) fn put(&self, body: Bytes) {
        if let Ok(mut slot) = self.slot.write() {
            *slot = Some((Instant::now(), body));
        }
    }

    /// Drops the cached body, so the next request recomputes it (after the catalogue changed).
    pub(crate) fn clear(&self) {
        if let Ok(mut slot) = self.slot.write() {
            *slot = None;
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

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = CachedBody::new(Duration::from_millis(0));
        cache.put(Bytes::from_static(b"x"));
        assert_eq!(cache.get(), None, "a zero TTL never serves from cache");

        let cache = CachedBody::new(Duration::from_secs(60));
        assert_eq!(cache.get(), None);
        cache.put(Bytes::from_static(b"x"));
        assert_eq!(cache.get(), Some(Bytes::from_static(b"x")));
    }
}
