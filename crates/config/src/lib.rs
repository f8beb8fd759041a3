//! Layered configuration for every CyberVPN binary.
//!
//! Owns the precedence embedded defaults → optional TOML file → environment, the validation that runs
//! before any socket is bound, and the [`Secret`] wrapper that keeps credentials out of logs.

mod env;
mod secret;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Format, Toml},
};
use serde::{Deserialize, Serialize};

pub use env::EnvVars;
pub use secret::Secret;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value could not be read or has the wrong type; the message names the key and its source.
    #[error("{0}")]
    Load(Box<figment::Error>),
    /// A value was read but breaks a rule.
    #[error("invalid configuration key `{key}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `api.listen`.
        key: &'static str,
        /// What is wrong, never echoing a secret value.
        reason: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        Self::Load(Box::new(err))
    }
}

/// The whole configuration of the platform; each binary reads the sections it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for local state (the standalone SQLite database lives here).
    pub data_dir: PathBuf,
    /// Relational database.
    pub database: DatabaseConfig,
    /// Redis (queues, caches, rate limits); absent in standalone mode.
    pub redis: RedisConfig,
    /// HTTP API server.
    pub api: ApiConfig,
    /// Logging.
    pub log: LogConfig,
    /// Distributed tracing: OTLP export of spans.
    pub telemetry: TelemetryConfig,
    /// Authentication: signing keys, token lifetimes, password hashing, abuse protection.
    pub auth: AuthConfig,
    /// The Remnawave panel that serves the VPN.
    pub remnawave: RemnawaveConfig,
    /// Background job worker.
    pub worker: WorkerConfig,
    /// Periodic job scheduler.
    pub scheduler: SchedulerConfig,
    /// Telegram delivery of notifications.
    pub telegram: TelegramConfig,
    /// The free trial every customer may take once.
    pub trial: TrialConfig,
    /// Rewards for inviting customers.
    pub referral: ReferralConfig,
    /// Payment gateways: credentials, endpoints and invoice lifetime.
    pub payments: PaymentsConfig,
    /// The api's internal gRPC server and how other services reach it.
    pub grpc: GrpcConfig,
    /// The Telegram bot service.
    pub bot: BotConfig,
    /// Daily database backups.
    pub backup: BackupConfig,
    /// Push notifications to customer devices through Firebase Cloud Messaging.
    pub push: PushConfig,
    /// The loyalty program.
    pub loyalty: LoyaltyConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            api: ApiConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig::default(),
            remnawave: RemnawaveConfig::default(),
            worker: WorkerConfig::default(),
            scheduler: SchedulerConfig::default(),
            telegram: TelegramConfig::default(),
            trial: TrialConfig::default(),
            referral: ReferralConfig::default(),
            payments: PaymentsConfig::default(),
            grpc: GrpcConfig::default(),
            bot: BotConfig::default(),
            backup: BackupConfig::default(),
            push: PushConfig::default(),
            loyalty: LoyaltyConfig::default(),
        }
    }
}

/// Firebase Cloud Messaging (HTTP v1); push is off unless the project id and the service account are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// The Firebase project id. Unset disables push.
    pub fcm_project_id: Option<String>,
    /// The service account's JSON key file contents (`client_email`, `private_key`, `token_uri`).
    pub fcm_service_account_json: Option<Secret<String>>,
    /// FCM API base URL.
    pub fcm_api_url: String,
}

/// Where FCM's HTTP v1 API lives.
pub const FCM_API_URL: &str = "https://fcm.googleapis.com";

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            fcm_project_id: None,
            fcm_service_account_json: None,
            fcm_api_url: FCM_API_URL.to_owned(),
        }
    }
}

impl PushConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !(self.fcm_api_url.starts_with("https://") || self.fcm_api_url.starts_with("http://")) {
            return invalid("push.fcm_api_url", "must start with https:// or http://");
        }
        if self.fcm_project_id.is_some() != self.fcm_service_account_json.is_some() {
            return invalid(
                "push.fcm_service_account_json",
                "push.fcm_project_id and push.fcm_service_account_json must be set together",
            );
        }
        if self
            .fcm_project_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return invalid("push.fcm_project_id", "must not be empty");
        }
        Ok(())
    }
}

