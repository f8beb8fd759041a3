//! The real `cybervpn-bot` and `cybervpn-worker` processes against the real api (gRPC, in this process),
//! PostgreSQL, Redis, the panel fake and the Telegram Bot API fake.
#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use cybervpn_config::Secret;
use cybervpn_domain::TelegramId;
use cybervpn_panel_fake::{FakeOptions, PanelFake};
use cybervpn_telegram_fake::{Call, TelegramFake, User};
use cybervpn_testkit::{TestDb, TestRedis};

const BOT_TOKEN: &str = "4242:BOT-e2e-token";
const SERVICE_TOKEN: &str = "bot-service-token-e2e-0123456789abcdef";
/// The chats that receive staff notifications.
const ADMIN_CHATS: [i64; 2] = [-1001, -1002];

struct World {
    base: String,
    telegram: TelegramFake,
    panel: PanelFake,
    db: cybervpn_db::Db,
    env: Vec<(String, String)>,
    handle: cybervpn_api::StopHandle,
    /// The worker's backup directory, which the bot reads.
    backups: tempfile::TempDir,
    _db: TestDb,
    _redis: TestRedis,
}

impl World {
    async fn new() -> Self {
        let test_db = TestDb::postgres().await;
        let redis = TestRedis::new().await;
        let panel = PanelFake::start("127.0.0.1:0".parse().unwrap(), FakeOptions::default())
            .await
            .unwrap();
        let telegram = TelegramFake::start(BOT_TOKEN).await.unwrap();
        let mut config = cybervpn_testkit::config(&test_db, Some(&redis));
        let (_, signing) = cybervpn_auth::TokenKeys::generate().unwrap();
        let (_, encryption) = cybervpn_auth::SecretBox::generate();
        config.auth.token_signing_key = Some(Secret::new(signing));
        config.auth.encryption_key = Some(Secret::new(encryption));
        config.grpc.bot_token = Some(Secret::new(SERVICE_TOKEN.to_owned()));
        config.grpc.listen = "127.0.0.1:0".to_owned();
        config.remnawave.url = Some(panel.url());
        config.remnawave.token = Some(Secret::new(panel.token().to_owned()));
        config.telegram.admin_chat_ids = ADMIN_CHATS.to_vec();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = cybervpn_api::build(Arc::new(config), listener, cybervpn_api::Mode::Service)
            .await
            .unwrap();
        let grpc = api.grpc_addr().unwrap();
        let backups = tempfile::tempdir().unwrap();
        let base = format!("http://{}", api.addr());
        let handle = api.handle();
        tokio::spawn(api.run());
        let env = [
            ("DATABASE_URL", test_db.url().to_owned()),
            ("REDIS_URL", redis.url().to_owned()),
            ("CYBERVPN_REDIS_KEY_PREFIX", redis.prefix().to_owned()),
            ("REMNAWAVE_URL", panel.url()),
            ("REMNAWAVE_TOKEN", panel.token().to_owned()),
            ("REMNAWAVE_SQUADS", "Default-Squad".to_owned()),
            (
                "CYBERVPN_WORKER_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
            ("CYBERVPN_WORKER_RELAY_INTERVAL_MS", "200".to_owned()),
            ("CYBERVPN_BOT_LISTEN", format!("127.0.0.1:{}", free_port())),
            ("CYBERVPN_BOT_POLL_TIMEOUT_SECS", "1".to_owned()),
            // The admin tests click through the whole panel; the throttling test lowers it again.
            ("CYBERVPN_BOT_USER_UPDATES_PER_MINUTE", "600".to_owned()),
            ("CYBERVPN_GRPC_URL", format!("http://{grpc}")),
            ("CYBERVPN_GRPC_BOT_TOKEN", SERVICE_TOKEN.to_owned()),
            ("TELEGRAM_BOT_TOKEN", BOT_TOKEN.to_owned()),
            ("TELEGRAM_API_BASE", telegram.url()),
            ("CYBERVPN_LOG_LEVEL", "warn".to_owned()),
            ("CYBERVPN_BACKUP_DIR", backups.path().display().to_string()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let db = cybervpn_db::Db::from_connection(test_db.connect().await);
        Self {
            base,
            telegram,
            panel,
            db,
            env,
            handle,
            backups,
            _db: test_db,
            _redis: redis,
        }
    }

    fn spawn(&self, binary: &str) -> Child {
        let exe = std::env::current_exe().unwrap();
        let path: PathBuf = exe.parent().unwrap().parent().unwrap().join(binary);
        assert!(
            path.exists(),
            "{} is missing: build the workspace binaries",
            path.display()
        );
        Command::new(&path)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }

    /// Waits for a message to `chat` (sent after the first `skip` ones) whose text or caption contains `needle`.
    async fn reply(&self, chat: i64, skip: usize, needle: &str) -> Call {
        for _ in 0..300 {
            let found = self
                .telegram
                .sent_to(chat)
                .into_iter()
                .skip(skip)
                .find(|call| {
                    ["text", "caption", "title"]
                        .iter()
                        .any(|field| call.str_param(field).is_some_and(|t| t.contains(needle)))
                });
            if let Some(call) = found {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent: Vec<String> = self
            .telegram
            .sent_to(chat)
            .iter()
            .map(|call| format!("{} {}", call.method, call.params))
            .collect();
        panic!("no message to {chat} containing {needle:?}; sent: {sent:#?}");
    }

    /// The job queue the api, worker and bot share.
    async fn queue(&self) -> cybervpn_jobs::Queue {
        let metrics = cybervpn_telemetry::Metrics::new().unwrap();
        let redis_url = self.env_var("REDIS_URL");
        cybervpn_jobs::Queue::redis(
            &redis_url,
            &self.env_var("CYBERVPN_REDIS_KEY_PREFIX"),
            cybervpn_jobs::JobMetrics::register(metrics.registry()).unwrap(),
        )
        .await
        .unwrap()
    }

    /// `user` (registered, English) buys Pro for 30 days with Stars in the bot, through to "Payment received".
    async fn buy_pro_with_stars(&self, user: &User, charge: &str) {
        let telegram = &self.telegram;
        let skip = self.sent(user.id);
        telegram.send_text(user, user.id, "/plans");
        let tiers = self.reply(user.id, skip, "Choose a plan").await;
        let skip = self.sent(user.id);
        telegram.press_button(user, message_id(&tiers), "tier:pro");
        let durations = self.reply(user.id, skip, "choose how long").await;
        let skip = self.sent(user.id);
        telegram.press_button(user, message_id(&durations), &button(&durations, "plan:"));
        let gateways = self.reply(user.id, skip, "How would you like to pay").await;
        let skip = self.sent(user.id);
        telegram.press_button(user, message_id(&gateways), &button(&gateways, "pay:"));
        let invoice = self.reply(user.id, skip, "CyberVPN Pro").await;
        let payload = invoice.str_param("payload").unwrap().to_owned();
        let stars = invoice.params["prices"][0]["amount"].as_i64().unwrap();
        let answered = telegram.precheckout_answers().len();
        telegram.pre_checkout(user, "XTR", stars, &payload);
        for _ in 0..200 {
            if telegram.precheckout_answers().len() > answered {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let skip = self.sent(user.id);
        telegram.successful_payment(user, "XTR", stars, &payload, charge);
        self.reply(user.id, skip, "Payment received").await;
    }

    /// Waits (up to 15 s) for the worker to create the panel user of the customer with this Telegram id.
    async fn provisioned(&self, telegram: i64) -> bool {
        let customer = self.customer(telegram).await;
        let username = format!("cv_{}", customer.id.as_uuid().simple());
        for _ in 0..300 {
            if self.panel.user_by_username(&username).is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// When the customer with this Telegram id's subscription ends.
    async fn expiry(&self, telegram: i64) -> chrono::DateTime<chrono::Utc> {
        let customer = self.customer(telegram).await;
        self.db
            .subscriptions()
            .current_for(customer.id)
            .await
            .unwrap()
            .unwrap()
            .expires_at
    }

    fn env_var(&self, name: &str) -> String {
        self.env.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    fn sent(&self, chat: i64) -> usize {
        self.telegram.sent_to(chat).len()
    }

    async fn customer(&self, telegram: i64) -> cybervpn_domain::Customer {
        self.db
            .customers()
            .find_by_telegram_id(TelegramId::new(telegram).unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

impl World {
    /// A one-time Telegram link code for a new staff member of `role`.
    async fn staff_link_code(&self, role: cybervpn_domain::StaffRole, name: &str) -> String {
        let email = format!("{name}@staff.example.com");
        let password = "staff password 1234";
        let hash = cybervpn_auth::PasswordHasher::owasp()
            .hash(&cybervpn_auth::Password::for_login(password).unwrap())
            .unwrap();
        self.db
            .staff()
            .create(
                cybervpn_domain::Email::parse(&email).unwrap(),
                cybervpn_domain::Username::parse(name).unwrap(),
                role,
                hash,
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let login: serde_json::Value = http
            .post(format!("{}/api/v1/admin/auth/login", self.base))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap();
        let issued = http
            .post(format!("{}/api/v1/admin/auth/telegram-link", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 201);
        let issued: serde_json::Value = issued.json().await.unwrap();
        issued["code"].as_str().unwrap().to_owned()
    }
}

impl World {
    /// Links a new admin `name` to `admin`, opens Broadcast for `audience` and waits for the message prompt.
    async fn open_broadcast(&self, admin: &User, name: &str, audience: &str) {
        let telegram = &self.telegram;
        let code = self
            .staff_link_code(cybervpn_domain::StaffRole::Admin, name)
            .await;
        telegram.send_text(admin, admin.id, &format!("/link {code}"));
        self.reply(admin.id, 0, "linked").await;
        let skip = self.sent(admin.id);
        telegram.send_text(admin, admin.id, "/admin");
        let menu = self.reply(admin.id, skip, "Admin panel").await;
        let skip = self.sent(admin.id);
        telegram.press_button(admin, message_id(&menu), "adm:bc");
        let choice = self.reply(admin.id, skip, "Who gets the broadcast").await;
        let skip = self.sent(admin.id);
        telegram.press_button(admin, message_id(&choice), &format!("adm:bca:{audience}"));
        self.reply(admin.id, skip, "Send the message").await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn message_id(call: &Call) -> i64 {
    call.result().unwrap()["message_id"].as_i64().unwrap()
}

/// The callback data of the button in `call`'s inline keyboard whose data starts with `prefix`.
fn button(call: &Call, prefix: &str) -> String {
    call.params["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .filter_map(|button| button["callback_data"].as_str())
        .find(|data| data.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} button in {}", call.params))
        .to_owned()
}

fn terminate(child: &mut Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_register_take_the_trial_connect_refer_and_pay_with_stars_in_the_bot() {
    let world = World::new().await;
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;

    // Alice starts the bot and shares her referral link.
    let alice = User::new(5001, "Alice")
        .with_username("alice")
        .with_language("en");
    telegram.send_text(&alice, alice.id, "/start");
    world
        .reply(alice.id, 0, "Welcome to CyberVPN, Alice!")
        .await;
    let skip = world.sent(alice.id);
    telegram.send_text(&alice, alice.id, "/referral");
    let stats = world.reply(alice.id, skip, "start=ref_").await;
    let text = stats.str_param("text").unwrap().to_owned();
    let code = text
        .split("start=ref_")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("https://t.me/cybervpn_test_bot?start=ref_"),
        "{text}"
    );

    // Bob follows it (in Russian), takes the trial and gets his config with a QR code.
    let bob = User::new(5002, "Боб").with_language("ru");
    telegram.send_text(&bob, bob.id, &format!("/start ref_{code}"));
    let welcome = world
        .reply(bob.id, 0, "Добро пожаловать в CyberVPN, Боб!")
        .await;
    assert!(
        welcome.str_param("text").unwrap().contains("приглашению"),
        "{}",
        welcome.params
    );
    let menu = world.reply(bob.id, 0, "Что вы хотите сделать?").await;
    assert_eq!(button(&menu, "trial"), "trial");
    let alice_customer = world.customer(alice.id).await;
    let bonus = world
        .db
        .subscriptions()
        .current_for(alice_customer.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        bonus.expires_at > chrono::Utc::now() + chrono::Duration::days(2),
        "Alice got her referral days"
    );

    let skip = world.sent(bob.id);
    telegram.press_button(&bob, message_id(&menu), "trial");
    world
        .reply(bob.id, skip, "Бесплатный период активен до")
        .await;
    assert!(
        world.provisioned(bob.id).await,
        "the worker provisioned the trial"
    );
    let mut photo = None;
    for _ in 0..20 {
        let skip = world.sent(bob.id);
        telegram.send_text(&bob, bob.id, "/config");
        let reply = world.reply(bob.id, skip, "").await;
        if reply.method == "sendPhoto" {
            photo = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let photo = photo.expect("a QR photo once provisioned");
    assert!(photo.file("photo").unwrap().bytes.starts_with(b"\x89PNG"));
    assert!(
        photo.str_param("caption").unwrap().contains("https://"),
        "{}",
        photo.params
    );
    let skip = world.sent(bob.id);
    telegram.send_text(&bob, bob.id, "/trial");
    world.reply(bob.id, skip, "уже использовали").await;

    // Carol buys Pro for 30 days with Stars: plan → duration → gateway → invoice → pre-checkout → paid.
    let carol = User::new(5003, "Carol").with_language("en");
    telegram.send_text(&carol, carol.id, "/start");
    world.reply(carol.id, 0, "Welcome").await;
    let skip = world.sent(carol.id);
    telegram.send_text(&carol, carol.id, "/plans");
    let tiers = world.reply(carol.id, skip, "Choose a plan").await;
    let skip = world.sent(carol.id);
    telegram.press_button(&carol, message_id(&tiers), "tier:pro");
    let durations = world.reply(carol.id, skip, "choose how long").await;
    let plan = button(&durations, "plan:");
    let skip = world.sent(carol.id);
    telegram.press_button(&carol, message_id(&durations), &plan);
    let gateways = world
        .reply(carol.id, skip, "How would you like to pay")
        .await;
    let pay = button(&gateways, "pay:");
    assert!(pay.ends_with(":xtr"), "{pay}");
    let skip = world.sent(carol.id);
    telegram.press_button(&carol, message_id(&gateways), &pay);
    let invoice = world.reply(carol.id, skip, "CyberVPN Pro").await;
    assert_eq!(invoice.method, "sendInvoice");
    assert_eq!(invoice.str_param("currency"), Some("XTR"));
    let payload = invoice.str_param("payload").unwrap().to_owned();
    let stars = invoice.params["prices"][0]["amount"].as_i64().unwrap();

    let query = telegram.pre_checkout(&carol, "XTR", stars, &payload);
    for _ in 0..200 {
        if !telegram.precheckout_answers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = telegram.precheckout_answers().pop().unwrap();
    assert_eq!(answer.query_id, query);
    assert!(answer.ok, "{answer:?}");
    assert!(answer.elapsed < Duration::from_secs(10));
    // Telegram delivers `successful_payment` twice: the days are added once.
    let skip = world.sent(carol.id);
    telegram.successful_payment(&carol, "XTR", stars, &payload, "stxE2E-1");
    world.reply(carol.id, skip, "Payment received").await;
    let carol_customer = world.customer(carol.id).await;
    let after_first = world
        .db
        .subscriptions()
        .current_for(carol_customer.id)
        .await
        .unwrap()
        .unwrap();
    let skip = world.sent(carol.id);
    telegram.successful_payment(&carol, "XTR", stars, &payload, "stxE2E-1");
    world.reply(carol.id, skip, "Payment received").await;
    let after_second = world
        .db
        .subscriptions()
        .current_for(carol_customer.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after_first.expires_at, after_second.expires_at,
        "credited exactly once"
    );
    let days = (after_second.expires_at - chrono::Utc::now()).num_hours() / 24;
    assert_eq!(days, 29, "Pro 30 days, once");
    // Her loyalty level, from the menu: 30 paid days are Bronze, Silver needs 60 more.
    let skip = world.sent(carol.id);
    telegram.send_text(&carol, carol.id, "/menu");
    let menu = world
        .reply(carol.id, skip, "What would you like to do")
        .await;
    let skip = world.sent(carol.id);
    telegram.press_button(&carol, message_id(&menu), &button(&menu, "loyalty"));
    let loyalty = world
        .reply(carol.id, skip, "Your loyalty level: Bronze")
        .await;
    let text = loyalty.str_param("text").unwrap();
    assert!(
        text.contains("30 paid days") && text.contains("Silver in 60 more paid days"),
        "{text}"
    );

    // Language switch, unknown user, support.
    let skip = world.sent(carol.id);
    telegram.press_button(&carol, message_id(&tiers), "lang:ru");
    world.reply(carol.id, skip, "Язык изменён на русский").await;
    let skip = world.sent(carol.id);
    telegram.send_text(&carol, carol.id, "/support");
    world.reply(carol.id, skip, "Опишите проблему").await;
    let skip = world.sent(carol.id);
    telegram.send_text(&carol, carol.id, "VPN is slow in the evening");
    world.reply(carol.id, skip, "Спасибо! Ваше обращение").await;
    let stranger = User::new(5999, "Eve").with_language("en");
    telegram.send_text(&stranger, stranger.id, "/config");
    world
        .reply(stranger.id, 0, "Please send /start first")
        .await;

    // The bot's own health and metrics.
    let listen = &world
        .env
        .iter()
        .find(|(k, _)| k == "CYBERVPN_BOT_LISTEN")
        .unwrap()
        .1;
    let metrics = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "bot_updates_total",
        "bot_commands_total{command=\"start\"}",
        "bot_api_requests_total{method=\"sendInvoice\",status=\"200\"}",
        "bot_payments_total{gateway=\"telegram_stars\",status=\"credited\"} 1",
        "bot_payments_total{gateway=\"telegram_stars\",status=\"duplicate\"} 1",
    ] {
        assert!(metrics.contains(metric), "{metric} in\n{metrics}");
    }
    assert!(!metrics.contains(BOT_TOKEN), "no secret in metrics");
    assert!(
        telegram.unanswered_callbacks().is_empty(),
        "every button press is answered"
    );

    assert!(terminate(&mut bot), "the bot stops cleanly on SIGTERM");
    assert!(terminate(&mut worker));
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_link_telegram_and_run_the_admin_panel_with_their_role() {
    let world = World::new().await;
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;

    // A customer to act on, and a customer who tries the panel.
    let dave = User::new(6001, "Dave")
        .with_username("dave_customer")
        .with_language("en");
    telegram.send_text(&dave, dave.id, "/start");
    world.reply(dave.id, 0, "Welcome").await;
    let skip = world.sent(dave.id);
    telegram.send_text(&dave, dave.id, "/admin");
    world.reply(dave.id, skip, "This is for staff").await;
    let skip = world.sent(dave.id);
    telegram.send_text(&dave, dave.id, "/link NOTACODE");
    world.reply(dave.id, skip, "wrong, used or expired").await;

    // An admin links their Telegram account with a one-time code and uses the panel.
    let admin = User::new(6100, "Ops").with_language("en");
    let code = world
        .staff_link_code(cybervpn_domain::StaffRole::Admin, "ops_admin")
        .await;
    telegram.send_text(&admin, admin.id, &format!("/link {code}"));
    world
        .reply(admin.id, 0, "linked to your staff account (admin)")
        .await;
    let skip = world.sent(admin.id);
    let other = User::new(6101, "Thief").with_language("en");
    telegram.send_text(&other, other.id, &format!("/link {code}"));
    world.reply(other.id, 0, "wrong, used or expired").await;

    telegram.send_text(&admin, admin.id, "/admin");
    let menu = world
        .reply(admin.id, skip, "Admin panel — ops_admin (admin)")
        .await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:stats");
    let stats = world.reply(admin.id, skip, "Customers: 1").await;
    assert!(
        stats
            .str_param("text")
            .unwrap()
            .contains("Revenue today: none"),
        "{}",
        stats.params
    );

    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:find");
    world
        .reply(admin.id, skip, "Send an email, username or Telegram id")
        .await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "dave_customer");
    let found = world.reply(admin.id, skip, "dave_customer · active").await;
    assert!(
        found.str_param("text").unwrap().contains("Loyalty: Bronze"),
        "{}",
        found.params
    );
    let ban = button(&found, "adm:ban:");
    let extend = button(&found, "adm:ext:");
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&found), &extend);
    world
        .reply(admin.id, skip, "Extended: the subscription now runs until")
        .await;
    let reset = button(&found, "adm:reset:");
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&found), &reset);
    world.reply(admin.id, skip, "Traffic reset queued").await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&found), &ban);
    world.reply(admin.id, skip, "dave_customer is banned").await;
    let listen = &world
        .env
        .iter()
        .find(|(k, _)| k == "CYBERVPN_BOT_LISTEN")
        .unwrap()
        .1;
    let metrics = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("bot_commands_total{command=\"link\"}"),
        "{metrics}"
    );
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:audit");
    let audit = world.reply(admin.id, skip, "customer.ban · customer").await;
    let log = audit.str_param("text").unwrap();
    assert!(
        log.contains("subscription.reset_traffic") && log.contains("subscription.extend"),
        "{log}"
    );
    let dave_customer = world.customer(dave.id).await;
    assert_eq!(
        dave_customer.status,
        cybervpn_domain::CustomerStatus::Disabled
    );
    let audit = world.db.audit().list(None, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|entry| entry.action.as_str()).collect();
    assert!(
        actions.contains(&"customer.ban") && actions.contains(&"subscription.extend"),
        "{actions:?}"
    );
    let skip = world.sent(dave.id);
    telegram.send_text(&dave, dave.id, "/config");
    world.reply(dave.id, skip, "Your account is blocked").await;

    // Promo codes: create one (a malformed line and a duplicate are refused), then switch it off.
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:promo");
    let promos = world.reply(admin.id, skip, "No promo codes yet").await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&promos), &button(&promos, "adm:pnew"));
    world.reply(admin.id, skip, "Send the new code").await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "SPRING twenty");
    world.reply(admin.id, skip, "not a promo code line").await;
    for (line, reply) in [
        (
            "spring 20% 100 30",
            "Promo code created: SPRING · −20% · 0/100 · on",
        ),
        ("SPRING +7d", "was not created"),
    ] {
        let skip = world.sent(admin.id);
        telegram.press_button(&admin, message_id(&promos), "adm:pnew");
        world.reply(admin.id, skip, "Send the new code").await;
        let skip = world.sent(admin.id);
        telegram.send_text(&admin, admin.id, line);
        world.reply(admin.id, skip, reply).await;
    }
    let spring = world
        .db
        .promos()
        .find_by_code("SPRING")
        .await
        .unwrap()
        .unwrap();
    assert!(spring.is_active && spring.max_uses == Some(100) && spring.valid_until.is_some());
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:promo");
    let promos = world.reply(admin.id, skip, "SPRING").await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&promos), &button(&promos, "adm:poff:"));
    world.reply(admin.id, skip, "switched off").await;
    let spring = world
        .db
        .promos()
        .find_by_code("SPRING")
        .await
        .unwrap()
        .unwrap();
    assert!(!spring.is_active);

    // Plans: set prices, retire and put back on sale; a plan that exists cannot be created again.
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:plans");
    let plans = world.reply(admin.id, skip, "pro_30 ·").await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&plans), "adm:plpr");
    world.reply(admin.id, skip, "new prices").await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "pro_30 7.77 USD 700 XTR");
    world
        .reply(admin.id, skip, "pro_30 · 7.77 USD, 700 ⭐ · on sale")
        .await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&plans), "adm:plnew");
    world.reply(admin.id, skip, "Send the new plan").await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "pro 30 5 0 9.99 USD");
    world.reply(admin.id, skip, "The plan was not saved").await;
    let pro_30 = plans.params["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .find(|b| b["text"] == "pro_30")
        .unwrap()["callback_data"]
        .as_str()
        .unwrap()
        .to_owned();
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&plans), &pro_30);
    let plan = world.reply(admin.id, skip, "on sale").await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&plan), &button(&plan, "adm:ploff:"));
    world.reply(admin.id, skip, "retired").await;
    let plan_id =
        cybervpn_domain::PlanId::from_uuid(pro_30.trim_start_matches("adm:plan:").parse().unwrap());
    let stored = world.db.plans().get(plan_id).await.unwrap();
    assert!(!stored.is_active);
    assert_eq!(
        stored.prices().len(),
        2,
        "the new price list replaced the old one"
    );
    let public = reqwest::get(format!("{}/api/v1/plans", world.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !public.contains(&plan_id.as_uuid().to_string()),
        "retired plans are not sold"
    );
    let skip = world.sent(admin.id);
    telegram.press_button(
        &admin,
        message_id(&plan),
        &format!("adm:plon:{}", plan_id.as_uuid()),
    );
    world.reply(admin.id, skip, "on sale").await;
    assert!(world.db.plans().get(plan_id).await.unwrap().is_active);

    // Gateways: Stars switched off disappears for customers, and comes back.
    let stars_enabled = || async {
        let list: serde_json::Value =
            reqwest::get(format!("{}/api/v1/payments/providers", world.base))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["provider"] == "telegram_stars")
            .unwrap()["enabled"]
            .as_bool()
            .unwrap()
    };
    assert!(stars_enabled().await);
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:gw");
    let gateways = world.reply(admin.id, skip, "telegram_stars · on").await;
    assert!(
        gateways
            .str_param("text")
            .unwrap()
            .contains("cryptobot · not configured")
    );
    let skip = world.sent(admin.id);
    telegram.press_button(
        &admin,
        message_id(&gateways),
        &button(&gateways, "adm:gwoff:"),
    );
    world
        .reply(admin.id, skip, "telegram_stars · switched off")
        .await;
    assert!(!stars_enabled().await);
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&gateways), "adm:gwon:telegram_stars");
    world.reply(admin.id, skip, "telegram_stars · on").await;
    assert!(stars_enabled().await);

    // Notices: reword the English trial notice; a wrong placeholder is refused; customers get the new text.
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&menu), "adm:tpl");
    let notices = world
        .reply(admin.id, skip, "The notices customers get")
        .await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&notices), "adm:tpl:0");
    world
        .reply(admin.id, skip, "trial_started (en) now reads")
        .await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "Trial ends in {left}");
    world
        .reply(admin.id, skip, "unknown placeholder {left}")
        .await;
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&notices), "adm:tpl:0");
    world.reply(admin.id, skip, "now reads").await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "Trial on! It runs until {until}.");
    world
        .reply(admin.id, skip, "Customers now get: Trial on!")
        .await;
    let fay = User::new(6002, "Fay").with_language("en");
    telegram.send_text(&fay, fay.id, "/start");
    let fay_menu = world.reply(fay.id, 0, "What would you like").await;
    telegram.press_button(&fay, message_id(&fay_menu), "trial");
    let notice = world.reply(fay.id, 0, "Trial on! It runs until 20").await;
    assert!(
        !notice.str_param("text").unwrap().contains("{until}"),
        "{}",
        notice.params
    );

    // A viewer may look up customers but not ban them, even by pressing a forged button.
    let viewer = User::new(6200, "Viewer").with_language("en");
    let code = world
        .staff_link_code(cybervpn_domain::StaffRole::Viewer, "ops_viewer")
        .await;
    telegram.send_text(&viewer, viewer.id, &format!("/link {code}"));
    let linked = world.reply(viewer.id, 0, "(viewer)").await;
    let skip = world.sent(viewer.id);
    telegram.press_button(
        &viewer,
        message_id(&linked),
        &ban.replace("adm:ban:", "adm:unban:"),
    );
    world
        .reply(viewer.id, skip, "Your role does not allow this")
        .await;
    let skip = world.sent(viewer.id);
    telegram.press_button(&viewer, message_id(&linked), "adm:stats");
    world
        .reply(viewer.id, skip, "Your role does not allow this")
        .await;
    for forged in [
        "adm:promo",
        "adm:bc",
        "adm:gw",
        "adm:gwoff:telegram_stars",
        &format!("adm:poff:{}", spring.id.as_uuid()),
        &format!("adm:ploff:{}", plan_id.as_uuid()),
    ] {
        let skip = world.sent(viewer.id);
        telegram.press_button(&viewer, message_id(&linked), forged);
        world
            .reply(viewer.id, skip, "Your role does not allow this")
            .await;
    }
    assert_eq!(
        world.customer(dave.id).await.status,
        cybervpn_domain::CustomerStatus::Disabled,
        "still banned"
    );
    assert!(terminate(&mut bot));
    assert!(terminate(&mut worker));
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_webhook_mode_only_requests_with_the_secret_are_handled() {
    let mut world = World::new().await;
    let listen = world
        .env
        .iter()
        .find(|(k, _)| k == "CYBERVPN_BOT_LISTEN")
        .unwrap()
        .1
        .clone();
    world.env.push((
        "TELEGRAM_WEBHOOK_URL".to_owned(),
        format!("http://{listen}/telegram"),
    ));
    world.env.push((
        "TELEGRAM_WEBHOOK_SECRET".to_owned(),
        "e2e-webhook-secret_1".to_owned(),
    ));
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;
    for _ in 0..200 {
        if telegram.webhook_url().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        telegram.webhook_url(),
        Some(format!("http://{listen}/telegram"))
    );
    let set = telegram.calls_of("setWebhook").pop().unwrap();
    assert_eq!(set.str_param("secret_token"), Some("e2e-webhook-secret_1"));

    let frank = User::new(7001, "Frank").with_language("en");
    telegram.send_text(&frank, frank.id, "/start");
    // Without the secret header (or with a wrong one) the bot refuses the update.
    let update = telegram.pending_updates().pop().unwrap();
    assert_eq!(telegram.post_webhook(&update, None).await.unwrap(), 401);
    assert_eq!(
        telegram.post_webhook(&update, Some("wrong")).await.unwrap(),
        401
    );
    assert_eq!(world.sent(frank.id), 0);
    let statuses = telegram.deliver_webhook().await.unwrap();
    assert_eq!(statuses, [200]);
    world
        .reply(frank.id, 0, "Welcome to CyberVPN, Frank!")
        .await;
    assert!(
        telegram.calls_of("getUpdates").is_empty(),
        "no polling in webhook mode"
    );
    assert!(terminate(&mut bot));
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_answers_customers_and_lets_staff_through() {
    let mut world = World::new().await;
    world
        .env
        .push(("CYBERVPN_BOT_MAINTENANCE".to_owned(), "true".to_owned()));
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;

    let grace = User::new(8001, "Grace").with_language("en");
    telegram.send_text(&grace, grace.id, "/start");
    world.reply(grace.id, 0, "under maintenance").await;
    assert!(
        world
            .db
            .customers()
            .find_by_telegram_id(TelegramId::new(grace.id).unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing reaches the api during maintenance"
    );

    // Staff link their account (`/link` gets through maintenance) and then use the bot as usual.
    let staff = User::new(8100, "Ops").with_language("en");
    let code = world
        .staff_link_code(cybervpn_domain::StaffRole::Admin, "ops_maint")
        .await;
    telegram.send_text(&staff, staff.id, &format!("/link {code}"));
    world
        .reply(staff.id, 0, "linked to your staff account")
        .await;
    let skip = world.sent(staff.id);
    telegram.send_text(&staff, staff.id, "/admin");
    world.reply(staff.id, skip, "Admin panel — ops_maint").await;
    let skip = world.sent(staff.id);
    telegram.send_text(&staff, staff.id, "/start");
    world
        .reply(staff.id, skip, "Welcome to CyberVPN, Ops!")
        .await;
    assert!(terminate(&mut bot));
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_delivers_notifications_once_and_does_not_retry_blocked_chats() {
    let world = World::new().await;
    let telegram = &world.telegram;
    telegram.block_user(ADMIN_CHATS[1]);
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");

    // A support request is a staff notification: recorded by the api, relayed by the worker, sent by the bot.
    let erin = User::new(7001, "Erin").with_language("en");
    telegram.send_text(&erin, erin.id, "/start");
    world.reply(erin.id, 0, "Welcome").await;
    let skip = world.sent(erin.id);
    telegram.send_text(&erin, erin.id, "/support");
    world.reply(erin.id, skip, "Describe").await;
    telegram.rate_limit_next(1, 1);
    telegram.send_text(&erin, erin.id, "Cannot connect from Berlin");
    world
        .reply(ADMIN_CHATS[0], 0, "Cannot connect from Berlin")
        .await;
    for _ in 0..200 {
        if world
            .db
            .notifications()
            .pending(10)
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recorded = world
        .db
        .notifications()
        .of_kind("support_request", 10)
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(recorded[0].sent_at.is_some(), "marked delivered");
    let tries = |chat: i64| {
        telegram
            .calls_of("sendMessage")
            .into_iter()
            .filter(|call| call.chat_id() == Some(chat))
            .count()
    };
    assert_eq!(world.sent(ADMIN_CHATS[0]), 1, "delivered once");
    assert_eq!(tries(ADMIN_CHATS[1]), 1, "the blocked chat is tried once");

    // Telegram fails every try to the second chat, after the first got it: the job is retried later and the
    // first chat does not get it twice.
    telegram.unblock_user(ADMIN_CHATS[1]);
    telegram.fail_sends_to(ADMIN_CHATS[1], 5);
    let skip = world.sent(erin.id);
    telegram.send_text(&erin, erin.id, "/support");
    world.reply(erin.id, skip, "Describe").await;
    telegram.send_text(&erin, erin.id, "Still slow in Lisbon");
    world.reply(ADMIN_CHATS[1], 0, "Still slow in Lisbon").await;
    let copies = |chat: i64| {
        telegram
            .sent_to(chat)
            .iter()
            .filter(|call| call.str_param("text").is_some_and(|t| t.contains("Lisbon")))
            .count()
    };
    assert_eq!(
        copies(ADMIN_CHATS[0]),
        1,
        "not sent again to the chat that had it"
    );
    assert_eq!(copies(ADMIN_CHATS[1]), 1);
    assert!(terminate(&mut bot));
    assert!(terminate(&mut worker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_to_a_thousand_customers_is_paced_survives_a_restart_and_reaches_each_once() {
    const CUSTOMERS: i64 = 1000;
    const FIRST: i64 = 8_000_000;
    let world = World::new().await;
    let telegram = &world.telegram;
    let now = chrono::Utc::now();
    for i in 0..CUSTOMERS {
        world
            .db
            .customers()
            .create(
                cybervpn_domain::NewCustomer::new(
                    None,
                    Some(TelegramId::new(FIRST + i).unwrap()),
                    cybervpn_domain::Username::parse(&format!("fan_{i}")).unwrap(),
                    cybervpn_domain::Language::En,
                )
                .unwrap(),
                now,
            )
            .await
            .unwrap();
    }
    let blocked = [FIRST + 10, FIRST + 500, FIRST + 990];
    for chat in blocked {
        telegram.block_user(chat);
    }
    // Telegram's own limit: sends beyond 30 a second would be refused with 429.
    telegram.enforce_global_rate(30);
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");

    // A customer (not staff) cannot reach the broadcast.
    let mallory = User::new(7901, "Mallory").with_language("en");
    telegram.send_text(&mallory, mallory.id, "/start");
    world.reply(mallory.id, 0, "Welcome").await;
    let menu_like = world.reply(mallory.id, 0, "What would you like").await;
    let skip = world.sent(mallory.id);
    telegram.press_button(&mallory, message_id(&menu_like), "adm:bc");
    world.reply(mallory.id, skip, "This is for staff").await;

    // The admin writes it, sees the preview and confirms.
    let admin = User::new(7900, "Boss").with_language("en");
    world.open_broadcast(&admin, "boss_admin", "all").await;
    let skip = world.sent(admin.id);
    telegram.send_text(&admin, admin.id, "Big news: new servers in Tokyo!");
    world.reply(admin.id, skip, "Big news").await;
    // The audience: the 1000, Mallory and the admin's own customer record if any — all with Telegram.
    let preview = world.reply(admin.id, skip, "Send it?").await;
    let audience_size: u32 = preview
        .str_param("text")
        .unwrap()
        .split("It goes to ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(audience_size >= 1001, "{audience_size}");
    let confirm = button(&preview, "adm:bcgo:");
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&preview), &confirm);
    world.reply(admin.id, skip, "Sending to").await;
    telegram.rate_limit_next(1, 2);

    let delivered = || {
        telegram
            .calls_of("sendMessage")
            .into_iter()
            .filter(|call| {
                call.ok()
                    && call
                        .chat_id()
                        .is_some_and(|c| (FIRST..FIRST + CUSTOMERS).contains(&c))
            })
            .map(|call| call.chat_id().unwrap())
            .collect::<Vec<_>>()
    };
    // Restart the bot midway (SIGTERM: it stops between two messages).
    for _ in 0..1200 {
        if delivered().len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered().len() >= 300, "the broadcast is under way");
    assert!(terminate(&mut bot), "the bot stops cleanly");
    let at_restart = delivered().len();
    assert!(at_restart < 1000, "stopped midway ({at_restart})");
    let mut bot = world.spawn("cybervpn-bot");

    let report = {
        let mut found = None;
        for _ in 0..2400 {
            if let Some(call) = telegram.sent_to(admin.id).into_iter().find(|call| {
                call.str_param("text")
                    .is_some_and(|t| t.starts_with("Broadcast finished"))
            }) {
                found = Some(call);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found.expect("the admin gets a report")
    };
    let mut chats = delivered();
    let sends = chats.len();
    chats.sort_unstable();
    chats.dedup();
    assert_eq!(sends, chats.len(), "nobody got the message twice");
    assert_eq!(
        chats.len(),
        997,
        "everyone but the three who blocked the bot"
    );
    let report = report.str_param("text").unwrap().to_owned();
    assert!(report.contains("3 blocked the bot"), "{report}");
    assert!(report.contains("0 unconfirmed"), "{report}");
    let refused = telegram
        .calls_of("sendMessage")
        .into_iter()
        .filter(|call| call.status == 429)
        .count();
    // Unpaced, a thousand sends would meet hundreds of refusals; paced, only the injected one and rare
    // edge-of-window ones.
    assert!(refused < 30, "{refused} sends refused with 429");
    assert!(terminate(&mut bot));
    assert!(terminate(&mut worker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_floods_the_bot_is_throttled() {
    let mut world = World::new().await;
    for (key, value) in &mut world.env {
        if key == "CYBERVPN_BOT_USER_UPDATES_PER_MINUTE" {
            *value = "3".to_owned();
        }
    }
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;
    let gus = User::new(7101, "Gus").with_language("en");
    telegram.send_text(&gus, gus.id, "/start");
    world.reply(gus.id, 0, "Welcome").await;
    for _ in 0..6 {
        telegram.send_text(&gus, gus.id, "/referral");
    }
    // Every update is taken (acknowledged) whether or not it is answered.
    for _ in 0..200 {
        if telegram.pending_updates().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answered = telegram
        .sent_to(gus.id)
        .iter()
        .filter(|call| {
            call.str_param("text")
                .is_some_and(|t| t.contains("start=ref_"))
        })
        .count();
    assert_eq!(
        answered, 2,
        "3 updates a minute: /start and two of the six /referral"
    );
    // Another user is not held back by Gus.
    let hana = User::new(7102, "Hana").with_language("en");
    telegram.send_text(&hana, hana.id, "/start");
    world.reply(hana.id, 0, "Welcome").await;
    assert!(terminate(&mut bot));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_buys_with_a_promo_code_typed_in_the_bot() {
    let world = World::new().await;
    let now = chrono::Utc::now();
    let promo = cybervpn_domain::PromoCode {
        id: cybervpn_domain::PromoCodeId::new(),
        code: "HALF".to_owned(),
        benefit: cybervpn_domain::PromoBenefit::PercentOff { percent: 50 },
        plan_id: None,
        max_uses: None,
        used_count: 0,
        valid_from: None,
        valid_until: None,
        is_active: true,
        created_at: now,
        updated_at: now,
    };
    world.db.promos().create(&promo).await.unwrap();
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;

    let jay = User::new(5101, "Jay").with_language("en");
    telegram.send_text(&jay, jay.id, "/start");
    world.reply(jay.id, 0, "Welcome").await;
    let skip = world.sent(jay.id);
    telegram.send_text(&jay, jay.id, "/plans");
    let tiers = world.reply(jay.id, skip, "Choose a plan").await;
    let skip = world.sent(jay.id);
    telegram.press_button(&jay, message_id(&tiers), "tier:pro");
    let durations = world.reply(jay.id, skip, "choose how long").await;
    let skip = world.sent(jay.id);
    telegram.press_button(&jay, message_id(&durations), &button(&durations, "plan:"));
    let gateways = world.reply(jay.id, skip, "How would you like to pay").await;
    let list_price = {
        let skip = world.sent(jay.id);
        telegram.press_button(&jay, message_id(&gateways), &button(&gateways, "pay:"));
        let invoice = world.reply(jay.id, skip, "CyberVPN Pro").await;
        invoice.params["prices"][0]["amount"].as_i64().unwrap()
    };

    // A wrong code is explained; the right one halves the Stars invoice.
    let promo_button = button(&gateways, "promo:");
    let skip = world.sent(jay.id);
    telegram.press_button(&jay, message_id(&gateways), &promo_button);
    world.reply(jay.id, skip, "Send your promo code").await;
    let skip = world.sent(jay.id);
    telegram.send_text(&jay, jay.id, "NOPE");
    world.reply(jay.id, skip, "This code cannot be used").await;
    let skip = world.sent(jay.id);
    telegram.press_button(&jay, message_id(&gateways), &promo_button);
    world.reply(jay.id, skip, "Send your promo code").await;
    let skip = world.sent(jay.id);
    telegram.send_text(&jay, jay.id, "half");
    let applied = world.reply(jay.id, skip, "Code HALF").await;
    let skip = world.sent(jay.id);
    telegram.press_button(&jay, message_id(&applied), &button(&applied, "payp:"));
    let invoice = world.reply(jay.id, skip, "CyberVPN Pro").await;
    let discounted = invoice.params["prices"][0]["amount"].as_i64().unwrap();
    assert_eq!(discounted, list_price / 2, "{}", invoice.params);
    assert!(terminate(&mut bot));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_broadcast_reaches_trial_customers_with_its_caption() {
    let world = World::new().await;
    let telegram = &world.telegram;
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");

    // Two customers: one on a trial (the audience), one not.
    let (kim, lou) = (
        User::new(7201, "Kim").with_language("en"),
        User::new(7202, "Lou").with_language("en"),
    );
    for user in [&kim, &lou] {
        telegram.send_text(user, user.id, "/start");
        world.reply(user.id, 0, "Welcome").await;
    }
    telegram.send_text(&kim, kim.id, "/trial");
    world.reply(kim.id, 0, "Send /config to connect").await;

    let admin = User::new(7200, "Chief").with_language("en");
    world.open_broadcast(&admin, "chief_admin", "trial").await;
    let skip = world.sent(admin.id);
    let photo = telegram.send_photo(&admin, "Tokyo servers are live!");
    let preview = world.reply(admin.id, skip, "It goes to 1 customers").await;
    let shown = telegram
        .sent_to(admin.id)
        .into_iter()
        .find(|call| call.method == "sendPhoto")
        .expect("the preview is the photo itself");
    assert_eq!(shown.str_param("photo"), Some(photo.as_str()));
    let skip = world.sent(admin.id);
    telegram.press_button(&admin, message_id(&preview), &button(&preview, "adm:bcgo:"));
    world
        .reply(admin.id, skip, "Broadcast finished: 1 of 1 delivered")
        .await;
    let got = world.reply(kim.id, 0, "Tokyo servers are live!").await;
    assert_eq!(got.method, "sendPhoto");
    assert_eq!(got.str_param("photo"), Some(photo.as_str()));
    assert!(
        world
            .telegram
            .sent_to(lou.id)
            .iter()
            .all(|call| call.method != "sendPhoto"),
        "only the trial audience"
    );
    assert!(terminate(&mut bot));
    assert!(terminate(&mut worker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_backup_reaches_the_admin_chats_as_a_document() {
    use cybervpn_jobs::catalog::{DatabaseBackup, DeliverBackup};
    use sha2::{Digest, Sha256};

    let world = World::new().await;
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");
    let queue = world.queue().await;
    queue.push(&DatabaseBackup { slot: 1 }).await.unwrap();

    let sent = world.reply(ADMIN_CHATS[0], 0, "Database backup").await;
    assert_eq!(sent.method, "sendDocument");
    let files: Vec<_> = std::fs::read_dir(world.backups.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let on_disk = std::fs::read(&files[0]).unwrap();
    let uploaded = sent.file("document").unwrap();
    assert_eq!(
        uploaded.bytes, on_disk,
        "the admin chat gets the file itself"
    );
    assert!(
        uploaded.filename.ends_with(".sql.gz"),
        "{}",
        uploaded.filename
    );
    let caption = sent.str_param("caption").unwrap();
    assert!(
        caption.contains(&hex::encode(Sha256::digest(&on_disk))),
        "the caption carries the file's sha256: {caption}"
    );
    let other = world.reply(ADMIN_CHATS[1], 0, "Database backup").await;
    assert_eq!(other.file("document").unwrap().bytes, on_disk);

    // A file the bot cannot read (no shared volume) is announced without it, saying where it is.
    let id = world
        .db
        .notifications()
        .record_once(
            "backup:unreadable",
            cybervpn_db::Audience::Staff,
            "backup",
            "Database backup cybervpn-unreadable.sql.gz",
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .unwrap();
    queue
        .push(&DeliverBackup {
            notification_id: id,
            path: "/nonexistent/cybervpn-unreadable.sql.gz".to_owned(),
        })
        .await
        .unwrap();
    let note = world.reply(ADMIN_CHATS[0], 1, "File not attached").await;
    assert_eq!(note.method, "sendMessage");
    assert!(note.str_param("text").unwrap().contains("/nonexistent/"));
    for _ in 0..100 {
        if world
            .db
            .notifications()
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .sent_at
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        world
            .db
            .notifications()
            .get(id)
            .await
            .unwrap()
            .unwrap()
            .sent_at
            .is_some()
    );
    assert_eq!(world.sent(ADMIN_CHATS[0]), 2, "each backup announced once");

    assert!(terminate(&mut bot));
    assert!(terminate(&mut worker));
    world.handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_join_with_invite_codes_and_the_inviter_earns_days_when_they_pay() {
    let mut world = World::new().await;
    world.env.push((
        "CYBERVPN_TELEGRAM_MINI_APP_URL".to_owned(),
        "https://app.cybervpn.test/".to_owned(),
    ));
    let mut worker = world.spawn("cybervpn-worker");
    let mut bot = world.spawn("cybervpn-bot");
    let telegram = &world.telegram;

    // Carol buys Pro: the default rule gives her two codes of 14 free days, announced by the worker and bot.
    let carol = User::new(5301, "Carol").with_language("en");
    telegram.send_text(&carol, carol.id, "/start");
    let menu = world.reply(carol.id, 0, "What would you like to do?").await;
    // The menu also opens the Mini App, which signs in as the same customer.
    let rows = menu.params["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap();
    assert!(
        rows.iter()
            .filter_map(|row| row.as_array())
            .flatten()
            .any(|b| b["web_app"]["url"] == "https://app.cybervpn.test/"),
        "{rows:?}"
    );
    let skip = world.sent(carol.id);
    telegram.press_button(&carol, message_id(&menu), "invites");
    world.reply(carol.id, skip, "no invite codes yet").await;
    world.buy_pro_with_stars(&carol, "stxINV-1").await;
    world
        .reply(carol.id, 0, "You received 2 invite code(s)")
        .await;
    let carol_until = world.expiry(carol.id).await;
    let skip = world.sent(carol.id);
    telegram.send_text(&carol, carol.id, "/invites");
    let list = world.reply(carol.id, skip, "2 available").await;
    let text = list.str_param("text").unwrap().to_owned();
    let codes: Vec<String> = text
        .split("start=inv_")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 2, "{text}");

    // Dave follows the first link: 14 free days, provisioned on the panel by the worker.
    let dave = User::new(5302, "Dave").with_language("en");
    telegram.send_text(&dave, dave.id, &format!("/start inv_{}", codes[0]));
    world
        .reply(dave.id, 0, "Invite accepted: 14 free days")
        .await;
    assert!(
        world.provisioned(dave.id).await,
        "the worker provisioned the free access"
    );
    let days = (world.expiry(dave.id).await - chrono::Utc::now()).num_hours() / 24;
    assert_eq!(days, 13, "14 free days, once");

    // Erin types the second code through the menu; then tries Dave's used one.
    let erin = User::new(5303, "Erin").with_language("en");
    telegram.send_text(&erin, erin.id, "/start");
    world.reply(erin.id, 0, "What would you like to do?").await;
    let skip = world.sent(erin.id);
    telegram.send_text(&erin, erin.id, "/invites");
    let list = world.reply(erin.id, skip, "no invite codes yet").await;
    let skip = world.sent(erin.id);
    telegram.press_button(&erin, message_id(&list), "invite");
    world.reply(erin.id, skip, "Send the invite code").await;
    let skip = world.sent(erin.id);
    telegram.send_text(&erin, erin.id, &codes[1].to_lowercase());
    world.reply(erin.id, skip, "Invite accepted").await;
    let skip = world.sent(erin.id);
    telegram.send_text(&erin, erin.id, &format!("/start inv_{}", codes[0]));
    world.reply(erin.id, skip, "already used").await;
    let skip = world.sent(erin.id);
    telegram.send_text(&erin, erin.id, "/start inv_FORGED000000");
    world.reply(erin.id, skip, "no invite has this code").await;

    // Dave pays: Carol gets 7 days, once (a second purchase by Dave pays nothing more).
    world.buy_pro_with_stars(&dave, "stxINV-2").await;
    world
        .reply(carol.id, 0, "A friend you invited has subscribed")
        .await;
    assert_eq!(
        world.expiry(carol.id).await,
        carol_until + chrono::Duration::days(7)
    );
    world.buy_pro_with_stars(&dave, "stxINV-3").await;
    assert_eq!(
        world.expiry(carol.id).await,
        carol_until + chrono::Duration::days(7)
    );
    assert!(telegram.unanswered_callbacks().is_empty());

    assert!(terminate(&mut bot));
    assert!(terminate(&mut worker));
    world.handle.stop(true).await;
}
