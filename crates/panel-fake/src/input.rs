//! Request validation mirroring the zod schemas of `@remnawave/backend-contract` 3.4: what the panel accepts, the
//! defaults it applies, and the `400 Validation failed` body it answers with otherwise.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::state::{STRATEGIES, Status};

/// One zod issue, as nestjs-zod lists it under `errors`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub(crate) code: &'static str,
    pub(crate) path: Vec<Value>,
    pub(crate) message: String,
}

impl Issue {
    pub(crate) fn new(path: &[&str], code: &'static str, message: impl Into<String>) -> Issue {
        Issue {
            code,
            path: path.iter().map(|p| json!(p)).collect(),
            message: message.into(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({ "code": self.code, "path": self.path, "message": self.message })
    }
}

/// A nullish field of an update: absent keeps the value, `null` clears it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Patch<T> {
    Keep,
    Clear,
    Set(T),
}

/// `POST /api/users`.
#[derive(Debug, Clone)]
pub(crate) struct CreateUser {
    pub(crate) username: String,
    pub(crate) status: Status,
    pub(crate) short_uuid: Option<String>,
    pub(crate) trojan_password: Option<String>,
    pub(crate) vless_uuid: Option<Uuid>,
    pub(crate) ss_password: Option<String>,
    pub(crate) traffic_limit_bytes: i64,
    pub(crate) strategy: &'static str,
    pub(crate) expire_at: DateTime<Utc>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) last_traffic_reset_at: Option<DateTime<Utc>>,
    pub(crate) description: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) telegram_id: Option<i64>,
    pub(crate) email: Option<String>,
    pub(crate) hwid_device_limit: Option<i64>,
    pub(crate) squads: Vec<Uuid>,
    pub(crate) external_squad_uuid: Option<Uuid>,
}

/// How `PATCH /api/users` names its user.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UserKey {
    Id(i64),
    Username(String),
}

/// `PATCH /api/users`.
#[derive(Debug, Clone)]
pub(crate) struct UpdateUser {
    pub(crate) key: UserKey,
    pub(crate) status: Option<Status>,
    pub(crate) traffic_limit_bytes: Option<i64>,
    pub(crate) strategy: Option<&'static str>,
    pub(crate) expire_at: Option<DateTime<Utc>>,
    pub(crate) description: Patch<String>,
    pub(crate) tag: Patch<String>,
    pub(crate) telegram_id: Patch<i64>,
    pub(crate) email: Patch<String>,
    pub(crate) hwid_device_limit: Patch<i64>,
    pub(crate) squads: Option<Vec<Uuid>>,
    pub(crate) external_squad_uuid: Patch<Uuid>,
}

/// `POST /api/users/resolve`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolve {
    Id(i64),
    ShortUuid(String),
    Username(String),
}

/// `POST /api/users/{id}/actions/revoke`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Revoke {
    pub(crate) only_passwords: bool,
    pub(crate) short_uuid: Option<String>,
}

/// `GET /api/users/stream` query.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct StreamQuery {
    pub(crate) cursor: Option<i64>,
    pub(crate) size: usize,
    pub(crate) status: Option<Status>,
    pub(crate) strategy: Option<&'static str>,
    pub(crate) telegram_id: Option<i64>,
    pub(crate) email: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) external_squad_uuid: Option<Uuid>,
}

/// `GET /api/users` query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListQuery {
    pub(crate) start: usize,
    pub(crate) size: usize,
}

type Checked<T> = Result<T, Vec<Issue>>;

/// Reads the fields of one JSON object, collecting every issue like zod does (not stopping at the first).
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    issues: Vec<Issue>,
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn object(body: Option<&Value>) -> Checked<&Map<String, Value>> {
    match body {
        Some(Value::Object(obj)) => Ok(obj),
        other => Err(vec![Issue::new(
            &[],
            "invalid_type",
            format!(
                "Invalid input: expected object, received {}",
                other.map_or("undefined", kind)
            ),
        )]),
    }
}

/// An integral JSON number (zod `number()` fields the panel stores as integers or BigInt).
fn integer(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15).then_some(f as i64)
}