/// The free trial: a subscription without a plan, once per customer and per Telegram account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrialConfig {
    /// Days the trial lasts (1 to 3650).
    pub days: u32,
    /// Traffic allowance in GB (10^9 bytes); 0 means unlimited.
    pub traffic_gb: u64,
}

impl Default for TrialConfig {
    fn default() -> Self {
        Self {
            days: 2,
            traffic_gb: 2,
        }
    }
}

/// Referral rewards: days added to the inviter's subscription per customer who signs up with their code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferralConfig {
    /// Days given to the inviter per referred customer (1 to 3650).
    pub bonus_days: u32,
    /// Referred customers that earn a bonus, per inviter.
    pub max_referrals: u32,
}

impl Default for ReferralConfig {
    fn default() -> Self {
        Self {
            bonus_days: 3,
            max_referrals: 100,
        }
    }
}

/// The loyalty program (levels and bonuses are business rules; only the premium squad is deployment-specific).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoyaltyConfig {
    /// Remnawave internal squad (name or uuid) with the premium nodes, added for Platinum customers; empty: off.
    pub premium_squad: String,
}

/// Crypto Pay mainnet API (CryptoBot).
pub const CRYPTOBOT_MAINNET_API_URL: &str = "https://pay.crypt.bot/api/";
/// Stripe API.
pub const STRIPE_API_URL: &str = "https://api.stripe.com/";
/// YooKassa API v3.
pub const YOOKASSA_API_URL: &str = "https://api.yookassa.ru/v3/";
/// The networks YooKassa sends notifications from, as published in its official SDK (`SecurityHelper`).
pub const YOOKASSA_NETWORKS: &[&str] = &[
    "185.71.76.0/27",
    "185.71.77.0/27",
    "77.75.153.0/25",
    "77.75.156.11",
    "77.75.156.35",
    "77.75.154.128/25",
    "2a02:5180:0:1509::/64",
    "2a02:5180:0:2655::/64",
    "2a02:5180:0:1533::/64",
    "2a02:5180:0:2669::/64",
];

/// Payment gateways; a gateway without credentials is disabled (Telegram Stars only needs the bot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// Crypto Pay app token; it is also the webhook signing key. Unset disables CryptoBot.
    pub cryptobot_token: Option<Secret<String>>,
    /// Crypto Pay API base URL (mainnet by default; testnet is `https://testnet-pay.crypt.bot/api/`).
    pub cryptobot_api_url: String,
    /// Stripe secret API key (`sk_…`). Unset disables Stripe.
    pub stripe_secret_key: Option<Secret<String>>,
    /// Stripe webhook endpoint secret (`whsec_…`, at least 32 characters); required with the secret key.
    pub stripe_webhook_secret: Option<Secret<String>>,
    /// Stripe API base URL.
    pub stripe_api_url: String,
    /// YooKassa shop id. Unset disables YooKassa.
    pub yookassa_shop_id: Option<String>,
    /// YooKassa secret key; required with the shop id.
    pub yookassa_secret_key: Option<Secret<String>>,
    /// YooKassa API base URL.
    pub yookassa_api_url: String,
    /// Networks YooKassa notifications may come from (addresses or CIDR).
    pub yookassa_trusted_networks: Vec<String>,
    /// Where gateways send the customer back after paying.
    pub return_url: String,
    /// Seconds an unpaid invoice stays payable.
    pub invoice_ttl_secs: u64,
    /// The exact `Authorization` header value set on RevenueCat's webhook. Unset disables the webhook.
    pub revenuecat_webhook_secret: Option<Secret<String>>,
    /// Whether RevenueCat's sandbox (test store) purchases are credited; production ones always are.
    pub revenuecat_accept_sandbox: bool,
    /// App-store product ids mapped to the codes of the plans they buy (`"com.example.vpn.month" = "basic_30"`).
    pub revenuecat_products: BTreeMap<String, String>,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            cryptobot_token: None,
            cryptobot_api_url: CRYPTOBOT_MAINNET_API_URL.to_owned(),
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_url: STRIPE_API_URL.to_owned(),
            yookassa_shop_id: None,
            yookassa_secret_key: None,
            yookassa_api_url: YOOKASSA_API_URL.to_owned(),
            yookassa_trusted_networks: YOOKASSA_NETWORKS.iter().map(|n| (*n).to_owned()).collect(),
            return_url: "https://t.me".to_owned(),
            invoice_ttl_secs: 3600,
            revenuecat_webhook_secret: None,
            revenuecat_accept_sandbox: false,
            revenuecat_products: BTreeMap::new(),
        }
    }
}

