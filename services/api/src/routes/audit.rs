//! The audit log of staff mutations: the listing route, and what every mutating admin route uses to record
//! itself in the same transaction as the change.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, get, web};
use chrono::{DateTime, Utc};
use cybervpn_db::{Audit, AuditEntry, DatabaseTransaction, Db, DbError, TransactionTrait};
use cybervpn_domain::StaffAccount;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::{Authorized, perm},
    error::{ApiError, Problem},
    middleware::RequestId,
    state::AppState,
};

/// Page size when the client names none.
pub(crate) const DEFAULT_PAGE: u64 = 50;
/// Largest page a client may ask for.
pub(crate) const MAX_PAGE: u64 = 100;

/// The id of the request making a change, as the audit log records it.
pub(crate) struct RequestTag(Option<String>);

impl RequestTag {
    /// A tag for a change made through gRPC (no HTTP request id): `grpc-<uuid>`.
    pub(crate) fn grpc() -> Self {
        Self(Some(format!("grpc-{}", uuid::Uuid::now_v7().simple())))
    }

    /// The request id, if the request had one.
    pub(crate) fn id(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl FromRequest for RequestTag {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(
            req.extensions().get::<RequestId>().map(|id| id.0.clone()),
        )))
    }
}

/// One change, as the audit log describes it.
pub(crate) struct Change {
    /// What was done, `<target kind>.<verb>`: `customer.ban`, `plan.update`.
    pub(crate) action: &'static str,
    /// Kind of the thing changed: `customer`, `staff`, `plan`.
    pub(crate) target_kind: &'static str,
    /// Its id.
    pub(crate) target_id: uuid::Uuid,
    /// Its state before, as far as the log may keep it (never secrets or personal data).
    pub(crate) before: Option<serde_json::Value>,
    /// Its state after.
    pub(crate) after: Option<serde_json::Value>,
}

/// Starts the transaction a mutation and its audit entry share.
pub(crate) async fn begin(db: &Db) -> Result<DatabaseTransaction, ApiError> {
    Ok(db.conn().begin().await.map_err(DbError::from)?)
}

/// Commits the mutation together with its audit entry.
pub(crate) async fn commit(txn: DatabaseTransaction) -> Result<(), ApiError> {
    Ok(txn.commit().await.map_err(DbError::from)?)
}

/// Records `change`, made by `staff` in request `request`, inside `txn`.
pub(crate) async fn record(
    txn: &DatabaseTransaction,
    staff: &StaffAccount,
    request: &RequestTag,
    change: Change,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    Audit::on(txn)
        .record(AuditEntry {
            id: uuid::Uuid::now_v7(),
            staff_id: staff.id,
            action: change.action.to_owned(),
            target_kind: change.target_kind.to_owned(),
            target_id: change.target_id.to_string(),
            before: change.before,
            after: change.after,
            request_id: request.0.clone(),
            created_at: now,
        })
        .await?;
    Ok(())
}

/// A snapshot for the audit log.
pub(crate) fn snapshot(value: &impl Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

/// Reads `limit`: 1 to [`MAX_PAGE`], [`DEFAULT_PAGE`] when absent.
pub(crate) fn page_size(limit: Option<&str>) -> Result<u64, ApiError> {
    let Some(limit) = limit else {
        return Ok(DEFAULT_PAGE);
    };
    limit
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| {
            ApiError::invalid_field(
                "limit",
                format!("must be a whole number from 1 to {MAX_PAGE}"),
            )
        })
}

/// Reads a cursor: the id of the last item of the previous page.
pub(crate) fn cursor(
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<uuid::Uuid>, ApiError> {
    value
        .map(|value| {
            uuid::Uuid::try_parse(value).map_err(|_| {
                ApiError::invalid_field(field, "must be the `next_cursor` of a previous page")
            })
        })
        .transpose()
}

/// Cuts `rows`, fetched with one row more than `limit`, to a page, and names the next page's cursor (the
/// page's last id) when that extra row shows one follows.
pub(crate) fn paginate<T>(
    mut rows: Vec<T>,
    limit: u64,
    id: impl Fn(&T) -> uuid::Uuid,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let next = rows.last().map(|row| id(row).simple().to_string());
    (rows, next)
}

/// Which page of the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Entries per page, 1–100 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    before: Option<String>,
}

/// One recorded staff mutation.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditEntryView {
    /// Entry id (time-ordered).
    id: uuid::Uuid,
    /// The staff member who acted.
    staff_id: uuid::Uuid,
    /// What they did, e.g. `customer.ban`, `staff.update`, `plan.create`.
    #[schema(example = "customer.ban")]
    action: String,
    /// Kind of the thing acted on: `customer`, `staff` or `plan`.
    target_kind: String,
    /// Its id.
    target_id: String,
    /// Its state before the change.
    before: Option<serde_json::Value>,
    /// Its state after the change.
    after: Option<serde_json::Value>,
    /// `X-Request-ID` of the request that made the change.
    request_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            staff_id: e.staff_id.as_uuid(),
            action: e.action,
            target_kind: e.target_kind,
            target_id: e.target_id,
            before: e.before,
            after: e.after,
            request_id: e.request_id,
            created_at: e.created_at,
        }
    }
}

/// One page of the audit log.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Newest first.
    items: Vec<AuditEntryView>,
    /// Pass as `before` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Lists staff mutations, newest first.
#[utoipa::path(
    tag = "admin",
    params(AuditQuery),
    security(("staff" = ["view_audit_log"])),
    responses(
        (status = 200, description = "One page of entries", body = AuditPage),
        (status = 401, description = "Missing or invalid staff token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Lacks `view_audit_log`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad `limit` or `before`", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/admin/audit-log")]
pub(crate) async fn list_audit_log(
    Authorized(_staff, query): Authorized<perm::ViewAuditLog, web::Query<AuditQuery>>,
    state: web::Data<AppState>,
) -> Result<web::Json<AuditPage>, ApiError> {
    let limit = page_size(query.limit.as_deref())?;
    let before = cursor("before", query.before.as_deref())?;
    let entries = state.db.audit().list(before, limit + 1).await?;
    let (entries, next_cursor) = paginate(entries, limit, |e| e.id);
    Ok(web::Json(AuditPage {
        items: entries.into_iter().map(AuditEntryView::from).collect(),
        next_cursor,
    }))
}
