//! Telegram sign-in: Mini App `initData` and Login Widget data, checked the way Telegram documents it.
//!
//! Both are a set of `key=value` fields plus `hash`, the hex HMAC-SHA-256 of the data-check-string (every
//! received field but `hash`, URL-decoded, sorted by key, as `key=value` lines joined by `\n`). Only the secret
//! key differs: `HMAC_SHA256(key = "WebAppData", bot_token)` for Mini Apps, `SHA256(bot_token)` for the Login
//! Widget. A Mini App's `signature` field (Ed25519, for third parties without the token) is a received field
//! like any other, so it is part of the data-check-string. The hash is compared in constant time, before
//! anything else in the data is believed.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How far in the future `auth_date` may be (clocks differ a little).
pub const FUTURE_SKEW: Duration = Duration::seconds(60);

/// Longest `initData` accepted; Telegram's are well under a kilobyte or two.
const MAX_INIT_DATA_LEN: usize = 16 * 1024;

/// The Telegram user a verified sign-in names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramUser {
    /// Telegram user id.
    pub id: i64,
    /// First name.
    pub first_name: Option<String>,
    /// Public username, without `@`.
    pub username: Option<String>,
    /// IETF language tag of the user's Telegram client (Mini Apps only).
    pub language_code: Option<String>,
    /// When Telegram signed the data.
    pub auth_date: DateTime<Utc>,
}

/// Why sign-in data was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramAuthError {
    /// Not sign-in data at all: unparsable, a field missing or twice, a field of the wrong shape.
    #[error("malformed Telegram sign-in data: {0}")]
    Malformed(&'static str),
    /// The hash is not the one our bot token gives: forged, tampered with, or for another bot.
    #[error("the Telegram sign-in data is not signed by this bot")]
    BadHash,
    /// Signed, but longer ago than allowed (or too far in the future).
    #[error("the Telegram sign-in data has expired; open the app again")]
    Expired,
}

/// The `user` object of Mini App init data (other fields are ignored).
#[derive(Deserialize)]
struct InitDataUser {
    id: i64,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    language_code: Option<String>,
}

/// Verifies a Mini App's raw `Telegram.WebApp.initData` query string against `bot_token`.
pub fn verify_init_data(
    init_data: &str,
    bot_token: &str,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<TelegramUser, TelegramAuthError> {
    use TelegramAuthError::Malformed;
    if init_data.len() > MAX_INIT_DATA_LEN {
        return Err(Malformed("init_data is too long"));
    }
    let mut fields = BTreeMap::new();
    for pair in init_data.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(key).ok_or(Malformed("init_data is not URL-encoded"))?;
        let value = form_decode(value).ok_or(Malformed("init_data is not URL-encoded"))?;
        if fields.insert(key, value).is_some() {
            return Err(Malformed("a field of init_data appears twice"));
        }
    }
    let mut secret = <Hmac<Sha256> as KeyInit>::new_from_slice(b"WebAppData")
        .map_err(|_| Malformed("unusable key"))?;
    secret.update(bot_token.as_bytes());
    let secret = secret.finalize().into_bytes();
    let auth_date = check(&fields, &secret, now, max_age)?;
    let user = fields
        .get("user")
        .ok_or(Malformed("init_data has no user"))?;
    let user: InitDataUser =
        serde_json::from_str(user).map_err(|_| Malformed("the user of init_data is not a user"))?;
    Ok(TelegramUser {
        id: user.id,
        first_name: user.first_name,
        username: user.username,
        language_code: user.language_code,
        auth_date,
    })
}