impl PaymentsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        for (key, url) in [
            ("payments.cryptobot_api_url", &self.cryptobot_api_url),
            ("payments.stripe_api_url", &self.stripe_api_url),
            ("payments.yookassa_api_url", &self.yookassa_api_url),
            ("payments.return_url", &self.return_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return invalid(key, "must start with https:// or http://");
            }
        }
        if let Some(token) = &self.cryptobot_token
            && token.expose().trim().is_empty()
        {
            return invalid("payments.cryptobot_token", "must not be empty");
        }
        if self.stripe_secret_key.is_some() && self.stripe_webhook_secret.is_none() {
            return invalid(
                "payments.stripe_webhook_secret",
                "is required when payments.stripe_secret_key is set",
            );
        }
        if let Some(secret) = &self.stripe_webhook_secret
            && secret.expose().chars().count() < 32
        {
            return invalid(
                "payments.stripe_webhook_secret",
                "must be at least 32 characters",
            );
        }
        if self.yookassa_shop_id.is_some() != self.yookassa_secret_key.is_some() {
            return invalid(
                "payments.yookassa_secret_key",
                "payments.yookassa_shop_id and payments.yookassa_secret_key must be set together",
            );
        }
        if let Some(entry) = self
            .yookassa_trusted_networks
            .iter()
            .find(|entry| !is_network(entry))
        {
            return Err(ConfigError::Invalid {
                key: "payments.yookassa_trusted_networks",
                reason: format!("`{entry}` is not an IP address or CIDR network"),
            });
        }
        if !(60..=2_678_400).contains(&self.invoice_ttl_secs) {
            return invalid(
                "payments.invoice_ttl_secs",
                "must be between 60 and 2678400 (31 days)",
            );
        }
        if let Some(secret) = &self.revenuecat_webhook_secret
            && secret.expose().trim().is_empty()
        {
            return invalid("payments.revenuecat_webhook_secret", "must not be empty");
        }
        if self
            .revenuecat_products
            .iter()
            .any(|(product, plan)| product.trim().is_empty() || plan.trim().is_empty())
        {
            return invalid(
                "payments.revenuecat_products",
                "product ids and plan codes must not be empty",
            );
        }
        Ok(())
    }
}

/// `1.2.3.4`, `1.2.3.0/24`, `2a02::/32`: an address with an optional prefix that fits it.
fn is_network(entry: &str) -> bool {
    let (addr, prefix) = match entry.trim().split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry.trim(), None),
    };
    let Ok(addr) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

/// Relational database settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://…` or `sqlite://…`; unset means SQLite in `data_dir`.
    pub url: Option<Secret<String>>,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// Seconds to wait for a connection before failing.
    pub connect_timeout_secs: u64,
    /// Apply pending migrations when the server starts.
    pub migrate: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 16,
            min_connections: 1,
            connect_timeout_secs: 5,
            migrate: false,
        }
    }
}

/// Redis settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://…` or `rediss://…`; unset means in-process state (standalone only).
    pub url: Option<Secret<String>>,
    /// Prefix of every key this deployment writes.
    pub key_prefix: String,
    /// Upper bound of pooled connections.
    pub pool_size: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "cybervpn:".to_owned(),
            pool_size: 16,
        }
    }
}

