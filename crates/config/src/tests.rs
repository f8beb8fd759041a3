use std::collections::BTreeSet;

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_apply_with_no_file_and_no_env() {
    let config = Config::load(None, env(&[])).expect("defaults are valid");
    assert_eq!(config, Config::default());
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        config.database_url().expose(),
        "sqlite://./data/cybervpn.db?mode=rwc"
    );
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cybervpn.toml");
    std::fs::write(
        &file,
        "[api]\nlisten = \"0.0.0.0:9000\"\nworkers = 3\n[log]\nformat = \"pretty\"\n",
    )
    .expect("write");
    let config = Config::load(
        Some(&file),
        env(&[
            ("CYBERVPN_API_LISTEN", "127.0.0.1:7000"),
            ("DATABASE_URL", "postgres://u:p@db/cybervpn"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("CYBERVPN_DATA_DIR", "/var/lib/cybervpn"),
            (
                "CYBERVPN_API_CORS_ALLOWED_ORIGINS",
                "[\"https://app.example.com\"]",
            ),
            ("CYBERVPN_TEST_PG_URL", "ignored: not a config section"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.api.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(config.api.workers, 3);
    assert_eq!(config.log.format, LogFormat::Pretty);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/cybervpn"));
    assert_eq!(config.database_url().expose(), "postgres://u:p@db/cybervpn");
    assert_eq!(
        config.api.cors_allowed_origins,
        vec!["https://app.example.com".to_owned()]
    );
    assert!(config.redis.url.is_some());
}

#[test]
fn bad_type_names_the_environment_variable() {
    let err =
        Config::load(None, env(&[("CYBERVPN_API_LISTEN", "not-an-address")])).expect_err("invalid");
    let message = err.to_string();
    assert!(message.contains("CYBERVPN_API_LISTEN"), "{message}");
}

#[test]
fn unknown_key_in_a_known_section_is_rejected() {
    let err = Config::load(None, env(&[("CYBERVPN_API_LISTNE", "127.0.0.1:1")])).expect_err("typo");
    assert!(err.to_string().contains("listne"), "{err}");
}

#[test]
fn bad_file_value_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[database]\nmax_connections = \"many\"\n").expect("write");
    let err = Config::load(Some(&file), env(&[])).expect_err("invalid");
    assert!(err.to_string().contains("max_connections"), "{err}");
}

#[test]
fn missing_config_file_is_an_error() {
    let err = Config::load(Some(Path::new("/nonexistent/cybervpn.toml")), env(&[]))
        .expect_err("missing file");
    assert!(err.to_string().contains("cybervpn.toml"), "{err}");
}

#[test]
fn rule_violations_name_the_key_without_echoing_secrets() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("DATABASE_URL", "mysql://root:hunter2@db/x")],
            "database.url",
        ),
        (&[("REDIS_URL", "http://:hunter2@r")], "redis.url"),
        (
            &[("CYBERVPN_DATABASE_MAX_CONNECTIONS", "0")],
            "database.max_connections",
        ),
        (
            &[("CYBERVPN_DATABASE_MIN_CONNECTIONS", "99")],
            "database.min_connections",
        ),
        (
            &[("CYBERVPN_API_BODY_LIMIT_BYTES", "0")],
            "api.body_limit_bytes",
        ),
        (
            &[("CYBERVPN_API_CORS_ALLOWED_ORIGINS", "[\"*\"]")],
            "api.cors_allowed_origins",
        ),
        (
            &[(
                "CYBERVPN_API_CORS_ALLOWED_ORIGINS",
                "[\"https://a.com/path\"]",
            )],
            "api.cors_allowed_origins",
        ),
        (&[("CYBERVPN_LOG_LEVEL", " ")], "log.level"),
        (
            &[("CYBERVPN_AUTH_TOKEN_SIGNING_KEY", "hunter2")],
            "auth.token_signing_key",
        ),
        (
            &[("CYBERVPN_AUTH_ENCRYPTION_KEY", "hunter2")],
            "auth.encryption_key",
        ),
        (
            &[("CYBERVPN_AUTH_ARGON2_MEMORY_KIB", "1024")],
            "auth.argon2_memory_kib",
        ),
        (
            &[("CYBERVPN_AUTH_ACCESS_TOKEN_TTL_SECS", "5")],
            "auth.access_token_ttl_secs",
        ),
    ];
    for (vars, key) in cases {
        let err = Config::load(None, env(vars)).expect_err(key);
        let message = err.to_string();
        assert!(
            matches!(err, ConfigError::Invalid { key: k, .. } if k == *key),
            "{key}: {message}"
        );
        assert!(!message.contains("hunter2"), "secret leaked: {message}");
    }
}

