//! A fake Remnawave 3.x panel on loopback for tests and demos, with fault injection and signed webhooks.
//!
//! It owns the panel's wire protocol as CyberVPN uses it (the Remnawave 3.x contract): the user, node,
//! internal-squad, subscription-info and system routes, the panel's error envelope and codes, the
//! forwarded-headers rule (no `X-Forwarded-For` + `X-Forwarded-Proto: https` → the socket is closed with no
//! response), and webhooks signed like the panel signs them. Everything lives in memory; [`PanelFake::start`] on
//! `127.0.0.1:0` gives each test its own panel.
//!
//! # Contract tests
//!
//! With the `contract` feature, `contract::Contract` validates recorded [`Exchange`]s against JSON Schemas
//! exported from the official `@remnawave/backend-contract` package (zod schemas). `scripts/remnawave-contract/`
//! pins the package and exports the schemas; the package itself (AGPL) is installed with `npm ci` into
//! `target/remnawave-contract/<lock hash>/` on first use and never enters the source tree. Node.js and npm are
//! required (the test fails, it does not skip, without them):
//!
//! ```text
//! CARGO_TARGET_DIR=target/fake cargo test -p cybervpn-panel-fake --features contract
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "contract")]
pub mod contract;
mod input;
mod server;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::{Shared, lock};
use crate::state::State;
use crate::webhooks::Webhooks;

/// How a fake panel is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOptions {
    /// The API token every protected route requires as `Authorization: Bearer <token>`.
    pub token: String,
    /// Where webhooks go; `None` sends none.
    pub webhook: Option<WebhookTarget>,
    /// The subscription domain in `subscriptionUrl` (`<base>/<shortUuid>`).
    pub subscription_base: String,
}

impl Default for FakeOptions {
    fn default() -> FakeOptions {
        FakeOptions {
            token: "fake-token".to_owned(),
            webhook: None,
            subscription_base: "https://sub.example.test".to_owned(),
        }
    }
}

/// A webhook receiver and the secret the panel signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The URL webhooks are POSTed to.
    pub url: String,
    /// The HMAC-SHA256 key (the panel's `WEBHOOK_SECRET_HEADER`).
    pub secret: String,
}

/// A fault injected into the next matching request(s); `path_prefix: None` matches every path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and the body the panel (or, for 502–504, its proxy) would send.
    Status {
        /// The HTTP status.
        status: u16,
        /// How many requests it affects.
        times: usize,
        /// Only requests whose path starts with this.
        path_prefix: Option<String>,
    },
    /// Sleep this long before handling the request normally.
    Delay {
        /// How long to wait.
        delay: Duration,
        /// How many requests it affects.
        times: usize,
        /// Only requests whose path starts with this.
        path_prefix: Option<String>,
    },
    /// Close the connection without any response.
    DropConnection {
        /// How many requests it affects.
        times: usize,
        /// Only requests whose path starts with this.
        path_prefix: Option<String>,
    },
    /// Answer 200 with a body that is not JSON.
    Garbage {
        /// How many requests it affects.
        times: usize,
        /// Only requests whose path starts with this.
        path_prefix: Option<String>,
    },
}

/// One request the fake received and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The request body, when it was JSON.
    pub request_body: Option<Value>,
    /// The status sent; 0 when the connection was closed without a response.
    pub status: u16,
    /// The response body, when it was JSON.
    pub response_body: Option<Value>,
    /// The route template matched, e.g. `/api/users/{id}/actions/extend`; `unmatched` for unknown routes.
    pub route: &'static str,
    /// The W3C `traceparent` header the request carried, if any.
    pub traceparent: Option<String>,
}

/// The panel identity of a user made by [`PanelFake::seed_user`] (what a subscription stores about it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededUser {
    /// The numeric id.
    pub id: i64,
    /// The short uuid (subscription URL segment).
    pub short_uuid: String,
    /// `<subscription base>/<shortUuid>`.
    pub subscription_url: String,
}

