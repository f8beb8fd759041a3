//! Live staff views over WebSockets.
//!
//! A staff member trades their token for a ticket (`POST /ws/ticket`): 30 seconds, single use, so no token
//! ever appears in a URL. `GET /ws/monitoring?ticket=…` streams node status changes, node snapshots (users
//! online) and queue depth; `GET /ws/notifications?ticket=…` streams payments, new customers and incidents —
//! each topic only to roles holding its permission. Events come from the store's live channel, which the worker
//! and every api replica publish to (Redis pub/sub), so a client on any replica sees every event.
//!
//! Each connection has a bounded buffer: a client that reads too slowly (its buffer overflows, or a send waits
//! longer than [`SEND_TIMEOUT`]) is dropped with close code 1008, and so is one that floods the server with
//! messages. The server pings every `api.ws_heartbeat_secs` and drops a client silent for three intervals. When
//! the api stops, each client gets 1001 before requests drain, and reconnects to another replica.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use actix_ws::{CloseCode, CloseReason, Message, Session};
use chrono::Utc;
use cybervpn_domain::{ErrorCode, LiveEvent, LiveTopic, StaffId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::{Receiver, error::RecvError};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Staff, perm},
    error::{ApiError, Problem},
    state::AppState,
};

/// How long a ticket may wait to be used.
const TICKET_TTL: Duration = Duration::from_secs(30);
/// Longest a message may wait for the client to take it before the client counts as too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest frame a client may send (they only answer pings).
const MAX_FRAME_BYTES: usize = 4 * 1024;
/// Messages a client may send per [`FLOOD_WINDOW`] before it is dropped.
const FLOOD_LIMIT: u32 = 20;
/// The window [`FLOOD_LIMIT`] counts in.
const FLOOD_WINDOW: Duration = Duration::from_secs(10);
/// How often a monitoring client gets the queue depth.
const QUEUE_EVERY: Duration = Duration::from_secs(10);

/// A ticket for one WebSocket connection.
#[derive(Serialize, ToSchema)]
pub(crate) struct WsTicket {
    /// Pass it as `?ticket=` to a `/ws/…` route within `expires_in` seconds; it works once.
    ticket: String,
    /// Seconds it stays valid.
    expires_in: u64,
}

/// The ticket of a WebSocket upgrade.
#[derive(Deserialize, IntoParams)]
pub(crate) struct TicketQuery {
    /// From `POST /api/v1/ws/ticket`.
    ticket: String,
}

fn ticket_key(ticket: &str) -> String {
    format!("ws:ticket:{}", cybervpn_auth::hash_opaque_token(ticket))
}

