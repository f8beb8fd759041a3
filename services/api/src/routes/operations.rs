//! Servers, monitoring, subscription quick actions and dead jobs: the operations side of the admin API.
//!
//! Quick actions change our state and write the panel job to the outbox in the same transaction; the worker
//! carries them to the panel.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, SubsecRound, Utc};
use cybervpn_db::{ServerRecord, Subscriptions};
use cybervpn_domain::{
    CustomerId, ErrorCode, ServerId, Subscription, SubscriptionStatus, TrafficLimit,
};
use cybervpn_jobs::{
    DeadJob,
    catalog::{PanelAction, PanelUserAction},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, Staff, perm},
    error::{ApiError, Problem},
    routes::audit::{self, Change, RequestTag},
    state::AppState,
};

/// Path and body of the extend route.
type ExtendParts = (web::Path<uuid::Uuid>, web::Json<ExtendRequest>);

/// A server as staff see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct ServerView {
    id: uuid::Uuid,
    /// The panel's node uuid.
    panel_uuid: Option<String>,
    name: String,
    address: String,
    port: i32,
    /// ISO 3166-1 alpha-2, `XX` when unknown.
    country_code: String,
    /// `online`, `offline`, `warning` or `maintenance`.
    status: &'static str,
    is_connected: bool,
    is_disabled: bool,
    users_online: i32,
    traffic_used_bytes: i64,
    /// Centre of the country, for the globe.
    latitude: Option<f64>,
    longitude: Option<f64>,
    status_message: Option<String>,
    last_status_change: Option<DateTime<Utc>>,
    /// When the panel was last asked about it.
    synced_at: Option<DateTime<Utc>>,
}

impl From<ServerRecord> for ServerView {
    fn from(s: ServerRecord) -> Self {
        Self {
            id: s.id.as_uuid(),
            panel_uuid: s.panel_uuid,
            name: s.name,
            address: s.address,
            port: s.port,
            country_code: s.country_code,
            status: s.status.as_str(),
            is_connected: s.is_connected,
            is_disabled: s.is_disabled,
            users_online: s.users_online,
            traffic_used_bytes: s.traffic_used_bytes,
            latitude: s.latitude,
            longitude: s.longitude,
            status_message: s.status_message,
            last_status_change: s.last_status_change,
            synced_at: s.synced_at,
        }
    }
}

