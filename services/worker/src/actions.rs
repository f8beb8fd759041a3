//! One-off panel actions (reset traffic, revoke the subscription link), done once per request.

use std::time::Duration;

use chrono::Utc;
use cybervpn_domain::{PanelIdentity, SubscriptionId, TrafficBytes};
use cybervpn_jobs::{
    JobError, JobResultExt,
    catalog::{PanelAction, PanelUserAction},
};

use crate::{Services, provision::provision};

/// How long a finished request id is remembered against redelivery.
const DONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Runs the action unless this request already ran.
pub(crate) async fn run(services: &Services, job: &PanelUserAction) -> Result<(), JobError> {
    let done_key = format!("panel-action:{}", job.request_id);
    if services
        .store
        .time_to_live(&done_key)
        .await
        .or_retry("check action request")?
        .is_some()
    {
        return Ok(());
    }
    let id = SubscriptionId::from_uuid(job.subscription_id);
    let mut subscription = services
        .db
        .subscriptions()
        .get(id)
        .await
        .or_permanent("load subscription")?;
    if subscription.panel.is_none() {
        // Not on the panel yet: put it there first, then act.
        provision(services, id).await?;
        subscription = services
            .db
            .subscriptions()
            .get(id)
            .await
            .or_retry("reload subscription")?;
    }
    let Some(identity) = subscription.panel.clone() else {
        return Err(JobError::permanent(
            "panel action",
            "the subscription has no panel user (it is not live)",
        ));
    };
    let panel = services.panel()?;
    let now = Utc::now();
    match job.action {
        PanelAction::ResetTraffic => {
            panel
                .reset_traffic(identity.user_id)
                .await
                .or_retry("remnawave reset traffic")?;
            services
                .db
                .subscriptions()
                .set_traffic_used(identity.user_id, TrafficBytes::ZERO)
                .await
                .or_retry("store traffic")?;
        }
        PanelAction::RevokeSubscription => {
            let user = panel
                .revoke(identity.user_id)
                .await
                .or_retry("remnawave revoke subscription")?;
            let identity = PanelIdentity {
                user_id: user.id,
                short_uuid: user.short_uuid,
                subscription_url: user.subscription_url,
            };
            services
                .db
                .subscriptions()
                .set_panel(id, Some(&identity), now)
                .await
                .or_retry("store new subscription link")?;
        }
    }
    services
        .store
        .claim(&done_key, DONE_TTL)
        .await
        .or_retry("record action request")?;
    Ok(())
}