/// Verifies the fields the Login Widget returned (`id`, `first_name`, …, `auth_date`, `hash`, as text)
/// against `bot_token`.
pub fn verify_login_widget(
    fields: &BTreeMap<String, String>,
    bot_token: &str,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<TelegramUser, TelegramAuthError> {
    use TelegramAuthError::Malformed;
    let secret = Sha256::digest(bot_token.as_bytes());
    let auth_date = check(fields, &secret, now, max_age)?;
    let id = fields
        .get("id")
        .ok_or(Malformed("the widget data has no id"))?
        .parse()
        .map_err(|_| Malformed("the widget id is not a number"))?;
    Ok(TelegramUser {
        id,
        first_name: fields.get("first_name").cloned(),
        username: fields.get("username").cloned(),
        language_code: None,
        auth_date,
    })
}

/// Checks the hash under `secret`, then the age of `auth_date`; returns `auth_date`.
fn check(
    fields: &BTreeMap<String, String>,
    secret: &[u8],
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<DateTime<Utc>, TelegramAuthError> {
    use TelegramAuthError::{BadHash, Expired, Malformed};
    let given = fields
        .get("hash")
        .filter(|hash| !hash.is_empty())
        .ok_or(Malformed("the hash is missing"))?;
    let check_string = fields
        .iter()
        .filter(|(key, _)| key.as_str() != "hash")
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| BadHash)?;
    mac.update(check_string.as_bytes());
    let expected = mac.finalize().into_bytes();
    let given = hex::decode(given).map_err(|_| BadHash)?;
    if given.len() != expected.len() || !bool::from(expected.as_slice().ct_eq(&given)) {
        return Err(BadHash);
    }
    let auth_date = fields
        .get("auth_date")
        .ok_or(Malformed("auth_date is missing"))?
        .parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .ok_or(Malformed("auth_date is not a Unix time"))?;
    if auth_date > now + FUTURE_SKEW || now - auth_date > max_age {
        return Err(Expired);
    }
    Ok(auth_date)
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space); `None` for a bad escape or non-UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// The example of the Telegram Mini Apps documentation (docs.telegram-mini-apps.com), signed with this
    /// token: a known answer computed outside this code.
    const DOCS_TOKEN: &str = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8";
    const DOCS_INIT_DATA: &str = "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2";

    fn signed_at() -> DateTime<Utc> {
        Utc.timestamp_opt(1_662_771_648, 0).unwrap()
    }

    #[test]
    fn the_documented_example_verifies() {
        let user = verify_init_data(
            DOCS_INIT_DATA,
            DOCS_TOKEN,
            signed_at() + Duration::hours(1),
            Duration::days(1),
        )
        .unwrap();
        assert_eq!(
            user,
            TelegramUser {
                id: 279_058_397,
                first_name: Some("Vladislav".to_owned()),
                username: Some("vdkfrost".to_owned()),
                language_code: Some("ru".to_owned()),
                auth_date: signed_at(),
            }
        );
    }

    #[test]
    fn another_token_a_changed_field_or_a_missing_hash_is_refused() {
        let later = signed_at() + Duration::hours(1);
        let day = Duration::days(1);
        assert_eq!(
            verify_init_data(DOCS_INIT_DATA, "5768337691:another", later, day),
            Err(TelegramAuthError::BadHash)
        );
        let tampered = DOCS_INIT_DATA.replace("279058397", "279058398");
        assert_eq!(
            verify_init_data(&tampered, DOCS_TOKEN, later, day),
            Err(TelegramAuthError::BadHash)
        );
        let added = format!("{DOCS_INIT_DATA}&start_param=x");
        assert_eq!(
            verify_init_data(&added, DOCS_TOKEN, later, day),
            Err(TelegramAuthError::BadHash)
        );
        let (unsigned, _) = DOCS_INIT_DATA.split_once("&hash=").unwrap();
        assert!(matches!(
            verify_init_data(unsigned, DOCS_TOKEN, later, day),
            Err(TelegramAuthError::Malformed(_))
        ));
        let twice = format!("{DOCS_INIT_DATA}&auth_date=1662771648");
        assert!(matches!(
            verify_init_data(&twice, DOCS_TOKEN, later, day),
            Err(TelegramAuthError::Malformed(_))
        ));
        assert!(matches!(
            verify_init_data("user=%E0%A4&hash=00", DOCS_TOKEN, later, day),
            Err(TelegramAuthError::Malformed(_))
        ));
    }

    #[test]
    fn old_or_future_data_is_expired() {
        let day = Duration::days(1);
        assert_eq!(
            verify_init_data(
                DOCS_INIT_DATA,
                DOCS_TOKEN,
                signed_at() + day + Duration::seconds(1),
                day
            ),
            Err(TelegramAuthError::Expired)
        );
        assert_eq!(
            verify_init_data(
                DOCS_INIT_DATA,
                DOCS_TOKEN,
                signed_at() - FUTURE_SKEW - Duration::seconds(1),
                day
            ),
            Err(TelegramAuthError::Expired)
        );
        assert!(verify_init_data(DOCS_INIT_DATA, DOCS_TOKEN, signed_at() + day, day).is_ok());
    }

    /// The Login Widget's check, computed here with `sha2`/`hmac` directly.
    fn widget(token: &str, fields: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let check = map
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n");
        let key = Sha256::digest(token.as_bytes());
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        mac.update(check.as_bytes());
        map.insert("hash".to_owned(), hex::encode(mac.finalize().into_bytes()));
        map
    }

    #[test]
    fn login_widget_data_verifies_with_the_token_hash() {
        let fields = widget(
            "123:token",
            &[
                ("id", "42"),
                ("first_name", "Ann"),
                ("username", "ann"),
                ("auth_date", "1662771648"),
            ],
        );
        let later = signed_at() + Duration::minutes(5);
        let user = verify_login_widget(&fields, "123:token", later, Duration::days(1)).unwrap();
        assert_eq!((user.id, user.username.as_deref()), (42, Some("ann")));
        // The Mini App key does not verify widget data, and the widget needs its exact fields.
        assert_eq!(
            verify_login_widget(&fields, "123:other", later, Duration::days(1)),
            Err(TelegramAuthError::BadHash)
        );
        let mut changed = fields.clone();
        changed.insert("first_name".to_owned(), "Bob".to_owned());
        assert_eq!(
            verify_login_widget(&changed, "123:token", later, Duration::days(1)),
            Err(TelegramAuthError::BadHash)
        );
    }

    #[test]
    fn form_decoding_is_strict() {
        assert_eq!(form_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(form_decode("%7B%22id%22%7D").as_deref(), Some("{\"id\"}"));
        assert_eq!(form_decode("%"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%FF"), None);
        assert_eq!(form_decode("%+1"), None);
    }
}