/// HTTP API server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
    /// Origins allowed by CORS (exact `scheme://host[:port]`); empty disables CORS.
    pub cors_allowed_origins: Vec<String>,
    /// Send `Strict-Transport-Security`: set when a TLS proxy fronts the api.
    pub hsts: bool,
    /// Take the client IP from `Forwarded`/`X-Forwarded-For` (only behind a proxy that sets them).
    pub trust_forwarded_headers: bool,
    /// Seconds the public plan catalogue is cached in memory.
    pub plans_cache_ttl_secs: u64,
    /// Seconds allowed for in-flight requests to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Seconds between the pings the api sends on staff WebSockets; a client silent for three is dropped.
    pub ws_heartbeat_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 0,
            body_limit_bytes: 64 * 1024,
            cors_allowed_origins: Vec::new(),
            hsts: false,
            trust_forwarded_headers: false,
            plans_cache_ttl_secs: 5,
            shutdown_timeout_secs: 10,
            ws_heartbeat_secs: 15,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    Pretty,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `info,cybervpn_api=debug`.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Json,
        }
    }
}

/// Distributed tracing: spans are exported over OTLP (gRPC) only when an endpoint is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317` (`OTEL_EXPORTER_OTLP_ENDPOINT`); unset exports
    /// nothing.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME`); unset: the binary's name (`cybervpn-api`,
    /// `cybervpn-worker`, …).
    pub service_name: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0; a trace started elsewhere follows its caller's decision.
    pub trace_sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: None,
            trace_sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return invalid(
                "telemetry.otlp_endpoint",
                "must start with http:// or https://",
            );
        }
        if self
            .service_name
            .as_ref()
            .is_some_and(|name| name.trim().is_empty())
        {
            return invalid("telemetry.service_name", "must not be empty");
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            return invalid(
                "telemetry.trace_sample_ratio",
                "must be between 0.0 and 1.0",
            );
        }
        Ok(())
    }
}

/// Authentication settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// PASERK `k4.secret.…` that signs access tokens. Unset: standalone generates one under `data_dir`;
    /// the api service refuses to start.
    pub token_signing_key: Option<Secret<String>>,
    /// PASERK `k4.public.…` keys of retired signing keys still accepted while their tokens live.
    pub previous_public_keys: Vec<String>,
    /// PASERK `k4.local.…` that encrypts TOTP secrets at rest. Unset: as for `token_signing_key`.
    pub encryption_key: Option<Secret<String>>,
    /// Access token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime in seconds of the pending token between password and 2FA code.
    pub pending_token_ttl_secs: u64,
    /// Staff must enable TOTP before using the admin API.
    pub staff_require_two_factor: bool,
    /// Issuer shown in authenticator apps.
    pub totp_issuer: String,
    /// Argon2id memory in KiB (at least the OWASP 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (at least 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    pub argon2_parallelism: u32,
    /// Requests per minute one IP may make to each sign-in endpoint (burst of the same size).
    pub ip_requests_per_minute: u32,
    /// Attempts per minute against one account (login, 2FA).
    pub account_requests_per_minute: u32,
    /// Failed logins before an account is locked.
    pub lockout_threshold: u32,
    /// First lockout in seconds; doubles with each further failure.
    pub lockout_base_secs: u64,
    /// Longest lockout in seconds.
    pub lockout_max_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_signing_key: None,
            previous_public_keys: Vec::new(),
            encryption_key: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            pending_token_ttl_secs: 5 * 60,
            staff_require_two_factor: false,
            totp_issuer: "CyberVPN".to_owned(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            ip_requests_per_minute: 20,
            account_requests_per_minute: 10,
            lockout_threshold: 5,
            lockout_base_secs: 30,
            lockout_max_secs: 15 * 60,
        }
    }
}

/// Remnawave panel settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemnawaveConfig {
    /// Panel base URL without `/api`, e.g. `https://panel.example.com`; unset disables provisioning.
    pub url: Option<String>,
    /// API token created in the panel UI.
    pub token: Option<Secret<String>>,
    /// Secret the panel signs webhooks with (`WEBHOOK_SECRET_HEADER`, at least 32 characters).
    pub webhook_secret: Option<Secret<String>>,
    /// Internal squads (names or uuids) given to new users.
    pub squads: Vec<String>,
    /// Extra headers sent with every panel request (e.g. `X-Api-Key` of a fronting proxy).
    pub extra_headers: BTreeMap<String, Secret<String>>,
    /// Seconds before a panel request times out.
    pub timeout_secs: u64,
    /// Device limit for subscriptions without a plan (trials).
    pub default_device_limit: u16,
}

