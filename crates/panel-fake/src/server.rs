//! The HTTP side: hyper 1 on a loopback listener, routing, bearer auth, the forwarded-headers rule, injected faults,
//! and the record of every exchange.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::input::{self, Issue};
use crate::state::{CREATE_USER_ERROR, Event, PanelError, SERVER_ERROR, State};
use crate::webhooks::Webhooks;
use crate::{Exchange, Fault};

/// Request bodies above this are refused.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Locks a mutex, ignoring poisoning: a panicked test must not wedge every later request.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the server task and the handles share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) token: String,
    pub(crate) state: Mutex<State>,
    pub(crate) exchanges: Mutex<Vec<Exchange>>,
    pub(crate) recording: AtomicBool,
    pub(crate) faults: Mutex<Vec<Fault>>,
    pub(crate) webhooks: Webhooks,
}

/// Returned by the service to make hyper drop the connection without writing a response.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed without a response")
    }
}

impl std::error::Error for CloseConnection {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAction {
    Extend,
    Enable,
    Disable,
    ResetTraffic,
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeAction {
    Restart,
    Enable,
    Disable,
}

/// A matched route with its raw path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'p> {
    CreateUser,
    ListUsers,
    UpdateUser,
    StreamUsers,
    ResolveUser,
    UserByUsername(&'p str),
    UserByShortUuid(&'p str),
    UserById(&'p str),
    DeleteUser(&'p str),
    User(&'p str, UserAction),
    SubscriptionInfo(&'p str),
    Nodes,
    Node(&'p str),
    NodeAction(&'p str, NodeAction),
    InternalSquads,
    Stats,
    Bandwidth,
    Metadata,
    Health,
}

impl Route<'_> {
    fn template(&self) -> &'static str {
        match self {
            Route::CreateUser | Route::ListUsers | Route::UpdateUser => "/api/users",
            Route::StreamUsers => "/api/users/stream",
            Route::ResolveUser => "/api/users/resolve",
            Route::UserByUsername(_) => "/api/users/by-username/{username}",
            Route::UserByShortUuid(_) => "/api/users/by-short-uuid/{shortUuid}",
            Route::UserById(_) | Route::DeleteUser(_) => "/api/users/{id}",
            Route::User(_, UserAction::Extend) => "/api/users/{id}/actions/extend",
            Route::User(_, UserAction::Enable) => "/api/users/{id}/actions/enable",
            Route::User(_, UserAction::Disable) => "/api/users/{id}/actions/disable",
            Route::User(_, UserAction::ResetTraffic) => "/api/users/{id}/actions/reset-traffic",
            Route::User(_, UserAction::Revoke) => "/api/users/{id}/actions/revoke",
            Route::SubscriptionInfo(_) => "/api/sub/{shortUuid}/info",
            Route::Nodes => "/api/nodes",
            Route::Node(_) => "/api/nodes/{uuid}",
            Route::NodeAction(_, NodeAction::Restart) => "/api/nodes/{uuid}/actions/restart",
            Route::NodeAction(_, NodeAction::Enable) => "/api/nodes/{uuid}/actions/enable",
            Route::NodeAction(_, NodeAction::Disable) => "/api/nodes/{uuid}/actions/disable",
            Route::InternalSquads => "/api/internal-squads",
            Route::Stats => "/api/system/stats",
            Route::Bandwidth => "/api/system/stats/bandwidth",
            Route::Metadata => "/api/system/metadata",
            Route::Health => "/api/system/health",
        }
    }

    /// The subscription page's info route needs no token.
    fn is_public(&self) -> bool {
        matches!(self, Route::SubscriptionInfo(_))
    }
}

/// The template recorded for requests no route matches.
pub(crate) const UNMATCHED: &str = "unmatched";

fn match_route<'p>(method: &Method, path: &'p str) -> Option<Route<'p>> {
    let rest = path.strip_prefix("/api/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let user_action = |a: &str| match a {
        "extend" => Some(UserAction::Extend),
        "enable" => Some(UserAction::Enable),
        "disable" => Some(UserAction::Disable),
        "reset-traffic" => Some(UserAction::ResetTraffic),
        "revoke" => Some(UserAction::Revoke),
        _ => None,
    };
    let node_action = |a: &str| match a {
        "restart" => Some(NodeAction::Restart),
        "enable" => Some(NodeAction::Enable),
        "disable" => Some(NodeAction::Disable),
        _ => None,
    };
    let route = match (method.as_str(), segments.as_slice()) {
        ("POST", ["users"]) => Route::CreateUser,
        ("GET", ["users"]) => Route::ListUsers,
        ("PATCH", ["users"]) => Route::UpdateUser,
        ("GET", ["users", "stream"]) => Route::StreamUsers,
        ("POST", ["users", "resolve"]) => Route::ResolveUser,
        ("GET", ["users", "by-username", name]) if !name.is_empty() => Route::UserByUsername(name),
        ("GET", ["users", "by-short-uuid", short]) if !short.is_empty() => {
            Route::UserByShortUuid(short)
        }
        ("GET", ["users", id]) if !id.is_empty() => Route::UserById(id),
        ("DELETE", ["users", id]) if !id.is_empty() => Route::DeleteUser(id),
        ("POST", ["users", id, "actions", action]) if !id.is_empty() => {
            Route::User(id, user_action(action)?)
        }
        ("GET", ["sub", short, "info"]) if !short.is_empty() => Route::SubscriptionInfo(short),
        ("GET", ["nodes"]) => Route::Nodes,
        ("GET", ["nodes", uuid]) if !uuid.is_empty() => Route::Node(uuid),
        ("POST", ["nodes", uuid, "actions", action]) if !uuid.is_empty() => {
            Route::NodeAction(uuid, node_action(action)?)
        }
        ("GET", ["internal-squads"]) => Route::InternalSquads,
        ("GET", ["system", "stats"]) => Route::Stats,
        ("GET", ["system", "stats", "bandwidth"]) => Route::Bandwidth,
        ("GET", ["system", "metadata"]) => Route::Metadata,
        ("GET", ["system", "health"]) => Route::Health,
        _ => return None,
    };
    Some(route)
}

/// A response body.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    Json(Value),
    Text(&'static str),
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    body: Body,
}

impl Reply {
    fn ok(status: u16, response: Value) -> Reply {
        Reply {
            status,
            body: Body::Json(json!({ "response": response })),
        }
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: Body::Empty,
        }
    }

    /// The panel's error envelope.
    fn error(status: u16, url: &str, message: &str, code: &str) -> Reply {
        Reply {
            status,
            body: Body::Json(json!({
                "timestamp": crate::state::iso(Utc::now()),
                "path": url,
                "message": message,
                "errorCode": code,
            })),
        }
    }

    fn panel(error: PanelError, url: &str) -> Reply {
        Reply::error(error.status, url, error.message, error.code)
    }

    /// nestjs-zod's validation failure: no `errorCode`.
    fn invalid(issues: &[Issue]) -> Reply {
        let errors: Vec<Value> = issues.iter().map(Issue::to_json).collect();
        Reply {
            status: 400,
            body: Body::Json(
                json!({ "statusCode": 400, "message": "Validation failed", "errors": errors }),
            ),
        }
    }

    /// What an injected `Fault::Status` answers: the panel's envelope, or a proxy's plain text for gateway errors.
    fn fault(status: u16, url: &str, template: &str, method: &Method) -> Reply {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        match status {
            502 => Reply {
                status,
                body: Body::Text("502 Bad Gateway"),
            },
            503 => Reply {
                status,
                body: Body::Text("503 Service Temporarily Unavailable"),
            },
            504 => Reply {
                status,
                body: Body::Text("504 Gateway Time-out"),
            },
            500 if method == Method::POST && template == "/api/users" => {
                Reply::panel(CREATE_USER_ERROR, url)
            }
            500 => Reply::panel(SERVER_ERROR, url),
            429 => Reply::error(status, url, "ThrottlerException: Too Many Requests", "E000"),
            _ => Reply::error(status, url, reason, "E000"),
        }
    }

    fn into_response(self) -> (Response<Full<Bytes>>, Option<Value>) {
        let (bytes, content_type, recorded) = match self.body {
            Body::Json(value) => (
                Bytes::from(value.to_string()),
                Some("application/json; charset=utf-8"),
                Some(value),
            ),
            Body::Text(text) => (
                Bytes::from_static(text.as_bytes()),
                Some("text/html; charset=utf-8"),
                None,
            ),
            Body::Empty => (Bytes::new(), None, None),
        };
        let mut response = Response::new(Full::new(bytes));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(content_type) = content_type {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        (response, recorded)
    }
}

/// What an injected fault does to one request.
#[derive(Debug, Clone, PartialEq)]
enum FaultAction {
    Status(u16),
    Delay(Duration),
    Drop,
    Garbage,
}

impl Shared {
    /// Consumes one use of the first queued fault whose prefix matches `path`.
    fn take_fault(&self, path: &str) -> Option<FaultAction> {
        let mut faults = lock(&self.faults);
        faults.retain(|f| fault_parts(f).0 > 0);
        let index = faults.iter().position(|f| {
            fault_parts(f)
                .1
                .as_ref()
                .is_none_or(|prefix| path.starts_with(prefix.as_str()))
        })?;
        let fault = &mut faults[index];
        let action = match fault {
            Fault::Status { status, .. } => FaultAction::Status(*status),
            Fault::Delay { delay, .. } => FaultAction::Delay(*delay),
            Fault::DropConnection { .. } => FaultAction::Drop,
            Fault::Garbage { .. } => FaultAction::Garbage,
        };
        let times = match fault {
            Fault::Status { times, .. }
            | Fault::Delay { times, .. }
            | Fault::DropConnection { times, .. }
            | Fault::Garbage { times, .. } => times,
        };
        *times -= 1;
        if *times == 0 {
            faults.remove(index);
        }
        Some(action)
    }

    fn record(&self, exchange: Exchange) {
        if self.recording.load(Ordering::Relaxed) {
            lock(&self.exchanges).push(exchange);
        }
    }

    /// Queues webhook events raised outside a request (test hooks).
    pub(crate) fn emit(&self, events: Vec<Event>) {
        self.webhooks.emit(events, Utc::now());
    }
}

fn fault_parts(fault: &Fault) -> (usize, &Option<String>) {
    match fault {
        Fault::Status {
            times, path_prefix, ..
        }
        | Fault::Delay {
            times, path_prefix, ..
        }
        | Fault::DropConnection { times, path_prefix }
        | Fault::Garbage { times, path_prefix } => (*times, path_prefix),
    }
}

/// The panel serves its app port only behind a TLS proxy that sets both headers; otherwise it hangs up.
fn forwarded(headers: &HeaderMap) -> bool {
    let proto_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    headers.contains_key("x-forwarded-for") && proto_https
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, presented)) => {
            scheme.eq_ignore_ascii_case("bearer") && presented.trim() == token
        }
        None => false,
    }
}

/// Accepts connections until `stop` fires or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                _ = stop.changed() => {}
            }
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let url = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |pq| pq.as_str().to_owned());
    let headers = request.headers().clone();
    let raw = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(CloseConnection),
    };
    let parsed: Option<Result<Value, serde_json::Error>> =
        (!raw.is_empty()).then(|| serde_json::from_slice(&raw));
    let route = match_route(&method, &path);
    let template = route.as_ref().map_or(UNMATCHED, Route::template);
    let mut exchange = Exchange {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        request_body: parsed.as_ref().and_then(|p| p.as_ref().ok().cloned()),
        status: 0,
        response_body: None,
        route: template,
        traceparent: headers
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };

    let reply = match shared.take_fault(&path) {
        Some(FaultAction::Drop) => {
            shared.record(exchange);
            return Err(CloseConnection);
        }
        Some(FaultAction::Status(status)) => Some(Reply::fault(status, &url, template, &method)),
        Some(FaultAction::Garbage) => Some(Reply {
            status: 200,
            body: Body::Text("<html><body>upstream sent garbage</body></html>"),
        }),
        Some(FaultAction::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        None => None,
    };

    let reply = match reply {
        Some(reply) => reply,
        None if !forwarded(&headers) => {
            shared.record(exchange);
            return Err(CloseConnection);
        }
        None => match route {
            None => Reply::error(404, &url, &format!("Cannot {method} {path}"), "E000"),
            Some(route) if !route.is_public() && !authorized(&headers, &shared.token) => {
                Reply::error(401, &url, "Unauthorized", "E000")
            }
            Some(_) if matches!(parsed, Some(Err(_))) => {
                Reply::error(400, &url, "Unexpected token in JSON body", "E000")
            }
            Some(route) => {
                let now = Utc::now();
                let (reply, events) = dispatch(
                    &shared,
                    route,
                    query.as_deref(),
                    exchange.request_body.as_ref(),
                    &url,
                    now,
                );
                shared.webhooks.emit(events, now);
                reply
            }
        },
    };

    exchange.status = reply.status;
    let (response, recorded) = reply.into_response();
    exchange.response_body = recorded;
    shared.record(exchange);
    Ok(response)
}

