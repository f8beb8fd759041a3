//! `cybervpn-panel-fake`: serves the fake panel until interrupted.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use cybervpn_panel_fake::{FakeOptions, PanelFake, WebhookTarget};

/// A fake Remnawave 3.x panel for demos and load tests.
#[derive(Debug, Parser)]
#[command(name = "cybervpn-panel-fake", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PANEL_FAKE_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// API token clients must send as `Authorization: Bearer <token>`.
    #[arg(long, env = "PANEL_FAKE_TOKEN", default_value = "fake-token")]
    token: String,
    /// Where to POST signed webhooks.
    #[arg(long, env = "PANEL_FAKE_WEBHOOK_URL", requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// The webhook HMAC secret.
    #[arg(long, env = "PANEL_FAKE_WEBHOOK_SECRET", requires = "webhook_url")]
    webhook_secret: Option<String>,
    /// Subscription base URL used in `subscriptionUrl`.
    #[arg(
        long,
        env = "PANEL_FAKE_SUBSCRIPTION_BASE",
        default_value = "https://sub.example.test"
    )]
    subscription_base: String,
    /// Users to seed at startup (`seed_1` …).
    #[arg(long, default_value_t = 0)]
    users: usize,
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let webhook = match (args.webhook_url, args.webhook_secret) {
        (Some(url), Some(secret)) => Some(WebhookTarget { url, secret }),
        _ => None,
    };
    let options = FakeOptions {
        token: args.token,
        webhook,
        subscription_base: args.subscription_base,
    };
    let fake = match PanelFake::start(args.listen, options).await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!(
                "cybervpn-panel-fake: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    // Deliveries retry like the real panel's queue.
    fake.set_webhook_retry_delay(Duration::from_secs(5));
    fake.set_recording(false);
    if args.users > 0 {
        fake.seed_users(args.users);
    }
    println!(
        "cybervpn-panel-fake listening on {} (token {:?}, {} users); send X-Forwarded-For and X-Forwarded-Proto: https",
        fake.url(),
        fake.token(),
        args.users
    );
    stop_signal().await;
    fake.shutdown();
    println!("cybervpn-panel-fake stopped");
    ExitCode::SUCCESS
}