impl Default for RemnawaveConfig {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            webhook_secret: None,
            squads: Vec::new(),
            extra_headers: BTreeMap::new(),
            timeout_secs: 10,
            default_device_limit: 1,
        }
    }
}

/// Background worker settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Address of the worker's `/health` and `/metrics`.
    pub listen: SocketAddr,
    /// Jobs of one type run at the same time.
    pub concurrency: usize,
    /// Milliseconds between outbox relay passes.
    pub relay_interval_ms: u64,
    /// Seconds in-flight jobs get to finish on shutdown (below `job_lease_secs`).
    pub shutdown_timeout_secs: u64,
    /// Seconds without a heartbeat after which a worker's jobs are taken back (a killed worker's jobs rerun).
    pub job_lease_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            concurrency: 4,
            relay_interval_ms: 1000,
            shutdown_timeout_secs: 20,
            job_lease_secs: 30,
        }
    }
}

/// Scheduler settings: one leader enqueues each periodic job at its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Address of the scheduler's `/health` and `/metrics`.
    pub listen: SocketAddr,
    /// Seconds the leader lease lasts without renewal.
    pub lease_ttl_secs: u64,
    /// Node sync interval in seconds.
    pub node_sync_secs: u64,
    /// Server geolocation interval in seconds.
    pub geolocation_secs: u64,
    /// Node health check interval in seconds.
    pub health_check_secs: u64,
    /// Bandwidth statistics interval in seconds.
    pub bandwidth_secs: u64,
    /// Per-user traffic statistics interval in seconds.
    pub traffic_stats_secs: u64,
    /// Server configuration (squads) refresh interval in seconds.
    pub server_configs_secs: u64,
    /// Reminder pass interval in seconds (subscription expiry and loyalty grace reminders).
    pub reminders_secs: u64,
    /// Expired-subscription disabling interval in seconds.
    pub disable_expired_secs: u64,
    /// Full reconciliation against the panel interval in seconds.
    pub reconcile_secs: u64,
    /// Interval in seconds of closing unpaid payments past their expiry and checking CryptoBot for missed
    /// webhooks.
    pub payments_secs: u64,
    /// Hours before expiry at which customers are reminded; 0 means "has expired".
    pub reminder_offsets_hours: Vec<u32>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9093)),
            lease_ttl_secs: 15,
            node_sync_secs: 5 * 60,
            geolocation_secs: 6 * 3600,
            health_check_secs: 2 * 60,
            bandwidth_secs: 5 * 60,
            traffic_stats_secs: 10 * 60,
            server_configs_secs: 30 * 60,
            reminders_secs: 15 * 60,
            disable_expired_secs: 5 * 60,
            reconcile_secs: 3600,
            payments_secs: 120,
            reminder_offsets_hours: vec![72, 24, 0],
        }
    }
}

/// Telegram settings used to deliver notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// Bot token from @BotFather (the bot delivers notifications with it); unset keeps them recorded only.
    pub bot_token: Option<Secret<String>>,
    /// Bot API base URL.
    pub api_url: String,
    /// Chats that receive admin notifications (node incidents, payments).
    pub admin_chat_ids: Vec<i64>,
    /// Seconds Mini App and Login Widget sign-in data stays valid after Telegram signed it (`auth_date`).
    pub auth_max_age_secs: u64,
    /// The Mini App's HTTPS address; set, the bot's menu opens it with a button.
    pub mini_app_url: Option<String>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            bot_token: None,
            api_url: "https://api.telegram.org".to_owned(),
            admin_chat_ids: Vec::new(),
            auth_max_age_secs: 86_400,
            mini_app_url: None,
        }
    }
}