#[test]
fn secrets_are_redacted_in_debug_and_serialization() {
    let config =
        Config::load(None, env(&[("DATABASE_URL", "postgres://u:hunter2@db/x")])).expect("valid");
    assert!(!format!("{config:?}").contains("hunter2"));
    assert!(
        !serde_json::to_string(&config)
            .expect("json")
            .contains("hunter2")
    );
    assert_eq!(
        config.database.url.as_ref().map(|s| s.expose().as_str()),
        Some("postgres://u:hunter2@db/x")
    );
}

fn keys(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let toml::Value::Table(table) = value {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                keys(v, &key, out);
            } else {
                out.insert(key);
            }
        }
    }
}

/// `docs/config.example.toml` documents every key: optional keys appear commented out as `# key = value`.
#[test]
fn example_config_documents_every_key_and_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.example.toml");
    let text = std::fs::read_to_string(&path).expect("docs/config.example.toml exists");

    let loaded = Config::load(Some(&path), env(&[])).expect("example loads as is");
    assert_eq!(loaded, Config::default(), "example shows the defaults");

    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let documented: toml::Value = toml::from_str(&uncommented).expect("example is TOML");
    let mut documented_keys = BTreeSet::new();
    keys(&documented, "", &mut documented_keys);

    let mut full = full_config();
    full.remnawave
        .extra_headers
        .insert("X-Api-Key".to_owned(), Secret::new(String::new()));
    full.payments
        .revenuecat_products
        .insert("com.example.vpn.month".to_owned(), String::new());
    let actual: toml::Value = toml::Value::try_from(&full).expect("config serializes");
    let mut actual_keys = BTreeSet::new();
    keys(&actual, "", &mut actual_keys);

    assert_eq!(documented_keys, actual_keys);
}

/// Every optional key set, so that serialization shows it.
fn full_config() -> Config {
    let mut full = Config::default();
    let secret = || Some(Secret::new(String::new()));
    full.database.url = secret();
    full.redis.url = secret();
    full.auth.token_signing_key = secret();
    full.auth.encryption_key = secret();
    full.remnawave.url = Some(String::new());
    full.remnawave.token = secret();
    full.remnawave.webhook_secret = secret();
    full.telegram.bot_token = secret();
    full.telegram.mini_app_url = Some(String::new());
    full.payments.cryptobot_token = secret();
    full.payments.stripe_secret_key = secret();
    full.payments.stripe_webhook_secret = secret();
    full.payments.yookassa_shop_id = Some(String::new());
    full.payments.yookassa_secret_key = secret();
    full.payments.revenuecat_webhook_secret = secret();
    full.grpc.bot_token = secret();
    full.bot.webhook_url = Some(String::new());
    full.bot.webhook_secret = secret();
    full.bot.username = Some(String::new());
    full.telemetry.otlp_endpoint = Some(String::new());
    full.telemetry.service_name = Some(String::new());
    full.backup.dir = Some(std::path::PathBuf::new());
    full.push.fcm_project_id = Some(String::new());
    full.push.fcm_service_account_json = secret();
    full
}

fn string_keys(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let toml::Value::Table(table) = value {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(_) => string_keys(v, &key, out),
                toml::Value::String(_) => {
                    out.insert(key);
                }
                _ => {}
            }
        }
    }
}

/// Every string-typed key is read verbatim from the environment, and only those.
#[test]
fn string_keys_list_matches_the_string_fields() {
    let full = full_config();
    let value = toml::Value::try_from(&full).expect("config serializes");
    let mut actual = BTreeSet::new();
    string_keys(&value, "", &mut actual);
    let listed: BTreeSet<String> = env::STRING_KEYS.iter().map(|k| (*k).to_owned()).collect();
    assert_eq!(listed, actual);
}

