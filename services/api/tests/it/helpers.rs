use std::sync::Arc;

use actix_web::dev::ServerHandle;
use cybervpn_api::Mode;
use cybervpn_config::Config;
use cybervpn_testkit::{Backend, TestDb, TestRedis};

/// The real api, started the way `main` starts it, on `127.0.0.1:0`.
pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    handle: ServerHandle,
    // Dropped after the server is stopped: the database and Redis prefix are removed.
    _db: TestDb,
    _redis: Option<TestRedis>,
}

impl TestApp {
    /// PostgreSQL runs with Redis (production); SQLite without (standalone).
    pub(crate) async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub(crate) async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new(backend).await;
        let redis = match backend {
            Backend::Postgres => Some(TestRedis::new().await),
            Backend::Sqlite => None,
        };
        let mut config = cybervpn_testkit::config(&db, redis.as_ref());
        tweak(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let api = cybervpn_api::build(Arc::new(config), listener, Mode::Service)
            .await
            .expect("api builds");
        let base = format!("http://{}", api.addr());
        let handle = api.handle();
        tokio::spawn(api.run());
        Self {
            base,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            handle,
            _db: db,
            _redis: redis,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub(crate) async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Asserts an RFC 7807 problem with this status and catalogue code, and returns its body.
pub(crate) async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
    );
    let body: serde_json::Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(
        body["type"],
        format!("urn:cybervpn:problem:{code}"),
        "{body}"
    );
    assert!(body["title"].is_string(), "{body}");
    assert!(body["detail"].is_string(), "{body}");
    body
}
