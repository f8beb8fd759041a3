//! A customer's devices that receive push notifications (FCM registration tokens).
//!
//! A token belongs to one customer: registering a known token moves it to the caller (a phone that changed
//! hands). A customer keeps at most ten devices; registering another drops the oldest.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use cybervpn_db::{Device, DevicePlatform, Devices, Registration};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    auth::CustomerAuth,
    error::{ApiError, Problem},
    routes::audit,
    state::AppState,
};

/// Longest registration token accepted.
const MAX_TOKEN_CHARS: usize = 4096;

/// A device to register for push notifications.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterDeviceRequest {
    /// `android`, `ios` or `web`.
    #[schema(example = "android")]
    platform: String,
    /// The FCM registration token the app got from Firebase (1 to 4096 characters).
    token: String,
}

/// A registered device (its token is not echoed back).
#[derive(Serialize, ToSchema)]
pub(crate) struct DeviceView {
    id: Uuid,
    /// `android`, `ios` or `web`.
    #[schema(example = "android")]
    platform: &'static str,
    /// When the caller registered it.
    created_at: DateTime<Utc>,
}

impl From<&Device> for DeviceView {
    fn from(device: &Device) -> Self {
        Self {
            id: device.id,
            platform: device.platform.as_str(),
            created_at: device.created_at,
        }
    }
}

/// Registers a device for push notifications, or moves a known token to the caller.
#[utoipa::path(
    tag = "devices",
    security(("customer" = [])),
    request_body = RegisterDeviceRequest,
    responses(
        (status = 201, description = "A new device", body = DeviceView),
        (status = 200, description = "The token was known; the device is now the caller's", body = DeviceView),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The same new token was being registered at the same moment; retry", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown platform, or an empty or too long token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/devices")]
pub(crate) async fn register_device(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    request: web::Json<RegisterDeviceRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = request.into_inner();
    let platform = DevicePlatform::parse(&request.platform)
        .ok_or_else(|| ApiError::invalid_field("platform", "must be `android`, `ios` or `web`"))?;
    let token = request.token.trim();
    if token.is_empty() {
        return Err(ApiError::invalid_field("token", "must not be empty"));
    }
    if token.chars().count() > MAX_TOKEN_CHARS {
        return Err(ApiError::invalid_field(
            "token",
            format!("must be at most {MAX_TOKEN_CHARS} characters"),
        ));
    }
    let txn = audit::begin(&state.db).await?;
    let (device, registration) = Devices::on(&txn)
        .register(auth.id, platform, token, Utc::now())
        .await?;
    audit::commit(txn).await?;
    let view = DeviceView::from(&device);
    Ok(match registration {
        Registration::Created => HttpResponse::Created().json(view),
        Registration::Updated => HttpResponse::Ok().json(view),
    })
}

/// The caller's devices, oldest first.
#[utoipa::path(
    tag = "devices",
    security(("customer" = [])),
    responses(
        (status = 200, description = "The caller's devices", body = [DeviceView]),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/devices")]
pub(crate) async fn list_devices(
    state: web::Data<AppState>,
    auth: CustomerAuth,
) -> Result<web::Json<Vec<DeviceView>>, ApiError> {
    let devices = state.db.devices().for_customer(auth.id).await?;
    Ok(web::Json(devices.iter().map(DeviceView::from).collect()))
}

/// Unregisters one of the caller's devices: it gets no more push notifications.
#[utoipa::path(
    tag = "devices",
    params(("id" = Uuid, Path, description = "Device id")),
    security(("customer" = [])),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 401, description = "Missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The caller has no such device", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/devices/{id}")]
pub(crate) async fn delete_device(
    state: web::Data<AppState>,
    auth: CustomerAuth,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    if !state.db.devices().delete_own(auth.id, *id).await? {
        return Err(ApiError::from(cybervpn_domain::DomainError::NotFound {
            entity: "device",
        }));
    }
    Ok(HttpResponse::NoContent().finish())
}
