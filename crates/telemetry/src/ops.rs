//! The operations endpoint of the background services: `GET /health` and `GET /metrics` on their own port.

use std::{convert::Infallible, future::Future, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{METRICS_CONTENT_TYPE, Metrics};

/// Reports the service's health as a JSON object; `Err` carries the same shape for a 503.
pub type HealthCheck = Arc<
    dyn Fn() -> std::pin::Pin<
            Box<dyn Future<Output = Result<serde_json::Value, serde_json::Value>> + Send>,
        > + Send
        + Sync,
>;

/// Handles a `POST` to the webhook path: the request headers and raw body in, the response status out.
pub type WebhookHandler = Arc<
    dyn Fn(hyper::HeaderMap, Bytes) -> std::pin::Pin<Box<dyn Future<Output = StatusCode> + Send>>
        + Send
        + Sync,
>;

/// Largest webhook body accepted (Telegram updates are far smaller).
const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// A `POST` route served beside `/health` and `/metrics` (the bot's Telegram webhook).
#[derive(Clone)]
pub struct Webhook {
    /// The request path, such as `/telegram`.
    pub path: String,
    /// What answers it.
    pub handler: WebhookHandler,
}

/// A running operations endpoint; [`OpsServer::stop`] ends it.
pub struct OpsServer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl OpsServer {
    /// Serves `/health` and `/metrics` on `listener` in the background.
    pub fn spawn(listener: TcpListener, metrics: Metrics, health: HealthCheck) -> Self {
        Self::spawn_with(listener, metrics, health, None)
    }

    /// Serves `/health`, `/metrics` and, when given, a webhook route on `listener` in the background.
    pub fn spawn_with(
        listener: TcpListener,
        metrics: Metrics,
        health: HealthCheck,
        webhook: Option<Webhook>,
    ) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve_ops(listener, metrics, health, webhook, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }));
        Self { stop, task }
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Serves `/health` and `/metrics` on `listener` until `shutdown` resolves.
async fn serve_ops(
    listener: TcpListener,
    metrics: Metrics,
    health: HealthCheck,
    webhook: Option<Webhook>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let metrics = metrics.clone();
        let health = health.clone();
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let metrics = metrics.clone();
                let health = health.clone();
                let webhook = webhook.clone();
                async move {
                    Ok::<_, Infallible>(answer(request, &metrics, &health, webhook.as_ref()).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    metrics: &Metrics,
    health: &HealthCheck,
    webhook: Option<&Webhook>,
) -> Response<Full<Bytes>> {
    let reply = |status, content_type, body: Vec<u8>| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    let json = |status, value: serde_json::Value| {
        reply(status, "application/json", value.to_string().into_bytes())
    };
    if let Some(webhook) = webhook.filter(|w| request.uri().path() == w.path)
        && request.method() == Method::POST
    {
        use http_body_util::BodyExt as _;
        let (parts, body) = request.into_parts();
        let Ok(body) = http_body_util::Limited::new(body, MAX_WEBHOOK_BODY)
            .collect()
            .await
        else {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": "body too large or unreadable"}),
            );
        };
        let status = (webhook.handler)(parts.headers, body.to_bytes()).await;
        return json(status, serde_json::json!({}));
    }
    if request.method() != Method::GET {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": "only GET is served here"}),
        );
    }
    match request.uri().path() {
        "/health" => match health().await {
            Ok(body) => json(StatusCode::OK, body),
            Err(body) => json(StatusCode::SERVICE_UNAVAILABLE, body),
        },
        "/metrics" => reply(StatusCode::OK, METRICS_CONTENT_TYPE, metrics.render()),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not found"}),
        ),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
