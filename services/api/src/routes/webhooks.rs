//! `POST /api/v1/webhooks/remnawave`: the panel's signed events, applied idempotently.
//!
//! Webhooks only accelerate what reconciliation would find anyway: a lost delivery is harmless. Our subscription
//! stays the truth; panel-side changes to a user trigger provisioning back to it. A replayed delivery is refused:
//! its signed `timestamp` must be within [`WEBHOOK_WINDOW`] of our clock, and each signed body is applied once.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use cybervpn_db::Subscriptions;
use cybervpn_domain::{
    CustomerId, ErrorCode, PanelIdentity, Subscription, SubscriptionStatus, TrafficBytes,
};
use hmac::{KeyInit, Mac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{
    error::{ApiError, Problem},
    routes::{audit, operations::outbox_provision},
    state::AppState,
};

/// How far a webhook's signed timestamp may be from our clock: the panel's retries span about 15 s, the rest
/// allows for clock skew. A body seen within twice this is a duplicate.
const WEBHOOK_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// The envelope every panel webhook has.
#[derive(Deserialize)]
struct Event {
    event: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    data: serde_json::Value,
}

/// Receives a Remnawave webhook: `X-Remnawave-Signature` must be the hex HMAC-SHA256 of the raw body.
#[utoipa::path(
    tag = "webhooks",
    request_body(content = Object, description = "`{scope, event, timestamp, data, meta}` as the panel sends it"),
    responses(
        (status = 200, description = "Accepted (also for events we do not act on, and for a body already applied)"),
        (status = 400, description = "Not a webhook body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong signature, or a timestamp more than 5 minutes from now (a replay)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Webhooks are not configured", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/webhooks/remnawave")]
pub(crate) async fn remnawave_webhook(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Some(secret) = &state.config.remnawave.webhook_secret else {
        return Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "panel webhooks are not configured (REMNAWAVE_WEBHOOK_SECRET)",
        ));
    };
    let signature = request
        .headers()
        .get("x-remnawave-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !signature_matches(secret.expose().as_bytes(), &body, signature) {
        state
            .metrics
            .webhooks
            .with_label_values(&["remnawave", "bad_signature"])
            .inc();
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing or invalid X-Remnawave-Signature",
        ));
    }
    let event: Event = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("not a webhook body: {err}"),
        )
    })?;
    let count = |outcome: &str| {
        state
            .metrics
            .webhooks
            .with_label_values(&["remnawave", outcome])
            .inc();
    };
    if let Err(err) = fresh(event.timestamp.as_deref(), Utc::now()) {
        count("stale");
        return Err(err);
    }
    // The signature identifies the exact body: a second delivery of it is a replay or a duplicate.
    let seen = format!(
        "remnawave-webhook:{}",
        signature.trim().to_ascii_lowercase()
    );
    let window = (WEBHOOK_WINDOW * 2).to_std().unwrap_or_default();
    if !state.auth.store.claim(&seen, window).await? {
        count("duplicate");
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true, "duplicate": true })));
    }
    let handled = match event.event.split_once('.') {
        Some(("user", kind)) => user_event(&state, kind, &event).await,
        Some(("node", kind)) => node_event(&state, kind, &event).await,
        _ => Ok(false),
    };
    let handled = match handled {
        Ok(handled) => handled,
        Err(err) => {
            // Not applied: the panel's retry must be.
            let _ = state.auth.store.delete(&seen).await;
            return Err(err);
        }
    };
    if !handled {
        tracing::info!(event = %event.event, "panel webhook acknowledged without action");
    }
    count(if handled { "applied" } else { "ignored" });
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": true })))
}

/// Checks that a webhook's signed `timestamp` is within [`WEBHOOK_WINDOW`] of `now`.
fn fresh(timestamp: Option<&str>, now: DateTime<Utc>) -> Result<(), ApiError> {
    let sent = timestamp
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MalformedJson,
                "not a webhook body: missing or invalid timestamp",
            )
        })?;
    if (now - sent.with_timezone(&Utc)).abs() > WEBHOOK_WINDOW {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "webhook timestamp is more than 5 minutes from now (a replay, or the panel's clock is off)",
        ));
    }
    Ok(())
}