/// Lists every server (panel node) as last synchronised.
#[utoipa::path(
    tag = "operations",
    security(("staff" = ["view_servers"])),
    responses(
        (status = 200, description = "Servers by name", body = [ServerView]),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/servers")]
pub(crate) async fn list_servers(
    _staff: Staff<perm::ViewServers>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ServerView>>, ApiError> {
    let servers = state.db.servers().list().await?;
    Ok(web::Json(
        servers.into_iter().map(ServerView::from).collect(),
    ))
}

/// One server.
#[utoipa::path(
    tag = "operations",
    params(("id" = uuid::Uuid, Path, description = "Server id")),
    security(("staff" = ["view_servers"])),
    responses(
        (status = 200, description = "The server", body = ServerView),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/servers/{id}")]
pub(crate) async fn get_server(
    Authorized(_staff, id): Authorized<perm::ViewServers, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
) -> Result<web::Json<ServerView>, ApiError> {
    let server = state.db.servers().get(ServerId::from_uuid(*id)).await?;
    Ok(web::Json(server.into()))
}

/// A server's load figures.
#[derive(Serialize, ToSchema)]
pub(crate) struct ServerStats {
    id: uuid::Uuid,
    status: &'static str,
    users_online: i32,
    traffic_used_bytes: i64,
    /// Share of all users online that are on this server, 0 to 1.
    online_share: f64,
    synced_at: Option<DateTime<Utc>>,
}

/// A server's load: users online, traffic, and its share of everyone online.
#[utoipa::path(
    tag = "operations",
    params(("id" = uuid::Uuid, Path, description = "Server id")),
    security(("staff" = ["view_servers"])),
    responses(
        (status = 200, description = "Load figures", body = ServerStats),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such server", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/servers/{id}/stats")]
pub(crate) async fn server_stats(
    Authorized(_staff, id): Authorized<perm::ViewServers, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
) -> Result<web::Json<ServerStats>, ApiError> {
    let servers = state.db.servers().list().await?;
    let total: i64 = servers.iter().map(|s| i64::from(s.users_online)).sum();
    let server = servers
        .into_iter()
        .find(|s| s.id.as_uuid() == *id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such server"))?;
    Ok(web::Json(ServerStats {
        id: server.id.as_uuid(),
        status: server.status.as_str(),
        users_online: server.users_online,
        traffic_used_bytes: server.traffic_used_bytes,
        online_share: if total == 0 {
            0.0
        } else {
            f64::from(server.users_online) / total as f64
        },
        synced_at: server.synced_at,
    }))
}

/// A periodically collected figure and when it was collected (`null` before the first collection).
#[derive(Serialize, ToSchema)]
pub(crate) struct Collected {
    #[schema(value_type = Object)]
    data: Option<serde_json::Value>,
    collected_at: Option<DateTime<Utc>>,
}

async fn collected(state: &AppState, name: &str) -> Result<Collected, ApiError> {
    let snapshot = state.db.snapshots().get::<serde_json::Value>(name).await?;
    Ok(Collected {
        collected_at: snapshot.as_ref().map(|(_, at)| *at),
        data: snapshot.map(|(data, _)| data),
    })
}

/// Health of our services and of the panel.
#[derive(Serialize, ToSchema)]
pub(crate) struct MonitoringHealth {
    /// `ok` when every dependency answers, else `degraded`.
    status: &'static str,
    database: bool,
    /// `null` when this deployment runs without Redis (standalone).
    redis: Option<bool>,
    /// Outbox rows not yet relayed to the queue.
    outbox_pending: Option<u64>,
    /// Jobs waiting, per job type.
    #[schema(value_type = Object)]
    queue_depth: std::collections::BTreeMap<&'static str, u64>,
    /// Dead jobs waiting for a re-drive.
    dead_jobs: Option<usize>,
    /// The panel's health at the last check.
    panel: Collected,
}

/// Health of the database, Redis, the outbox and queue, and the panel (as last checked by the worker).
#[utoipa::path(
    tag = "operations",
    security(("staff" = ["view_servers"])),
    responses(
        (status = 200, description = "Health figures", body = MonitoringHealth),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/monitoring/health")]
pub(crate) async fn monitoring_health(
    _staff: Staff<perm::ViewServers>,
    state: web::Data<AppState>,
) -> Result<web::Json<MonitoringHealth>, ApiError> {
    let database = state.db.ping().await.is_ok();
    let redis = match &state.kv {
        Some(kv) => Some(kv.ping().await.is_ok()),
        None => None,
    };
    let outbox_pending = state.db.outbox().pending_count().await.ok();
    let mut queue_depth = std::collections::BTreeMap::new();
    let mut dead_jobs = None;
    if let Some(queue) = &state.queue {
        for name in cybervpn_jobs::catalog::NAMES {
            if let Ok(depth) = queue.depth(name).await {
                queue_depth.insert(*name, depth);
            }
        }
        dead_jobs = queue.dead(1000).await.ok().map(|dead| dead.len());
    }
    let panel = collected(&state, "panel_health").await?;
    let panel_ok = panel
        .data
        .as_ref()
        .and_then(|d| d.get("healthy"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let ok = database && redis != Some(false) && panel_ok;
    Ok(web::Json(MonitoringHealth {
        status: if ok { "ok" } else { "degraded" },
        database,
        redis,
        outbox_pending,
        queue_depth,
        dead_jobs,
        panel,
    }))
}

/// The panel's bandwidth figures (bytes) for the last two, seven and thirty days, month and year.
#[utoipa::path(
    tag = "operations",
    security(("staff" = ["view_servers"])),
    responses(
        (status = 200, description = "Bandwidth as last collected", body = Collected),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/monitoring/bandwidth")]
pub(crate) async fn monitoring_bandwidth(
    _staff: Staff<perm::ViewServers>,
    state: web::Data<AppState>,
) -> Result<web::Json<Collected>, ApiError> {
    Ok(web::Json(collected(&state, "bandwidth").await?))
}

/// Platform statistics.
#[derive(Serialize, ToSchema)]
pub(crate) struct MonitoringStats {
    servers_total: usize,
    servers_online: usize,
    users_online: i64,
    /// The panel's own counters as last collected.
    panel: Collected,
    /// The last reconciliation with the panel.
    reconcile: Collected,
}

/// Servers online, users online, the panel's counters and the last reconciliation's findings.
#[utoipa::path(
    tag = "operations",
    security(("staff" = ["view_servers"])),
    responses(
        (status = 200, description = "Statistics", body = MonitoringStats),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_servers`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/monitoring/stats")]
pub(crate) async fn monitoring_stats(
    _staff: Staff<perm::ViewServers>,
    state: web::Data<AppState>,
) -> Result<web::Json<MonitoringStats>, ApiError> {
    let servers = state.db.servers().list().await?;
    Ok(web::Json(MonitoringStats {
        servers_total: servers.len(),
        servers_online: servers
            .iter()
            .filter(|s| s.is_connected && !s.is_disabled)
            .count(),
        users_online: servers.iter().map(|s| i64::from(s.users_online)).sum(),
        panel: collected(&state, "panel_stats").await?,
        reconcile: collected(&state, "reconcile").await?,
    }))
}

/// Days to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExtendRequest {
    /// 1 to 3650.
    days: u32,
}

/// A subscription as staff see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct SubscriptionView {
    id: uuid::Uuid,
    customer_id: uuid::Uuid,
    plan_id: Option<uuid::Uuid>,
    /// `active`, `expired`, `disabled` or `limited`.
    status: &'static str,
    expires_at: DateTime<Utc>,
    traffic_used_bytes: u64,
    /// `null` is unlimited.
    traffic_limit_bytes: Option<u64>,
    /// The panel user, once provisioned.
    panel_user_id: Option<i64>,
    subscription_url: Option<String>,
}

impl SubscriptionView {
    /// When the subscription ends.
    pub(crate) const fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl From<&Subscription> for SubscriptionView {
    fn from(s: &Subscription) -> Self {
        Self {
            id: s.id.as_uuid(),
            customer_id: s.customer_id.as_uuid(),
            plan_id: s.plan_id.map(|p| p.as_uuid()),
            status: s.status.as_str(),
            expires_at: s.expires_at,
            traffic_used_bytes: s.traffic_used.bytes(),
            traffic_limit_bytes: s.traffic_limit.as_optional_bytes(),
            panel_user_id: s.panel.as_ref().map(|p| p.user_id),
            subscription_url: s.panel.as_ref().map(|p| p.subscription_url.clone()),
        }
    }
}

/// Adds days to the customer's current subscription (time left is kept), or starts one of that many days
/// when they have none; the panel follows through the outbox.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    request_body = ExtendRequest,
    security(("staff" = ["manage_subscriptions"])),
    responses(
        (status = 200, description = "The subscription after the extension", body = SubscriptionView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_subscriptions`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The subscription is disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Days out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users/{id}/extend")]
pub(crate) async fn extend_subscription(
    Authorized(staff, parts): Authorized<perm::ManageSubscriptions, ExtendParts>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<web::Json<SubscriptionView>, ApiError> {
    let (id, body) = parts;
    let view = extend(
        &state,
        &staff.account,
        &request,
        CustomerId::from_uuid(*id),
        body.days,
    )
    .await?;
    Ok(web::Json(view))
}

/// Adds `days` to the customer's current subscription (or starts one), audited and provisioned in one
/// transaction: the HTTP route and the bot's admin panel.
pub(crate) async fn extend(
    state: &AppState,
    staff: &cybervpn_domain::StaffAccount,
    request: &RequestTag,
    customer: CustomerId,
    days: u32,
) -> Result<SubscriptionView, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    // Locks the customer: two extensions of one customer queue up instead of racing.
    cybervpn_db::Customers::on(&txn).lock(customer).await?;
    let repo = Subscriptions::on(&txn);
    let (subscription, before) = match repo.current_for(customer).await? {
        Some(current) => {
            let mut subscription = repo.lock(current.id).await?;
            let before = audit::snapshot(&SubscriptionView::from(&subscription))?;
            subscription.extend_by(days, now)?;
            repo.save(&subscription).await?;
            (subscription, Some(before))
        }
        None => {
            let subscription =
                Subscription::start(customer, None, days, TrafficLimit::Unlimited, None, now)?;
            repo.create(&subscription).await?;
            (subscription, None)
        }
    };
    outbox_provision(&txn, &subscription, now).await?;
    let view = SubscriptionView::from(&subscription);
    let change = Change {
        action: "subscription.extend",
        target_kind: "customer",
        target_id: customer.as_uuid(),
        before,
        after: Some(serde_json::json!({ "days": days, "subscription": audit::snapshot(&view)? })),
    };
    audit::record(&txn, staff, request, change, now).await?;
    audit::commit(txn).await?;
    Ok(view)
}

/// Writes a provisioning job for `subscription` to the outbox of `txn`.
pub(crate) async fn outbox_provision(
    txn: &cybervpn_db::DatabaseTransaction,
    subscription: &Subscription,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    Ok(cybervpn_commerce::grant::provision(txn, subscription, now).await?)
}

/// A panel action accepted for the worker.
#[derive(Serialize, ToSchema)]
pub(crate) struct ActionAccepted {
    /// Identifies the action; a redelivered job with it does not act twice.
    request_id: uuid::Uuid,
    subscription_id: uuid::Uuid,
}

impl ActionAccepted {
    /// Identifies the queued action.
    pub(crate) const fn request_id(&self) -> uuid::Uuid {
        self.request_id
    }
}

async fn panel_action(
    state: &AppState,
    staff: &cybervpn_domain::StaffAccount,
    request: &RequestTag,
    customer: CustomerId,
    action: PanelAction,
) -> Result<HttpResponse, ApiError> {
    let accepted = queue_panel_action(state, staff, request, customer, action).await?;
    Ok(HttpResponse::Accepted().json(accepted))
}

/// Queues a panel action on the customer's subscription through the outbox, audited in the same transaction:
/// the HTTP routes and the bot's admin panel.
pub(crate) async fn queue_panel_action(
    state: &AppState,
    staff: &cybervpn_domain::StaffAccount,
    request: &RequestTag,
    customer: CustomerId,
    action: PanelAction,
) -> Result<ActionAccepted, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let subscription = Subscriptions::on(&txn)
        .current_for(customer)
        .await?
        .filter(|s| s.status != SubscriptionStatus::Disabled)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "the customer has no subscription to act on",
            )
        })?;
    // Customers::get refuses deleted customers.
    cybervpn_db::Customers::on(&txn).get(customer).await?;
    let job = PanelUserAction {
        subscription_id: subscription.id.as_uuid(),
        action,
        request_id: uuid::Uuid::now_v7(),
    };
    cybervpn_jobs::outbox::enqueue(&txn, &job, now).await?;
    let action_name = match action {
        PanelAction::ResetTraffic => "subscription.reset_traffic",
        PanelAction::RevokeSubscription => "subscription.revoke",
    };
    let change = Change {
        action: action_name,
        target_kind: "customer",
        target_id: customer.as_uuid(),
        before: None,
        after: Some(serde_json::json!({
            "subscription_id": job.subscription_id,
            "request_id": job.request_id,
        })),
    };
    audit::record(&txn, staff, request, change, now).await?;
    audit::commit(txn).await?;
    Ok(ActionAccepted {
        request_id: job.request_id,
        subscription_id: job.subscription_id,
    })
}

/// Zeroes the traffic used by the customer's subscription, on the panel and here.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    security(("staff" = ["manage_subscriptions"])),
    responses(
        (status = 202, description = "Queued for the panel", body = ActionAccepted),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_subscriptions`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or no subscription", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users/{id}/reset-traffic")]
pub(crate) async fn reset_traffic(
    Authorized(staff, id): Authorized<perm::ManageSubscriptions, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let customer = CustomerId::from_uuid(*id);
    panel_action(
        &state,
        &staff.account,
        &request,
        customer,
        PanelAction::ResetTraffic,
    )
    .await
}

/// Issues a new subscription link; the old one stops working.
#[utoipa::path(
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "Customer id")),
    security(("staff" = ["manage_subscriptions"])),
    responses(
        (status = 202, description = "Queued for the panel", body = ActionAccepted),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_subscriptions`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer, or no subscription", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/users/{id}/revoke-subscription")]
pub(crate) async fn revoke_subscription(
    Authorized(staff, id): Authorized<perm::ManageSubscriptions, web::Path<uuid::Uuid>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let customer = CustomerId::from_uuid(*id);
    panel_action(
        &state,
        &staff.account,
        &request,
        customer,
        PanelAction::RevokeSubscription,
    )
    .await
}

/// Page size of the dead-job list.
#[derive(Deserialize, IntoParams)]
pub(crate) struct DeadQuery {
    /// 1 to 500, default 100.
    limit: Option<usize>,
}

/// A job that failed for good.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeadJobView {
    id: String,
    /// Job name, e.g. `provision_subscription`.
    name: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    /// The last failure, naming the operation and the panel's error code.
    error: String,
    attempts: u32,
    failed_at: DateTime<Utc>,
}

impl From<DeadJob> for DeadJobView {
    fn from(job: DeadJob) -> Self {
        Self {
            id: job.id,
            name: job.name,
            payload: job.payload,
            error: job.error,
            attempts: job.attempts,
            failed_at: job.failed_at,
        }
    }
}

fn queue(state: &AppState) -> Result<&cybervpn_jobs::Queue, ApiError> {
    state.queue.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "this deployment has no job queue (set REDIS_URL)",
        )
    })
}

