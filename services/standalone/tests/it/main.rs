//! The standalone binary on a fresh machine: no PostgreSQL, no Redis, nothing but a data directory.
#![expect(clippy::unwrap_used, reason = "a failed step fails the test")]

use std::{
    process::{Command, Stdio},
    time::Duration,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serves_the_catalogue_on_sqlite_and_stops_gracefully_on_sigterm() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cybervpn"))
        .env_clear()
        .env("CYBERVPN_DATA_DIR", data_dir.path())
        .env("CYBERVPN_API_LISTEN", format!("127.0.0.1:{port}"))
        .env("CYBERVPN_API_WORKERS", "1")
        // Ignored: standalone never needs PostgreSQL or Redis.
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start cybervpn");

    let url = format!("http://127.0.0.1:{port}/api/v1/plans");
    let mut body = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            body = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = body.expect("standalone api answered within 10 s");
    assert_eq!(body["plans"].as_array().unwrap().len(), 16);
    let ready: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["redis"], "not_configured", "{ready}");
    assert!(
        data_dir.path().join("cybervpn.db").exists(),
        "the SQLite database lives in the data directory"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(exit) = child.try_wait().unwrap() {
            status = Some(exit);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("cybervpn did not stop within 5 s of SIGTERM")
    });
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn admin_create_works_on_a_fresh_data_directory() {
    let data_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cybervpn"))
        .env_clear()
        .env("CYBERVPN_DATA_DIR", data_dir.path())
        .args([
            "admin",
            "create",
            "--email",
            "owner@example.com",
            "--role",
            "super_admin",
        ])
        .output()
        .expect("run cybervpn admin create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let password = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(password.len() >= 20);

    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cybervpn"))
        .env_clear()
        .env("CYBERVPN_DATA_DIR", data_dir.path())
        .env("CYBERVPN_API_LISTEN", format!("127.0.0.1:{port}"))
        .env("CYBERVPN_API_WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cybervpn");
    let client = reqwest::Client::new();
    let mut status = None;
    for _ in 0..100 {
        if let Ok(response) = client
            .post(format!("http://127.0.0.1:{port}/api/v1/admin/auth/login"))
            .json(&serde_json::json!({"email": "owner@example.com", "password": password}))
            .send()
            .await
        {
            status = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(200), "the printed password signs in");
    assert!(
        data_dir.path().join("keys/token-signing.paserk").exists(),
        "standalone keeps its generated signing key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_the_bot_in_process_when_a_token_is_set() {
    use cybervpn_telegram_fake::{TelegramFake, User};

    let telegram = TelegramFake::start("777:STANDALONE").await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cybervpn"))
        .env_clear()
        .env("CYBERVPN_DATA_DIR", data_dir.path())
        .env("CYBERVPN_API_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CYBERVPN_API_WORKERS", "1")
        .env("CYBERVPN_BOT_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("CYBERVPN_BOT_POLL_TIMEOUT_SECS", "1")
        .env("CYBERVPN_WORKER_RELAY_INTERVAL_MS", "200")
        .env("TELEGRAM_BOT_TOKEN", "777:STANDALONE")
        .env("TELEGRAM_API_BASE", telegram.url())
        .env("CYBERVPN_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start cybervpn");

    // The bot answers over the in-process api, and the trial's notice comes through the in-process queue.
    let ivy = User::new(9001, "Ivy").with_language("en");
    telegram.send_text(&ivy, ivy.id, "/start");
    let wait_for = |needle: &'static str| {
        let telegram = &telegram;
        async move {
            for _ in 0..300 {
                if let Some(call) = telegram.sent_to(ivy.id).into_iter().find(|call| {
                    call.str_param("text")
                        .is_some_and(|text| text.contains(needle))
                }) {
                    return call;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!(
                "no message containing {needle:?}: {:?}",
                telegram.sent_to(ivy.id)
            );
        }
    };
    wait_for("Welcome to CyberVPN, Ivy!").await;
    telegram.send_text(&ivy, ivy.id, "/trial");
    // The bot's answer, then the recorded notice delivered from the queue.
    wait_for("Send /config to connect").await;
    wait_for("Enjoy!").await;

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "graceful shutdown exits 0, got {status}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("cybervpn did not stop within 10 s of SIGTERM");
}
