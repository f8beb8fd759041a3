//! Serde helpers for the panel's loose JSON: byte counters as numbers or strings, millisecond dates.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// A JSON scalar the panel sends either as a number or as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Float(f64),
    Str(String),
}

/// Parses a byte count: an integer, or a human-readable size such as `1.5 GiB` (what some panel
/// versions put in their stats strings).
pub(crate) fn parse_bytes(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(value) = text.parse::<i64>() {
        return Some(value);
    }
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let multiplier = match unit.trim() {
        "" | "B" | "bytes" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        "KiB" => 1024.0,
        "MiB" => 1024.0_f64.powi(2),
        "GiB" => 1024.0_f64.powi(3),
        "TiB" => 1024.0_f64.powi(4),
        "PiB" => 1024.0_f64.powi(5),
        _ => return None,
    };
    number
        .is_finite()
        .then(|| (number * multiplier).round() as i64)
}

fn scalar_to_int<E: serde::de::Error>(scalar: Scalar) -> Result<i64, E> {
    match scalar {
        Scalar::Int(value) => Ok(value),
        Scalar::Float(value) if value.is_finite() => Ok(value.round() as i64),
        Scalar::Float(value) => Err(E::custom(format!("not a byte count: {value}"))),
        Scalar::Str(text) => {
            parse_bytes(&text).ok_or_else(|| E::custom(format!("not a byte count: {text:?}")))
        }
    }
}

/// An integer sent as a JSON number or as a (possibly human-readable) string.
pub(crate) fn int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    scalar_to_int(Scalar::deserialize(deserializer)?)
}

/// Like [`int`], with `null` as `None`.
pub(crate) fn opt_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Option::<Scalar>::deserialize(deserializer)?
        .map(scalar_to_int)
        .transpose()
}

/// A string sent as a JSON string or number (`xrayUptime`, cursors), with `null` as `None`.
pub(crate) fn opt_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Scalar>::deserialize(deserializer)? {
        None => None,
        Some(Scalar::Int(value)) => Some(value.to_string()),
        Some(Scalar::Float(value)) => Some(value.to_string()),
        Some(Scalar::Str(text)) => Some(text),
    })
}

/// A list the panel may send as `null`.
pub(crate) fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// Dates as the panel writes them: `2025-01-17T15:38:45.065Z`.
pub(crate) fn millis<S: Serializer>(
    value: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Like [`millis`], for an optional date (only called when present).
pub(crate) fn opt_millis<S: Serializer>(
    value: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => millis(value, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Bytes {
        #[serde(deserialize_with = "int")]
        value: i64,
    }

    fn bytes(json: &str) -> Result<i64, serde_json::Error> {
        serde_json::from_str::<Bytes>(json).map(|bytes| bytes.value)
    }

    #[test]
    fn byte_counters_accept_numbers_and_strings() {
        assert_eq!(bytes(r#"{"value": 1073741824}"#).ok(), Some(1_073_741_824));
        assert_eq!(
            bytes(r#"{"value": "1073741824"}"#).ok(),
            Some(1_073_741_824)
        );
        assert_eq!(bytes(r#"{"value": "-512"}"#).ok(), Some(-512));
        assert_eq!(bytes(r#"{"value": 12.0}"#).ok(), Some(12));
        assert!(bytes(r#"{"value": "lots"}"#).is_err());
        assert!(bytes(r#"{"value": null}"#).is_err());
    }

    #[test]
    fn human_readable_sizes_are_understood() {
        assert_eq!(parse_bytes("1.5 GiB"), Some(1_610_612_736));
        assert_eq!(parse_bytes("2 KB"), Some(2_000));
        assert_eq!(parse_bytes("-3 MiB"), Some(-3_145_728));
        assert_eq!(parse_bytes("0 B"), Some(0));
        assert_eq!(parse_bytes("3 parsecs"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn dates_are_written_with_milliseconds_and_z() {
        #[derive(serde::Serialize)]
        struct Out {
            #[serde(serialize_with = "millis")]
            at: DateTime<Utc>,
        }
        let at = DateTime::parse_from_rfc3339("2025-01-17T15:38:45.065123Z")
            .map(|at| at.with_timezone(&Utc))
            .ok();
        let json = at.map(|at| serde_json::to_string(&Out { at }).ok());
        assert_eq!(
            json.flatten().as_deref(),
            Some(r#"{"at":"2025-01-17T15:38:45.065Z"}"#)
        );
    }
}
