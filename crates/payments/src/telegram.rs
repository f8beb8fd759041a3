//! Telegram Stars refunds over the Bot API (`refundStarPayment`); the bot owns the rest of the Bot API.

use std::{fmt, time::Duration};

use cybervpn_telemetry::{AttemptError, ExternalMetrics};
use serde::Deserialize;

const SERVICE: &str = "telegram";
const REFUND: &str = "refundStarPayment";

/// Why a Stars refund failed; no variant carries the bot token.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// Telegram could not be reached or did not answer in time.
    #[error("telegram {operation}: unreachable: {reason}")]
    Connection {
        /// The Bot API method.
        operation: &'static str,
        /// What happened, without the URL (it holds the token).
        reason: String,
    },
    /// Telegram answered with an error.
    #[error("telegram {operation}: {code} {description}")]
    Api {
        /// The Bot API method.
        operation: &'static str,
        /// `error_code` (or the HTTP status).
        code: u16,
        /// Telegram's description, such as `Bad Request: CHARGE_NOT_FOUND`.
        description: String,
    },
}

impl AttemptError for TelegramError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Connection { .. } => true,
            Self::Api { code, .. } => *code == 429 || *code >= 500,
        }
    }

    fn metric_status(&self) -> String {
        match self {
            Self::Connection { .. } => "connection".to_owned(),
            Self::Api { code, .. } => code.to_string(),
        }
    }
}

/// A Bot API client for Stars refunds.
#[derive(Clone)]
pub struct StarsRefunds {
    http: reqwest::Client,
    /// `<api_url>/bot<token>`: secret, never logged.
    base: String,
    metrics: ExternalMetrics,
}

impl fmt::Debug for StarsRefunds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StarsRefunds").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
}

impl StarsRefunds {
    /// A client for the bot with `token` at `api_url` (`https://api.telegram.org`).
    pub fn new(
        api_url: &str,
        token: &str,
        metrics: ExternalMetrics,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()?,
            base: format!("{}/bot{token}", api_url.trim_end_matches('/')),
            metrics,
        })
    }

    /// Returns the Stars of a charge to the user who paid. A charge refunded before counts as refunded: the
    /// call is safe to repeat.
    pub async fn refund_star_payment(
        &self,
        user_id: i64,
        telegram_payment_charge_id: &str,
    ) -> Result<(), TelegramError> {
        let body = serde_json::json!({
            "user_id": user_id,
            "telegram_payment_charge_id": telegram_payment_charge_id,
        });
        let result = self
            .metrics
            .call(SERVICE, REFUND, true, || async {
                let response = self
                    .http
                    .post(format!("{}/{REFUND}", self.base))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|err| TelegramError::Connection {
                        operation: REFUND,
                        reason: err.without_url().to_string(),
                    })?;
                let status = response.status().as_u16();
                let reply: Reply = response.json().await.map_err(|_| TelegramError::Api {
                    operation: REFUND,
                    code: status,
                    description: "answer without JSON".to_owned(),
                })?;
                if reply.ok {
                    return Ok((status, ()));
                }
                Err(TelegramError::Api {
                    operation: REFUND,
                    code: reply.error_code.unwrap_or(status),
                    description: reply.description.unwrap_or_default(),
                })
            })
            .await;
        match result {
            Err(TelegramError::Api { description, .. })
                if description.contains("CHARGE_ALREADY_REFUNDED") =>
            {
                Ok(())
            }
            other => other,
        }
    }
}