/// Issues a short-lived, single-use ticket that opens one staff WebSocket.
#[utoipa::path(
    tag = "websockets",
    security(("staff" = [])),
    responses(
        (status = 201, description = "The ticket", body = WsTicket),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The shared store is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/ws/ticket")]
pub(crate) async fn ws_ticket(
    staff: Staff<perm::AnyRole>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ticket = format!(
        "{}.{}",
        staff.account.id.as_uuid().simple(),
        cybervpn_auth::generate_opaque_token()
    );
    state
        .auth
        .store
        .set_expiring(&ticket_key(&ticket), TICKET_TTL)
        .await
        .map_err(|err| ApiError::unavailable("the shared store is unavailable", err))?;
    Ok(HttpResponse::Created().json(WsTicket {
        ticket,
        expires_in: TICKET_TTL.as_secs(),
    }))
}

/// The active staff member a ticket was issued to; the ticket is spent.
async fn redeem(state: &AppState, ticket: &str) -> Result<cybervpn_domain::StaffAccount, ApiError> {
    let refused = || ApiError::new(ErrorCode::Unauthorized, "unknown, used or expired ticket");
    let staff = ticket
        .split_once('.')
        .and_then(|(id, _)| uuid::Uuid::try_parse(id).ok())
        .ok_or_else(refused)?;
    let taken = state
        .auth
        .store
        .take(&ticket_key(ticket))
        .await
        .map_err(|err| ApiError::unavailable("the shared store is unavailable", err))?;
    if !taken {
        return Err(refused());
    }
    let account = state.db.staff().get(StaffId::from_uuid(staff)).await?;
    if !account.is_active {
        return Err(ApiError::new(
            ErrorCode::AccountDisabled,
            "this staff account is disabled",
        ));
    }
    Ok(account)
}

/// Node status changes, node snapshots (users online) and queue depth, live.
#[utoipa::path(
    tag = "websockets",
    params(TicketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: JSON text messages `{topic, type, at, data}`"),
        (status = 422, description = "Not a WebSocket upgrade, or no ticket", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, used or expired ticket", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`, or the account is disabled", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ws/monitoring")]
pub(crate) async fn ws_monitoring(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<TicketQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    open(req, body, &query.ticket, state, &[LiveTopic::Monitoring]).await
}

/// Payments, new customers and incidents, live — each topic only for roles with its permission.
#[utoipa::path(
    tag = "websockets",
    params(TicketQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol: JSON text messages `{topic, type, at, data}`; the first one (`type` = `subscribed`) lists the topics this role receives"),
        (status = 422, description = "Not a WebSocket upgrade, or no ticket", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, used or expired ticket", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may see none of the topics, or the account is disabled", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ws/notifications")]
pub(crate) async fn ws_notifications(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<TicketQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let topics = [
        LiveTopic::Payments,
        LiveTopic::Customers,
        LiveTopic::Incidents,
    ];
    open(req, body, &query.ticket, state, &topics).await
}

/// Redeems the ticket, keeps the topics the role may see, and upgrades.
async fn open(
    req: HttpRequest,
    body: web::Payload,
    ticket: &str,
    state: web::Data<AppState>,
    topics: &[LiveTopic],
) -> Result<HttpResponse, ApiError> {
    // Checked before the ticket is spent: a plain GET must not use it up.
    let upgrade = req
        .headers()
        .get(actix_web::http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "not a WebSocket upgrade request",
        ));
    }
    let staff = redeem(&state, ticket).await?;
    let topics: Vec<LiveTopic> = topics
        .iter()
        .copied()
        .filter(|topic| staff.role.can(topic.permission()))
        .collect();
    if topics.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "your role may not see these events",
        ));
    }
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|err| ApiError::new(ErrorCode::ValidationFailed, err.to_string()))?;
    let connection = Connection {
        session,
        events: state.events.subscribe(),
        topics,
        queue: state.queue.clone(),
        heartbeat: Duration::from_secs(state.config.api.ws_heartbeat_secs),
        metrics: state.ws.clone(),
        stopping: state.stopping.clone(),
    };
    let stream = stream.max_frame_size(MAX_FRAME_BYTES);
    actix_web::rt::spawn(connection.serve(stream));
    Ok(response)
}

/// Counts of live connections and of clients dropped, by reason.
#[derive(Clone)]
pub(crate) struct WsMetrics {
    connections: prometheus::IntGauge,
    closed: prometheus::IntCounterVec,
}

impl WsMetrics {
    /// Registers the metrics in `registry`.
    pub(crate) fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        let connections = prometheus::IntGauge::new(
            "ws_connections",
            "Staff WebSocket connections open on this api",
        )?;
        let closed = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "ws_closed_total",
                "Staff WebSocket connections closed, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        Ok(Self {
            connections,
            closed,
        })
    }
}

/// One open staff WebSocket.
struct Connection {
    session: Session,
    events: Receiver<Arc<str>>,
    topics: Vec<LiveTopic>,
    queue: Option<cybervpn_jobs::Queue>,
    heartbeat: Duration,
    metrics: WsMetrics,
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// Why the server ends a connection: the metric label and the close frame.
enum End {
    /// The client closed, or went away.
    Client,
    /// No answer to three pings.
    Silent,
    /// The client could not keep up with the events.
    TooSlow,
    /// Too many messages from the client.
    Flood,
    /// A malformed or oversized frame.
    Protocol,
    /// The api is stopping.
    Shutdown,
}

impl End {
    const fn label(&self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Silent => "silent",
            Self::TooSlow => "too_slow",
            Self::Flood => "flood",
            Self::Protocol => "protocol",
            Self::Shutdown => "shutdown",
        }
    }

