//! Request decoding: a JSON body, `application/x-www-form-urlencoded`, `multipart/form-data` and the query
//! string all become one JSON object of parameters plus the uploaded files, as the Bot API accepts all four.

use serde_json::{Map, Value};

use crate::UploadedFile;

/// Parameters whose form value is a JSON-serialized object or array.
const STRUCTURED: [&str; 12] = [
    "reply_markup",
    "prices",
    "entities",
    "caption_entities",
    "allowed_updates",
    "commands",
    "scope",
    "reply_parameters",
    "link_preview_options",
    "suggested_tip_amounts",
    "media",
    "provider_data",
];

/// Parameters whose form value is an integer.
const INTEGERS: [&str; 13] = [
    "chat_id",
    "message_id",
    "user_id",
    "offset",
    "limit",
    "timeout",
    "cache_time",
    "max_connections",
    "reply_to_message_id",
    "message_thread_id",
    "max_tip_amount",
    "subscription_period",
    "total_amount",
];

/// Parameters whose form value is a boolean.
const BOOLEANS: [&str; 14] = [
    "ok",
    "show_alert",
    "disable_notification",
    "protect_content",
    "drop_pending_updates",
    "disable_web_page_preview",
    "need_name",
    "need_phone_number",
    "need_email",
    "need_shipping_address",
    "is_flexible",
    "has_spoiler",
    "show_caption_above_media",
    "allow_paid_broadcast",
];

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Input {
    pub(crate) params: Map<String, Value>,
    pub(crate) files: Vec<UploadedFile>,
}

impl Input {
    /// A parameter; JSON `null` counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name).filter(|value| !value.is_null())
    }

    /// A string parameter; numbers are accepted and written out, as Telegram does.
    pub(crate) fn str(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// An integer parameter, from a number or a numeric string.
    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean parameter, from a boolean or `true`/`false`/`1`/`0`.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(flag) => Some(*flag),
            Value::String(text) => parse_bool(text),
            Value::Number(number) => number.as_i64().map(|number| number != 0),
            _ => None,
        }
    }

    /// A JSON parameter given either as JSON or as a JSON-serialized string; `Err` when the string is not JSON.
    pub(crate) fn json(&self, name: &str) -> Result<Option<Value>, ()> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => serde_json::from_str(text).map(Some).map_err(|_| ()),
            Some(value) => Ok(Some(value.clone())),
        }
    }

    /// The uploaded file named `field`, directly or through an `attach://<name>` value.
    pub(crate) fn file(&self, field: &str) -> Option<&UploadedFile> {
        let attached = self
            .get(field)
            .and_then(Value::as_str)
            .and_then(|value| value.strip_prefix("attach://"));
        let name = attached.unwrap_or(field);
        self.files.iter().find(|file| file.field == name)
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" | "" => Some(false),
        _ => None,
    }
}

/// A form field's text as the JSON value the method means.
fn from_text(name: &str, text: String) -> Value {
    if STRUCTURED.contains(&name)
        && let Ok(value) = serde_json::from_str::<Value>(&text)
        && (value.is_object() || value.is_array())
    {
        return value;
    }
    if INTEGERS.contains(&name)
        && let Ok(number) = text.trim().parse::<i64>()
    {
        return Value::from(number);
    }
    if BOOLEANS.contains(&name)
        && let Some(flag) = parse_bool(&text)
    {
        return Value::Bool(flag);
    }
    Value::String(text)
}

/// Decodes a request: query parameters first, then the body's (which win).
pub(crate) fn decode(
    content_type: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Input, String> {
    let mut input = Input::default();
    for (name, value) in parse_form(query.unwrap_or("").as_bytes()) {
        let value = from_text(&name, value);
        input.params.insert(name, value);
    }
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match media_type.as_str() {
        "application/x-www-form-urlencoded" => {
            for (name, value) in parse_form(body) {
                let value = from_text(&name, value);
                input.params.insert(name, value);
            }
        }
        "multipart/form-data" => {
            let boundary = content_type
                .and_then(boundary)
                .ok_or_else(|| "multipart boundary is missing".to_owned())?;
            for part in parse_multipart(body, &boundary)? {
                match part.filename {
                    Some(filename) => input.files.push(UploadedFile {
                        field: part.name,
                        filename,
                        content_type: part.content_type,
                        bytes: part.body,
                    }),
                    None => {
                        let text = String::from_utf8_lossy(&part.body).into_owned();
                        let value = from_text(&part.name, text);
                        input.params.insert(part.name, value);
                    }
                }
            }
        }
        _ if body.iter().all(u8::is_ascii_whitespace) => {}
        // Telegram reads JSON whatever the declared type when it is not a form.
        _ => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(params)) => input.params.extend(params),
            _ => return Err("can't parse JSON object".to_owned()),
        },
    }
    Ok(input)
}

