//! The bot's metrics (seed names), registered on the process registry.

use prometheus::{IntCounter, IntCounterVec, Opts};

/// Counters of what the bot receives and does.
#[derive(Clone)]
pub struct BotMetrics {
    /// `bot_updates_total`.
    pub updates: IntCounter,
    /// `bot_commands_total{command}`.
    pub commands: IntCounterVec,
    /// `bot_api_requests_total{method,status}`.
    pub api_requests: IntCounterVec,
    /// `bot_payments_total{gateway,status}`.
    pub payments: IntCounterVec,
    /// `bot_errors_total{type}`.
    pub errors: IntCounterVec,
    /// `bot_broadcast_messages_total{outcome}`.
    pub broadcast_messages: IntCounterVec,
}

impl BotMetrics {
    /// Creates the counters and registers them on `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let updates = IntCounter::new("bot_updates_total", "Telegram updates received")?;
        let vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let commands = vec(
            "bot_commands_total",
            "Commands handled, by command",
            &["command"],
        )?;
        let api_requests = vec(
            "bot_api_requests_total",
            "Bot API requests, by method and status",
            &["method", "status"],
        )?;
        let payments = vec(
            "bot_payments_total",
            "Payments started and confirmed in the bot, by gateway and status",
            &["gateway", "status"],
        )?;
        let errors = vec("bot_errors_total", "Errors, by type", &["type"])?;
        let broadcast_messages = vec(
            "bot_broadcast_messages_total",
            "Broadcast messages delivered, by outcome",
            &["outcome"],
        )?;
        registry.register(Box::new(updates.clone()))?;
        for counter in [
            &commands,
            &api_requests,
            &payments,
            &errors,
            &broadcast_messages,
        ] {
            registry.register(Box::new(counter.clone()))?;
        }
        Ok(Self {
            updates,
            commands,
            api_requests,
            payments,
            errors,
            broadcast_messages,
        })
    }
}
