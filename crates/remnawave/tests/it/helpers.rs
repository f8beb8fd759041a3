//! A fake panel per test and a client pointed at it.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use cybervpn_panel_fake::{Exchange, FakeOptions, PanelFake};
use cybervpn_remnawave::{CreateUser, Panel, PanelConfig, User};
use cybervpn_telemetry::Metrics;

/// The token every fake in these tests accepts.
pub(crate) const TOKEN: &str = "rw-test-token-3f9c1e";

/// A running fake panel with a client and the metrics registry the client records into.
pub(crate) struct TestPanel {
    pub(crate) fake: PanelFake,
    pub(crate) panel: Panel,
    pub(crate) metrics: Metrics,
}

impl TestPanel {
    /// A fake panel and a client with a 2 s timeout.
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A fake panel and a client whose configuration `adjust` may change.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut PanelConfig)) -> Self {
        let fake = PanelFake::start(
            "127.0.0.1:0".parse().unwrap(),
            FakeOptions {
                token: TOKEN.to_owned(),
                ..FakeOptions::default()
            },
        )
        .await
        .expect("fake panel starts");
        let mut config = PanelConfig::new(fake.url(), TOKEN);
        config.timeout = Duration::from_secs(2);
        adjust(&mut config);
        let metrics = Metrics::new().expect("metrics");
        let panel = Panel::new(config, metrics.external.clone()).expect("client");
        Self {
            fake,
            panel,
            metrics,
        }
    }

    /// Creates a user in the first squad, expiring in 30 days.
    pub(crate) async fn create(&self, username: &str) -> User {
        self.panel
            .create_user(&self.new_user(username))
            .await
            .expect("user created")
    }

    /// A new-user request in the first squad, expiring in 30 days.
    pub(crate) fn new_user(&self, username: &str) -> CreateUser {
        let squad = self.fake.squads()[0].0.parse().expect("squad uuid");
        CreateUser {
            active_internal_squads: vec![squad],
            ..CreateUser::new(username, Utc::now() + TimeDelta::days(30))
        }
    }

    /// The exchanges whose route template is `route` (such as `/api/users/{id}`).
    pub(crate) fn exchanges_of(&self, method: &str, route: &str) -> Vec<Exchange> {
        self.fake
            .exchanges()
            .into_iter()
            .filter(|e| e.method == method && e.route == route)
            .collect()
    }

    /// The Prometheus text of the client's metrics.
    pub(crate) fn metrics_text(&self) -> String {
        String::from_utf8(self.metrics.render()).expect("utf8")
    }
}