/// Dead jobs, newest first.
#[utoipa::path(
    tag = "operations",
    params(DeadQuery),
    security(("staff" = ["manage_jobs"])),
    responses(
        (status = 200, description = "Dead jobs", body = [DeadJobView]),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_jobs`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Limit out of range", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No job queue", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/jobs/dead")]
pub(crate) async fn list_dead_jobs(
    Authorized(_staff, query): Authorized<perm::ManageJobs, web::Query<DeadQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<DeadJobView>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "must be between 1 and 500",
        ));
    }
    let dead = queue(&state)?
        .dead(limit)
        .await
        .map_err(|err| ApiError::unavailable("the job queue is unavailable", err))?;
    Ok(web::Json(dead.into_iter().map(DeadJobView::from).collect()))
}

/// Puts a dead job back on its queue with fresh attempts.
#[utoipa::path(
    tag = "operations",
    params(("id" = String, Path, description = "Job id")),
    security(("staff" = ["manage_jobs"])),
    responses(
        (status = 204, description = "Re-queued"),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `manage_jobs`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead job", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No job queue", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/admin/jobs/dead/{id}/redrive")]
pub(crate) async fn redrive_dead_job(
    Authorized(staff, id): Authorized<perm::ManageJobs, web::Path<String>>,
    state: web::Data<AppState>,
    request: RequestTag,
) -> Result<HttpResponse, ApiError> {
    let redriven = queue(&state)?
        .redrive(&id)
        .await
        .map_err(|err| ApiError::unavailable("the job queue is unavailable", err))?;
    if !redriven {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no dead job with this id",
        ));
    }
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let change = Change {
        action: "job.redrive",
        target_kind: "job",
        target_id: uuid::Uuid::nil(),
        before: None,
        after: Some(serde_json::json!({ "job_id": *id })),
    };
    audit::record(&txn, &staff.account, &request, change, now).await?;
    audit::commit(txn).await?;
    Ok(HttpResponse::NoContent().finish())
}
