//! Live events for the staff WebSockets, published through the shared store.

use cybervpn_domain::{LiveEvent, live::LIVE_CHANNEL};
use cybervpn_kv::Store;

/// Publishes `event` to every api replica's live views; a failure is logged, never fatal (live views are best
/// effort, the database stays the record).
pub async fn publish(store: &Store, event: &LiveEvent) {
    let payload = match serde_json::to_string(event) {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(error = %err, "unserializable live event");
            return;
        }
    };
    if let Err(err) = store.publish(LIVE_CHANNEL, &payload).await {
        tracing::warn!(error = %err, kind = %event.kind, "live event not published");
    }
}
