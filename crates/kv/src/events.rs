//! Live events: published through the [`Store`], fanned out in each process to its local subscribers.
//!
//! Each process listens once per channel (one Redis subscription, or the in-process channel of a standalone
//! platform) and hands every message to any number of local receivers. Each receiver buffers at most
//! [`BUFFER`] messages: one that falls further behind gets `Lagged` instead of holding memory, so a slow
//! consumer never slows the others. Messages published while a Redis subscription is being re-established are
//! lost: events are for live views, not a log.

use std::{sync::Arc, time::Duration};

use deadpool_redis::redis;
use futures_util::StreamExt as _;
use tokio::sync::broadcast;

use crate::{Kv, Store};

/// Messages a receiver may fall behind before it sees `Lagged`.
pub const BUFFER: usize = 256;

/// One process's subscription to a channel, shared by its local receivers.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Arc<str>>,
    _relay: Option<Arc<Relay>>,
}

/// The task that copies a Redis channel into the local one; stopped when the last [`Events`] clone goes.
struct Relay(tokio::task::JoinHandle<()>);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Events {
    /// Listens on `channel` of `store` (with Redis: a task that subscribes, and subscribes again after a failure).
    pub fn listen(store: &Store, channel: &str) -> Self {
        match store {
            Store::Memory(memory) => Self {
                sender: memory.channel(channel),
                _relay: None,
            },
            Store::Redis(kv) => {
                let (sender, _) = broadcast::channel(BUFFER);
                let task = tokio::spawn(relay(kv.clone(), kv.key(channel), sender.clone()));
                Self {
                    sender,
                    _relay: Some(Arc::new(Relay(task))),
                }
            }
        }
    }

    /// A new receiver of the messages published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.sender.subscribe()
    }
}

async fn relay(kv: Kv, channel: String, sender: broadcast::Sender<Arc<str>>) {
    loop {
        match kv.client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        match message.get_payload::<String>() {
                            Ok(payload) => {
                                let _ = sender.send(Arc::from(payload));
                            }
                            Err(err) => tracing::warn!(error = %err, "unreadable event"),
                        }
                    }
                    tracing::warn!("event subscription closed; subscribing again");
                }
                Err(err) => tracing::warn!(error = %err, "cannot subscribe to events"),
            },
            Err(err) => tracing::warn!(error = %err, "cannot connect for events"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("receivers", &self.sender.receiver_count())
            .finish()
    }
}

/// Connection settings of a pub/sub client (the pool's connections cannot subscribe).
pub(crate) fn client(url: &str) -> Result<redis::Client, crate::KvError> {
    redis::Client::open(url).map_err(|err| crate::KvError::Config(err.to_string()))
}
