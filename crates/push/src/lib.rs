//! Push notifications through Firebase Cloud Messaging's HTTP v1 API.
//!
//! Owns the service-account OAuth flow (an RS256 JWT exchanged at the account's `token_uri` for an access
//! token, cached until a minute before it expires), the `messages:send` call, and the mapping of FCM's answers
//! to what the caller should do: forget the device, retry later, or give up. With the `fake` feature, a
//! loopback fake of both endpoints for tests.
#![forbid(unsafe_code)]

#[cfg(feature = "fake")]
pub mod fake;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{RSA_PKCS1_SHA256, RsaKeyPair},
};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::{sync::Mutex, time::Instant};

/// The OAuth scope FCM sends need.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The OAuth grant type of a service-account JWT assertion (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for the JWT assertion.
const ASSERTION_TTL_SECS: u64 = 3600;
/// A cached access token is replaced this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The title of every notification.
pub const TITLE: &str = "CyberVPN";

/// Why FCM could not be used or did not take a message; no variant carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The service account JSON is unusable (missing field, unreadable key).
    #[error("fcm service account: {0}")]
    ServiceAccount(String),
    /// The registration token is no longer valid (`UNREGISTERED`, or an invalid token): forget the device.
    #[error("fcm: the registration token is no longer valid ({0})")]
    InvalidToken(String),
    /// A transient failure (network, 429, 5xx): try again later.
    #[error("fcm: {0}")]
    Transient(String),
    /// A failure that retrying will not fix (credentials refused, message rejected).
    #[error("fcm: {0}")]
    Permanent(String),
}

/// The fields of a Google service-account key file that signing in needs.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
}

/// How to reach FCM.
#[derive(Clone)]
pub struct FcmConfig {
    /// The Firebase project id.
    pub project_id: String,
    /// The service account's JSON key file contents.
    pub service_account_json: String,
    /// FCM API base URL (`https://fcm.googleapis.com`).
    pub api_url: String,
    /// Timeout of each HTTP call.
    pub timeout: Duration,
}

impl fmt::Debug for FcmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FcmConfig")
            .field("project_id", &self.project_id)
            .field("service_account_json", &"[redacted]")
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One notification to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage<'a> {
    /// The device's FCM registration token.
    pub token: &'a str,
    /// The notification text.
    pub body: &'a str,
    /// What happened (the notice kind), sent as `data.kind`.
    pub kind: &'a str,
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

struct Inner {
    http: reqwest::Client,
    send_url: String,
    client_email: String,
    token_uri: String,
    key: RsaKeyPair,
    token: Mutex<Option<CachedToken>>,
}

/// An FCM client; cheap to clone (clones share the cached access token).
#[derive(Clone)]
pub struct Fcm {
    inner: Arc<Inner>,
}

impl fmt::Debug for Fcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fcm")
            .field("send_url", &self.inner.send_url)
            .field("client_email", &self.inner.client_email)
            .finish_non_exhaustive()
    }
}

