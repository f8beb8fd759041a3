use std::sync::Arc;

use cybervpn_api::Mode;
use cybervpn_api::StopHandle;
use cybervpn_config::Config;
use cybervpn_testkit::{Backend, TestDb, TestRedis};

/// The real api, started the way `main` starts it, on `127.0.0.1:0`.
pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    /// Direct access to the app's database, for arranging data.
    pub(crate) db: cybervpn_db::Db,
    /// The configuration the app runs with.
    pub(crate) config: Arc<Config>,
    /// `http://<addr>` of the gRPC server, when the app runs one.
    pub(crate) grpc: Option<String>,
    handle: StopHandle,
    siblings: std::sync::Mutex<Vec<StopHandle>>,
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
        let (_, signing) = cybervpn_auth::TokenKeys::generate().expect("signing key");
        let (_, encryption) = cybervpn_auth::SecretBox::generate();
        config.auth.token_signing_key = Some(cybervpn_config::Secret::new(signing));
        config.auth.encryption_key = Some(cybervpn_config::Secret::new(encryption));
        tweak(&mut config);
        let repo = cybervpn_db::Db::from_connection(db.connect().await);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let config = Arc::new(config);
        let api = cybervpn_api::build(Arc::clone(&config), listener, Mode::Service)
            .await
            .expect("api builds");
        let base = format!("http://{}", api.addr());
        let grpc = api.grpc_addr().map(|addr| format!("http://{addr}"));
        let handle = api.handle();
        tokio::spawn(api.run());
        Self {
            base,
            grpc,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            handle,
            siblings: std::sync::Mutex::default(),
            db: repo,
            config,
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

    /// Stops the app and its siblings, before the database and Redis prefix go away.
    pub(crate) async fn stop(self) {
        let siblings = std::mem::take(&mut *self.siblings.lock().unwrap());
        for sibling in siblings {
            sibling.stop(true).await;
        }
        self.handle.stop(true).await;
    }

    /// Another api instance on the same database, Redis prefix and keys, with `tweak` applied; returns its
    /// base URL and is stopped by [`TestApp::stop`].
    pub(crate) async fn sibling(&self, tweak: impl FnOnce(&mut Config)) -> String {
        let mut config = (*self.config).clone();
        tweak(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let api = cybervpn_api::build(Arc::new(config), listener, Mode::Service)
            .await
            .expect("sibling api builds");
        let base = format!("http://{}", api.addr());
        self.siblings.lock().unwrap().push(api.handle());
        tokio::spawn(api.run());
        base
    }

    /// Signs an access token with the app's own key, e.g. one that expired long ago.
    pub(crate) fn forge_token(
        &self,
        sub: uuid::Uuid,
        role: &str,
        audience: cybervpn_auth::Audience,
        iat: chrono::DateTime<chrono::Utc>,
        ttl: chrono::Duration,
    ) -> String {
        let key = self
            .config
            .auth
            .token_signing_key
            .as_ref()
            .expect("tests configure a signing key");
        let keys = cybervpn_auth::TokenKeys::from_paserk(key.expose(), &[]).expect("key");
        keys.issue(&cybervpn_auth::Claims::new(sub, role, audience, iat, ttl))
            .expect("token")
    }

    /// POSTs JSON with a bearer token.
    pub(crate) async fn post_authed(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// GETs with a bearer token.
    pub(crate) async fn get_authed(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Registers a customer with this email and a strong password; returns the password.
    pub(crate) async fn register(&self, email: &str) -> String {
        let password = format!("correct horse {email}");
        let response = self
            .post_json(
                "/api/v1/auth/register",
                &serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(
            response.status(),
            201,
            "{}",
            response.text().await.unwrap_or_default()
        );
        password
    }

    /// Signs in and returns the response body (tokens, or a 2FA challenge).
    pub(crate) async fn login(&self, path: &str, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            path,
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// A registered, signed-in customer's access token.
    pub(crate) async fn customer_token(&self, email: &str) -> String {
        let password = self.register(email).await;
        self.customer_token_for(email, &password).await
    }

    /// The access token of an already registered customer.
    pub(crate) async fn customer_token_for(&self, email: &str, password: &str) -> String {
        let body: serde_json::Value = self
            .login("/api/v1/auth/login", email, password)
            .await
            .json()
            .await
            .expect("token pair");
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Creates a staff account with `role`; returns (email, password).
    pub(crate) async fn create_staff(&self, role: cybervpn_domain::StaffRole) -> (String, String) {
        let email = format!(
            "{}-{}@staff.example.com",
            role,
            uuid::Uuid::new_v4().simple()
        );
        let password = "staff password 1234".to_owned();
        let hasher = cybervpn_auth::PasswordHasher::owasp();
        let hash = hasher
            .hash(&cybervpn_auth::Password::for_login(&password).expect("password"))
            .expect("hash");
        self.db
            .staff()
            .create(
                cybervpn_domain::Email::parse(&email).expect("email"),
                cybervpn_domain::Username::parse(&format!("staff_{role}")).expect("username"),
                role,
                hash,
                chrono::Utc::now(),
            )
            .await
            .expect("create staff");
        (email, password)
    }

    /// A signed-in staff member's access token.
    pub(crate) async fn staff_token(&self, role: cybervpn_domain::StaffRole) -> String {
        let (email, password) = self.create_staff(role).await;
        let body: serde_json::Value = self
            .login("/api/v1/admin/auth/login", &email, &password)
            .await
            .json()
            .await
            .expect("token pair");
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
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

impl TestApp {
    /// Registers a customer with this email and returns their id.
    pub(crate) async fn customer_id(&self, email: &str) -> cybervpn_domain::CustomerId {
        self.register(email).await;
        let email = cybervpn_domain::Email::parse(email).expect("email");
        self.db
            .customers()
            .find_by_email(&email)
            .await
            .expect("read customer")
            .expect("the customer just registered")
            .id
    }

    /// Stores a new active subscription of `days` days for `customer`, starting now.
    pub(crate) async fn subscribe(
        &self,
        customer: cybervpn_domain::CustomerId,
        days: u32,
    ) -> cybervpn_domain::Subscription {
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6);
        let subscription = cybervpn_domain::Subscription::start(
            customer,
            None,
            days,
            cybervpn_domain::TrafficLimit::Unlimited,
            None,
            now,
        )
        .expect("subscription");
        self.db
            .subscriptions()
            .create(&subscription)
            .await
            .expect("store subscription");
        subscription
    }

    /// Every outbox message not yet relayed, oldest first.
    pub(crate) async fn outbox(&self) -> Vec<cybervpn_db::OutboxMessage> {
        self.db.outbox().claim(1000).await.expect("read the outbox")
    }

    /// Every audit entry with this action, newest first.
    pub(crate) async fn audit_entries(&self, action: &str) -> Vec<cybervpn_db::AuditEntry> {
        let mut entries = self.db.audit().list(None, 1000).await.expect("audit log");
        entries.retain(|entry| entry.action == action);
        entries
    }
}

/// Asserts the status and returns the JSON body.
pub(crate) async fn json_body(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(got, status, "{body}");
    serde_json::from_str(&body).expect("JSON body")
}
