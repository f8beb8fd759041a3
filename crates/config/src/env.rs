use figment::{
    Error, Metadata, Profile, Provider,
    value::{Dict, Map, Value},
};

/// Keys whose values are strings: taken verbatim, never parsed (`CYBERVPN_REDIS_KEY_PREFIX=2024` is a string).
pub(crate) const STRING_KEYS: &[&str] = &[
    "data_dir",
    "database.url",
    "redis.url",
    "redis.key_prefix",
    "api.listen",
    "log.level",
    "log.format",
    "telemetry.otlp_endpoint",
    "telemetry.service_name",
    "auth.token_signing_key",
    "auth.encryption_key",
    "auth.totp_issuer",
    "remnawave.url",
    "remnawave.token",
    "remnawave.webhook_secret",
    "loyalty.premium_squad",
    "worker.listen",
    "scheduler.listen",
    "telegram.bot_token",
    "telegram.api_url",
    "telegram.mini_app_url",
    "payments.cryptobot_token",
    "payments.cryptobot_api_url",
    "payments.stripe_secret_key",
    "payments.stripe_webhook_secret",
    "payments.stripe_api_url",
    "payments.yookassa_shop_id",
    "payments.yookassa_secret_key",
    "payments.yookassa_api_url",
    "payments.return_url",
    "payments.revenuecat_webhook_secret",
    "grpc.listen",
    "grpc.url",
    "grpc.bot_token",
    "bot.listen",
    "bot.webhook_url",
    "bot.webhook_secret",
    "bot.username",
    "backup.dir",
    "backup.pg_dump",
    "push.fcm_project_id",
    "push.fcm_service_account_json",
    "push.fcm_api_url",
];

/// Sections whose keys may be set as `CYBERVPN_<SECTION>_<KEY>`.
const SECTIONS: &[&str] = &[
    "database",
    "redis",
    "api",
    "log",
    "telemetry",
    "auth",
    "remnawave",
    "worker",
    "scheduler",
    "telegram",
    "trial",
    "referral",
    "payments",
    "grpc",
    "bot",
    "backup",
    "push",
    "loyalty",
];

/// Environment variables mapped onto configuration keys.
///
/// `DATABASE_URL` → `database.url`, `REDIS_URL` → `redis.url`, `CYBERVPN_DATA_DIR` → `data_dir`,
/// `REMNAWAVE_URL`/`_TOKEN`/`_WEBHOOK_SECRET`/`_SQUADS` → `remnawave.*`,
/// `CRYPTOBOT_TOKEN`/`_API_URL`, `STRIPE_SECRET_KEY`/`_WEBHOOK_SECRET`/`_API_URL`,
/// `YOOKASSA_SHOP_ID`/`_SECRET_KEY`/`_API_URL`/`_TRUSTED_NETWORKS`, `REVENUECAT_WEBHOOK_SECRET`/`_PRODUCTS`
/// → `payments.*`,
/// `TELEGRAM_BOT_TOKEN`/`_API_BASE` → `telegram.*`, `TELEGRAM_WEBHOOK_URL`/`_SECRET` → `bot.webhook_*`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT`/`OTEL_SERVICE_NAME` → `telemetry.*`, `CYBERVPN_API_LISTEN` → `api.listen`.
/// A `CYBERVPN_<SECTION>_<KEY>` variable wins over a shorter alias of the same key. Other variables are ignored, except `CYBERVPN_<SECTION>_…` of a known
/// section, which must name a real key.
#[derive(Debug, Clone, Default)]
pub struct EnvVars {
    /// (original variable name, dotted key, raw value)
    vars: Vec<(String, String, String)>,
}

impl EnvVars {
    /// Keeps the variables that map onto configuration keys; an empty one counts as unset (Compose passes
    /// `${VAR:-}` as an empty string).
    pub fn collect(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut vars: Vec<_> = vars
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .filter_map(|(name, value)| key_for(&name).map(|key| (name, key, value)))
            .collect();
        // Later values overwrite earlier ones: the `CYBERVPN_` spelling goes last, so it wins over an alias.
        vars.sort_by_key(|(name, _, _)| name.starts_with("CYBERVPN_"));
        Self { vars }
    }
}