/// Decodes `application/x-www-form-urlencoded` pairs, in order.
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = bytes
            .get(index + 1..index + 3)
            .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (byte, escaped) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `boundary` parameter of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let rest = haystack.get(from..)?;
    if needle.is_empty() || rest.len() < needle.len() {
        return None;
    }
    rest.windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts.
fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let broken = || "can't parse multipart/form-data body".to_owned();
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let mut position = find(body, delimiter.as_bytes(), 0).ok_or_else(broken)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        let rest = body.get(position..).ok_or_else(broken)?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        position += if rest.starts_with(b"\r\n") {
            2
        } else {
            return Err(broken());
        };
        let (headers, content_start) = if body
            .get(position..)
            .is_some_and(|rest| rest.starts_with(b"\r\n"))
        {
            ("", position + 2)
        } else {
            let end = find(body, b"\r\n\r\n", position).ok_or_else(broken)?;
            let headers = body.get(position..end).ok_or_else(broken)?;
            (std::str::from_utf8(headers).map_err(|_| broken())?, end + 4)
        };
        let content_end =
            find(body, next_delimiter.as_bytes(), content_start).ok_or_else(broken)?;
        let content = body.get(content_start..content_end).ok_or_else(broken)?;
        position = content_end + next_delimiter.len();

        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            let header = header.trim().to_ascii_lowercase();
            if header == "content-type" {
                content_type = Some(value.trim().to_owned());
            } else if header == "content-disposition" {
                for (key, value) in disposition_params(value) {
                    match key.as_str() {
                        "name" => name = Some(value),
                        "filename" => filename = filename.or(Some(value)),
                        "filename*" => {
                            let encoded = value
                                .split_once("''")
                                .map_or(value.as_str(), |(_, encoded)| encoded);
                            filename = Some(percent_decode(encoded, false));
                        }
                        _ => {}
                    }
                }
            }
        }
        if let Some(name) = name {
            parts.push(Part {
                name,
                filename,
                content_type,
                body: content.to_vec(),
            });
        }
    }
}

/// The `key=value` parameters of a `Content-Disposition` value, quotes removed (`;` inside quotes kept).
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for character in value.chars() {
        match character {
            _ if escaped => {
                current.push(character);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => pieces.push(std::mem::take(&mut current)),
            _ => current.push(character),
        }
    }
    pieces.push(current);
    pieces
        .into_iter()
        .filter_map(|piece| {
            let (key, value) = piece.split_once('=')?;
            Some((key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_splits_text_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"reply_markup\"\r\n\r\n{\"inline_keyboard\":[]}\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"q;r.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\r\n--XyZ--\r\n";
        let input = decode(Some("multipart/form-data; boundary=XyZ"), None, body);
        let input = input.unwrap_or_default();
        assert_eq!(input.params.get("chat_id"), Some(&Value::from(42)));
        assert!(
            input
                .params
                .get("reply_markup")
                .is_some_and(Value::is_object)
        );
        assert_eq!(input.files.len(), 1);
        let file = input.file("photo").cloned();
        assert_eq!(
            file.as_ref().map(|file| file.filename.as_str()),
            Some("q;r.png")
        );
        assert_eq!(file.map(|file| file.bytes), Some(b"\x89PNG\r\n".to_vec()));
    }

    #[test]
    fn text_fields_stay_text() {
        let input = decode(
            Some("application/x-www-form-urlencoded"),
            Some("chat_id=7"),
            b"text=%5B1%5D&ok=true",
        )
        .unwrap_or_default();
        assert_eq!(input.get("text"), Some(&Value::from("[1]")));
        assert_eq!(input.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(input.int("chat_id"), Some(7));
    }

    #[test]
    fn broken_bodies_are_refused() {
        assert!(decode(Some("application/json"), None, b"[1]").is_err());
        assert!(
            decode(
                Some("multipart/form-data; boundary=a"),
                None,
                b"--a\r\nnope"
            )
            .is_err()
        );
        assert!(decode(Some("application/json"), None, b"").is_ok());
    }
}