/// Constant-time check of a lowercase (or uppercase) hex HMAC-SHA256 of `body`.
fn signature_matches(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(given) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    given.len() == expected.len() && bool::from(expected.as_slice().ct_eq(&given))
}

/// Our subscription for the panel user in `data`: by panel id, else by the username we derive.
async fn subscription_of(
    state: &AppState,
    data: &serde_json::Value,
) -> Result<Option<Subscription>, ApiError> {
    let repo = state.db.subscriptions();
    if let Some(id) = data.get("id").and_then(serde_json::Value::as_i64)
        && let Some(subscription) = repo.by_panel_user(id).await?
    {
        return Ok(Some(subscription));
    }
    let customer = data
        .get("username")
        .and_then(serde_json::Value::as_str)
        .and_then(|name| name.strip_prefix("cv_"))
        .and_then(|hex| uuid::Uuid::try_parse(hex).ok());
    match customer {
        Some(customer) => Ok(repo.current_for(CustomerId::from_uuid(customer)).await?),
        None => Ok(None),
    }
}

async fn user_event(state: &AppState, kind: &str, event: &Event) -> Result<bool, ApiError> {
    let Some(subscription) = subscription_of(state, &event.data).await? else {
        return Ok(false);
    };
    let now = Utc::now().trunc_subsecs(6);
    let txn = audit::begin(&state.db).await?;
    let repo = Subscriptions::on(&txn);
    let mut current = repo.lock(subscription.id).await?;
    let handled = match kind {
        "revoked" => {
            let identity = identity_from(&event.data);
            if let Some(identity) = &identity {
                repo.set_panel(current.id, Some(identity), now).await?;
            }
            identity.is_some()
        }
        "limited" => {
            if current.status == SubscriptionStatus::Active {
                current.status = SubscriptionStatus::Limited;
                current.updated_at = now;
                repo.save(&current).await?;
            }
            true
        }
        "traffic_reset" => {
            current.traffic_used = TrafficBytes::ZERO;
            if current.status == SubscriptionStatus::Limited {
                current.status = SubscriptionStatus::Active;
            }
            current.updated_at = now;
            repo.save(&current).await?;
            outbox_provision(&txn, &current, now).await?;
            true
        }
        // Changed or removed on the panel side: bring the panel back to our subscription.
        "deleted" | "modified" | "disabled" | "enabled" | "expired" => {
            outbox_provision(&txn, &current, now).await?;
            true
        }
        _ => false,
    };
    audit::commit(txn).await?;
    if kind == "limited" && current.status == SubscriptionStatus::Limited {
        let key = format!(
            "limited:{}:{}",
            current.id.as_uuid(),
            event.timestamp.as_deref().unwrap_or_default()
        );
        let txn = audit::begin(&state.db).await?;
        cybervpn_jobs::outbox::notify_customer_in(
            &txn,
            &key,
            current.customer_id,
            cybervpn_domain::NoticeKind::TrafficLimited,
            &[],
            Utc::now(),
        )
        .await?;
        audit::commit(txn).await?;
    }
    Ok(handled)
}

fn identity_from(data: &serde_json::Value) -> Option<PanelIdentity> {
    Some(PanelIdentity {
        user_id: data.get("id")?.as_i64()?,
        short_uuid: data.get("shortUuid")?.as_str()?.to_owned(),
        subscription_url: data.get("subscriptionUrl")?.as_str()?.to_owned(),
    })
}

async fn node_event(state: &AppState, kind: &str, event: &Event) -> Result<bool, ApiError> {
    let Ok(node) = serde_json::from_value::<cybervpn_remnawave::Node>(event.data.clone()) else {
        return Ok(false);
    };
    if kind == "deleted" {
        return Ok(false);
    }
    let seen = format!("webhook:{}", event.timestamp.as_deref().unwrap_or_default());
    cybervpn_worker::record_node(&state.db, &state.auth.store, &node, &seen, Utc::now()).await?;
    Ok(true)
}