impl<'a> Fields<'a> {
    fn new(obj: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            obj,
            issues: Vec::new(),
        }
    }

    fn finish<T>(self, value: T) -> Checked<T> {
        if self.issues.is_empty() {
            Ok(value)
        } else {
            Err(self.issues)
        }
    }

    fn wrong(&mut self, key: &str, expected: &str, got: &Value) {
        self.issues.push(Issue::new(
            &[key],
            "invalid_type",
            format!("Invalid input: expected {expected}, received {}", kind(got)),
        ));
    }

    fn missing(&mut self, key: &str, expected: &str) {
        self.issues.push(Issue::new(
            &[key],
            "invalid_type",
            format!("Invalid input: expected {expected}, received undefined"),
        ));
    }

    fn custom(&mut self, key: &str, message: impl Into<String>) {
        self.issues.push(Issue::new(&[key], "custom", message));
    }

    /// The raw value: absent, explicitly null, or present.
    fn raw(&self, key: &str) -> Patch<&'a Value> {
        match self.obj.get(key) {
            None => Patch::Keep,
            Some(Value::Null) => Patch::Clear,
            Some(v) => Patch::Set(v),
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong(key, "string", other);
                None
            }
        }
    }

    fn nullable_string(&mut self, key: &str) -> Patch<String> {
        match self.raw(key) {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(Value::String(s)) => Patch::Set(s.clone()),
            Patch::Set(other) => {
                self.wrong(key, "string", other);
                Patch::Keep
            }
        }
    }

    fn int(&mut self, key: &str, min: i64) -> Option<i64> {
        let value = self.obj.get(key)?;
        let Some(n) = integer(value) else {
            self.wrong(key, "int", value);
            return None;
        };
        if n < min {
            self.issues.push(Issue::new(
                &[key],
                "too_small",
                format!("Too small: expected number to be >={min}"),
            ));
            return None;
        }
        Some(n)
    }

    fn nullable_int(&mut self, key: &str, min: i64) -> Patch<i64> {
        match self.raw(key) {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(_) => self.int(key, min).map_or(Patch::Keep, Patch::Set),
        }
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.obj.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong(key, "boolean", other);
                None
            }
        }
    }

    fn status(&mut self, key: &str, allowed: &[Status]) -> Option<Status> {
        let value = self.string(key)?;
        match Status::parse(&value).filter(|s| allowed.contains(s)) {
            Some(status) => Some(status),
            None => {
                let options: Vec<String> = allowed
                    .iter()
                    .map(|s| format!("\"{}\"", s.as_str()))
                    .collect();
                self.issues.push(Issue::new(
                    &[key],
                    "invalid_value",
                    format!("Invalid option: expected one of {}", options.join("|")),
                ));
                None
            }
        }
    }

    fn strategy(&mut self, key: &str) -> Option<&'static str> {
        let value = self.string(key)?;
        match STRATEGIES.iter().find(|s| **s == value) {
            Some(s) => Some(s),
            None => {
                self.issues.push(Issue::new(
                    &[key],
                    "invalid_value",
                    "Invalid option: expected one of \"NO_RESET\"|\"DAY\"|\"WEEK\"|\"MONTH\"|\"MONTH_ROLLING\"",
                ));
                None
            }
        }
    }

    fn datetime(&mut self, key: &str) -> Option<DateTime<Utc>> {
        let value = self.string(key)?;
        let parsed = parse_datetime(&value);
        if parsed.is_none() {
            self.issues
                .push(Issue::new(&[key], "invalid_format", "Invalid ISO datetime"));
        }
        parsed
    }

    fn uuid(&mut self, key: &str) -> Option<Uuid> {
        let value = self.string(key)?;
        let parsed = zod_uuid(&value);
        if parsed.is_none() {
            self.issues
                .push(Issue::new(&[key], "invalid_format", "Invalid UUID"));
        }
        parsed
    }

    fn nullable_uuid(&mut self, key: &str) -> Patch<Uuid> {
        match self.raw(key) {
            Patch::Keep => Patch::Keep,
            Patch::Clear => Patch::Clear,
            Patch::Set(_) => self.uuid(key).map_or(Patch::Keep, Patch::Set),
        }
    }

    fn uuids(&mut self, key: &str) -> Option<Vec<Uuid>> {
        let value = self.obj.get(key)?;
        let Value::Array(items) = value else {
            self.wrong(key, "array", value);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str().and_then(zod_uuid) {
                Some(u) => out.push(u),
                None => self.issues.push(Issue {
                    code: "invalid_format",
                    path: vec![json!(key), json!(i)],
                    message: "Invalid UUID".to_owned(),
                }),
            }
        }
        Some(out)
    }

    fn email(&mut self, key: &str) -> Patch<String> {
        match self.nullable_string(key) {
            Patch::Set(e) if !is_email(&e) => {
                self.issues.push(Issue::new(
                    &[key],
                    "invalid_format",
                    "Invalid email address",
                ));
                Patch::Keep
            }
            other => other,
        }
    }

    fn tag(&mut self, key: &str) -> Patch<String> {
        match self.nullable_string(key) {
            Patch::Set(t) if !is_tag(&t) => {
                self.custom(
                    key,
                    "Tag can only contain uppercase letters, numbers, underscores (at most 16)",
                );
                Patch::Keep
            }
            other => other,
        }
    }

    fn length(
        &mut self,
        key: &str,
        value: Option<String>,
        min: usize,
        max: usize,
    ) -> Option<String> {
        let value = value?;
        let len = value.chars().count();
        if len < min || len > max {
            self.issues.push(Issue::new(
                &[key],
                if len < min { "too_small" } else { "too_big" },
                format!("Must be {min}-{max} characters"),
            ));
            return None;
        }
        Some(value)
    }
}