/// A running fake panel; clones share it, and it stops when the last clone drops or on [`PanelFake::shutdown`].
#[derive(Clone)]
pub struct PanelFake {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl std::fmt::Debug for PanelFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelFake")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl PanelFake {
    /// Binds `listen` (use `127.0.0.1:0` in tests) and serves the fake panel on the current Tokio runtime.
    ///
    /// Seeds two internal squads (`Default-Squad`, `Premium`) and three connected nodes (NL, DE, FI).
    pub async fn start(listen: SocketAddr, options: FakeOptions) -> std::io::Result<PanelFake> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            token: options.token,
            state: Mutex::new(State::new(&options.subscription_base, Utc::now())),
            exchanges: Mutex::new(Vec::new()),
            recording: AtomicBool::new(true),
            faults: Mutex::new(Vec::new()),
            webhooks: Webhooks::new(options.webhook, &runtime),
        });
        let (stop, stopped) = watch::channel(false);
        runtime.spawn(server::serve(listener, Arc::clone(&shared), stopped));
        Ok(PanelFake {
            handle: Arc::new(Handle { shared, addr, stop }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash, no `/api`).
    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.handle.addr
    }

    /// The API token the fake accepts.
    pub fn token(&self) -> &str {
        &self.shared().token
    }

    /// Queues a fault consumed by the next matching request(s); faults apply in the order injected.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared().faults).push(fault);
    }

    /// Every request received and the response sent, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.shared().exchanges).clone()
    }

    /// Forgets the recorded exchanges.
    pub fn clear_exchanges(&self) {
        lock(&self.shared().exchanges).clear();
    }

    /// Turns the exchange record on or off (off keeps long benchmarks from holding every response).
    pub fn set_recording(&self, on: bool) {
        self.shared().recording.store(on, Ordering::Relaxed);
    }

    /// The pause between webhook delivery attempts (250 ms by default; the real panel waits 5 s).
    pub fn set_webhook_retry_delay(&self, delay: Duration) {
        self.shared().webhooks.set_retry_delay(delay);
    }

    /// A snapshot of every user as the API would return it, in id order.
    pub fn users(&self) -> Vec<Value> {
        lock(&self.shared().state).all_users(Utc::now())
    }

    /// One user as the API would return it.
    pub fn user_by_username(&self, name: &str) -> Option<Value> {
        lock(&self.shared().state).user_named(name, Utc::now())
    }

    /// Deletes a user as an admin would in the panel UI (raises `user.deleted`); false if there was none.
    pub fn delete_user_out_of_band(&self, id: i64) -> bool {
        let deleted = lock(&self.shared().state).delete(id, Utc::now());
        match deleted {
            Ok(events) => {
                self.shared().emit(events);
                true
            }
            Err(_) => false,
        }
    }

    /// Sets a user's used traffic as if its nodes reported it; reaching the limit makes it LIMITED.
    pub fn set_user_traffic(&self, id: i64, used_bytes: i64) {
        let events = lock(&self.shared().state).set_traffic(id, used_bytes, Utc::now());
        self.shared().emit(events);
    }

    /// Bulk-creates `n` ACTIVE users named `seed_<k>` in the first squad (no webhooks).
    pub fn seed_users(&self, n: usize) {
        lock(&self.shared().state).seed(n, Utc::now());
    }

    /// Creates an ACTIVE user with these fields in the first squad (no webhooks); `None` if the username is taken.
    pub fn seed_user(
        &self,
        username: &str,
        expire_at: DateTime<Utc>,
        traffic_limit_bytes: i64,
        tag: Option<&str>,
    ) -> Option<SeededUser> {
        let mut state = lock(&self.shared().state);
        let (id, short_uuid) =
            state.seed_user(username, expire_at, traffic_limit_bytes, tag, Utc::now())?;
        let subscription_url = state.subscription_url_of(&short_uuid);
        Some(SeededUser {
            id,
            short_uuid,
            subscription_url,
        })
    }

    /// How many users the panel holds.
    pub fn user_count(&self) -> usize {
        lock(&self.shared().state).user_count()
    }

    /// Every node as the API would return it.
    pub fn nodes(&self) -> Vec<Value> {
        lock(&self.shared().state).nodes_json(Utc::now())
    }

    /// Marks a node connected or not; a change raises `node.connection_restored` / `node.connection_lost`.
    pub fn set_node_connected(&self, uuid: &str, connected: bool) {
        let events = lock(&self.shared().state).set_node_connected(uuid, connected, Utc::now());
        self.shared().emit(events);
    }

    /// Delivers one signed webhook now (with retries) and returns the receiver's final HTTP status.
    pub async fn send_webhook(&self, event: &str, data: Value) -> Result<u16, String> {
        self.shared().webhooks.send(event, &data).await
    }

    /// The internal squads as `(uuid, name)`.
    pub fn squads(&self) -> Vec<(String, String)> {
        lock(&self.shared().state).squad_pairs()
    }

    /// Stops accepting connections and closes the open ones.
    pub fn shutdown(&self) {
        self.handle.stop.send_replace(true);
    }
}