/// The internal gRPC server of the api and the address other services call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Where the api serves gRPC (`CYBERVPN_GRPC_LISTEN`); keep it on a private network.
    pub listen: String,
    /// Where the bot reaches the api's gRPC server (`CYBERVPN_GRPC_URL`).
    pub url: String,
    /// The bot's service token (at least 32 characters), the same on both sides; unset serves no gRPC.
    pub bot_token: Option<Secret<String>>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".to_owned(),
            url: "http://127.0.0.1:50051".to_owned(),
            bot_token: None,
        }
    }
}

/// The Telegram bot service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// Where the bot serves `/health` and `/metrics` (and webhook updates in webhook mode).
    pub listen: String,
    /// Public HTTPS URL Telegram posts updates to (`TELEGRAM_WEBHOOK_URL`); unset uses long polling.
    pub webhook_url: Option<String>,
    /// Secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token` (`TELEGRAM_WEBHOOK_SECRET`).
    pub webhook_secret: Option<Secret<String>>,
    /// Long-polling timeout of `getUpdates`, in seconds.
    pub poll_timeout_secs: u64,
    /// Updates one user may send per minute before the bot stops answering them for a while.
    pub user_updates_per_minute: u32,
    /// Answer customers with a maintenance notice (staff still get through).
    pub maintenance: bool,
    /// Bot username, for referral links (`t.me/<username>?start=ref_…`); read from `getMe` when unset.
    pub username: Option<String>,
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9092".to_owned(),
            webhook_url: None,
            webhook_secret: None,
            poll_timeout_secs: 30,
            user_updates_per_minute: 30,
            maintenance: false,
            username: None,
        }
    }
}

/// Daily database backups: dumped by the worker, compressed, kept on disk and sent to the admin chats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Take the daily backup.
    pub enabled: bool,
    /// Hour of the day (UTC, 0–23) at which the backup is taken.
    pub hour_utc: u32,
    /// Directory of the backups; unset means `data_dir/backups`.
    pub dir: Option<PathBuf>,
    /// Backups kept in `dir`; older ones are deleted.
    pub keep: usize,
    /// The `pg_dump` program used for PostgreSQL (its major version must not be older than the server's).
    pub pg_dump: String,
    /// Send each backup to the admin chats (`telegram.admin_chat_ids`) through the bot.
    pub send_to_telegram: bool,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hour_utc: 3,
            dir: None,
            keep: 7,
            pg_dump: "pg_dump".to_owned(),
            send_to_telegram: true,
        }
    }
}

impl Config {
    /// The directory backups are written to.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("backups"))
    }
}

/// Largest body limit an operator may configure (64 MiB).
const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;

