//! The panel's in-memory data (users, nodes, internal squads), the rules of every action, and the JSON the API
//! renders for them (shapes of `@remnawave/backend-contract` 3.4).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::input::{
    CreateUser, ListQuery, Patch, Resolve, Revoke, StreamQuery, UpdateUser, UserKey,
};

/// The traffic reset strategies the panel knows.
pub(crate) const STRATEGIES: [&str; 5] = ["NO_RESET", "DAY", "WEEK", "MONTH", "MONTH_ROLLING"];

/// The version `GET /api/system/metadata` reports.
pub(crate) const PANEL_VERSION: &str = "3.4.15";

/// A user's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Active,
    Disabled,
    Limited,
    Expired,
}

impl Status {
    pub(crate) const ALL: [Status; 4] = [
        Status::Active,
        Status::Disabled,
        Status::Limited,
        Status::Expired,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Disabled => "DISABLED",
            Status::Limited => "LIMITED",
            Status::Expired => "EXPIRED",
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// An entry of the panel's error catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PanelError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: &'static str,
}

const fn panel_error(status: u16, code: &'static str, message: &'static str) -> PanelError {
    PanelError {
        status,
        code,
        message,
    }
}

pub(crate) const SERVER_ERROR: PanelError = panel_error(500, "A001", "Server error");
pub(crate) const NODE_NOT_FOUND: PanelError = panel_error(404, "A011", "Node not found");
pub(crate) const CREATE_USER_ERROR: PanelError = panel_error(500, "A018", "Failed to create user");
pub(crate) const USERNAME_EXISTS: PanelError =
    panel_error(400, "A019", "User username already exists");
pub(crate) const SHORT_UUID_EXISTS: PanelError =
    panel_error(400, "A020", "User short UUID already exists");
pub(crate) const USER_NOT_FOUND: PanelError = panel_error(404, "A025", "User not found");
pub(crate) const USER_ALREADY_DISABLED: PanelError =
    panel_error(400, "A029", "User already disabled");
pub(crate) const USER_ALREADY_ENABLED: PanelError =
    panel_error(400, "A030", "User already enabled");
pub(crate) const UPDATE_USER_ERROR: PanelError = panel_error(500, "A039", "Update user error");
pub(crate) const LOOKUP_NOT_FOUND: PanelError =
    panel_error(404, "A063", "User with specified params not found");

/// A webhook event an action raised, delivered after the state lock is released.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) name: &'static str,
    pub(crate) data: Value,
}

/// What a mutating action answers: the rendered user and the events it raised.
pub(crate) type Outcome = Result<(Value, Vec<Event>), PanelError>;

#[derive(Debug, Clone)]
struct User {
    id: i64,
    username: String,
    short_uuid: String,
    status: Status,
    traffic_limit_bytes: i64,
    strategy: &'static str,
    expire_at: DateTime<Utc>,
    telegram_id: Option<i64>,
    email: Option<String>,
    description: Option<String>,
    tag: Option<String>,
    hwid_device_limit: Option<i64>,
    external_squad_uuid: Option<Uuid>,
    trojan_password: String,
    vless_uuid: Uuid,
    ss_password: String,
    last_triggered_threshold: i64,
    sub_revoked_at: Option<DateTime<Utc>>,
    last_traffic_reset_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    squads: Vec<Uuid>,
    used_traffic_bytes: i64,
    lifetime_used_traffic_bytes: i64,
    online_at: Option<DateTime<Utc>>,
    first_connected_at: Option<DateTime<Utc>>,
    last_connected_node_uuid: Option<Uuid>,
}