#[test]
fn numeric_looking_strings_stay_strings() {
    let config = Config::load(
        None,
        env(&[
            ("CYBERVPN_REDIS_KEY_PREFIX", "2024"),
            ("CYBERVPN_AUTH_TOTP_ISSUER", "true"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.redis.key_prefix, "2024");
    assert_eq!(config.auth.totp_issuer, "true");
}

#[test]
fn remnawave_variables_map_onto_the_section() {
    let config = Config::load(
        None,
        env(&[
            ("REMNAWAVE_URL", "https://panel.example.com"),
            ("REMNAWAVE_TOKEN", "12345"),
            (
                "REMNAWAVE_WEBHOOK_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            ("REMNAWAVE_SQUADS", "Default-Squad, Premium"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        config.remnawave.url.as_deref(),
        Some("https://panel.example.com")
    );
    assert_eq!(
        config
            .remnawave
            .token
            .map(|t| t.expose().clone())
            .as_deref(),
        Some("12345")
    );
    assert_eq!(config.remnawave.squads, ["Default-Squad", "Premium"]);
}

#[test]
fn remnawave_rules_are_enforced() {
    let short = Config::load(None, env(&[("REMNAWAVE_WEBHOOK_SECRET", "too-short")]));
    assert!(
        matches!(
            short,
            Err(ConfigError::Invalid {
                key: "remnawave.webhook_secret",
                ..
            })
        ),
        "{short:?}"
    );
    let with_api = Config::load(
        None,
        env(&[
            ("REMNAWAVE_URL", "https://panel.example.com/api"),
            ("REMNAWAVE_TOKEN", "t"),
        ]),
    );
    assert!(
        matches!(
            with_api,
            Err(ConfigError::Invalid {
                key: "remnawave.url",
                ..
            })
        ),
        "{with_api:?}"
    );
    let no_token = Config::load(None, env(&[("REMNAWAVE_URL", "https://panel.example.com")]));
    assert!(
        matches!(
            no_token,
            Err(ConfigError::Invalid {
                key: "remnawave.token",
                ..
            })
        ),
        "{no_token:?}"
    );
}

#[test]
fn trial_and_referral_sections_load_from_env_and_are_checked() {
    let config = Config::load(
        None,
        env(&[
            ("CYBERVPN_TRIAL_DAYS", "3"),
            ("CYBERVPN_TRIAL_TRAFFIC_GB", "5"),
            ("CYBERVPN_REFERRAL_BONUS_DAYS", "7"),
            ("CYBERVPN_REFERRAL_MAX_REFERRALS", "10"),
        ]),
    )
    .expect("valid");
    assert_eq!((config.trial.days, config.trial.traffic_gb), (3, 5));
    assert_eq!(
        (config.referral.bonus_days, config.referral.max_referrals),
        (7, 10)
    );
    let defaults = Config::default();
    assert_eq!((defaults.trial.days, defaults.trial.traffic_gb), (2, 2));
    assert_eq!(
        (
            defaults.referral.bonus_days,
            defaults.referral.max_referrals
        ),
        (3, 100)
    );
    for (var, key) in [
        ("CYBERVPN_TRIAL_DAYS", "trial.days"),
        ("CYBERVPN_REFERRAL_BONUS_DAYS", "referral.bonus_days"),
    ] {
        match Config::load(None, env(&[(var, "0")])) {
            Err(ConfigError::Invalid { key: got, .. }) => assert_eq!(got, key),
            other => panic!("{var}=0 must be refused, got {other:?}"),
        }
    }
}

#[test]
fn payments_section_loads_from_env_and_is_checked() {
    let config = Config::load(
        None,
        env(&[
            ("CRYPTOBOT_TOKEN", "12345:AAAA"),
            ("CRYPTOBOT_API_URL", "https://testnet-pay.crypt.bot/api/"),
            ("STRIPE_SECRET_KEY", "sk_test_1"),
            (
                "STRIPE_WEBHOOK_SECRET",
                "whsec_0123456789abcdef0123456789abcdef",
            ),
            ("STRIPE_API_URL", "http://127.0.0.1:1/"),
            ("YOOKASSA_SHOP_ID", "123456"),
            ("YOOKASSA_SECRET_KEY", "test_secret"),
            ("YOOKASSA_API_URL", "http://127.0.0.1:2/v3/"),
            ("YOOKASSA_TRUSTED_NETWORKS", "127.0.0.1, 10.0.0.0/8"),
            ("CYBERVPN_PAYMENTS_INVOICE_TTL_SECS", "600"),
        ]),
    )
    .expect("valid");
    let payments = &config.payments;
    assert_eq!(
        payments
            .cryptobot_token
            .as_ref()
            .map(|t| t.expose().clone()),
        Some("12345:AAAA".to_owned())
    );
    assert_eq!(
        payments.cryptobot_api_url,
        "https://testnet-pay.crypt.bot/api/"
    );
    assert_eq!(payments.yookassa_shop_id.as_deref(), Some("123456"));
    assert_eq!(
        payments.yookassa_trusted_networks,
        vec!["127.0.0.1".to_owned(), "10.0.0.0/8".to_owned()]
    );
    assert_eq!(payments.invoice_ttl_secs, 600);
    let defaults = Config::default().payments;
    assert_eq!(defaults.cryptobot_api_url, "https://pay.crypt.bot/api/");
    assert_eq!(defaults.invoice_ttl_secs, 3600);
    assert_eq!(defaults.yookassa_trusted_networks.len(), 10);

    for (vars, key) in [
        (
            vec![
                ("STRIPE_SECRET_KEY", "sk_test_1"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_short"),
            ],
            "payments.stripe_webhook_secret",
        ),
        (
            vec![("STRIPE_SECRET_KEY", "sk_test_1")],
            "payments.stripe_webhook_secret",
        ),
        (
            vec![("YOOKASSA_SHOP_ID", "1")],
            "payments.yookassa_secret_key",
        ),
        (
            vec![("YOOKASSA_TRUSTED_NETWORKS", "300.1.1.1")],
            "payments.yookassa_trusted_networks",
        ),
        (
            vec![("CYBERVPN_PAYMENTS_INVOICE_TTL_SECS", "0")],
            "payments.invoice_ttl_secs",
        ),
    ] {
        match Config::load(None, env(&vars)) {
            Err(ConfigError::Invalid { key: got, reason }) => {
                assert_eq!(got, key);
                assert!(!reason.contains("whsec_short"), "{reason}");
            }
            other => panic!("{vars:?} must be refused, got {other:?}"),
        }
    }
}

#[test]
fn grpc_and_bot_settings_are_checked() {
    let token = "t".repeat(32);
    let config = Config::load(
        None,
        env(&[
            ("CYBERVPN_GRPC_BOT_TOKEN", token.as_str()),
            ("CYBERVPN_GRPC_URL", "http://api:50051"),
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TELEGRAM_API_BASE", "http://127.0.0.1:8081"),
            ("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/telegram"),
            ("TELEGRAM_WEBHOOK_SECRET", "s3cret_token-1"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.grpc.url, "http://api:50051");
    assert_eq!(config.telegram.api_url, "http://127.0.0.1:8081");
    assert_eq!(
        config.bot.webhook_url.as_deref(),
        Some("https://bot.example.com/telegram")
    );
    for (vars, key) in [
        (vec![("CYBERVPN_GRPC_BOT_TOKEN", "short")], "grpc.bot_token"),
        (vec![("CYBERVPN_GRPC_URL", "api:50051")], "grpc.url"),
        (
            vec![("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/t")],
            "bot.webhook_secret",
        ),
        (
            vec![
                ("TELEGRAM_WEBHOOK_URL", "https://x.example"),
                ("TELEGRAM_WEBHOOK_SECRET", "no spaces"),
            ],
            "bot.webhook_secret",
        ),
        (
            vec![("CYBERVPN_BOT_POLL_TIMEOUT_SECS", "0")],
            "bot.poll_timeout_secs",
        ),
    ] {
        let err = Config::load(None, env(&vars)).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn telemetry_section_loads_from_env_and_is_checked() {
    let config = Config::load(
        None,
        env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SERVICE_NAME", "api-eu-1"),
            ("CYBERVPN_TELEMETRY_TRACE_SAMPLE_RATIO", "0.25"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        config.telemetry.otlp_endpoint.as_deref(),
        Some("http://collector:4317")
    );
    assert_eq!(config.telemetry.service_name.as_deref(), Some("api-eu-1"));
    assert!((config.telemetry.trace_sample_ratio - 0.25).abs() < f64::EPSILON);
    let defaults = Config::default().telemetry;
    assert_eq!(defaults.otlp_endpoint, None);
    assert!((defaults.trace_sample_ratio - 1.0).abs() < f64::EPSILON);

    // The project's own spelling wins over the OpenTelemetry alias, whatever the order.
    for vars in [
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://alias:4317"),
            ("CYBERVPN_TELEMETRY_OTLP_ENDPOINT", "http://own:4317"),
        ],
        [
            ("CYBERVPN_TELEMETRY_OTLP_ENDPOINT", "http://own:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://alias:4317"),
        ],
    ] {
        let config = Config::load(None, env(&vars)).expect("valid");
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://own:4317")
        );
    }

    for (vars, key) in [
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
            "telemetry.otlp_endpoint",
        ),
        (
            vec![("CYBERVPN_TELEMETRY_TRACE_SAMPLE_RATIO", "1.5")],
            "telemetry.trace_sample_ratio",
        ),
        (
            vec![("CYBERVPN_TELEMETRY_TRACE_SAMPLE_RATIO", "-0.1")],
            "telemetry.trace_sample_ratio",
        ),
        (vec![("OTEL_SERVICE_NAME", " ")], "telemetry.service_name"),
    ] {
        let err = Config::load(None, env(&vars)).expect_err(key);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}

#[test]
fn empty_variables_count_as_unset() {
    let config = Config::load(
        None,
        env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            ("TELEGRAM_BOT_TOKEN", ""),
            ("CYBERVPN_BACKUP_KEEP", ""),
        ]),
    )
    .expect("valid");
    assert_eq!(config.telemetry.otlp_endpoint, None);
    assert!(config.telegram.bot_token.is_none());
    assert_eq!(config.backup.keep, BackupConfig::default().keep);
}

#[test]
fn backup_settings_are_read_and_checked() {
    let config = Config::load(
        None,
        env(&[
            ("CYBERVPN_BACKUP_DIR", "/var/lib/cybervpn/backups"),
            ("CYBERVPN_BACKUP_HOUR_UTC", "4"),
            ("CYBERVPN_BACKUP_KEEP", "14"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        config.backup_dir(),
        std::path::Path::new("/var/lib/cybervpn/backups")
    );
    assert_eq!((config.backup.hour_utc, config.backup.keep), (4, 14));
    assert_eq!(
        Config::default().backup_dir(),
        std::path::Path::new("./data/backups")
    );
    for (var, value, key) in [
        ("CYBERVPN_BACKUP_HOUR_UTC", "24", "backup.hour_utc"),
        ("CYBERVPN_BACKUP_KEEP", "0", "backup.keep"),
        ("CYBERVPN_BACKUP_PG_DUMP", " ", "backup.pg_dump"),
    ] {
        let refused = Config::load(None, env(&[(var, value)]));
        assert!(
            matches!(&refused, Err(ConfigError::Invalid { key: k, .. }) if *k == key),
            "{var}={value:?}: {refused:?}"
        );
    }
}

#[test]
fn revenuecat_settings_come_from_the_environment() {
    let config = Config::load(
        None,
        env(&[
            ("REVENUECAT_WEBHOOK_SECRET", "Bearer rc-secret"),
            (
                "REVENUECAT_PRODUCTS",
                "com.example.vpn.month=basic_30, com.example.vpn.year = premium_365",
            ),
            ("CYBERVPN_PAYMENTS_REVENUECAT_ACCEPT_SANDBOX", "true"),
            ("CYBERVPN_TELEGRAM_AUTH_MAX_AGE_SECS", "3600"),
            ("CYBERVPN_TELEGRAM_MINI_APP_URL", "https://app.example.com/"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        config
            .payments
            .revenuecat_webhook_secret
            .as_ref()
            .map(|s| s.expose().as_str()),
        Some("Bearer rc-secret")
    );
    assert_eq!(
        config.payments.revenuecat_products,
        BTreeMap::from([
            ("com.example.vpn.month".to_owned(), "basic_30".to_owned()),
            ("com.example.vpn.year".to_owned(), "premium_365".to_owned()),
        ])
    );
    assert!(config.payments.revenuecat_accept_sandbox);
    assert_eq!(config.telegram.auth_max_age_secs, 3600);
    assert_eq!(
        config.telegram.mini_app_url.as_deref(),
        Some("https://app.example.com/")
    );

    let table = Config::load(
        None,
        env(&[(
            "CYBERVPN_PAYMENTS_REVENUECAT_PRODUCTS",
            r#"{ "com.example.vpn.month" = "basic_30" }"#,
        )]),
    )
    .expect("valid");
    assert_eq!(
        table.payments.revenuecat_products["com.example.vpn.month"],
        "basic_30"
    );
    let empty = Config::load(None, env(&[("REVENUECAT_PRODUCTS", "")])).expect("valid");
    assert!(empty.payments.revenuecat_products.is_empty());
}

#[test]
fn revenuecat_and_telegram_sign_in_rules_are_enforced() {
    for (vars, key) in [
        (
            vec![("REVENUECAT_PRODUCTS", "com.example.vpn.month")],
            "payments.revenuecat_products",
        ),
        (
            vec![("REVENUECAT_WEBHOOK_SECRET", "  ")],
            "payments.revenuecat_webhook_secret",
        ),
        (
            vec![("CYBERVPN_TELEGRAM_AUTH_MAX_AGE_SECS", "0")],
            "telegram.auth_max_age_secs",
        ),
        (
            vec![("CYBERVPN_TELEGRAM_MINI_APP_URL", "http://app.example.com")],
            "telegram.mini_app_url",
        ),
    ] {
        let loaded = Config::load(None, env(&vars));
        assert!(
            matches!(&loaded, Err(ConfigError::Invalid { key: k, .. }) if *k == key),
            "{loaded:?}"
        );
    }
}

#[test]
fn push_settings_come_from_the_environment_and_go_together() {
    let account = r#"{"client_email":"push@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"}"#;
    let config = Config::load(
        None,
        env(&[
            ("CYBERVPN_PUSH_FCM_PROJECT_ID", "cybervpn-app"),
            ("CYBERVPN_PUSH_FCM_SERVICE_ACCOUNT_JSON", account),
            ("CYBERVPN_PUSH_FCM_API_URL", "http://127.0.0.1:9"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.push.fcm_project_id.as_deref(), Some("cybervpn-app"));
    assert_eq!(
        config
            .push
            .fcm_service_account_json
            .as_ref()
            .map(|s| s.expose().as_str()),
        Some(account)
    );
    assert_eq!(config.push.fcm_api_url, "http://127.0.0.1:9");
    assert!(!format!("{config:?}").contains("PRIVATE KEY"), "redacted");
    assert_eq!(
        Config::default().push.fcm_api_url,
        "https://fcm.googleapis.com"
    );

    for (vars, key) in [
        (
            vec![("CYBERVPN_PUSH_FCM_PROJECT_ID", "cybervpn-app")],
            "push.fcm_service_account_json",
        ),
        (
            vec![("CYBERVPN_PUSH_FCM_SERVICE_ACCOUNT_JSON", account)],
            "push.fcm_service_account_json",
        ),
        (
            vec![("CYBERVPN_PUSH_FCM_API_URL", "fcm.googleapis.com")],
            "push.fcm_api_url",
        ),
    ] {
        let loaded = Config::load(None, env(&vars));
        assert!(
            matches!(&loaded, Err(ConfigError::Invalid { key: k, .. }) if *k == key),
            "{loaded:?}"
        );
    }
}