type Handled = (Reply, Vec<Event>);

fn answer(result: Result<Value, PanelError>, url: &str) -> Handled {
    match result {
        Ok(value) => (Reply::ok(200, value), Vec::new()),
        Err(error) => (Reply::panel(error, url), Vec::new()),
    }
}

fn answer_outcome(
    status: u16,
    result: Result<(Value, Vec<Event>), PanelError>,
    url: &str,
) -> Handled {
    match result {
        Ok((value, events)) => (Reply::ok(status, value), events),
        Err(error) => (Reply::panel(error, url), Vec::new()),
    }
}

fn dispatch(
    shared: &Shared,
    route: Route<'_>,
    query: Option<&str>,
    body: Option<&Value>,
    url: &str,
    now: DateTime<Utc>,
) -> Handled {
    let invalid = |issues: Vec<Issue>| (Reply::invalid(&issues), Vec::new());
    let mut state = lock(&shared.state);
    match route {
        Route::CreateUser => match input::create_user(body) {
            Ok(input) => answer_outcome(201, state.create_user(input, now), url),
            Err(issues) => invalid(issues),
        },
        Route::ListUsers => match input::list_query(query) {
            Ok(q) => answer(Ok(state.list(&q, now)), url),
            Err(issues) => invalid(issues),
        },
        Route::UpdateUser => match input::update_user(body, now) {
            Ok(input) => answer_outcome(200, state.update(input, now), url),
            Err(issues) => invalid(issues),
        },
        Route::StreamUsers => match input::stream_query(query) {
            Ok(q) => answer(Ok(state.stream(&q, now)), url),
            Err(issues) => invalid(issues),
        },
        Route::ResolveUser => match input::resolve(body) {
            Ok(key) => answer(state.resolve(&key), url),
            Err(issues) => invalid(issues),
        },
        Route::UserByUsername(name) => answer(state.get_by_username(name, now), url),
        Route::UserByShortUuid(short) => answer(state.get_by_short_uuid(short, now), url),
        Route::UserById(raw) => match input::user_id(raw) {
            Ok(id) => answer(state.get_by_id(id, now), url),
            Err(issues) => invalid(issues),
        },
        Route::DeleteUser(raw) => match input::user_id(raw).map(|id| state.delete(id, now)) {
            Ok(Ok(events)) => (Reply::empty(204), events),
            Ok(Err(error)) => (Reply::panel(error, url), Vec::new()),
            Err(issues) => invalid(issues),
        },
        Route::User(raw, action) => {
            let id = match input::user_id(raw) {
                Ok(id) => id,
                Err(issues) => return invalid(issues),
            };
            let outcome = match action {
                UserAction::Extend => match input::extend(body) {
                    Ok(days) => state.extend(id, days, now),
                    Err(issues) => return invalid(issues),
                },
                UserAction::Revoke => match input::revoke(body) {
                    Ok(revoke) => state.revoke(id, revoke, now),
                    Err(issues) => return invalid(issues),
                },
                UserAction::Enable => state.enable(id, now),
                UserAction::Disable => state.disable(id, now),
                UserAction::ResetTraffic => state.reset_traffic(id, now),
            };
            answer_outcome(200, outcome, url)
        }
        Route::SubscriptionInfo(short) => answer(state.subscription_info(short, now), url),
        Route::Nodes => answer(Ok(Value::Array(state.nodes_json(now))), url),
        Route::Node(raw) => match input::node_uuid(raw) {
            Ok(uuid) => answer(state.node(uuid, now), url),
            Err(issues) => invalid(issues),
        },
        Route::NodeAction(raw, action) => {
            let uuid = match input::node_uuid(raw) {
                Ok(uuid) => uuid,
                Err(issues) => return invalid(issues),
            };
            match action {
                NodeAction::Restart => match input::restart(body) {
                    Ok(_) if state.has_node(uuid) => (Reply::empty(202), Vec::new()),
                    Ok(_) => (Reply::panel(crate::state::NODE_NOT_FOUND, url), Vec::new()),
                    Err(issues) => invalid(issues),
                },
                NodeAction::Enable => {
                    answer_outcome(200, state.set_node_disabled(uuid, false, now), url)
                }
                NodeAction::Disable => {
                    answer_outcome(200, state.set_node_disabled(uuid, true, now), url)
                }
            }
        }
        Route::InternalSquads => answer(Ok(state.squads_json()), url),
        Route::Stats => answer(Ok(state.stats_json(now)), url),
        Route::Bandwidth => answer(Ok(state.bandwidth_json()), url),
        Route::Metadata => answer(Ok(state.metadata_json()), url),
        Route::Health => answer(Ok(state.health_json(now)), url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_their_templates() {
        let cases = [
            ("POST", "/api/users", Some("/api/users")),
            ("POST", "/api/users/", Some("/api/users")),
            ("GET", "/api/users/stream", Some("/api/users/stream")),
            ("GET", "/api/users/12", Some("/api/users/{id}")),
            ("GET", "/api/users/abc", Some("/api/users/{id}")),
            ("DELETE", "/api/users/12", Some("/api/users/{id}")),
            (
                "POST",
                "/api/users/12/actions/reset-traffic",
                Some("/api/users/{id}/actions/reset-traffic"),
            ),
            ("POST", "/api/users/12/actions/explode", None),
            (
                "GET",
                "/api/users/by-username/bob",
                Some("/api/users/by-username/{username}"),
            ),
            (
                "GET",
                "/api/sub/abc/info",
                Some("/api/sub/{shortUuid}/info"),
            ),
            (
                "POST",
                "/api/nodes/x/actions/restart",
                Some("/api/nodes/{uuid}/actions/restart"),
            ),
            (
                "GET",
                "/api/system/stats/bandwidth",
                Some("/api/system/stats/bandwidth"),
            ),
            ("PUT", "/api/users", None),
            ("GET", "/users", None),
            ("GET", "/api/users//1", None),
        ];
        for (method, path, expected) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(
                match_route(&method, path).map(|r| r.template()),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn bearer_tokens_are_checked_exactly() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "t"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        assert!(authorized(&headers, "t"));
        headers.insert("authorization", HeaderValue::from_static("bearer t"));
        assert!(authorized(&headers, "t"));
        headers.insert("authorization", HeaderValue::from_static("Bearer tt"));
        assert!(!authorized(&headers, "t"));
        headers.insert("authorization", HeaderValue::from_static("Basic t"));
        assert!(!authorized(&headers, "t"));
    }

    #[test]
    fn forwarded_needs_both_headers_and_https() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
        assert!(!forwarded(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!forwarded(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(forwarded(&headers));
    }

    #[test]
    fn fault_bodies_look_like_the_panel_or_its_proxy() {
        let post = Method::POST;
        let create = Reply::fault(500, "/api/users", "/api/users", &post);
        let Body::Json(body) = create.body else {
            panic!("json expected")
        };
        assert_eq!(body["errorCode"], "A018");
        assert_eq!(
            Reply::fault(503, "/x", UNMATCHED, &post).body,
            Body::Text("503 Service Temporarily Unavailable")
        );
    }
}