impl User {
    /// The status as the panel reports it: its expiry job would already have marked a lapsed ACTIVE user EXPIRED.
    fn status_at(&self, now: DateTime<Utc>) -> Status {
        if self.status == Status::Active && self.expire_at <= now {
            Status::Expired
        } else {
            self.status
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    uuid: Uuid,
    id: i64,
    name: String,
    address: String,
    ip: String,
    country_code: String,
    is_connected: bool,
    is_disabled: bool,
    last_status_change: DateTime<Utc>,
    last_status_message: Option<String>,
    traffic_used_bytes: i64,
    users_online: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Squad {
    uuid: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

/// Everything the fake panel holds.
#[derive(Debug)]
pub(crate) struct State {
    users: BTreeMap<i64, User>,
    by_username: HashMap<String, i64>,
    by_short_uuid: HashMap<String, i64>,
    next_id: i64,
    next_seed: u64,
    nodes: Vec<Node>,
    squads: Vec<Squad>,
    profile_uuid: Uuid,
    inbound_uuid: Uuid,
    subscription_base: String,
    started: DateTime<Utc>,
}

/// Dates as the panel writes them: `2025-01-17T15:38:45.065Z`.
pub(crate) fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn iso_opt(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |a| json!(iso(a)))
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn random_string(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in Uuid::new_v4().as_bytes() {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
        }
    }
    out
}

fn pretty_bytes(bytes: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

impl State {
    /// A panel with two internal squads and three connected nodes in different countries.
    pub(crate) fn new(subscription_base: &str, now: DateTime<Utc>) -> State {
        let squads = ["Default-Squad", "Premium"]
            .into_iter()
            .map(|name| Squad {
                uuid: Uuid::new_v4(),
                name: name.to_owned(),
                created_at: now,
            })
            .collect();
        let nodes = [
            (
                "NL-Amsterdam-1",
                "nl1.vpn.example.test",
                "203.0.113.10",
                "NL",
            ),
            (
                "DE-Frankfurt-1",
                "de1.vpn.example.test",
                "203.0.113.20",
                "DE",
            ),
            (
                "FI-Helsinki-1",
                "fi1.vpn.example.test",
                "203.0.113.30",
                "FI",
            ),
        ]
        .into_iter()
        .zip(1..)
        .map(|((name, address, ip, country), id)| Node {
            uuid: Uuid::new_v4(),
            id,
            name: name.to_owned(),
            address: address.to_owned(),
            ip: ip.to_owned(),
            country_code: country.to_owned(),
            is_connected: true,
            is_disabled: false,
            last_status_change: now,
            last_status_message: None,
            traffic_used_bytes: 0,
            users_online: 0,
            created_at: now,
            updated_at: now,
        })
        .collect();
        State {
            users: BTreeMap::new(),
            by_username: HashMap::new(),
            by_short_uuid: HashMap::new(),
            next_id: 1,
            next_seed: 1,
            nodes,
            squads,
            profile_uuid: Uuid::new_v4(),
            inbound_uuid: Uuid::new_v4(),
            subscription_base: subscription_base.trim_end_matches('/').to_owned(),
            started: now,
        }
    }

    fn subscription_url(&self, short_uuid: &str) -> String {
        format!("{}/{short_uuid}", self.subscription_base)
    }

    fn fresh_short_uuid(&self) -> String {
        loop {
            let candidate = random_string(16);
            if !self.by_short_uuid.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    fn user_json(&self, user: &User, now: DateTime<Utc>) -> Value {
        let squads: Vec<Value> = user
            .squads
            .iter()
            .filter_map(|uuid| self.squads.iter().find(|s| s.uuid == *uuid))
            .map(|s| json!({ "uuid": s.uuid, "name": s.name }))
            .collect();
        json!({
            "id": user.id,
            "shortUuid": user.short_uuid,
            "username": user.username,
            "status": user.status_at(now).as_str(),
            "trafficLimitBytes": user.traffic_limit_bytes,
            "trafficLimitStrategy": user.strategy,
            "expireAt": iso(user.expire_at),
            "telegramId": user.telegram_id,
            "email": user.email,
            "description": user.description,
            "tag": user.tag,
            "hwidDeviceLimit": user.hwid_device_limit,
            "externalSquadUuid": user.external_squad_uuid,
            "trojanPassword": user.trojan_password,
            "vlessUuid": user.vless_uuid,
            "ssPassword": user.ss_password,
            "lastTriggeredThreshold": user.last_triggered_threshold,
            "subRevokedAt": iso_opt(user.sub_revoked_at),
            "lastTrafficResetAt": iso_opt(user.last_traffic_reset_at),
            "createdAt": iso(user.created_at),
            "updatedAt": iso(user.updated_at),
            "subscriptionUrl": self.subscription_url(&user.short_uuid),
            "activeInternalSquads": squads,
            "userTraffic": {
                "usedTrafficBytes": user.used_traffic_bytes,
                "lifetimeUsedTrafficBytes": user.lifetime_used_traffic_bytes,
                "onlineAt": iso_opt(user.online_at),
                "firstConnectedAt": iso_opt(user.first_connected_at),
                "lastConnectedNodeUuid": user.last_connected_node_uuid,
            },
        })
    }

    fn render(&self, id: i64, now: DateTime<Utc>) -> Value {
        self.users
            .get(&id)
            .map_or(Value::Null, |u| self.user_json(u, now))
    }

    /// Every user in id order, rendered.
    pub(crate) fn all_users(&self, now: DateTime<Utc>) -> Vec<Value> {
        self.users
            .values()
            .map(|u| self.user_json(u, now))
            .collect()
    }

    /// One user by username, rendered.
    pub(crate) fn user_named(&self, name: &str, now: DateTime<Utc>) -> Option<Value> {
        let id = self.by_username.get(name)?;
        Some(self.render(*id, now))
    }

    fn insert(&mut self, user: User) {
        self.by_username.insert(user.username.clone(), user.id);
        self.by_short_uuid.insert(user.short_uuid.clone(), user.id);
        self.next_id = self.next_id.max(user.id + 1);
        self.users.insert(user.id, user);
    }

    fn remove(&mut self, id: i64) -> Option<User> {
        let user = self.users.remove(&id)?;
        self.by_username.remove(&user.username);
        self.by_short_uuid.remove(&user.short_uuid);
        Some(user)
    }

    /// `POST /api/users`.
    pub(crate) fn create_user(&mut self, input: CreateUser, now: DateTime<Utc>) -> Outcome {
        if self.by_username.contains_key(&input.username) {
            return Err(USERNAME_EXISTS);
        }
        if let Some(short) = &input.short_uuid
            && self.by_short_uuid.contains_key(short)
        {
            return Err(SHORT_UUID_EXISTS);
        }
        // An unknown squad is a foreign-key failure inside the panel's transaction.
        if input
            .squads
            .iter()
            .any(|u| !self.squads.iter().any(|s| s.uuid == *u))
        {
            return Err(CREATE_USER_ERROR);
        }
        let mut squads = input.squads;
        squads.dedup();
        let id = self.next_id;
        let user = User {
            id,
            short_uuid: input.short_uuid.unwrap_or_else(|| self.fresh_short_uuid()),
            username: input.username,
            status: input.status,
            traffic_limit_bytes: input.traffic_limit_bytes,
            strategy: input.strategy,
            expire_at: input.expire_at,
            telegram_id: input.telegram_id,
            email: input.email,
            description: input.description,
            tag: input.tag,
            hwid_device_limit: input.hwid_device_limit,
            external_squad_uuid: input.external_squad_uuid,
            trojan_password: input.trojan_password.unwrap_or_else(|| random_string(30)),
            vless_uuid: input.vless_uuid.unwrap_or_else(Uuid::new_v4),
            ss_password: input.ss_password.unwrap_or_else(|| random_string(32)),
            last_triggered_threshold: 0,
            sub_revoked_at: None,
            last_traffic_reset_at: input.last_traffic_reset_at,
            created_at: input.created_at.unwrap_or(now),
            updated_at: now,
            squads,
            used_traffic_bytes: 0,
            lifetime_used_traffic_bytes: 0,
            online_at: None,
            first_connected_at: None,
            last_connected_node_uuid: None,
        };
        self.insert(user);
        let rendered = self.render(id, now);
        let events = vec![Event {
            name: "user.created",
            data: rendered.clone(),
        }];
        Ok((rendered, events))
    }

    /// `GET /api/users/{id}`.
    pub(crate) fn get_by_id(&self, id: i64, now: DateTime<Utc>) -> Result<Value, PanelError> {
        self.users
            .get(&id)
            .map(|u| self.user_json(u, now))
            .ok_or(LOOKUP_NOT_FOUND)
    }

    /// `GET /api/users/by-username/{username}`.
    pub(crate) fn get_by_username(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, PanelError> {
        self.user_named(name, now).ok_or(LOOKUP_NOT_FOUND)
    }

    /// `GET /api/users/by-short-uuid/{shortUuid}`.
    pub(crate) fn get_by_short_uuid(
        &self,
        short: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, PanelError> {
        let id = self.by_short_uuid.get(short).ok_or(LOOKUP_NOT_FOUND)?;
        Ok(self.render(*id, now))
    }

    /// `POST /api/users/resolve`.
    pub(crate) fn resolve(&self, key: &Resolve) -> Result<Value, PanelError> {
        let id = match key {
            Resolve::Id(id) => self.users.contains_key(id).then_some(*id),
            Resolve::ShortUuid(s) => self.by_short_uuid.get(s).copied(),
            Resolve::Username(u) => self.by_username.get(u).copied(),
        };
        let user = id
            .and_then(|id| self.users.get(&id))
            .ok_or(LOOKUP_NOT_FOUND)?;
        Ok(json!({ "id": user.id, "username": user.username, "shortUuid": user.short_uuid }))
    }

    /// `GET /api/users/stream`: cursor paging in id order; the cursor is the last id of the previous page.
    pub(crate) fn stream(&self, query: &StreamQuery, now: DateTime<Utc>) -> Value {
        let from = query.cursor.map_or(i64::MIN, |c| c.saturating_add(1));
        let mut matching = self.users.range(from..).map(|(_, u)| u).filter(|u| {
            query.status.is_none_or(|s| u.status_at(now) == s)
                && query.strategy.is_none_or(|s| u.strategy == s)
                && query.telegram_id.is_none_or(|t| u.telegram_id == Some(t))
                && query
                    .email
                    .as_ref()
                    .is_none_or(|e| u.email.as_ref() == Some(e))
                && query.tag.as_ref().is_none_or(|t| u.tag.as_ref() == Some(t))
                && query
                    .external_squad_uuid
                    .is_none_or(|x| u.external_squad_uuid == Some(x))
        });
        let page: Vec<&User> = matching.by_ref().take(query.size).collect();
        let has_more = matching.next().is_some();
        let next_cursor = match (has_more, page.last()) {
            (true, Some(last)) => json!(last.id.to_string()),
            _ => Value::Null,
        };
        let users: Vec<Value> = page.iter().map(|u| self.user_json(u, now)).collect();
        json!({ "users": users, "nextCursor": next_cursor, "hasMore": has_more })
    }

    /// `GET /api/users`: offset paging in id order.
    pub(crate) fn list(&self, query: &ListQuery, now: DateTime<Utc>) -> Value {
        let users: Vec<Value> = self
            .users
            .values()
            .skip(query.start)
            .take(query.size)
            .map(|u| self.user_json(u, now))
            .collect();
        json!({ "users": users, "total": self.users.len() })
    }

    fn user_mut(&mut self, id: i64, now: DateTime<Utc>) -> Result<&mut User, PanelError> {
        let user = self.users.get_mut(&id).ok_or(USER_NOT_FOUND)?;
        user.status = user.status_at(now);
        Ok(user)
    }

    fn finish(&self, id: i64, now: DateTime<Utc>, names: &[&'static str]) -> Outcome {
        let rendered = self.render(id, now);
        let events = names
            .iter()
            .map(|name| Event {
                name,
                data: rendered.clone(),
            })
            .collect();
        Ok((rendered, events))
    }

    /// `PATCH /api/users`.
    pub(crate) fn update(&mut self, input: UpdateUser, now: DateTime<Utc>) -> Outcome {
        let id = match &input.key {
            UserKey::Id(id) => *id,
            UserKey::Username(name) => *self.by_username.get(name).ok_or(USER_NOT_FOUND)?,
        };
        if let Some(squads) = &input.squads
            && squads
                .iter()
                .any(|u| !self.squads.iter().any(|s| s.uuid == *u))
        {
            return Err(UPDATE_USER_ERROR);
        }
        let user = self.user_mut(id, now)?;
        let mut status = input.status;
        if let Some(limit) = input.traffic_limit_bytes {
            if user.status == Status::Limited && (limit > user.traffic_limit_bytes || limit == 0) {
                status = Some(Status::Active);
            }
            user.traffic_limit_bytes = limit;
            user.last_triggered_threshold = 0;
        }
        if let Some(expire_at) = input.expire_at {
            if user.status == Status::Expired
                && input.status.is_none()
                && expire_at != user.expire_at
            {
                status = Some(Status::Active);
            }
            user.expire_at = expire_at;
        }
        if let Some(status) = status {
            user.status = status;
        }
        if let Some(strategy) = input.strategy {
            user.strategy = strategy;
        }
        apply(&mut user.description, input.description);
        apply(&mut user.tag, input.tag);
        apply(&mut user.telegram_id, input.telegram_id);
        apply(&mut user.email, input.email);
        apply(&mut user.hwid_device_limit, input.hwid_device_limit);
        apply(&mut user.external_squad_uuid, input.external_squad_uuid);
        if let Some(mut squads) = input.squads {
            squads.dedup();
            user.squads = squads;
        }
        user.updated_at = now;
        self.finish(id, now, &["user.modified"])
    }

    /// `POST /api/users/{id}/actions/extend`: from the current expiry, or from now once it has passed.
    pub(crate) fn extend(&mut self, id: i64, days: f64, now: DateTime<Utc>) -> Outcome {
        let user = self.user_mut(id, now)?;
        let base = user.expire_at.max(now);
        let millis = (days * 86_400_000.0).round() as i64;
        user.expire_at = base + TimeDelta::milliseconds(millis);
        if user.status == Status::Expired {
            user.status = Status::Active;
        }
        user.updated_at = now;
        self.finish(id, now, &["user.modified"])
    }

    /// `POST /api/users/{id}/actions/enable`.
    pub(crate) fn enable(&mut self, id: i64, now: DateTime<Utc>) -> Outcome {
        let user = self.user_mut(id, now)?;
        if user.status == Status::Active {
            return Err(USER_ALREADY_ENABLED);
        }
        user.status = Status::Active;
        user.updated_at = now;
        self.finish(id, now, &["user.enabled"])
    }

    /// `POST /api/users/{id}/actions/disable`.
    pub(crate) fn disable(&mut self, id: i64, now: DateTime<Utc>) -> Outcome {
        let user = self.user_mut(id, now)?;
        if user.status == Status::Disabled {
            return Err(USER_ALREADY_DISABLED);
        }
        user.status = Status::Disabled;
        user.updated_at = now;
        self.finish(id, now, &["user.disabled"])
    }

    /// `POST /api/users/{id}/actions/reset-traffic`: a LIMITED user becomes ACTIVE again.
    pub(crate) fn reset_traffic(&mut self, id: i64, now: DateTime<Utc>) -> Outcome {
        let user = self.user_mut(id, now)?;
        let was_limited = user.status == Status::Limited;
        if was_limited {
            user.status = Status::Active;
        }
        user.used_traffic_bytes = 0;
        user.last_triggered_threshold = 0;
        user.last_traffic_reset_at = Some(now);
        user.updated_at = now;
        let events: &[&'static str] = if was_limited {
            &["user.enabled", "user.traffic_reset"]
        } else {
            &["user.traffic_reset"]
        };
        self.finish(id, now, events)
    }

    /// `POST /api/users/{id}/actions/revoke`: new credentials and, unless only passwords, a new short UUID.
    pub(crate) fn revoke(&mut self, id: i64, input: Revoke, now: DateTime<Utc>) -> Outcome {
        if !self.users.contains_key(&id) {
            return Err(USER_NOT_FOUND);
        }
        let new_short = if input.only_passwords {
            None
        } else {
            match input.short_uuid {
                Some(s) if self.by_short_uuid.get(&s).is_some_and(|owner| *owner != id) => {
                    return Err(SHORT_UUID_EXISTS);
                }
                Some(s) => Some(s),
                None => Some(self.fresh_short_uuid()),
            }
        };
        let user = self.user_mut(id, now)?;
        user.vless_uuid = Uuid::new_v4();
        user.trojan_password = random_string(30);
        user.ss_password = random_string(32);
        user.sub_revoked_at = Some(now);
        user.updated_at = now;
        let old_short = new_short
            .as_ref()
            .map(|short| std::mem::replace(&mut user.short_uuid, short.clone()));
        if let (Some(old), Some(short)) = (old_short, new_short) {
            self.by_short_uuid.remove(&old);
            self.by_short_uuid.insert(short, id);
        }
        self.finish(id, now, &["user.revoked"])
    }

    /// `DELETE /api/users/{id}` and out-of-band deletion.
    pub(crate) fn delete(&mut self, id: i64, now: DateTime<Utc>) -> Result<Vec<Event>, PanelError> {
        let rendered = self
            .users
            .get(&id)
            .map(|u| self.user_json(u, now))
            .ok_or(USER_NOT_FOUND)?;
        self.remove(id);
        Ok(vec![Event {
            name: "user.deleted",
            data: rendered,
        }])
    }

    /// Records traffic for a user as the nodes would report it; crossing the limit makes the user LIMITED.
    pub(crate) fn set_traffic(&mut self, id: i64, used: i64, now: DateTime<Utc>) -> Vec<Event> {
        let node = self.nodes.first().map(|n| n.uuid);
        let Ok(user) = self.user_mut(id, now) else {
            return Vec::new();
        };
        if used > user.used_traffic_bytes {
            user.lifetime_used_traffic_bytes += used - user.used_traffic_bytes;
        }
        user.used_traffic_bytes = used.max(0);
        user.online_at = Some(now);
        user.first_connected_at.get_or_insert(now);
        user.last_connected_node_uuid = node;
        let limited = user.status == Status::Active
            && user.traffic_limit_bytes > 0
            && user.used_traffic_bytes >= user.traffic_limit_bytes;
        if limited {
            user.status = Status::Limited;
            user.updated_at = now;
        }
        let names: &[&'static str] = if limited { &["user.limited"] } else { &[] };
        self.finish(id, now, names)
            .map(|(_, e)| e)
            .unwrap_or_default()
    }

    /// Bulk-creates ACTIVE users `seed_<n>` in the first squad, expiring in 30 days; raises no events.
    pub(crate) fn seed(&mut self, count: usize, now: DateTime<Utc>) {
        let squad = self.squads.first().map(|s| s.uuid);
        for _ in 0..count {
            let username = loop {
                let candidate = format!("seed_{}", self.next_seed);
                self.next_seed += 1;
                if !self.by_username.contains_key(&candidate) {
                    break candidate;
                }
            };
            let id = self.next_id;
            let user = User {
                id,
                short_uuid: self.fresh_short_uuid(),
                username,
                status: Status::Active,
                traffic_limit_bytes: 0,
                strategy: "NO_RESET",
                expire_at: now + TimeDelta::days(30),
                telegram_id: Some(100_000_000 + id),
                email: None,
                description: None,
                tag: None,
                hwid_device_limit: None,
                external_squad_uuid: None,
                trojan_password: random_string(30),
                vless_uuid: Uuid::new_v4(),
                ss_password: random_string(32),
                last_triggered_threshold: 0,
                sub_revoked_at: None,
                last_traffic_reset_at: None,
                created_at: now,
                updated_at: now,
                squads: squad.into_iter().collect(),
                used_traffic_bytes: 0,
                lifetime_used_traffic_bytes: 0,
                online_at: None,
                first_connected_at: None,
                last_connected_node_uuid: None,
            };
            self.insert(user);
        }
    }

    /// Creates one ACTIVE `NO_RESET` user in the first squad; raises no events. Returns its id and short uuid,
    /// or `None` when the username is taken.
    pub(crate) fn seed_user(
        &mut self,
        username: &str,
        expire_at: DateTime<Utc>,
        traffic_limit_bytes: i64,
        tag: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<(i64, String)> {
        if self.by_username.contains_key(username) {
            return None;
        }
        let id = self.next_id;
        let short_uuid = self.fresh_short_uuid();
        let user = User {
            id,
            short_uuid: short_uuid.clone(),
            username: username.to_owned(),
            status: Status::Active,
            traffic_limit_bytes,
            strategy: "NO_RESET",
            expire_at,
            telegram_id: None,
            email: None,
            description: None,
            tag: tag.map(str::to_owned),
            hwid_device_limit: None,
            external_squad_uuid: None,
            trojan_password: random_string(30),
            vless_uuid: Uuid::new_v4(),
            ss_password: random_string(32),
            last_triggered_threshold: 0,
            sub_revoked_at: None,
            last_traffic_reset_at: None,
            created_at: now,
            updated_at: now,
            squads: self.squads.first().map(|s| s.uuid).into_iter().collect(),
            used_traffic_bytes: 0,
            lifetime_used_traffic_bytes: 0,
            online_at: None,
            first_connected_at: None,
            last_connected_node_uuid: None,
        };
        self.insert(user);
        Some((id, short_uuid))
    }

    /// The subscription URL of a short uuid (`<base>/<shortUuid>`).
    pub(crate) fn subscription_url_of(&self, short_uuid: &str) -> String {
        self.subscription_url(short_uuid)
    }

    /// How many users there are.
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    /// `GET /api/sub/{shortUuid}/info`.
    pub(crate) fn subscription_info(
        &self,
        short: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, PanelError> {
        let id = self.by_short_uuid.get(short).ok_or(LOOKUP_NOT_FOUND)?;
        let user = self.users.get(id).ok_or(LOOKUP_NOT_FOUND)?;
        let status = user.status_at(now);
        let seconds_left = (user.expire_at - now).num_seconds().max(0);
        let days_left = (seconds_left + 86_399) / 86_400;
        let (links, ss_links) = if status == Status::Active && !user.squads.is_empty() {
            self.nodes
                .iter()
                .filter(|n| !n.is_disabled)
                .map(|n| {
                    let vless = format!(
                        "vless://{}@{}:443?security=reality&type=tcp&flow=xtls-rprx-vision#{}",
                        user.vless_uuid, n.address, n.name
                    );
                    let ss = format!("ssconf://{}/{}/{}", n.address, user.short_uuid, n.id);
                    (vless, (n.name.clone(), json!(ss)))
                })
                .unzip()
        } else {
            (Vec::new(), serde_json::Map::new())
        };
        let limit = if user.traffic_limit_bytes == 0 {
            "∞".to_owned()
        } else {
            pretty_bytes(user.traffic_limit_bytes)
        };
        Ok(json!({
            "isFound": true,
            "user": {
                "shortUuid": user.short_uuid,
                "daysLeft": days_left,
                "trafficUsed": pretty_bytes(user.used_traffic_bytes),
                "trafficLimit": limit,
                "lifetimeTrafficUsed": pretty_bytes(user.lifetime_used_traffic_bytes),
                "trafficUsedBytes": user.used_traffic_bytes.to_string(),
                "trafficLimitBytes": user.traffic_limit_bytes.to_string(),
                "lifetimeTrafficUsedBytes": user.lifetime_used_traffic_bytes.to_string(),
                "username": user.username,
                "expiresAt": iso(user.expire_at),
                "isActive": status == Status::Active,
                "userStatus": status.as_str(),
                "trafficLimitStrategy": user.strategy,
            },
            "links": links,
            "ssConfLinks": ss_links,
            "subscriptionUrl": self.subscription_url(&user.short_uuid),
        }))
    }

    fn inbound_json(&self) -> Value {
        json!({
            "uuid": self.inbound_uuid,
            "profileUuid": self.profile_uuid,
            "tag": "VLESS_REALITY",
            "type": "vless",
            "network": "tcp",
            "security": "reality",
            "port": 443,
            "rawInbound": null,
        })
    }

    fn node_json(&self, node: &Node, now: DateTime<Utc>) -> Value {
        let online = node.is_connected && !node.is_disabled;
        let uptime = if online {
            (now - node.last_status_change).num_seconds().max(0)
        } else {
            0
        };
        let system = online.then(|| {
            json!({
                "info": {
                    "arch": "x64",
                    "cpus": 2,
                    "cpuModel": "Fake CPU",
                    "memoryTotal": 4_294_967_296_i64,
                    "hostname": node.address,
                    "platform": "linux",
                    "release": "6.1.0",
                    "type": "Linux",
                    "version": "#1 SMP",
                    "networkInterfaces": ["eth0"],
                },
                "stats": {
                    "memoryFree": 2_147_483_648_i64,
                    "memoryUsed": 2_147_483_648_i64,
                    "uptime": uptime,
                    "loadAvg": [0.1, 0.05, 0.01],
                    "interface": null,
                },
            })
        });
        json!({
            "uuid": node.uuid,
            "id": node.id,
            "name": node.name,
            "address": node.address,
            "port": 2222,
            "proxyUrl": null,
            "isConnected": node.is_connected,
            "isDisabled": node.is_disabled,
            "isConnecting": false,
            "lastStatusChange": iso(node.last_status_change),
            "lastStatusMessage": node.last_status_message,
            "isTrafficTrackingActive": false,
            "trafficResetDay": null,
            "trafficLimitBytes": null,
            "trafficUsedBytes": node.traffic_used_bytes,
            "notifyPercent": null,
            "viewPosition": node.id,
            "countryCode": node.country_code,
            "consumptionMultiplier": 1,
            "nodeConsumptionMultiplier": 1,
            "tags": [],
            "integrationUuids": [],
            "ips": [{ "ip": node.ip, "status": "INBOUND" }],
            "createdAt": iso(node.created_at),
            "updatedAt": iso(node.updated_at),
            "configProfile": {
                "activeConfigProfileUuid": self.profile_uuid,
                "activeInbounds": [self.inbound_json()],
            },
            "providerUuid": null,
            "provider": null,
            "activePluginUuid": null,
            "system": system,
            "versions": online.then(|| json!({ "xray": "25.10.15", "node": "2.2.3" })),
            "xrayUptime": uptime,
            "usersOnline": if online { node.users_online } else { 0 },
            "note": null,
        })
    }

    /// `GET /api/nodes`.
    pub(crate) fn nodes_json(&self, now: DateTime<Utc>) -> Vec<Value> {
        self.nodes.iter().map(|n| self.node_json(n, now)).collect()
    }

    /// `GET /api/nodes/{uuid}`.
    pub(crate) fn node(&self, uuid: Uuid, now: DateTime<Utc>) -> Result<Value, PanelError> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.uuid == uuid)
            .ok_or(NODE_NOT_FOUND)?;
        Ok(self.node_json(node, now))
    }

    /// `POST /api/nodes/{uuid}/actions/enable|disable`; enabling reconnects at once.
    pub(crate) fn set_node_disabled(
        &mut self,
        uuid: Uuid,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> Outcome {
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.uuid == uuid)
            .ok_or(NODE_NOT_FOUND)?;
        node.is_disabled = disabled;
        node.is_connected = !disabled;
        node.last_status_change = now;
        node.last_status_message = None;
        node.updated_at = now;
        let rendered = self.node(uuid, now)?;
        let name = if disabled {
            "node.disabled"
        } else {
            "node.enabled"
        };
        let events = vec![Event {
            name,
            data: rendered.clone(),
        }];
        Ok((rendered, events))
    }

    /// Flips a node's connection as the panel's health check would; a change raises its webhook event.
    pub(crate) fn set_node_connected(
        &mut self,
        uuid: &str,
        connected: bool,
        now: DateTime<Utc>,
    ) -> Vec<Event> {
        let Some(node) = self.nodes.iter_mut().find(|n| n.uuid.to_string() == uuid) else {
            return Vec::new();
        };
        if node.is_connected == connected {
            return Vec::new();
        }
        node.is_connected = connected;
        node.last_status_change = now;
        node.last_status_message = (!connected).then(|| "Connection lost: ECONNREFUSED".to_owned());
        let uuid = node.uuid;
        let name = if connected {
            "node.connection_restored"
        } else {
            "node.connection_lost"
        };
        self.node(uuid, now)
            .map(|data| vec![Event { name, data }])
            .unwrap_or_default()
    }

    /// Whether a node exists (restart answers 202 with no body).
    pub(crate) fn has_node(&self, uuid: Uuid) -> bool {
        self.nodes.iter().any(|n| n.uuid == uuid)
    }

    /// The squads as `(uuid, name)`.
    pub(crate) fn squad_pairs(&self) -> Vec<(String, String)> {
        self.squads
            .iter()
            .map(|s| (s.uuid.to_string(), s.name.clone()))
            .collect()
    }

    /// `GET /api/internal-squads`.
    pub(crate) fn squads_json(&self) -> Value {
        let squads: Vec<Value> = self
            .squads
            .iter()
            .zip(0..)
            .map(|(s, position)| {
                let members = self
                    .users
                    .values()
                    .filter(|u| u.squads.contains(&s.uuid))
                    .count();
                json!({
                    "uuid": s.uuid,
                    "viewPosition": position,
                    "name": s.name,
                    "tags": [],
                    "info": { "membersCount": members, "inboundsCount": 1 },
                    "inbounds": [self.inbound_json()],
                    "createdAt": iso(s.created_at),
                    "updatedAt": iso(s.created_at),
                })
            })
            .collect();
        json!({ "total": squads.len(), "internalSquads": squads })
    }

    /// `GET /api/system/stats`.
    pub(crate) fn stats_json(&self, now: DateTime<Utc>) -> Value {
        let mut counts = [0_u64; 4];
        let (mut last_day, mut last_week, mut never, mut online_now) = (0_u64, 0_u64, 0_u64, 0_u64);
        let mut lifetime: i64 = 0;
        for user in self.users.values() {
            let status = user.status_at(now);
            if let Some(i) = Status::ALL.iter().position(|s| *s == status) {
                counts[i] += 1;
            }
            lifetime += user.lifetime_used_traffic_bytes;
            match user.online_at {
                None => never += 1,
                Some(at) => {
                    let ago = now - at;
                    online_now += u64::from(ago <= TimeDelta::minutes(1));
                    last_day += u64::from(ago <= TimeDelta::days(1));
                    last_week += u64::from(ago <= TimeDelta::days(7));
                }
            }
        }
        let online_nodes = self
            .nodes
            .iter()
            .filter(|n| n.is_connected && !n.is_disabled)
            .count();
        json!({
            "cpu": { "cores": std::thread::available_parallelism().map_or(1, usize::from) },
            "memory": { "total": 8_589_934_592_i64, "free": 4_294_967_296_i64, "used": 4_294_967_296_i64 },
            "uptime": (now - self.started).num_seconds(),
            "timestamp": now.timestamp_millis(),
            "users": {
                "statusCounts": {
                    "ACTIVE": counts[0], "DISABLED": counts[1], "LIMITED": counts[2], "EXPIRED": counts[3],
                },
                "totalUsers": self.users.len(),
            },
            "onlineStats": {
                "lastDay": last_day, "lastWeek": last_week, "neverOnline": never, "onlineNow": online_now,
            },
            "nodes": { "totalOnline": online_nodes, "totalBytesLifetime": lifetime.to_string() },
        })
    }

    /// `GET /api/system/stats/bandwidth`: all traffic counts as "current".
    pub(crate) fn bandwidth_json(&self) -> Value {
        let total: i64 = self
            .users
            .values()
            .map(|u| u.lifetime_used_traffic_bytes)
            .sum();
        let stat = json!({ "current": total.to_string(), "previous": "0", "difference": total.to_string() });
        json!({
            "bandwidthLastTwoDays": stat,
            "bandwidthLastSevenDays": stat,
            "bandwidthLast30Days": stat,
            "bandwidthCalendarMonth": stat,
            "bandwidthCurrentYear": stat,
        })
    }

    /// `GET /api/system/metadata`.
    pub(crate) fn metadata_json(&self) -> Value {
        json!({
            "version": PANEL_VERSION,
            "build": { "time": iso(self.started), "number": "0" },
            "git": {
                "backend": { "commitSha": "fake", "branch": "main", "commitUrl": "https://example.test/backend" },
                "frontend": { "commitSha": "fake", "commitUrl": "https://example.test/frontend" },
            },
        })
    }

    /// `GET /api/system/health`.
    pub(crate) fn health_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "runtimeMetrics": [{
                "rss": 104_857_600, "heapUsed": 52_428_800, "heapTotal": 67_108_864, "external": 1_048_576,
                "arrayBuffers": 524_288, "eventLoopDelayMs": 0.5, "eventLoopP99Ms": 1.5, "activeHandles": 8,
                "uptime": (now - self.started).num_seconds(), "pid": std::process::id(),
                "timestamp": now.timestamp_millis(), "instanceId": "panel-fake-1", "instanceType": "api",
            }],
        })
    }
}

fn apply<T>(slot: &mut Option<T>, patch: Patch<T>) {
    match patch {
        Patch::Keep => {}
        Patch::Clear => *slot = None,
        Patch::Set(v) => *slot = Some(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input;

    fn state() -> (State, DateTime<Utc>) {
        let now = Utc::now();
        (State::new("https://sub.example.test/", now), now)
    }

    fn create(state: &mut State, body: Value, now: DateTime<Utc>) -> Value {
        let input = input::create_user(Some(&body)).unwrap();
        state.create_user(input, now).unwrap().0
    }

    #[test]
    fn created_users_get_increasing_ids_and_a_subscription_url() {
        let (mut s, now) = state();
        let a = create(
            &mut s,
            json!({"username": "alice", "expireAt": "2099-01-01T00:00:00Z"}),
            now,
        );
        let b = create(
            &mut s,
            json!({"username": "bob", "expireAt": "2099-01-01T00:00:00Z"}),
            now,
        );
        assert_eq!((a["id"].as_i64(), b["id"].as_i64()), (Some(1), Some(2)));
        let short = a["shortUuid"].as_str().unwrap();
        assert_eq!(
            a["subscriptionUrl"],
            format!("https://sub.example.test/{short}")
        );
        let dup = input::create_user(Some(
            &json!({"username": "alice", "expireAt": "2099-01-01T00:00:00Z"}),
        ));
        assert_eq!(
            s.create_user(dup.unwrap(), now).unwrap_err(),
            USERNAME_EXISTS
        );
    }

    #[test]
    fn squads_resolve_to_names_and_unknown_squads_fail() {
        let (mut s, now) = state();
        let (uuid, name) = s.squad_pairs()[1].clone();
        let u = create(
            &mut s,
            json!({"username": "carol", "expireAt": "2099-01-01T00:00:00Z", "activeInternalSquads": [uuid]}),
            now,
        );
        assert_eq!(
            u["activeInternalSquads"],
            json!([{ "uuid": uuid, "name": name }])
        );
        let bad = json!({"username": "dave", "expireAt": "2099-01-01T00:00:00Z",
            "activeInternalSquads": ["6f1c1b1e-8a3b-4c4d-9e5f-0a1b2c3d4e5f"]});
        let input = input::create_user(Some(&bad)).unwrap();
        assert_eq!(s.create_user(input, now).unwrap_err(), CREATE_USER_ERROR);
    }

    #[test]
    fn extending_an_expired_user_counts_from_now_and_activates() {
        let (mut s, now) = state();
        let u = create(
            &mut s,
            json!({"username": "erin", "expireAt": "2000-01-01T00:00:00Z"}),
            now,
        );
        assert_eq!(u["status"], "EXPIRED");
        let (u, _) = s.extend(1, 10.0, now).unwrap();
        assert_eq!(u["status"], "ACTIVE");
        assert_eq!(u["expireAt"], iso(now + TimeDelta::days(10)));
        let (u, _) = s.extend(1, 1.0, now).unwrap();
        assert_eq!(u["expireAt"], iso(now + TimeDelta::days(11)));
    }

    #[test]
    fn enable_and_disable_refuse_no_ops() {
        let (mut s, now) = state();
        create(
            &mut s,
            json!({"username": "frank", "expireAt": "2099-01-01T00:00:00Z"}),
            now,
        );
        assert_eq!(s.enable(1, now).unwrap_err(), USER_ALREADY_ENABLED);
        let (u, events) = s.disable(1, now).unwrap();
        assert_eq!(
            (u["status"].as_str(), events[0].name),
            (Some("DISABLED"), "user.disabled")
        );
        assert_eq!(s.disable(1, now).unwrap_err(), USER_ALREADY_DISABLED);
        assert_eq!(s.enable(2, now).unwrap_err(), USER_NOT_FOUND);
    }

    #[test]
    fn traffic_over_the_limit_limits_and_a_reset_restores() {
        let (mut s, now) = state();
        create(
            &mut s,
            json!({"username": "gina", "expireAt": "2099-01-01T00:00:00Z", "trafficLimitBytes": 100}),
            now,
        );
        let events = s.set_traffic(1, 150, now);
        assert_eq!(events[0].name, "user.limited");
        let (u, events) = s.reset_traffic(1, now).unwrap();
        assert_eq!(u["status"], "ACTIVE");
        assert_eq!(u["userTraffic"]["usedTrafficBytes"], 0);
        assert_eq!(u["userTraffic"]["lifetimeUsedTrafficBytes"], 150);
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn revoke_changes_the_short_uuid_unless_only_passwords() {
        let (mut s, now) = state();
        let u = create(
            &mut s,
            json!({"username": "hank", "expireAt": "2099-01-01T00:00:00Z"}),
            now,
        );
        let (same, _) = s
            .revoke(
                1,
                Revoke {
                    only_passwords: true,
                    short_uuid: None,
                },
                now,
            )
            .unwrap();
        assert_eq!(same["shortUuid"], u["shortUuid"]);
        assert_ne!(same["vlessUuid"], u["vlessUuid"]);
        let (new, _) = s.revoke(1, Revoke::default(), now).unwrap();
        assert_ne!(new["shortUuid"], u["shortUuid"]);
        assert!(
            s.get_by_short_uuid(u["shortUuid"].as_str().unwrap(), now)
                .is_err()
        );
        assert!(
            s.get_by_short_uuid(new["shortUuid"].as_str().unwrap(), now)
                .is_ok()
        );
    }

    #[test]
    fn stream_pages_are_stable_by_id() {
        let (mut s, now) = state();
        s.seed(5, now);
        let q = |cursor| StreamQuery {
            cursor,
            size: 2,
            ..StreamQuery::default()
        };
        let first = s.stream(&q(None), now);
        assert_eq!(first["nextCursor"], "2");
        assert_eq!(first["hasMore"], true);
        s.delete(3, now).unwrap();
        let second = s.stream(&q(Some(2)), now);
        let ids: Vec<i64> = second["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [4, 5]);
        assert_eq!(second["hasMore"], false);
        assert_eq!(second["nextCursor"], Value::Null);
    }

    #[test]
    fn seeded_users_carry_their_name_expiry_limit_and_tag() {
        let (mut s, now) = state();
        let expire_at = now + TimeDelta::days(7);
        let (id, short) = s
            .seed_user("cv_one", expire_at, 1024, Some("CYBERVPN"), now)
            .unwrap();
        assert_eq!(s.seed_user("cv_one", expire_at, 0, None, now), None);
        let user = s.get_by_username("cv_one", now).unwrap();
        assert_eq!(user["id"], id);
        assert_eq!(user["shortUuid"], short.as_str());
        assert_eq!(user["subscriptionUrl"], s.subscription_url_of(&short));
        assert_eq!(user["expireAt"], iso(expire_at));
        assert_eq!(user["trafficLimitBytes"], 1024);
        assert_eq!(user["status"], "ACTIVE");
        let tagged = s.stream(
            &StreamQuery {
                size: 10,
                tag: Some("CYBERVPN".to_owned()),
                ..StreamQuery::default()
            },
            now,
        );
        assert_eq!(tagged["users"].as_array().map(Vec::len), Some(1));
        assert_eq!(s.user_count(), 1);
    }

    #[test]
    fn nodes_report_connection_changes_once() {
        let (mut s, now) = state();
        let uuid = s.nodes[0].uuid.to_string();
        assert_eq!(
            s.set_node_connected(&uuid, false, now)[0].name,
            "node.connection_lost"
        );
        assert!(s.set_node_connected(&uuid, false, now).is_empty());
        assert_eq!(
            s.set_node_connected(&uuid, true, now)[0].name,
            "node.connection_restored"
        );
    }
}