impl Config {
    /// Loads defaults, then `file` (which must exist when given), then `env`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Self = figment.merge(EnvVars::collect(env)).extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The database URL in effect: the configured one, or SQLite under `data_dir`.
    pub fn database_url(&self) -> Secret<String> {
        self.database.url.clone().unwrap_or_else(|| {
            Secret::new(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("cybervpn.db").display()
            ))
        })
    }

    /// Checks rules that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if let Some(url) = &self.database.url {
            let url = url.expose();
            if !["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return invalid(
                    "database.url",
                    "must start with postgres://, postgresql:// or sqlite:",
                );
            }
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.database.min_connections > self.database.max_connections {
            return invalid(
                "database.min_connections",
                "must not exceed database.max_connections",
            );
        }
        if self.database.connect_timeout_secs == 0 {
            return invalid("database.connect_timeout_secs", "must be at least 1");
        }
        if let Some(url) = &self.redis.url {
            let url = url.expose();
            if !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
            {
                return invalid(
                    "redis.url",
                    "must start with redis://, rediss:// or unix://",
                );
            }
        }
        if self.redis.pool_size == 0 {
            return invalid("redis.pool_size", "must be at least 1");
        }
        if !(1..=MAX_BODY_LIMIT).contains(&self.api.body_limit_bytes) {
            return invalid("api.body_limit_bytes", "must be between 1 and 67108864");
        }
        if let Some(origin) = self
            .api
            .cors_allowed_origins
            .iter()
            .find(|origin| !is_exact_origin(origin))
        {
            return Err(ConfigError::Invalid {
                key: "api.cors_allowed_origins",
                reason: format!(
                    "`{origin}` is not an exact origin like https://app.example.com (no wildcard, no path)"
                ),
            });
        }
        if self.log.level.trim().is_empty() {
            return invalid("log.level", "must not be empty");
        }
        self.telemetry.validate()?;
        self.auth.validate()?;
        self.remnawave.validate()?;
        self.scheduler.validate()?;
        self.payments.validate()?;
        self.push.validate()?;
        if self
            .telegram
            .mini_app_url
            .as_deref()
            .is_some_and(|url| !url.starts_with("https://") || url.len() <= "https://".len())
        {
            return invalid(
                "telegram.mini_app_url",
                "must be an https:// address (Telegram opens only HTTPS Mini Apps)",
            );
        }
        if !(60..=2_678_400).contains(&self.telegram.auth_max_age_secs) {
            return invalid(
                "telegram.auth_max_age_secs",
                "must be between 60 and 2678400 (31 days)",
            );
        }
        if let Some(token) = &self.grpc.bot_token
            && token.expose().chars().count() < 32
        {
            return invalid("grpc.bot_token", "must be at least 32 characters");
        }
        if !(self.grpc.url.starts_with("http://") || self.grpc.url.starts_with("https://")) {
            return invalid("grpc.url", "must start with http:// or https://");
        }
        if let Some(secret) = &self.bot.webhook_secret {
            let secret = secret.expose();
            if !(1..=256).contains(&secret.len())
                || !secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return invalid(
                    "bot.webhook_secret",
                    "must be 1 to 256 of A-Z, a-z, 0-9, '_' and '-' (Telegram's rule)",
                );
            }
        }
        if self.bot.webhook_url.is_some() && self.bot.webhook_secret.is_none() {
            return invalid(
                "bot.webhook_secret",
                "is required in webhook mode (bot.webhook_url is set)",
            );
        }
        if !(1..=50).contains(&self.bot.poll_timeout_secs) {
            return invalid("bot.poll_timeout_secs", "must be between 1 and 50");
        }
        if self.bot.user_updates_per_minute == 0 {
            return invalid("bot.user_updates_per_minute", "must be at least 1");
        }
        if !(1..=3650).contains(&self.trial.days) {
            return invalid("trial.days", "must be between 1 and 3650");
        }
        if self.trial.traffic_gb > 1_000_000 {
            return invalid("trial.traffic_gb", "must be at most 1000000");
        }
        if !(1..=3650).contains(&self.referral.bonus_days) {
            return invalid("referral.bonus_days", "must be between 1 and 3650");
        }
        if self.worker.concurrency == 0 {
            return invalid("worker.concurrency", "must be at least 1");
        }
        if self.worker.relay_interval_ms == 0 {
            return invalid("worker.relay_interval_ms", "must be at least 1");
        }
        if self.worker.job_lease_secs < 3 {
            return invalid("worker.job_lease_secs", "must be at least 3");
        }
        if self.worker.shutdown_timeout_secs >= self.worker.job_lease_secs {
            return invalid(
                "worker.shutdown_timeout_secs",
                "must be below worker.job_lease_secs (a draining worker sends no heartbeats)",
            );
        }
        if self.api.ws_heartbeat_secs == 0 {
            return invalid("api.ws_heartbeat_secs", "must be at least 1");
        }
        if self.backup.hour_utc > 23 {
            return invalid("backup.hour_utc", "must be an hour of the day, 0 to 23");
        }
        if self.backup.keep == 0 {
            return invalid("backup.keep", "must keep at least 1 backup");
        }
        if self.backup.pg_dump.trim().is_empty() {
            return invalid("backup.pg_dump", "must name the pg_dump program");
        }
        Ok(())
    }
}

