//! Signed webhook delivery the way the panel does it: `{scope, event, timestamp, data[, meta]}` POSTed with
//! `X-Remnawave-Signature` (lowercase hex HMAC-SHA256 of the exact body) and `X-Remnawave-Timestamp`, one try plus
//! three retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::WebhookTarget;
use crate::state::{Event, iso};

/// Retries after the first attempt, as the panel's queue does.
const RETRIES: u32 = 3;

/// One encoded webhook: the exact body and its timestamp.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    pub(crate) body: String,
    pub(crate) timestamp: String,
}

/// Encodes an event as the panel does. User events carry `meta` (null unless the event has one); other scopes
/// have none, as in the contract's webhook schemas.
pub(crate) fn envelope(event: &str, data: &Value, now: DateTime<Utc>) -> Envelope {
    let scope = event.split_once('.').map_or(event, |(scope, _)| scope);
    let timestamp = iso(now);
    let mut body = format!(
        "{{\"scope\":{},\"event\":{},\"timestamp\":{},\"data\":{}",
        Value::from(scope),
        Value::from(event),
        Value::from(timestamp.as_str()),
        data
    );
    if scope == "user" {
        body.push_str(",\"meta\":null");
    }
    body.push('}');
    Envelope { body, timestamp }
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm exists only because the API is fallible.
        Err(_) => String::new(),
    }
}

/// The webhook side of a fake: the target, a client, and an ordered queue for fire-and-forget events.
#[derive(Debug)]
pub(crate) struct Webhooks {
    target: Option<WebhookTarget>,
    client: reqwest::Client,
    retry_delay_ms: Arc<AtomicU64>,
    queue: Option<mpsc::UnboundedSender<Envelope>>,
}

impl Webhooks {
    /// Starts the delivery worker on `runtime` when a target is configured.
    pub(crate) fn new(target: Option<WebhookTarget>, runtime: &tokio::runtime::Handle) -> Webhooks {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let retry_delay_ms = Arc::new(AtomicU64::new(250));
        let queue = target.clone().map(|target| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Envelope>();
            let client = client.clone();
            let delay = Arc::clone(&retry_delay_ms);
            // One worker keeps deliveries in the order the actions happened.
            runtime.spawn(async move {
                while let Some(envelope) = rx.recv().await {
                    let _ = deliver(&client, &target, &envelope, &delay).await;
                }
            });
            tx
        });
        Webhooks {
            target,
            client,
            retry_delay_ms,
            queue,
        }
    }

    /// Sets the pause between delivery attempts.
    pub(crate) fn set_retry_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.retry_delay_ms.store(millis, Ordering::Relaxed);
    }

    /// Queues events for delivery in order; without a target they are dropped, as the panel would.
    pub(crate) fn emit(&self, events: Vec<Event>, now: DateTime<Utc>) {
        let Some(queue) = &self.queue else {
            return;
        };
        for event in events {
            let _ = queue.send(envelope(event.name, &event.data, now));
        }
    }

    /// Delivers one event now and returns the final HTTP status.
    pub(crate) async fn send(&self, event: &str, data: &Value) -> Result<u16, String> {
        let target = self
            .target
            .as_ref()
            .ok_or_else(|| "no webhook target is configured".to_owned())?;
        let envelope = envelope(event, data, Utc::now());
        deliver(&self.client, target, &envelope, &self.retry_delay_ms).await
    }
}

async fn deliver(
    client: &reqwest::Client,
    target: &WebhookTarget,
    envelope: &Envelope,
    retry_delay_ms: &AtomicU64,
) -> Result<u16, String> {
    let signature = signature(&target.secret, envelope.body.as_bytes());
    let mut last = Err("not attempted".to_owned());
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(
                retry_delay_ms.load(Ordering::Relaxed),
            ))
            .await;
        }
        let sent = client
            .post(&target.url)
            .header("content-type", "application/json")
            .header("x-remnawave-signature", &signature)
            .header("x-remnawave-timestamp", &envelope.timestamp)
            .body(envelope.body.clone())
            .send()
            .await;
        last = match sent {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) => Err(format!(
                "webhook delivery to {} failed: {error}",
                target.url
            )),
        };
        if matches!(last, Ok(status) if (200..300).contains(&status)) {
            break;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn envelopes_carry_scope_and_meta_only_for_users() {
        let now = Utc::now();
        let user = envelope("user.created", &json!({"id": 1}), now);
        let parsed: Value = serde_json::from_str(&user.body).unwrap();
        assert_eq!(parsed["scope"], "user");
        assert_eq!(parsed["event"], "user.created");
        assert_eq!(parsed["timestamp"], user.timestamp);
        assert_eq!(parsed["meta"], Value::Null);
        assert!(
            user.body
                .starts_with("{\"scope\":\"user\",\"event\":\"user.created\"")
        );
        let node = envelope("node.connection_lost", &json!({}), now);
        let parsed: Value = serde_json::from_str(&node.body).unwrap();
        assert_eq!(parsed["scope"], "node");
        assert!(parsed.get("meta").is_none());
    }
}
