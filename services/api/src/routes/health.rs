//! Liveness, readiness and metrics.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{error::ApiError, state::AppState};

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` while the process serves requests.
    status: &'static str,
}

/// Readiness answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready`.
    status: &'static str,
    /// `ok` for the database.
    database: &'static str,
    /// `ok`, or `not_configured` when the deployment runs without Redis.
    redis: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive", body = Health)))]
#[get("/health")]
pub(crate) async fn health() -> web::Json<Health> {
    web::Json(Health { status: "ok" })
}

/// Readiness: the database, and Redis when configured, answer.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Readiness),
        (status = 503, description = "A dependency is down", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/ready")]
pub(crate) async fn ready(state: web::Data<AppState>) -> Result<web::Json<Readiness>, ApiError> {
    match tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(ApiError::unavailable("database: unavailable", err)),
        Err(elapsed) => return Err(ApiError::unavailable("database: timed out", elapsed)),
    }
    let redis = match &state.kv {
        None => "not_configured",
        Some(kv) => match tokio::time::timeout(PROBE_TIMEOUT, kv.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(err)) => return Err(ApiError::unavailable("redis: unavailable", err)),
            Err(elapsed) => return Err(ApiError::unavailable("redis: timed out", elapsed)),
        },
    };
    Ok(web::Json(Readiness {
        status: "ready",
        database: "ok",
        redis,
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
#[get("/metrics")]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.business.refresh(&state.db).await;
    HttpResponse::Ok()
        .content_type(cybervpn_telemetry::METRICS_CONTENT_TYPE)
        .body(state.metrics.render())
}
