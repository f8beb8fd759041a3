//! End to end across processes: the api (in this process), `cybervpn-worker` and `cybervpn-scheduler`
//! (child processes), PostgreSQL, Redis and the panel fake. Run with the whole workspace built
//! (`cargo nextest run --workspace` builds the worker and scheduler binaries).
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod otlp;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use cybervpn_api::Mode;
use cybervpn_config::{Config, Secret};
use cybervpn_domain::{CustomerId, Email, Language, NewCustomer, StaffRole, Username};
use cybervpn_panel_fake::{FakeOptions, Fault, PanelFake};
use cybervpn_testkit::{TestDb, TestRedis};
use serde_json::{Value, json};

struct World {
    base: String,
    http: reqwest::Client,
    db: cybervpn_db::Db,
    fake: PanelFake,
    env: Vec<(String, String)>,
    handle: cybervpn_api::StopHandle,
    signing_key: String,
    _db: TestDb,
    _redis: TestRedis,
}

impl World {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A world whose api runs with `tweak` applied to its configuration.
    async fn with(tweak: impl FnOnce(&mut Config)) -> Self {
        let test_db = TestDb::postgres().await;
        let redis = TestRedis::new().await;
        let fake = PanelFake::start("127.0.0.1:0".parse().unwrap(), FakeOptions::default())
            .await
            .unwrap();
        let mut config: Config = cybervpn_testkit::config(&test_db, Some(&redis));
        let (_, signing) = cybervpn_auth::TokenKeys::generate().unwrap();
        let (_, encryption) = cybervpn_auth::SecretBox::generate();
        config.auth.token_signing_key = Some(Secret::new(signing.clone()));
        config.auth.encryption_key = Some(Secret::new(encryption));
        tweak(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = cybervpn_api::build(Arc::new(config), listener, Mode::Service)
            .await
            .unwrap();
        let base = format!("http://{}", api.addr());
        let handle = api.handle();
        tokio::spawn(api.run());
        let env = vec![
            ("DATABASE_URL", test_db.url().to_owned()),
            ("REDIS_URL", redis.url().to_owned()),
            ("CYBERVPN_REDIS_KEY_PREFIX", redis.prefix().to_owned()),
            ("REMNAWAVE_URL", fake.url()),
            ("REMNAWAVE_TOKEN", fake.token().to_owned()),
            ("REMNAWAVE_SQUADS", "Default-Squad".to_owned()),
            (
                "CYBERVPN_WORKER_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
            (
                "CYBERVPN_SCHEDULER_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("CYBERVPN_WORKER_JOB_LEASE_SECS", "3".to_owned()),
            ("CYBERVPN_WORKER_SHUTDOWN_TIMEOUT_SECS", "2".to_owned()),
            ("CYBERVPN_WORKER_RELAY_INTERVAL_MS", "200".to_owned()),
            ("CYBERVPN_SCHEDULER_LEASE_TTL_SECS", "3".to_owned()),
            ("CYBERVPN_LOG_LEVEL", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let db = cybervpn_db::Db::from_connection(test_db.connect().await);
        Self {
            base,
            http: reqwest::Client::new(),
            db,
            fake,
            env,
            handle,
            signing_key: signing,
            _db: test_db,
            _redis: redis,
        }
    }

    fn spawn(&self, binary: &str) -> Child {
        self.spawn_with(binary, &[])
    }

    /// Starts `binary` with the world's environment plus `extra`.
    fn spawn_with(&self, binary: &str, extra: &[(&str, String)]) -> Child {
        let path = binary_path(binary);
        Command::new(&path)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", path.display()))
    }

    async fn customer(&self, name: &str) -> CustomerId {
        let new = NewCustomer::new(
            Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            None,
            Username::parse(name).unwrap(),
            Language::En,
        )
        .unwrap();
        self.db
            .customers()
            .create(new, chrono::Utc::now())
            .await
            .unwrap()
            .id
    }

    /// A customer access token for `customer`, signed with the api's key.
    fn customer_token(&self, customer: CustomerId) -> String {
        let keys = cybervpn_auth::TokenKeys::from_paserk(&self.signing_key, &[]).unwrap();
        keys.issue(&cybervpn_auth::Claims::new(
            customer.as_uuid(),
            "customer",
            cybervpn_auth::Audience::Customer,
            chrono::Utc::now(),
            chrono::Duration::minutes(30),
        ))
        .unwrap()
    }

    async fn admin_token(&self) -> String {
        let email = "ops@staff.example.com";
        let password = "staff password 1234";
        let hash = cybervpn_auth::PasswordHasher::owasp()
            .hash(&cybervpn_auth::Password::for_login(password).unwrap())
            .unwrap();
        self.db
            .staff()
            .create(
                Email::parse(email).unwrap(),
                Username::parse("ops").unwrap(),
                StaffRole::Admin,
                hash,
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let body: Value = self
            .http
            .post(format!("{}/api/v1/admin/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn panel_user(&self, customer: CustomerId) -> Option<Value> {
        self.fake
            .user_by_username(&format!("cv_{}", customer.as_uuid().simple()))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The workspace's binary next to this test's (`target/<profile>/`).
fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after 30 s waiting for: {what}");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("process {pid} did not stop within 10 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_reach_the_panel_through_outbox_queue_and_worker_processes() {
    let world = World::new().await;
    let mut scheduler = world.spawn("cybervpn-scheduler");
    let mut worker = world.spawn("cybervpn-worker");
    let token = world.admin_token().await;
    let customer = world.customer("neo").await;

    let response = world
        .post(
            &format!("/api/v1/users/{}/extend", customer.as_uuid()),
            &token,
            json!({"days": 30}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let subscription: Value = response.json().await.unwrap();
    eventually("the panel user exists", || {
        world.panel_user(customer).is_some()
    })
    .await;
    let user = world.panel_user(customer).unwrap();
    assert_eq!(user["status"], "ACTIVE");
    let expected: chrono::DateTime<chrono::Utc> = subscription["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let actual: chrono::DateTime<chrono::Utc> = user["expireAt"].as_str().unwrap().parse().unwrap();
    assert!(
        (actual - expected).num_milliseconds().abs() < 1000,
        "{actual} vs {expected}"
    );

    // The scheduler process enqueued the node sync on start; the worker process ran it.
    let nodes = world.fake.nodes().len();
    for _ in 0..600 {
        if world.db.servers().list().await.unwrap().len() == nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(world.db.servers().list().await.unwrap().len(), nodes);

    let banned = world
        .post(
            &format!("/api/v1/users/{}/ban", customer.as_uuid()),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(banned.status(), 200);
    eventually("the panel user is disabled", || {
        world
            .panel_user(customer)
            .is_some_and(|u| u["status"] == "DISABLED")
    })
    .await;
    assert_eq!(world.fake.users().len(), 1, "one panel user throughout");

    // Both processes serve their own health and metrics.
    for (var, metric) in [
        ("CYBERVPN_WORKER_LISTEN", "jobs_succeeded_total"),
        ("CYBERVPN_SCHEDULER_LISTEN", "scheduler_is_leader 1"),
    ] {
        let listen = &world.env.iter().find(|(k, _)| k == var).unwrap().1;
        let health = reqwest::get(format!("http://{listen}/health"))
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{var}");
        let body: Value = health.json().await.unwrap();
        assert_eq!(body["status"], "ok", "{var}: {body}");
        let metrics = reqwest::get(format!("http://{listen}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains(metric), "{var} exports {metric}");
    }

    assert!(
        terminate(&mut worker).success(),
        "the worker stops cleanly on SIGTERM"
    );
    assert!(
        terminate(&mut scheduler).success(),
        "the scheduler stops cleanly on SIGTERM"
    );
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing_and_applies_it_once() {
    let world = World::new().await;
    let token = world.admin_token().await;
    let customer = world.customer("trinity").await;
    // The first panel call of the provisioning job hangs long enough to kill the worker during it.
    world.fake.inject(Fault::Delay {
        delay: Duration::from_secs(6),
        times: 1,
        path_prefix: Some("/api/users/by-username".to_owned()),
    });
    let mut doomed = world.spawn("cybervpn-worker");
    let response = world
        .post(
            &format!("/api/v1/users/{}/extend", customer.as_uuid()),
            &token,
            json!({"days": 7}),
        )
        .await;
    assert_eq!(response.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        world.panel_user(customer).is_none(),
        "still stuck in the slow call"
    );
    doomed.kill().unwrap(); // SIGKILL: no chance to hand the job back.
    doomed.wait().unwrap();

    let mut survivor = world.spawn("cybervpn-worker");
    eventually("the job is picked up again and finished", || {
        world.panel_user(customer).is_some()
    })
    .await;
    // The stored identity matches the one panel user.
    let user = world.panel_user(customer).unwrap();
    let mut stored = None;
    for _ in 0..100 {
        stored = world
            .db
            .subscriptions()
            .current_for(customer)
            .await
            .unwrap()
            .and_then(|s| s.panel);
        if stored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored.unwrap().user_id, user["id"].as_i64().unwrap());
    assert_eq!(world.fake.users().len(), 1);
    assert!(terminate(&mut survivor).success());
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_runs_the_worker_and_scheduler_in_process() {
    let test_db = TestDb::sqlite().await;
    let fake = PanelFake::start("127.0.0.1:0".parse().unwrap(), FakeOptions::default())
        .await
        .unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut config: Config = cybervpn_testkit::config(&test_db, None);
    config.data_dir = data_dir.path().to_owned();
    config.remnawave.url = Some(fake.url());
    config.remnawave.token = Some(Secret::new(fake.token().to_owned()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = cybervpn_api::build(Arc::new(config), listener, Mode::Standalone)
        .await
        .unwrap();
    let base = format!("http://{}", api.addr());
    let handle = api.handle();
    let running = tokio::spawn(api.run());
    let db = cybervpn_db::Db::from_connection(test_db.connect().await);

    // The in-process scheduler enqueues the node sync at start; the in-process worker runs it.
    let nodes = fake.nodes().len();
    let mut synced = 0;
    for _ in 0..400 {
        synced = db.servers().list().await.unwrap().len();
        if synced == nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(synced, nodes, "servers synced in-process");
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    handle.stop(true).await;
    running.await.unwrap().unwrap();
}

/// The commerce path end to end: every plan of the catalogue bought through each of the four gateways (their
/// loopback fakes), credited by the gateway's own confirmation, provisioned in the panel by the worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plan_is_bought_through_each_gateway_and_reaches_the_panel() {
    use cybervpn_payments::fake::{
        cryptobot::CryptoBotFake, stripe::StripeFake, yookassa::YooKassaFake,
    };

    const CRYPTOBOT: &str = "777:AAe2e-cryptobot-token";
    const STRIPE_KEY: &str = "sk_test_e2e";
    const WHSEC: &str = "whsec_e2e_0123456789abcdef0123456789abcdef";
    let cryptobot = CryptoBotFake::start(CRYPTOBOT).await.unwrap();
    let stripe = StripeFake::start(STRIPE_KEY, WHSEC).await.unwrap();
    let yookassa = YooKassaFake::start("4242", "yoo_e2e_secret").await.unwrap();
    let (cryptobot_url, stripe_url, yookassa_url) = (cryptobot.url(), stripe.url(), yookassa.url());
    let world = World::with(|config| {
        config.auth.ip_requests_per_minute = 10_000;
        let payments = &mut config.payments;
        payments.cryptobot_token = Some(Secret::new(CRYPTOBOT.to_owned()));
        payments.cryptobot_api_url = cryptobot_url;
        payments.stripe_secret_key = Some(Secret::new(STRIPE_KEY.to_owned()));
        payments.stripe_webhook_secret = Some(Secret::new(WHSEC.to_owned()));
        payments.stripe_api_url = stripe_url;
        payments.yookassa_shop_id = Some("4242".to_owned());
        payments.yookassa_secret_key = Some(Secret::new("yoo_e2e_secret".to_owned()));
        payments.yookassa_api_url = yookassa_url;
        payments.yookassa_trusted_networks = vec!["127.0.0.1".to_owned()];
    })
    .await;
    let mut worker = world.spawn("cybervpn-worker");
    let plans: Value = world
        .http
        .get(format!("{}/api/v1/plans", world.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plans = plans["plans"].as_array().unwrap().clone();
    assert_eq!(
        plans.len(),
        16,
        "the default catalogue: 4 tiers × 4 durations"
    );

    for provider in ["cryptobot", "stripe", "yookassa", "telegram_stars"] {
        let name = format!("buyer_{provider}");
        let telegram = (provider == "telegram_stars")
            .then(|| cybervpn_domain::TelegramId::new(900_001).unwrap());
        let new = NewCustomer::new(
            Some(Email::parse(&format!("{name}@example.com")).unwrap()),
            telegram,
            Username::parse(&name).unwrap(),
            Language::En,
        )
        .unwrap();
        let customer = world
            .db
            .customers()
            .create(new, chrono::Utc::now())
            .await
            .unwrap()
            .id;
        let token = world.customer_token(customer);
        let mut bought_days = 0_i64;
        for plan in &plans {
            let response = world
                .post(
                    "/api/v1/subscriptions",
                    &token,
                    json!({"plan_id": plan["id"], "provider": provider}),
                )
                .await;
            assert_eq!(response.status(), 201, "{provider} {}", plan["code"]);
            let started: Value = response.json().await.unwrap();
            let payment = &started["payment"];
            let id = cybervpn_domain::PaymentId::from_uuid(
                payment["id"].as_str().unwrap().parse().unwrap(),
            );
            let reference = world
                .db
                .payments()
                .get(id)
                .await
                .unwrap()
                .provider_payment_id;
            // The customer pays; the gateway confirms the way it does.
            let status = match provider {
                "cryptobot" => {
                    let invoice: i64 = reference.unwrap().parse().unwrap();
                    assert!(cryptobot.mark_paid(invoice));
                    let url = format!("{}/api/v1/webhooks/cryptobot", world.base);
                    cryptobot.deliver_webhook(&url, invoice).await.unwrap()
                }
                "stripe" => {
                    let session = reference.unwrap();
                    assert!(stripe.complete(&session));
                    let url = format!("{}/api/v1/webhooks/stripe", world.base);
                    stripe
                        .deliver(&url, "checkout.session.completed", &session)
                        .await
                        .unwrap()
                }
                "yookassa" => {
                    let yoo_id = reference.unwrap();
                    assert!(yookassa.succeed(&yoo_id));
                    world
                        .http
                        .post(format!("{}/api/v1/webhooks/yookassa", world.base))
                        .header("content-type", "application/json")
                        .body(yookassa.notification_body("payment.succeeded", &yoo_id))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                }
                _ => {
                    // What the bot does with Telegram's updates.
                    let invoice = &payment["stars_invoice"];
                    let total = invoice["prices"][0]["amount"].as_i64().unwrap();
                    let now = chrono::Utc::now();
                    let query = cybervpn_commerce::stars::PreCheckout {
                        invoice_payload: invoice["payload"].as_str().unwrap().to_owned(),
                        currency: "XTR".to_owned(),
                        total_amount: total,
                        telegram_user_id: 900_001,
                    };
                    assert_eq!(
                        cybervpn_commerce::stars::pre_checkout(&world.db, &query, now)
                            .await
                            .unwrap(),
                        cybervpn_commerce::stars::PreCheckoutAnswer::Ok
                    );
                    let paid = cybervpn_commerce::stars::SuccessfulPayment {
                        invoice_payload: query.invoice_payload,
                        currency: "XTR".to_owned(),
                        total_amount: total,
                        telegram_payment_charge_id: format!("stx_{}", id.as_uuid().simple()),
                        provider_payment_charge_id: None,
                    };
                    let done = cybervpn_commerce::stars::successful_payment(&world.db, &paid, now)
                        .await
                        .unwrap();
                    assert!(
                        matches!(done, cybervpn_commerce::Completion::Credited(_)),
                        "{done:?}"
                    );
                    200
                }
            };
            assert_eq!(status, 200, "{provider} {}", plan["code"]);
            let stored = world.db.payments().get(id).await.unwrap();
            assert_eq!(
                stored.status,
                cybervpn_domain::PaymentStatus::Completed,
                "{provider} {}",
                plan["code"]
            );
            bought_days += plan["duration_days"].as_i64().unwrap();
        }
        let subscription = world
            .db
            .subscriptions()
            .current_for(customer)
            .await
            .unwrap()
            .unwrap();
        let days = (subscription.expires_at - chrono::Utc::now()).num_hours() / 24;
        // Those paid days reach Platinum: each loyalty level's bonus comes on top, once.
        let bonus: i64 = cybervpn_domain::LoyaltyLevel::ALL
            .iter()
            .map(|level| i64::from(level.bonus_days()))
            .sum();
        assert_eq!(
            days + 1,
            bought_days + bonus,
            "{provider}: every plan's days, once"
        );
        let expected = subscription.expires_at;
        eventually(
            &format!("{provider}: the panel user runs to the end of every plan bought"),
            || {
                world.panel_user(customer).is_some_and(|user| {
                    user["status"] == "ACTIVE"
                        && user["expireAt"]
                            .as_str()
                            .and_then(|at| at.parse::<chrono::DateTime<chrono::Utc>>().ok())
                            .is_some_and(|at| (at - expected).num_milliseconds().abs() < 1000)
                })
            },
        )
        .await;
    }
    assert_eq!(world.fake.users().len(), 4, "one panel user per customer");
    assert!(terminate(&mut worker).success());
    world.handle.stop(true).await;
}

/// Stops `child` with SIGTERM without blocking the runtime (the receiver of its last spans runs on it).
async fn terminate_async(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    panic!("process {pid} did not stop within 20 s of SIGTERM");
}

const YOOKASSA_SHOP: &str = "4242";
const YOOKASSA_SECRET: &str = "yoo_trace_secret";
const BOT_TOKEN: &str = "bot-service-token-for-the-trace-test-0123";

/// The api and the worker as separate processes, both exporting their spans to one OTLP receiver.
struct TracedPlatform {
    receiver: otlp::OtlpReceiver,
    world: World,
    base: String,
    grpc: String,
    yookassa: cybervpn_payments::fake::yookassa::YooKassaFake,
    api: Child,
    worker: Child,
}

impl TracedPlatform {
    async fn start() -> Self {
        let receiver = otlp::OtlpReceiver::start().await;
        let yookassa =
            cybervpn_payments::fake::yookassa::YooKassaFake::start(YOOKASSA_SHOP, YOOKASSA_SECRET)
                .await
                .unwrap();
        let world = World::new().await;
        let listen = format!("127.0.0.1:{}", free_port());
        let grpc_listen = format!("127.0.0.1:{}", free_port());
        let (_, encryption) = cybervpn_auth::SecretBox::generate();
        let otel = ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone());
        let api = world.spawn_with(
            "cybervpn-api",
            &[
                ("CYBERVPN_API_LISTEN", listen.clone()),
                ("CYBERVPN_GRPC_LISTEN", grpc_listen.clone()),
                ("CYBERVPN_GRPC_BOT_TOKEN", BOT_TOKEN.to_owned()),
                ("CYBERVPN_AUTH_TOKEN_SIGNING_KEY", world.signing_key.clone()),
                ("CYBERVPN_AUTH_ENCRYPTION_KEY", encryption.to_string()),
                ("YOOKASSA_SHOP_ID", YOOKASSA_SHOP.to_owned()),
                ("YOOKASSA_SECRET_KEY", YOOKASSA_SECRET.to_owned()),
                ("YOOKASSA_API_URL", yookassa.url()),
                ("YOOKASSA_TRUSTED_NETWORKS", "127.0.0.1".to_owned()),
                otel.clone(),
            ],
        );
        let worker = world.spawn_with("cybervpn-worker", &[otel]);
        let base = format!("http://{listen}");
        let mut up = false;
        for _ in 0..600 {
            if let Ok(response) = world.http.get(format!("{base}/health")).send().await {
                up = response.status() == 200;
                if up {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "the api process serves {base}");
        Self {
            receiver,
            world,
            base,
            grpc: format!("http://{grpc_listen}"),
            yookassa,
            api,
            worker,
        }
    }

    async fn plan_id(&self) -> String {
        let plans: Value = self
            .world
            .http
            .get(format!("{}/api/v1/plans", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        plans["plans"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Stops both processes, which flush their spans as they exit, and returns every span received.
    async fn stop(mut self) -> (World, Vec<otlp::ReceivedSpan>) {
        assert!(terminate_async(&mut self.worker).await.success());
        assert!(terminate_async(&mut self.api).await.success());
        self.world.handle.stop(true).await;
        (self.world, self.receiver.spans())
    }
}

/// Checks that trace `trace_id` holds spans of the api and the worker only, that its entry span (the first
/// matching `is_entry`) is the child of the caller's span, and that every panel call descends from the entry
/// through the outbox relay and the provisioning job; and that the panel saw the trace.
fn assert_one_trace(
    world: &World,
    spans: &[otlp::ReceivedSpan],
    trace_id: &str,
    caller_span: &str,
    is_entry: impl Fn(&otlp::ReceivedSpan) -> bool,
) {
    let in_trace: Vec<&otlp::ReceivedSpan> =
        spans.iter().filter(|s| s.trace_id == trace_id).collect();
    let by_id: std::collections::HashMap<&str, &otlp::ReceivedSpan> =
        in_trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let services: std::collections::BTreeSet<&str> =
        in_trace.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        ["cybervpn-api", "cybervpn-worker"].into_iter().collect(),
        "{in_trace:#?}"
    );

    let entry = in_trace
        .iter()
        .find(|s| s.service == "cybervpn-api" && is_entry(s))
        .unwrap_or_else(|| panic!("no entry span in {in_trace:#?}"));
    assert_eq!(entry.parent_span_id, caller_span, "{entry:?}");

    let panel_calls: Vec<&&otlp::ReceivedSpan> = in_trace
        .iter()
        .filter(|s| s.name == "panel_request")
        .collect();
    assert!(!panel_calls.is_empty(), "{in_trace:#?}");
    for call in &panel_calls {
        assert_eq!(call.service, "cybervpn-worker");
        let mut chain = vec![call.name.as_str()];
        let mut at = **call;
        while at.span_id != entry.span_id {
            at = by_id
                .get(at.parent_span_id.as_str())
                .unwrap_or_else(|| panic!("{} has no exported parent: {chain:?}", at.name));
            chain.push(at.name.as_str());
        }
        for hop in ["job", "outbox_relay", entry.name.as_str()] {
            assert!(chain.contains(&hop), "{chain:?}");
        }
    }
    let job = in_trace
        .iter()
        .find(|s| s.name == "job" && s.attribute("job") != Some("push_notification"))
        .unwrap_or_else(|| panic!("no job span in {in_trace:#?}"));
    assert_eq!(job.attribute("job"), Some("provision_subscription"));

    // The panel received the trace, with a call span as the parent of its side.
    let headers: Vec<String> = world
        .fake
        .exchanges()
        .into_iter()
        .filter_map(|e| e.traceparent)
        .filter(|header| header.contains(trace_id))
        .collect();
    assert!(!headers.is_empty(), "the panel client sends traceparent");
    for header in &headers {
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts[1], trace_id, "{header}");
        assert!(
            panel_calls.iter().any(|call| call.span_id == parts[2]),
            "{header} names a panel_request span"
        );
    }
}

/// A payment is one trace: the gateway's webhook (carrying a caller's `traceparent`) is served by the api
/// process, whose transaction writes the outbox row; the worker process relays it to the queue, runs the
/// provisioning job and calls the panel, all in the caller's trace, as both processes export it over OTLP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_one_trace_across_the_api_and_worker_processes() {
    let platform = TracedPlatform::start().await;
    let world = &platform.world;
    let customer = world.customer("traced").await;
    let response = world
        .http
        .post(format!("{}/api/v1/subscriptions", platform.base))
        .bearer_auth(world.customer_token(customer))
        .json(&json!({"plan_id": platform.plan_id().await, "provider": "yookassa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let started: Value = response.json().await.unwrap();
    let payment = cybervpn_domain::PaymentId::from_uuid(
        started["payment"]["id"].as_str().unwrap().parse().unwrap(),
    );
    let reference = world
        .db
        .payments()
        .get(payment)
        .await
        .unwrap()
        .provider_payment_id
        .unwrap();
    assert!(platform.yookassa.succeed(&reference));

    // The gateway's confirmation arrives as part of a trace the caller started.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let status = world
        .http
        .post(format!("{}/api/v1/webhooks/yookassa", platform.base))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .body(
            platform
                .yookassa
                .notification_body("payment.succeeded", &reference),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    eventually(
        "the worker process provisions the paid subscription",
        || {
            world
                .panel_user(customer)
                .is_some_and(|user| user["status"] == "ACTIVE")
        },
    )
    .await;

    let (world, spans) = platform.stop().await;
    assert_one_trace(&world, &spans, &trace_id, &caller_span, |span| {
        span.name == "http_request" && span.attribute("route") == Some("/api/v1/webhooks/yookassa")
    });
}

/// The bot's side of a Telegram Stars payment: its gRPC call (through the bot's own `BearerToken` client,
/// inside the update's span) is continued by the api process and, through the outbox and the queue, by the
/// worker process up to the panel.
///
/// A current-thread runtime, so that the tracing subscriber standing in for the bot's sees every poll.
#[tokio::test(flavor = "current_thread")]
async fn a_stars_payment_from_the_bot_is_one_trace_through_grpc_api_and_worker() {
    use cybervpn_rpc::bot::v1::{self as pb, bot_service_client::BotServiceClient};
    use tracing::Instrument as _;

    let platform = TracedPlatform::start().await;
    let channel = tonic::transport::Channel::from_shared(platform.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut bot = BotServiceClient::with_interceptor(
        channel,
        cybervpn_rpc::BearerToken::new(BOT_TOKEN).unwrap(),
    );
    bot.register_customer(pb::RegisterCustomerRequest {
        user: Some(pb::TelegramUser {
            id: 4242,
            username: "stargazer".to_owned(),
            first_name: "Star".to_owned(),
            language_code: "en".to_owned(),
        }),
        referral_code: String::new(),
    })
    .await
    .unwrap();
    let payment = bot
        .create_payment(pb::CreatePaymentRequest {
            telegram_user_id: 4242,
            plan_id: platform.plan_id().await,
            provider: "telegram_stars".to_owned(),
            currency: String::new(),
            promo_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .payment
        .unwrap();
    let invoice = payment.stars_invoice.unwrap();

    // The bot handles Telegram's `successful_payment` update in a traced span.
    let _bot_tracing = tracing::subscriber::set_default(cybervpn_telemetry::test_subscriber());
    let update = tracing::info_span!("update");
    let (trace_id, caller_span) = update.in_scope(|| {
        let traceparent = cybervpn_telemetry::current_traceparent().unwrap();
        let parts: Vec<String> = traceparent.split('-').map(str::to_owned).collect();
        (parts[1].clone(), parts[2].clone())
    });
    let confirmed = bot
        .confirm_stars_payment(pb::ConfirmStarsPaymentRequest {
            telegram_user_id: 4242,
            invoice_payload: invoice.payload,
            currency: "XTR".to_owned(),
            total_amount: invoice.prices[0].amount,
            telegram_payment_charge_id: "stxTRACE1".to_owned(),
            provider_payment_charge_id: String::new(),
        })
        .instrument(update)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(confirmed.outcome(), pb::PaymentOutcome::Credited);
    let world = &platform.world;
    eventually(
        "the worker process provisions the Stars subscription",
        || {
            world
                .fake
                .users()
                .iter()
                .any(|user| user["status"] == "ACTIVE")
        },
    )
    .await;

    let (world, spans) = platform.stop().await;
    assert_one_trace(&world, &spans, &trace_id, &caller_span, |span| {
        span.name == "grpc_request"
            && span.attribute("method") == Some("/cybervpn.bot.v1.BotService/ConfirmStarsPayment")
    });
}
