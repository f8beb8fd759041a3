//! Panel-wide operations: statistics, version, health, public subscription info.

use crate::{
    Bandwidth, Metadata, Panel, PanelError, SubscriptionInfo, SystemStats,
    client::{Call, segment},
};

/// Oldest panel major version this client speaks (3.0 broke every user route of 2.x).
const MIN_MAJOR: u64 = 3;

impl Panel {
    /// Host, user, online and node statistics.
    pub async fn system_stats(&self) -> Result<SystemStats, PanelError> {
        self.fetch(Call::get("system.stats", "/system/stats".to_owned()))
            .await
    }

    /// Traffic per period compared with the period before.
    pub async fn bandwidth(&self) -> Result<Bandwidth, PanelError> {
        let call = Call::get("system.bandwidth", "/system/stats/bandwidth".to_owned());
        self.fetch(call).await
    }

    /// The panel's version.
    pub async fn metadata(&self) -> Result<Metadata, PanelError> {
        self.fetch(Call::get("system.metadata", "/system/metadata".to_owned()))
            .await
    }

    /// Fetches the version and refuses panels older than 3.0 (or with an unreadable version).
    pub async fn check_version(&self) -> Result<Metadata, PanelError> {
        let metadata = self.metadata().await?;
        match metadata.major() {
            Some(major) if major >= MIN_MAJOR => Ok(metadata),
            _ => Err(PanelError::UnsupportedVersion {
                version: metadata.version,
            }),
        }
    }

    /// Succeeds when the panel answers its health check.
    pub async fn health(&self) -> Result<(), PanelError> {
        self.send(Call::get("system.health", "/system/health".to_owned()))
            .await
    }

    /// What a customer's subscription serves (links, Outline links, URL), or `None` when the panel
    /// does not know the short uuid.
    pub async fn subscription_info(
        &self,
        short_uuid: &str,
    ) -> Result<Option<SubscriptionInfo>, PanelError> {
        let path = format!("/sub/{}/info", segment(short_uuid));
        match self
            .fetch::<SubscriptionInfo>(Call::get("subscriptions.info", path))
            .await
        {
            Ok(info) if info.is_found => Ok(Some(info)),
            Ok(_) => Ok(None),
            Err(err) if err.status() == Some(404) => Ok(None),
            Err(err) => Err(err),
        }
    }
}