fn key_for(name: &str) -> Option<String> {
    match name {
        "DATABASE_URL" => return Some("database.url".to_owned()),
        "REDIS_URL" => return Some("redis.url".to_owned()),
        "CYBERVPN_DATA_DIR" => return Some("data_dir".to_owned()),
        "REMNAWAVE_URL" => return Some("remnawave.url".to_owned()),
        "REMNAWAVE_TOKEN" => return Some("remnawave.token".to_owned()),
        "REMNAWAVE_WEBHOOK_SECRET" => return Some("remnawave.webhook_secret".to_owned()),
        "REMNAWAVE_SQUADS" => return Some("remnawave.squads".to_owned()),
        "CRYPTOBOT_TOKEN" => return Some("payments.cryptobot_token".to_owned()),
        "CRYPTOBOT_API_URL" => return Some("payments.cryptobot_api_url".to_owned()),
        "YOOKASSA_SHOP_ID" => return Some("payments.yookassa_shop_id".to_owned()),
        "YOOKASSA_SECRET_KEY" => return Some("payments.yookassa_secret_key".to_owned()),
        "YOOKASSA_API_URL" => return Some("payments.yookassa_api_url".to_owned()),
        "YOOKASSA_TRUSTED_NETWORKS" => {
            return Some("payments.yookassa_trusted_networks".to_owned());
        }
        "STRIPE_SECRET_KEY" => return Some("payments.stripe_secret_key".to_owned()),
        "STRIPE_WEBHOOK_SECRET" => return Some("payments.stripe_webhook_secret".to_owned()),
        "STRIPE_API_URL" => return Some("payments.stripe_api_url".to_owned()),
        "REVENUECAT_WEBHOOK_SECRET" => {
            return Some("payments.revenuecat_webhook_secret".to_owned());
        }
        "REVENUECAT_PRODUCTS" => return Some("payments.revenuecat_products".to_owned()),
        "TELEGRAM_BOT_TOKEN" => return Some("telegram.bot_token".to_owned()),
        "TELEGRAM_API_BASE" => return Some("telegram.api_url".to_owned()),
        "TELEGRAM_WEBHOOK_URL" => return Some("bot.webhook_url".to_owned()),
        "TELEGRAM_WEBHOOK_SECRET" => return Some("bot.webhook_secret".to_owned()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => return Some("telemetry.otlp_endpoint".to_owned()),
        "OTEL_SERVICE_NAME" => return Some("telemetry.service_name".to_owned()),
        _ => {}
    }
    let rest = name.strip_prefix("CYBERVPN_")?.to_ascii_lowercase();
    SECTIONS.iter().find_map(|section| {
        rest.strip_prefix(section)
            .and_then(|key| key.strip_prefix('_'))
            .filter(|key| !key.is_empty())
            .map(|key| format!("{section}.{key}"))
    })
}

/// `product=plan,product=plan` as a table; an entry without `=` keeps an empty plan code, which validation
/// then refuses by name.
fn product_map(raw: &str) -> Value {
    let mut map = Dict::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (product, plan) = entry.split_once('=').unwrap_or((entry, ""));
        map.insert(
            product.trim().to_owned(),
            Value::from(plan.trim().to_owned()),
        );
    }
    Value::from(map)
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        let names: Vec<(String, String)> = self
            .vars
            .iter()
            .map(|(name, key, _)| (key.clone(), name.clone()))
            .collect();
        Metadata::named("environment variable").interpolater(move |_: &Profile, keys: &[&str]| {
            let key = keys.join(".");
            names
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(key, |(_, name)| name.clone())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (_, key, raw) in &self.vars {
            // Strings stay verbatim: parsing `2024` or a password as TOML would reshape it.
            let value = if STRING_KEYS.contains(&key.as_str()) {
                Value::from(raw.clone())
            } else if (key == "remnawave.squads" || key == "payments.yookassa_trusted_networks")
                && !raw.trim_start().starts_with('[')
            {
                // `REMNAWAVE_SQUADS=Default,Premium`: a comma-separated list is accepted as well as TOML.
                Value::from(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>(),
                )
            } else if key == "payments.revenuecat_products" && !raw.trim_start().starts_with('{') {
                // `REVENUECAT_PRODUCTS=com.example.month=basic_30,com.example.year=basic_365`; empty is none.
                product_map(raw)
            } else {
                raw.parse().unwrap_or_else(|never| match never {})
            };
            match key.split_once('.') {
                Some((section, field)) => {
                    let entry = dict
                        .entry(section.to_owned())
                        .or_insert_with(|| Value::from(Dict::new()));
                    if let Value::Dict(_, fields) = entry {
                        fields.insert(field.to_owned(), value);
                    }
                }
                None => {
                    dict.insert(key.clone(), value);
                }
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}
