//! Push delivery of customer notices: one FCM message per device of the customer, each sent once.

use std::time::Duration;

use cybervpn_db::Audience;
use cybervpn_jobs::{JobError, JobResultExt as _, catalog::PushNotification};
use cybervpn_push::{PushError, PushMessage};

use crate::Services;

/// How long a "pushed to this device" marker is kept: far longer than a job's retries last.
const DONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Sends the notification to each of the customer's devices that has not had it yet; forgets devices whose
/// token FCM no longer knows. Nothing to do without push configured, a customer audience, or devices.
pub(crate) async fn push(services: &Services, job: &PushNotification) -> Result<(), JobError> {
    let Some(fcm) = &services.fcm else {
        return Ok(());
    };
    let Some(notification) = services
        .db
        .notifications()
        .get(job.notification_id)
        .await
        .or_retry("load notification")?
    else {
        return Ok(());
    };
    let Audience::Customer(customer) = notification.audience else {
        return Ok(());
    };
    let devices = services
        .db
        .devices()
        .for_customer(customer)
        .await
        .or_retry("load devices")?;
    let mut failure = None;
    for device in devices {
        let done = format!("push:{}:{}", notification.id, device.id);
        // Claimed before sending, so a redelivered or concurrent job does not push twice; released on a
        // failure worth retrying.
        if !services
            .store
            .claim(&done, DONE_TTL)
            .await
            .or_retry("claim push")?
        {
            continue;
        }
        let sent = fcm
            .send(&PushMessage {
                token: &device.token,
                body: &notification.body,
                kind: &notification.kind,
            })
            .await;
        match sent {
            Ok(()) => {}
            Err(PushError::InvalidToken(reason)) => {
                tracing::info!(device = %device.id, %reason, "push token gone, device removed");
                services
                    .db
                    .devices()
                    .delete(device.id)
                    .await
                    .or_retry("delete device")?;
            }
            Err(err) => {
                services
                    .store
                    .delete(&done)
                    .await
                    .or_retry("release push claim")?;
                tracing::warn!(device = %device.id, error = %err, "push failed");
                failure = Some(match err {
                    PushError::Transient(_) => JobError::retry("fcm send", err),
                    _ => failure
                        .filter(|f: &JobError| matches!(f, JobError::Retry(_)))
                        .unwrap_or_else(|| JobError::permanent("fcm send", err)),
                });
            }
        }
    }
    failure.map_or(Ok(()), Err)
}
