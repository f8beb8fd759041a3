//! End to end across processes: the api (in this process), `cybervpn-worker` and `cybervpn-scheduler`
//! (child processes), PostgreSQL, Redis and the panel fake. Run with the whole workspace built
//! (`cargo nextest run --workspace` builds the worker and scheduler binaries).
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

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
    handle: actix_web::dev::ServerHandle,
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
        let path = binary_path(binary);
        Command::new(&path)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
        assert_eq!(days + 1, bought_days, "{provider}: every plan's days, once");
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
