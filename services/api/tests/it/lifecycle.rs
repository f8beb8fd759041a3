//! Start-up rules: no implicit migrations, bad configuration named before binding.

use std::{process::Command, sync::Arc};

use cybervpn_api::Mode;
use cybervpn_config::{Config, Secret};

#[tokio::test]
async fn service_refuses_an_unmigrated_database_unless_told_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = Some(Secret::new(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("empty.db").display()
    )));
    config.api.workers = 1;
    let (_, signing) = cybervpn_auth::TokenKeys::generate().unwrap();
    config.auth.token_signing_key = Some(Secret::new(signing));
    config.auth.encryption_key = Some(Secret::new(cybervpn_auth::SecretBox::generate().1));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = cybervpn_api::build(Arc::new(config.clone()), listener, Mode::Service)
        .await
        .err()
        .expect("an empty database is refused");
    assert!(err.to_string().contains("cybervpn-api migrate"), "{err}");

    config.database.migrate = true;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = cybervpn_api::build(Arc::new(config), listener, Mode::Service)
        .await
        .expect("migrates when told to");
    let url = format!("http://{}/api/v1/plans", api.addr());
    let handle = api.handle();
    tokio::spawn(api.run());
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["plans"].as_array().unwrap().len(), 16);
    handle.stop(true).await;
}

#[test]
fn invalid_configuration_is_reported_by_key_before_binding() {
    let output = Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .env("CYBERVPN_API_LISTEN", "not-an-address")
        .env("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/x")
        .output()
        .expect("run cybervpn-api");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CYBERVPN_API_LISTEN"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .output()
        .expect("run cybervpn-api");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("database.url"),
        "the service needs a database: {stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .env("CYBERVPN_API_BODY_LIMIT_BYTES", "0")
        .output()
        .expect("run cybervpn-api");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("api.body_limit_bytes"), "{stderr}");
}

#[test]
fn migrate_subcommand_applies_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("CYBERVPN_LOG_LEVEL", "info")
        .output()
        .expect("run cybervpn-api migrate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stderr);
    let all =
        <cybervpn_migrations::Migrator as cybervpn_migrations::MigratorTrait>::migrations().len();
    assert!(
        stdout.contains(&format!("\"applied\":{all}")),
        "JSON log of the run: {stdout}"
    );

    // Once applied, a second run has nothing to do.
    let output = Command::new(env!("CARGO_BIN_EXE_cybervpn-api"))
        .env_clear()
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .output()
        .expect("run again");
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"applied\":0"));
}

#[tokio::test]
async fn service_refuses_to_start_without_signing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = Some(Secret::new(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("k.db").display()
    )));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = cybervpn_api::build(Arc::new(config), listener, Mode::Service)
        .await
        .err()
        .expect("keys are required");
    assert!(err.to_string().contains("auth.token_signing_key"), "{err}");
    assert!(
        !dir.path().join("k.db").exists(),
        "nothing is touched before the keys are known good"
    );
}