impl RemnawaveConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if let Some(url) = &self.url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return invalid("remnawave.url", "must start with https:// or http://");
            }
            if url.trim_end_matches('/').ends_with("/api") {
                return invalid(
                    "remnawave.url",
                    "must be the panel's base URL, without /api",
                );
            }
            if self.token.is_none() {
                return invalid("remnawave.token", "is required when remnawave.url is set");
            }
        }
        if let Some(secret) = &self.webhook_secret
            && secret.expose().chars().count() < 32
        {
            return invalid("remnawave.webhook_secret", "must be at least 32 characters");
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return invalid("remnawave.timeout_secs", "must be between 1 and 300");
        }
        Ok(())
    }
}

impl SchedulerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.lease_ttl_secs < 3 {
            return Err(ConfigError::Invalid {
                key: "scheduler.lease_ttl_secs",
                reason: "must be at least 3".to_owned(),
            });
        }
        let intervals = [
            ("scheduler.node_sync_secs", self.node_sync_secs),
            ("scheduler.geolocation_secs", self.geolocation_secs),
            ("scheduler.health_check_secs", self.health_check_secs),
            ("scheduler.bandwidth_secs", self.bandwidth_secs),
            ("scheduler.traffic_stats_secs", self.traffic_stats_secs),
            ("scheduler.server_configs_secs", self.server_configs_secs),
            ("scheduler.reminders_secs", self.reminders_secs),
            ("scheduler.disable_expired_secs", self.disable_expired_secs),
            ("scheduler.reconcile_secs", self.reconcile_secs),
            ("scheduler.payments_secs", self.payments_secs),
        ];
        if let Some((key, _)) = intervals.iter().find(|(_, secs)| *secs == 0) {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be at least 1 second".to_owned(),
            });
        }
        Ok(())
    }
}

impl AuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self
            .token_signing_key
            .as_ref()
            .is_some_and(|key| !key.expose().starts_with("k4.secret."))
        {
            return invalid("auth.token_signing_key", "must be a PASERK k4.secret.… key");
        }
        if self
            .previous_public_keys
            .iter()
            .any(|key| !key.starts_with("k4.public."))
        {
            return invalid(
                "auth.previous_public_keys",
                "each must be a PASERK k4.public.… key",
            );
        }
        if self
            .encryption_key
            .as_ref()
            .is_some_and(|key| !key.expose().starts_with("k4.local."))
        {
            return invalid("auth.encryption_key", "must be a PASERK k4.local.… key");
        }
        if !(60..=24 * 3600).contains(&self.access_token_ttl_secs) {
            return invalid("auth.access_token_ttl_secs", "must be between 60 and 86400");
        }
        if self.refresh_token_ttl_secs <= self.access_token_ttl_secs {
            return invalid(
                "auth.refresh_token_ttl_secs",
                "must exceed auth.access_token_ttl_secs",
            );
        }
        if !(30..=3600).contains(&self.pending_token_ttl_secs) {
            return invalid("auth.pending_token_ttl_secs", "must be between 30 and 3600");
        }
        if self.totp_issuer.trim().is_empty() {
            return invalid("auth.totp_issuer", "must not be empty");
        }
        if self.argon2_memory_kib < 19_456 {
            return invalid("auth.argon2_memory_kib", "must be at least 19456 (OWASP)");
        }
        if self.argon2_iterations < 2 {
            return invalid("auth.argon2_iterations", "must be at least 2 (OWASP)");
        }
        if !(1..=16).contains(&self.argon2_parallelism) {
            return invalid("auth.argon2_parallelism", "must be between 1 and 16");
        }
        if self.ip_requests_per_minute == 0 {
            return invalid("auth.ip_requests_per_minute", "must be at least 1");
        }
        if self.account_requests_per_minute == 0 {
            return invalid("auth.account_requests_per_minute", "must be at least 1");
        }
        if self.lockout_threshold == 0 {
            return invalid("auth.lockout_threshold", "must be at least 1");
        }
        if self.lockout_base_secs == 0 || self.lockout_max_secs < self.lockout_base_secs {
            return invalid(
                "auth.lockout_max_secs",
                "must be at least auth.lockout_base_secs, which must be positive",
            );
        }
        Ok(())
    }
}

/// `scheme://host[:port]` with no wildcard, path, query or credentials.
fn is_exact_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    host_ok && port_ok
}

#[cfg(test)]
mod tests;