/// `z.iso.datetime({ offset: true, local: true })`: RFC 3339 with `Z` or an offset, or a local time taken as UTC.
pub(crate) fn parse_datetime(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Some(dt.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .map(|naive| naive.and_utc())
}

/// `z.uuid()`: hyphenated, RFC 9562 version 1–8 and variant, or the nil / max UUID.
pub(crate) fn zod_uuid(value: &str) -> Option<Uuid> {
    let bytes = value.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let uuid = Uuid::try_parse(value).ok()?;
    let special = uuid.is_nil() || uuid.is_max();
    let version_ok = (1..=8).contains(&(bytes[14] as char).to_digit(16).unwrap_or(0));
    let variant_ok = matches!(bytes[19].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b');
    (special || (version_ok && variant_ok)).then_some(uuid)
}

/// `z.guid()`: any hyphenated 8-4-4-4-12 hex string.
fn zod_guid(value: &str) -> Option<Uuid> {
    let bytes = value.as_bytes();
    (bytes.len() == 36 && [8, 13, 18, 23].iter().all(|&i| bytes[i] == b'-'))
        .then(|| Uuid::try_parse(value).ok())
        .flatten()
}

/// zod 4's email pattern, without a regex engine.
pub(crate) fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !value.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_'+-.".contains(c))
        && local
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || "_+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    let domain_ok = !rest.is_empty()
        && tld.len() >= 2
        && tld.chars().all(|c| c.is_ascii_alphabetic())
        && rest.iter().all(|label| {
            label
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

fn is_tag(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 16
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn is_username(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn username(fields: &mut Fields<'_>) -> Option<String> {
    let Some(name) = fields.string("username") else {
        if !fields.obj.contains_key("username") {
            fields.missing("username", "string");
        }
        return None;
    };
    let len = name.chars().count();
    let problem = if name.is_empty() || !is_username(&name) {
        Some("Username can only contain letters, numbers, underscores and dashes")
    } else if len > 36 {
        Some("Username must be less than 36 characters")
    } else if len < 3 {
        Some("Username must be at least 3 characters")
    } else {
        None
    };
    match problem {
        Some(message) => {
            fields.custom("username", message);
            None
        }
        None => Some(name),
    }
}

/// Validates `POST /api/users`.
pub(crate) fn create_user(body: Option<&Value>) -> Checked<CreateUser> {
    let mut f = Fields::new(object(body)?);
    let username = username(&mut f);
    let status = f
        .status(
            "status",
            &[
                Status::Active,
                Status::Disabled,
                Status::Limited,
                Status::Expired,
            ],
        )
        .unwrap_or(Status::Active);
    let short_uuid = f.string("shortUuid");
    let trojan = f.string("trojanPassword");
    let trojan_password = f.length("trojanPassword", trojan, 8, 32);
    let ss = f.string("ssPassword");
    let ss_password = f.length("ssPassword", ss, 8, 32);
    let vless_uuid = match f.string("vlessUuid") {
        Some(v) => {
            let parsed = zod_guid(&v);
            if parsed.is_none() {
                f.issues.push(Issue::new(
                    &["vlessUuid"],
                    "invalid_format",
                    "Invalid Vless UUID format",
                ));
            }
            parsed
        }
        None => None,
    };
    let traffic_limit_bytes = f.int("trafficLimitBytes", 0).unwrap_or(0);
    let strategy = f.strategy("trafficLimitStrategy").unwrap_or("NO_RESET");
    let expire_at = f.datetime("expireAt");
    if !f.obj.contains_key("expireAt") {
        f.missing("expireAt", "string");
    }
    let created_at = f.datetime("createdAt");
    let last_traffic_reset_at = f.datetime("lastTrafficResetAt");
    let description = f.string("description");
    let tag = patch_to_option(f.tag("tag"));
    let telegram_id = patch_to_option(f.nullable_int("telegramId", i64::MIN));
    let email = patch_to_option(f.email("email"));
    let hwid_device_limit = f.int("hwidDeviceLimit", 0);
    let squads = f.uuids("activeInternalSquads").unwrap_or_default();
    let external_squad_uuid = patch_to_option(f.nullable_uuid("externalSquadUuid"));
    let (Some(username), Some(expire_at)) = (username, expire_at) else {
        return Err(f.issues);
    };
    f.finish(CreateUser {
        username,
        status,
        short_uuid,
        trojan_password,
        vless_uuid,
        ss_password,
        traffic_limit_bytes,
        strategy,
        expire_at,
        created_at,
        last_traffic_reset_at,
        description,
        tag,
        telegram_id,
        email,
        hwid_device_limit,
        squads,
        external_squad_uuid,
    })
}

fn patch_to_option<T>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Set(v) => Some(v),
        Patch::Keep | Patch::Clear => None,
    }
}

/// Validates `PATCH /api/users`; `now` judges "expireAt must be in the future".
pub(crate) fn update_user(body: Option<&Value>, now: DateTime<Utc>) -> Checked<UpdateUser> {
    let mut f = Fields::new(object(body)?);
    let username = f.string("username");
    let id = f.obj.get("id").and_then(|v| match integer(v) {
        Some(n) => Some(n),
        None => {
            f.wrong("id", "number", v);
            None
        }
    });
    let status = f.status("status", &[Status::Active, Status::Disabled]);
    let traffic_limit_bytes = f.int("trafficLimitBytes", 0);
    let strategy = f.strategy("trafficLimitStrategy");
    let expire_at = f.datetime("expireAt");
    if expire_at.is_some_and(|at| at <= now) {
        f.custom("expireAt", "Expiration date cannot be in the past");
    }
    let description = f.nullable_string("description");
    let tag = f.tag("tag");
    let telegram_id = f.nullable_int("telegramId", i64::MIN);
    let email = f.email("email");
    let hwid_device_limit = f.nullable_int("hwidDeviceLimit", 0);
    let squads = f.uuids("activeInternalSquads");
    let external_squad_uuid = f.nullable_uuid("externalSquadUuid");
    // zod's refine: `username ?? id`, so a username wins when both are given.
    let key = match (username, id) {
        (Some(name), _) => UserKey::Username(name),
        (None, Some(id)) => UserKey::Id(id),
        (None, None) => {
            f.issues.push(Issue::new(
                &[],
                "custom",
                "At least one of username, id must be provided",
            ));
            return Err(f.issues);
        }
    };
    f.finish(UpdateUser {
        key,
        status,
        traffic_limit_bytes,
        strategy,
        expire_at,
        description,
        tag,
        telegram_id,
        email,
        hwid_device_limit,
        squads,
        external_squad_uuid,
    })
}

/// Validates `POST /api/users/resolve`.
pub(crate) fn resolve(body: Option<&Value>) -> Checked<Resolve> {
    let mut f = Fields::new(object(body)?);
    let id = f.obj.get("id").and_then(|v| match integer(v) {
        Some(n) => Some(n),
        None => {
            f.wrong("id", "number", v);
            None
        }
    });
    let short_uuid = f.string("shortUuid");
    let username = f.string("username");
    if !f.issues.is_empty() {
        return Err(f.issues);
    }
    match (id, short_uuid, username) {
        (Some(id), None, None) => Ok(Resolve::Id(id)),
        (None, Some(s), None) => Ok(Resolve::ShortUuid(s)),
        (None, None, Some(u)) => Ok(Resolve::Username(u)),
        _ => Err(vec![Issue::new(
            &[],
            "custom",
            "Exactly one of id, shortUuid, or username must be provided",
        )]),
    }
}

/// Validates `POST /api/users/{id}/actions/extend` and returns the days to add.
pub(crate) fn extend(body: Option<&Value>) -> Checked<f64> {
    let mut f = Fields::new(object(body)?);
    let days = match f.obj.get("days") {
        None => {
            f.missing("days", "number");
            None
        }
        Some(v) => match v.as_f64() {
            Some(d) if d >= 1.0 => Some(d),
            Some(_) => {
                f.issues.push(Issue::new(
                    &["days"],
                    "too_small",
                    "Too small: expected number to be >=1",
                ));
                None
            }
            None => {
                f.wrong("days", "number", v);
                None
            }
        },
    };
    match days {
        Some(d) => f.finish(d),
        None => Err(f.issues),
    }
}

/// Validates `POST /api/users/{id}/actions/revoke` (the body is optional).
pub(crate) fn revoke(body: Option<&Value>) -> Checked<Revoke> {
    let empty = Map::new();
    let obj = match body {
        None | Some(Value::Null) => &empty,
        other => object(other)?,
    };
    let mut f = Fields::new(obj);
    let only_passwords = f.boolean("revokeOnlyPasswords").unwrap_or(false);
    let short = f.string("shortUuid");
    let short_uuid = f.length("shortUuid", short, 16, 64);
    f.finish(Revoke {
        only_passwords,
        short_uuid,
    })
}

/// Validates `POST /api/nodes/{uuid}/actions/restart` and returns `forceRestart`.
pub(crate) fn restart(body: Option<&Value>) -> Checked<bool> {
    let mut f = Fields::new(object(body)?);
    match f.boolean("forceRestart") {
        Some(force) => f.finish(force),
        None => {
            if !f.obj.contains_key("forceRestart") {
                f.missing("forceRestart", "boolean");
            }
            Err(f.issues)
        }
    }
}

/// `numberParamSchema` (`z.coerce.number().positive()`) for a user id in a path.
pub(crate) fn user_id(raw: &str) -> Checked<i64> {
    match js_number(raw) {
        Some(n) if n > 0.0 && n.fract() == 0.0 && n < 9.007_199_254_740_992e15 => Ok(n as i64),
        Some(_) => Err(vec![Issue::new(
            &["userId"],
            "too_small",
            "Too small: expected number to be >0",
        )]),
        None => Err(vec![Issue::new(
            &["userId"],
            "invalid_type",
            "Invalid input: expected number, received NaN",
        )]),
    }
}

/// `z.uuid()` for a node uuid in a path.
pub(crate) fn node_uuid(raw: &str) -> Checked<Uuid> {
    zod_uuid(raw).ok_or_else(|| vec![Issue::new(&["uuid"], "invalid_format", "Invalid UUID")])
}

/// JavaScript's `Number(string)` as `z.coerce.number()` applies it; `None` stands for NaN.
fn js_number(raw: &str) -> Option<f64> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Some(0.0);
    }
    let lower = trimmed.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    trimmed.parse::<f64>().ok()
}

/// Splits and percent-decodes a query string; the last of repeated keys wins.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        out.retain(|(existing, _)| *existing != k);
        out.push((k, v));
    }
    out
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_value<'q>(pairs: &'q [(String, String)], key: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn query_size(pairs: &[(String, String)], default: usize, issues: &mut Vec<Issue>) -> usize {
    match query_value(pairs, "size").map(js_number) {
        None => default,
        Some(Some(n)) if (1.0..=1000.0).contains(&n) => n as usize,
        Some(Some(n)) => {
            let (code, message) = if n < 1.0 {
                ("too_small", "Too small: expected number to be >=1")
            } else {
                ("too_big", "Too big: expected number to be <=1000")
            };
            issues.push(Issue::new(&["size"], code, message));
            default
        }
        Some(None) => {
            issues.push(Issue::new(
                &["size"],
                "invalid_type",
                "Invalid input: expected number, received NaN",
            ));
            default
        }
    }
}

/// Validates the `GET /api/users/stream` query.
pub(crate) fn stream_query(query: Option<&str>) -> Checked<StreamQuery> {
    let pairs = query_pairs(query);
    let mut issues = Vec::new();
    let nan = |key: &str| {
        Issue::new(
            &[key],
            "invalid_type",
            "Invalid input: expected number, received NaN",
        )
    };
    let cursor = match query_value(&pairs, "cursor").map(js_number) {
        None => None,
        Some(Some(n)) => Some(n.floor() as i64),
        Some(None) => {
            issues.push(nan("cursor"));
            None
        }
    };
    let size = query_size(&pairs, 250, &mut issues);
    let status = match query_value(&pairs, "status") {
        None => None,
        Some(s) => {
            let parsed = Status::parse(s);
            if parsed.is_none() {
                issues.push(Issue::new(&["status"], "invalid_value", "Invalid option"));
            }
            parsed
        }
    };
    let strategy = match query_value(&pairs, "trafficLimitStrategy") {
        None => None,
        Some(s) => {
            let parsed = STRATEGIES.iter().find(|x| **x == s).copied();
            if parsed.is_none() {
                issues.push(Issue::new(
                    &["trafficLimitStrategy"],
                    "invalid_value",
                    "Invalid option",
                ));
            }
            parsed
        }
    };
    let telegram_id = match query_value(&pairs, "telegramId").map(js_number) {
        None => None,
        Some(Some(n)) if n >= 0.0 => Some(n as i64),
        Some(Some(_)) => {
            issues.push(Issue::new(
                &["telegramId"],
                "too_small",
                "Too small: expected number to be >=0",
            ));
            None
        }
        Some(None) => {
            issues.push(nan("telegramId"));
            None
        }
    };
    let email = query_value(&pairs, "email").map(str::to_owned);
    if email.as_deref().is_some_and(|e| !is_email(e)) {
        issues.push(Issue::new(
            &["email"],
            "invalid_format",
            "Invalid email address",
        ));
    }
    let tag = query_value(&pairs, "tag").map(str::to_owned);
    let external_squad_uuid = match query_value(&pairs, "externalSquadUuid") {
        None => None,
        Some(s) => {
            let parsed = zod_uuid(s);
            if parsed.is_none() {
                issues.push(Issue::new(
                    &["externalSquadUuid"],
                    "invalid_format",
                    "Invalid UUID",
                ));
            }
            parsed
        }
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(StreamQuery {
        cursor,
        size,
        status,
        strategy,
        telegram_id,
        email,
        tag,
        external_squad_uuid,
    })
}

/// Validates the `GET /api/users` query (`start`, `size`; TanStack filters are ignored).
pub(crate) fn list_query(query: Option<&str>) -> Checked<ListQuery> {
    let pairs = query_pairs(query);
    let mut issues = Vec::new();
    let start = match query_value(&pairs, "start").map(js_number) {
        None => 0,
        Some(Some(n)) if n >= 0.0 => n as usize,
        Some(Some(_)) => {
            issues.push(Issue::new(
                &["start"],
                "too_small",
                "Too small: expected number to be >=0",
            ));
            0
        }
        Some(None) => {
            issues.push(Issue::new(
                &["start"],
                "invalid_type",
                "Invalid input: expected number, received NaN",
            ));
            0
        }
    };
    let size = query_size(&pairs, 25, &mut issues);
    if issues.is_empty() {
        Ok(ListQuery { start, size })
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_applies_the_panel_defaults() {
        let body = json!({"username": "alice_1", "expireAt": "2030-01-01T00:00:00.000Z"});
        let user = create_user(Some(&body)).unwrap();
        assert_eq!(user.status, Status::Active);
        assert_eq!(user.traffic_limit_bytes, 0);
        assert_eq!(user.strategy, "NO_RESET");
        assert!(user.squads.is_empty());
    }

    #[test]
    fn create_reports_every_issue() {
        let body =
            json!({"username": "a!", "trafficLimitBytes": -1, "tag": "lower", "email": "nope"});
        let issues = create_user(Some(&body)).unwrap_err();
        let paths: Vec<String> = issues.iter().map(|i| i.path[0].to_string()).collect();
        for key in ["username", "trafficLimitBytes", "tag", "email", "expireAt"] {
            assert!(
                paths.contains(&format!("\"{key}\"")),
                "{key} missing from {paths:?}"
            );
        }
    }

    #[test]
    fn usernames_follow_the_panel_rules() {
        for (name, ok) in [
            ("ab", false),
            ("abc", true),
            (&"x".repeat(36), true),
            (&"x".repeat(37), false),
            ("a b c", false),
        ] {
            let body = json!({"username": name, "expireAt": "2030-01-01T00:00:00Z"});
            assert_eq!(create_user(Some(&body)).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn update_rejects_past_expiry_and_expired_status() {
        let now = Utc::now();
        let past = json!({"id": 1, "expireAt": "2000-01-01T00:00:00Z"});
        assert!(update_user(Some(&past), now).is_err());
        let expired = json!({"id": 1, "status": "EXPIRED"});
        assert!(update_user(Some(&expired), now).is_err());
        let nobody = json!({"status": "ACTIVE"});
        assert!(update_user(Some(&nobody), now).is_err());
        let clear = json!({"username": "bob", "telegramId": null});
        let update = update_user(Some(&clear), now).unwrap();
        assert_eq!(update.key, UserKey::Username("bob".into()));
        assert_eq!(update.telegram_id, Patch::Clear);
        assert_eq!(update.email, Patch::Keep);
    }

    #[test]
    fn resolve_needs_exactly_one_key() {
        assert_eq!(resolve(Some(&json!({"id": 5}))).unwrap(), Resolve::Id(5));
        assert!(resolve(Some(&json!({"id": 5, "username": "x"}))).is_err());
        assert!(resolve(Some(&json!({}))).is_err());
    }

    #[test]
    fn path_ids_are_positive_numbers() {
        assert_eq!(user_id("42").unwrap(), 42);
        assert!(user_id("abc").is_err());
        assert!(user_id("0").is_err());
        assert!(user_id("-3").is_err());
    }

    #[test]
    fn uuids_follow_zod() {
        assert!(zod_uuid("6f1c1b1e-8a3b-4c4d-9e5f-0a1b2c3d4e5f").is_some());
        assert!(zod_uuid("6f1c1b1e-8a3b-0c4d-9e5f-0a1b2c3d4e5f").is_none());
        assert!(zod_uuid("00000000-0000-0000-0000-000000000000").is_some());
        assert!(zod_uuid("6f1c1b1e8a3b4c4d9e5f0a1b2c3d4e5f").is_none());
    }

    #[test]
    fn emails_follow_zod() {
        assert!(is_email("a.b+c@example.co"));
        assert!(!is_email("a..b@example.co"));
        assert!(!is_email(".a@example.co"));
        assert!(!is_email("a@example"));
        assert!(!is_email("a@-x.com"));
    }

    #[test]
    fn stream_query_coerces_like_zod() {
        let q = stream_query(Some("cursor=10&size=2&telegramId=77&status=ACTIVE")).unwrap();
        assert_eq!(
            (q.cursor, q.size, q.telegram_id, q.status),
            (Some(10), 2, Some(77), Some(Status::Active))
        );
        assert_eq!(stream_query(None).unwrap().size, 250);
        assert!(stream_query(Some("size=0")).is_err());
        assert!(stream_query(Some("size=1001")).is_err());
        assert!(stream_query(Some("cursor=abc")).is_err());
        assert_eq!(
            list_query(Some("start=5&size=10")).unwrap(),
            ListQuery { start: 5, size: 10 }
        );
    }

    #[test]
    fn query_strings_are_decoded() {
        let pairs = query_pairs(Some("tag=A%5FB&email=a%40b.co&x"));
        assert_eq!(query_value(&pairs, "tag"), Some("A_B"));
        assert_eq!(query_value(&pairs, "email"), Some("a@b.co"));
        assert_eq!(query_value(&pairs, "x"), Some(""));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
