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

/// A running operations endpoint; [`OpsServer::stop`] ends it.
pub struct OpsServer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl OpsServer {
    /// Serves `/health` and `/metrics` on `listener` in the background.
    pub fn spawn(listener: TcpListener, metrics: Metrics, health: HealthCheck) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve_ops(listener, metrics, health, async move {
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
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let metrics = metrics.clone();
                let health = health.clone();
                async move { Ok::<_, Infallible>(answer(&request, &metrics, &health).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    health: &HealthCheck,
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