/// The DER bytes of the first PEM block in `pem`.
fn pem_der(pem: &str) -> Result<Vec<u8>, PushError> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|line| !line.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| PushError::ServiceAccount("private_key is not PEM".to_owned()))
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Fcm {
    /// A client for `config`; fails when the service account JSON or its key cannot be read.
    pub fn new(config: &FcmConfig) -> Result<Self, PushError> {
        let account: ServiceAccount =
            serde_json::from_str(&config.service_account_json).map_err(|err| {
                // Only where it broke: serde's message may quote a value, and this JSON holds a private key.
                PushError::ServiceAccount(format!(
                    "not a service account key ({:?} error at line {} column {}; it needs client_email, \
                     private_key and token_uri)",
                    err.classify(),
                    err.line(),
                    err.column()
                ))
            })?;
        let der = pem_der(&account.private_key)?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|_| {
            PushError::ServiceAccount("private_key is not a PKCS#8 RSA key".to_owned())
        })?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|err| PushError::ServiceAccount(format!("http client: {err}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                send_url: format!(
                    "{}/v1/projects/{}/messages:send",
                    config.api_url.trim_end_matches('/'),
                    config.project_id
                ),
                client_email: account.client_email,
                token_uri: account.token_uri,
                key,
                token: Mutex::new(None),
            }),
        })
    }

    /// The signed JWT assertion for the token exchange.
    fn assertion(&self) -> Result<String, PushError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let header = json!({"alg": "RS256", "typ": "JWT"});
        let claims = json!({
            "iss": self.inner.client_email,
            "scope": SCOPE,
            "aud": self.inner.token_uri,
            "iat": iat,
            "exp": iat + ASSERTION_TTL_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; self.inner.key.public_modulus_len()];
        self.inner
            .key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| PushError::ServiceAccount("signing the assertion failed".to_owned()))?;
        Ok(format!("{signing_input}.{}", b64url(&signature)))
    }

    /// The cached access token, or a fresh one when there is none, it is about to expire, or `refresh`.
    async fn access_token(&self, refresh: bool) -> Result<String, PushError> {
        let mut cached = self.inner.token.lock().await;
        if !refresh
            && let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: u64,
        }
        let assertion = self.assertion()?;
        let response = self
            .inner
            .http
            .post(&self.inner.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|err| {
                PushError::Transient(format!("token exchange: {}", without_url(&err)))
            })?;
        let status = response.status();
        if !status.is_success() {
            let reason = format!("token exchange answered {status}");
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                PushError::Transient(reason)
            } else {
                PushError::Permanent(reason)
            });
        }
        let token: TokenResponse = response.json().await.map_err(|err| {
            PushError::Transient(format!(
                "token exchange: unreadable answer: {}",
                without_url(&err)
            ))
        })?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(REFRESH_MARGIN);
        *cached = Some(CachedToken {
            value: token.access_token.clone(),
            refresh_at: Instant::now() + lifetime,
        });
        Ok(token.access_token)
    }

    /// Sends one notification; a 401 refreshes the access token and tries once more.
    pub async fn send(&self, message: &PushMessage<'_>) -> Result<(), PushError> {
        let body = json!({
            "message": {
                "token": message.token,
                "notification": {"title": TITLE, "body": message.body},
                "data": {"kind": message.kind},
            }
        });
        let mut refreshed = false;
        loop {
            let token = self.access_token(refreshed).await?;
            let response = self
                .inner
                .http
                .post(&self.inner.send_url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .map_err(|err| PushError::Transient(format!("send: {}", without_url(&err))))?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                return Ok(());
            }
            if status == 401 && !refreshed {
                refreshed = true;
                continue;
            }
            let error = response.json::<Value>().await.unwrap_or(Value::Null);
            return Err(classify(status, &error["error"]));
        }
    }
}

/// What an FCM error answer means for the device and the job.
fn classify(status: u16, error: &Value) -> PushError {
    let fcm_code = error["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|detail| detail["errorCode"].as_str())
        .unwrap_or_default();
    let api_status = error["status"].as_str().unwrap_or_default();
    let reason = format!("send answered {status} {api_status} {fcm_code}")
        .trim_end()
        .to_owned();
    match status {
        _ if fcm_code == "UNREGISTERED" => PushError::InvalidToken(reason),
        404 if api_status == "NOT_FOUND" || api_status.is_empty() => {
            PushError::InvalidToken(reason)
        }
        400 if fcm_code == "INVALID_ARGUMENT" => PushError::InvalidToken(reason),
        429 | 500..=599 => PushError::Transient(reason),
        _ => PushError::Permanent(reason),
    }
}

/// A reqwest error's text without the URL (which is harmless here, but keeps messages short and uniform).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "FCM");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcm_answers_map_to_what_the_caller_does() {
        let unregistered =
            json!({"status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]});
        assert!(matches!(
            classify(404, &unregistered),
            PushError::InvalidToken(_)
        ));
        let bad_token =
            json!({"status": "INVALID_ARGUMENT", "details": [{"errorCode": "INVALID_ARGUMENT"}]});
        assert!(matches!(
            classify(400, &bad_token),
            PushError::InvalidToken(_)
        ));
        let bad_field = json!({"status": "INVALID_ARGUMENT", "details": [{"fieldViolations": []}]});
        assert!(matches!(classify(400, &bad_field), PushError::Permanent(_)));
        assert!(matches!(
            classify(503, &Value::Null),
            PushError::Transient(_)
        ));
        assert!(matches!(
            classify(429, &Value::Null),
            PushError::Transient(_)
        ));
        assert!(matches!(
            classify(403, &json!({"status": "PERMISSION_DENIED"})),
            PushError::Permanent(_)
        ));
    }

    #[test]
    fn a_broken_service_account_is_refused_without_echoing_it() {
        let config = |json: &str| FcmConfig {
            project_id: "p".to_owned(),
            service_account_json: json.to_owned(),
            api_url: "http://127.0.0.1:1".to_owned(),
            timeout: Duration::from_secs(1),
        };
        let err = Fcm::new(&config("{\"client_email\":\"a@b\"}")).unwrap_err();
        assert!(matches!(err, PushError::ServiceAccount(_)));
        let err = Fcm::new(&config(
            r#"{"client_email":"a@b","token_uri":"http://x","private_key":7,"k":"c2VjcmV0"}"#,
        ))
        .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
        let err = Fcm::new(&config(
            r#"{"client_email":"a@b","token_uri":"http://x","private_key":"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"}"#,
        ))
        .unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
