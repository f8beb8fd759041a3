//! Node and internal squad operations.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{InternalSquad, Node, Panel, PanelError, client::Call};

impl Panel {
    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<Node>, PanelError> {
        self.fetch(Call::get("nodes.list", "/nodes".to_owned()))
            .await
    }

    /// The node with this uuid, or `None` when the panel answers 404.
    pub async fn node(&self, uuid: Uuid) -> Result<Option<Node>, PanelError> {
        match self
            .fetch(Call::get("nodes.get", format!("/nodes/{uuid}")))
            .await
        {
            Ok(node) => Ok(Some(node)),
            Err(err) if err.status() == Some(404) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Asks the panel to restart the node's Xray (`force` even when the config did not change).
    /// Accepted asynchronously (202); never retried.
    pub async fn restart_node(&self, uuid: Uuid, force: bool) -> Result<(), PanelError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Restart {
            force_restart: bool,
        }
        let call =
            Call::post("nodes.restart", format!("/nodes/{uuid}/actions/restart")).json(&Restart {
                force_restart: force,
            });
        self.send(call).await
    }

    /// Enables the node; returns it as the panel now sees it.
    pub async fn enable_node(&self, uuid: Uuid) -> Result<Node, PanelError> {
        let path = format!("/nodes/{uuid}/actions/enable");
        self.fetch(Call::post("nodes.enable", path).repeatable())
            .await
    }

    /// Disables the node; returns it as the panel now sees it.
    pub async fn disable_node(&self, uuid: Uuid) -> Result<Node, PanelError> {
        let path = format!("/nodes/{uuid}/actions/disable");
        self.fetch(Call::post("nodes.disable", path).repeatable())
            .await
    }

    /// Every internal squad.
    pub async fn internal_squads(&self) -> Result<Vec<InternalSquad>, PanelError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Squads {
            internal_squads: Vec<InternalSquad>,
        }
        let squads: Squads = self
            .fetch(Call::get(
                "internal_squads.list",
                "/internal-squads".to_owned(),
            ))
            .await?;
        Ok(squads.internal_squads)
    }

    /// Maps configured squad names (or uuids) to the panel's uuids, in order; an unknown entry is an
    /// error naming it, so a typo fails at startup instead of creating users without inbounds.
    pub async fn resolve_squads<S: AsRef<str>>(
        &self,
        names: &[S],
    ) -> Result<Vec<Uuid>, PanelError> {
        let squads = self.internal_squads().await?;
        names
            .iter()
            .map(|name| {
                let name = name.as_ref().trim();
                let by_uuid = Uuid::parse_str(name).ok();
                squads
                    .iter()
                    .find(|squad| squad.name == name || Some(squad.uuid) == by_uuid)
                    .map(|squad| squad.uuid)
                    .ok_or_else(|| PanelError::Invalid {
                        operation: "internal_squads.resolve",
                        reason: format!("unknown internal squad `{name}`"),
                    })
            })
            .collect()
    }
}