    fn reason(&self) -> Option<CloseReason> {
        let (code, description) = match self {
            Self::Client => return None,
            Self::Silent => (CloseCode::Away, "no answer to pings"),
            Self::TooSlow => (CloseCode::Policy, "too slow to read the events"),
            Self::Flood => (CloseCode::Policy, "too many messages"),
            Self::Protocol => (CloseCode::Protocol, "malformed or oversized frame"),
            Self::Shutdown => (CloseCode::Away, "server shutting down"),
        };
        Some(CloseReason {
            code,
            description: Some(description.to_owned()),
        })
    }
}

/// Just the topic of a published event, to filter without reading the rest.
#[derive(Deserialize)]
struct Head {
    topic: LiveTopic,
}

impl Connection {
    async fn serve(mut self, mut stream: actix_ws::MessageStream) {
        self.metrics.connections.inc();
        let end = self.run(&mut stream).await;
        self.metrics.closed.with_label_values(&[end.label()]).inc();
        self.metrics.connections.dec();
        let _ = self.session.close(end.reason()).await;
    }

    async fn run(&mut self, stream: &mut actix_ws::MessageStream) -> End {
        let hello = LiveEvent::new(
            self.topics[0],
            "subscribed",
            Utc::now(),
            serde_json::json!({ "topics": self.topics }),
        );
        if !self.send_event(&hello).await {
            return End::TooSlow;
        }
        let mut ping = tokio::time::interval(self.heartbeat);
        let mut depth = tokio::time::interval(QUEUE_EVERY);
        let mut heard = Instant::now();
        let mut window = (Instant::now(), 0_u32);
        let monitoring = self.topics.contains(&LiveTopic::Monitoring);
        loop {
            if *self.stopping.borrow() {
                return End::Shutdown;
            }
            tokio::select! {
                changed = self.stopping.changed() => {
                    if changed.is_err() {
                        return End::Shutdown;
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > self.heartbeat * 3 {
                        return End::Silent;
                    }
                    if !timely(self.session.ping(b"")).await {
                        return End::TooSlow;
                    }
                }
                message = stream.recv() => {
                    heard = Instant::now();
                    match message {
                        None | Some(Ok(Message::Close(_))) => return End::Client,
                        Some(Ok(Message::Ping(bytes))) => {
                            if !timely(self.session.pong(&bytes)).await {
                                return End::TooSlow;
                            }
                        }
                        Some(Ok(Message::Pong(_) | Message::Nop)) => {}
                        Some(Ok(_)) => {
                            if window.0.elapsed() > FLOOD_WINDOW {
                                window = (Instant::now(), 0);
                            }
                            window.1 += 1;
                            if window.1 > FLOOD_LIMIT {
                                return End::Flood;
                            }
                        }
                        Some(Err(_)) => return End::Protocol,
                    }
                }
                event = self.events.recv() => match event {
                    Ok(payload) => {
                        let wanted = serde_json::from_str::<Head>(&payload)
                            .is_ok_and(|head| self.topics.contains(&head.topic));
                        if wanted && !timely(self.session.text(payload.to_string())).await {
                            return End::TooSlow;
                        }
                    }
                    Err(RecvError::Lagged(_)) => return End::TooSlow,
                    Err(RecvError::Closed) => return End::Client,
                },
                _ = depth.tick(), if monitoring && self.queue.is_some() => {
                    if !self.send_depth().await {
                        return End::TooSlow;
                    }
                }
            }
        }
    }

    /// Sends the queue depth of every job type.
    async fn send_depth(&mut self) -> bool {
        let Some(queue) = &self.queue else {
            return true;
        };
        let mut depth = serde_json::Map::new();
        for name in cybervpn_jobs::catalog::NAMES {
            if let Ok(waiting) = queue.depth(name).await {
                depth.insert((*name).to_owned(), waiting.into());
            }
        }
        let event = LiveEvent::new(
            LiveTopic::Monitoring,
            "queue_depth",
            Utc::now(),
            depth.into(),
        );
        self.send_event(&event).await
    }

    async fn send_event(&mut self, event: &LiveEvent) -> bool {
        match serde_json::to_string(event) {
            Ok(text) => timely(self.session.text(text)).await,
            Err(_) => true,
        }
    }
}

/// Waits for a send at most [`SEND_TIMEOUT`]; false when it failed or the client did not take it in time.
async fn timely<E>(send: impl Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, send).await, Ok(Ok(())))
}
