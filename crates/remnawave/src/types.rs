//! The panel's objects as this client reads and writes them; unknown fields are ignored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::wire;

/// Account state of a panel user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    /// Can connect.
    Active,
    /// Turned off by an operator (or by us).
    Disabled,
    /// Traffic limit reached.
    Limited,
    /// Past `expireAt`.
    Expired,
}

impl UserStatus {
    /// The wire spelling (`ACTIVE`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
            Self::Limited => "LIMITED",
            Self::Expired => "EXPIRED",
        }
    }
}

/// When the panel resets a user's used traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TrafficLimitStrategy {
    /// Never.
    NoReset,
    /// Every day.
    Day,
    /// Every week.
    Week,
    /// On the first of every month.
    Month,
    /// Every month, counted from the user's creation.
    MonthRolling,
}

/// An internal squad as listed in a user's `activeInternalSquads`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Squad {
    /// Squad id.
    pub uuid: Uuid,
    /// Squad name.
    pub name: String,
}

/// Traffic counters and connection times of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserTraffic {
    /// Bytes used in the current period.
    #[serde(deserialize_with = "wire::int")]
    pub used_traffic_bytes: i64,
    /// Bytes used since creation.
    #[serde(deserialize_with = "wire::int")]
    pub lifetime_used_traffic_bytes: i64,
    /// Last time seen online.
    pub online_at: Option<DateTime<Utc>>,
    /// First connection ever.
    pub first_connected_at: Option<DateTime<Utc>>,
    /// Node of the last connection.
    pub last_connected_node_uuid: Option<Uuid>,
}

/// A panel user (one VPN access key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Numeric id: the key of every user route.
    pub id: i64,
    /// Panel uuid of the user, where the panel version still sends one (3.4 does not).
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// Short id in the subscription URL; changes on revoke.
    pub short_uuid: String,
    /// Unique username (we derive it from our customer id).
    pub username: String,
    /// Account state.
    pub status: UserStatus,
    /// Traffic limit in bytes; 0 means unlimited.
    #[serde(deserialize_with = "wire::int")]
    pub traffic_limit_bytes: i64,
    /// When used traffic resets.
    pub traffic_limit_strategy: TrafficLimitStrategy,
    /// When access ends.
    pub expire_at: DateTime<Utc>,
    /// Telegram user id, not unique.
    #[serde(default)]
    pub telegram_id: Option<i64>,
    /// Contact email.
    #[serde(default)]
    pub email: Option<String>,
    /// Maximum number of devices; `None` means the panel default.
    #[serde(default)]
    pub hwid_device_limit: Option<i64>,
    /// Operator tag (`[A-Z0-9_]`, ≤ 16).
    #[serde(default)]
    pub tag: Option<String>,
    /// Free-form note.
    #[serde(default)]
    pub description: Option<String>,
    /// The URL customers import into their VPN app.
    #[serde(default)]
    pub subscription_url: String,
    /// Squads granting the user's inbounds.
    #[serde(default, deserialize_with = "wire::null_as_empty")]
    pub active_internal_squads: Vec<Squad>,
    /// Traffic counters.
    #[serde(default)]
    pub user_traffic: UserTraffic,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last modification time.
    pub updated_at: DateTime<Utc>,
}

/// Fields of a new panel user; `username` and `expire_at` are required, the rest optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUser {
    /// Unique, 3–36 characters of `[A-Za-z0-9_-]`.
    pub username: String,
    /// When access ends.
    #[serde(serialize_with = "wire::millis")]
    pub expire_at: DateTime<Utc>,
    /// Initial state (the panel defaults to ACTIVE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<UserStatus>,
    /// Traffic limit in bytes; 0 means unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_limit_bytes: Option<i64>,
    /// When used traffic resets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_limit_strategy: Option<TrafficLimitStrategy>,
    /// Squads granting inbounds: without any, the user cannot connect anywhere.
    pub active_internal_squads: Vec<Uuid>,
    /// External squad (subscription settings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_squad_uuid: Option<Uuid>,
    /// Telegram user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_id: Option<i64>,
    /// Contact email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Maximum number of devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid_device_limit: Option<i64>,
    /// Operator tag (`[A-Z0-9_]`, ≤ 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Free-form note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl CreateUser {
    /// A user with only the required fields set.
    pub fn new(username: impl Into<String>, expire_at: DateTime<Utc>) -> Self {
        Self {
            username: username.into(),
            expire_at,
            status: None,
            traffic_limit_bytes: None,
            traffic_limit_strategy: None,
            active_internal_squads: Vec::new(),
            external_squad_uuid: None,
            telegram_id: None,
            email: None,
            hwid_device_limit: None,
            tag: None,
            description: None,
        }
    }
}

/// Which user a `PATCH /api/users` changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UserKey {
    /// By numeric id.
    Id(i64),
    /// By username.
    Username(String),
}

/// Absolute new values for a user; `None` fields are left unchanged (not sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateUser {
    /// The user to change.
    #[serde(flatten)]
    pub key: UserKey,
    /// New state: only ACTIVE or DISABLED are accepted by the panel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<UserStatus>,
    /// New traffic limit in bytes; 0 means unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_limit_bytes: Option<i64>,
    /// New reset strategy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_limit_strategy: Option<TrafficLimitStrategy>,
    /// New expiry; must be in the future.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::opt_millis"
    )]
    pub expire_at: Option<DateTime<Utc>>,
    /// Replaces the whole squad set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_internal_squads: Option<Vec<Uuid>>,
    /// New external squad.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_squad_uuid: Option<Uuid>,
    /// New Telegram user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_id: Option<i64>,
    /// New email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// New device limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid_device_limit: Option<i64>,
    /// New tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// New note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl UpdateUser {
    /// An update of `key` that changes nothing yet.
    pub const fn new(key: UserKey) -> Self {
        Self {
            key,
            status: None,
            traffic_limit_bytes: None,
            traffic_limit_strategy: None,
            expire_at: None,
            active_internal_squads: None,
            external_squad_uuid: None,
            telegram_id: None,
            email: None,
            hwid_device_limit: None,
            tag: None,
            description: None,
        }
    }
}

/// One way to name a user for `POST /api/users/resolve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum UserRef {
    /// By numeric id.
    Id(i64),
    /// By short uuid (the subscription URL's last segment).
    ShortUuid(String),
    /// By username.
    Username(String),
}

/// The identifiers of a resolved user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedUser {
    /// Numeric id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Short uuid.
    pub short_uuid: String,
}

/// Filters and position of one `GET /api/users/stream` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuery {
    /// Where to continue (the previous page's `next_cursor`); `None` starts at the beginning.
    pub cursor: Option<String>,
    /// Page size, 1–1000.
    pub size: u32,
    /// Only users with this Telegram id.
    pub telegram_id: Option<i64>,
    /// Only users in this state.
    pub status: Option<UserStatus>,
    /// Only users with this tag.
    pub tag: Option<String>,
}

impl Default for StreamQuery {
    fn default() -> Self {
        Self {
            cursor: None,
            size: 250,
            telegram_id: None,
            status: None,
            tag: None,
        }
    }
}

/// One page of the user stream.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    /// Users of this page.
    pub users: Vec<User>,
    /// Cursor of the next page.
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub next_cursor: Option<String>,
    /// Whether another page follows.
    #[serde(default)]
    pub has_more: bool,
}

/// One page of the offset-based user list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserList {
    /// Users of this page.
    pub users: Vec<User>,
    /// Number of users in the panel.
    #[serde(deserialize_with = "wire::int")]
    pub total: i64,
}

/// Xray and node agent versions of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NodeVersions {
    /// Xray core version.
    pub xray: Option<String>,
    /// Node agent version.
    pub node: Option<String>,
}

/// Host resource usage reported by a node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSystemStats {
    /// Free memory in bytes.
    #[serde(deserialize_with = "wire::int")]
    pub memory_free: i64,
    /// Used memory in bytes.
    #[serde(deserialize_with = "wire::int")]
    pub memory_used: i64,
    /// Host uptime in seconds.
    pub uptime: f64,
    /// 1, 5 and 15 minute load averages.
    #[serde(deserialize_with = "wire::null_as_empty")]
    pub load_avg: Vec<f64>,
}

/// System information reported by a node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeSystem {
    /// Resource usage.
    pub stats: NodeSystemStats,
}

/// A VPN node managed by the panel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Node id.
    pub uuid: Uuid,
    /// Display name.
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    /// Agent port.
    #[serde(default)]
    pub port: Option<i64>,
    /// The panel holds a live connection to the node.
    pub is_connected: bool,
    /// Turned off by an operator.
    pub is_disabled: bool,
    /// A connection attempt is under way.
    #[serde(default)]
    pub is_connecting: bool,
    /// When the connection state last changed.
    #[serde(default)]
    pub last_status_change: Option<DateTime<Utc>>,
    /// Why the connection state last changed.
    #[serde(default)]
    pub last_status_message: Option<String>,
    /// ISO country code, `XX` when unknown.
    #[serde(default)]
    pub country_code: Option<String>,
    /// Users connected now.
    #[serde(default, deserialize_with = "wire::opt_int")]
    pub users_online: Option<i64>,
    /// Traffic used in the node's period, in bytes.
    #[serde(default, deserialize_with = "wire::opt_int")]
    pub traffic_used_bytes: Option<i64>,
    /// Traffic limit of the node, in bytes.
    #[serde(default, deserialize_with = "wire::opt_int")]
    pub traffic_limit_bytes: Option<i64>,
    /// Xray uptime as reported (seconds).
    #[serde(default, deserialize_with = "wire::opt_text")]
    pub xray_uptime: Option<String>,
    /// Software versions.
    #[serde(default)]
    pub versions: Option<NodeVersions>,
    /// Host resource usage.
    #[serde(default)]
    pub system: Option<NodeSystem>,
}

impl Node {
    /// Serving users: connected and not disabled.
    pub const fn is_online(&self) -> bool {
        self.is_connected && !self.is_disabled
    }
}

/// Member and inbound counts of a squad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SquadInfo {
    /// Users in the squad.
    #[serde(deserialize_with = "wire::int")]
    pub members_count: i64,
    /// Inbounds the squad grants.
    #[serde(deserialize_with = "wire::int")]
    pub inbounds_count: i64,
}

/// An internal squad: a named set of inbounds users are granted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InternalSquad {
    /// Squad id.
    pub uuid: Uuid,
    /// Squad name (what our configuration refers to).
    pub name: String,
    /// Member and inbound counts.
    #[serde(default)]
    pub info: SquadInfo,
}

/// CPU of the panel host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    /// Logical cores.
    pub cores: i64,
}

/// Memory of the panel host, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    /// Total memory.
    #[serde(deserialize_with = "wire::int")]
    pub total: i64,
    /// Free memory.
    #[serde(deserialize_with = "wire::int")]
    pub free: i64,
    /// Used memory.
    #[serde(deserialize_with = "wire::int")]
    pub used: i64,
}

/// User counts of the panel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserCounts {
    /// Users per status (`ACTIVE`, `DISABLED`, …).
    pub status_counts: BTreeMap<String, i64>,
    /// All users.
    pub total_users: i64,
}

/// How many users were online recently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OnlineStats {
    /// Online in the last day.
    pub last_day: i64,
    /// Online in the last week.
    pub last_week: i64,
    /// Never connected.
    pub never_online: i64,
    /// Online now.
    pub online_now: i64,
}

/// Node totals of the panel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeTotals {
    /// Nodes online now.
    pub total_online: i64,
    /// Bytes served by all nodes, ever (a string on the wire).
    #[serde(deserialize_with = "wire::int")]
    pub total_bytes_lifetime: i64,
}

/// `GET /api/system/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemStats {
    /// Panel host CPU.
    pub cpu: CpuStats,
    /// Panel host memory.
    pub memory: MemoryStats,
    /// Panel uptime in seconds.
    #[serde(deserialize_with = "wire::int")]
    pub uptime: i64,
    /// User counts.
    pub users: UserCounts,
    /// Recent activity.
    pub online_stats: OnlineStats,
    /// Node totals.
    pub nodes: NodeTotals,
}

/// Traffic of one period compared with the period before, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct BandwidthPeriod {
    /// This period.
    #[serde(deserialize_with = "wire::int")]
    pub current: i64,
    /// The period before.
    #[serde(deserialize_with = "wire::int")]
    pub previous: i64,
    /// `current - previous` (may be negative).
    #[serde(deserialize_with = "wire::int")]
    pub difference: i64,
}

/// `GET /api/system/stats/bandwidth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Bandwidth {
    /// Today against yesterday.
    #[serde(rename = "bandwidthLastTwoDays")]
    pub last_two_days: BandwidthPeriod,
    /// Last 7 days against the 7 before.
    #[serde(rename = "bandwidthLastSevenDays")]
    pub last_seven_days: BandwidthPeriod,
    /// Last 30 days against the 30 before.
    #[serde(rename = "bandwidthLast30Days")]
    pub last_30_days: BandwidthPeriod,
    /// This calendar month against the last.
    #[serde(rename = "bandwidthCalendarMonth")]
    pub calendar_month: BandwidthPeriod,
    /// This year against the last.
    #[serde(rename = "bandwidthCurrentYear")]
    pub current_year: BandwidthPeriod,
}

/// `GET /api/system/metadata`: what the panel runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// Panel version, such as `3.3.1`.
    pub version: String,
}

impl Metadata {
    /// The major version, when the version string starts with a number.
    pub fn major(&self) -> Option<u64> {
        self.version
            .trim()
            .trim_start_matches(['v', 'V'])
            .split(['.', '-', '+'])
            .next()
            .and_then(|major| major.parse().ok())
    }
}

/// The user part of the public subscription info; byte counters are strings on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionUser {
    /// Short uuid.
    pub short_uuid: String,
    /// Username.
    pub username: String,
    /// Days until expiry.
    #[serde(deserialize_with = "wire::int")]
    pub days_left: i64,
    /// When access ends.
    pub expires_at: DateTime<Utc>,
    /// Whether the user can connect.
    pub is_active: bool,
    /// Account state.
    pub user_status: UserStatus,
    /// When used traffic resets.
    pub traffic_limit_strategy: TrafficLimitStrategy,
    /// Bytes used in the current period.
    #[serde(deserialize_with = "wire::int")]
    pub traffic_used_bytes: i64,
    /// Traffic limit in bytes; 0 means unlimited.
    #[serde(deserialize_with = "wire::int")]
    pub traffic_limit_bytes: i64,
    /// Bytes used since creation.
    #[serde(deserialize_with = "wire::int")]
    pub lifetime_traffic_used_bytes: i64,
}

/// `GET /api/sub/{shortUuid}/info`: what a customer's subscription serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    /// The subscription exists.
    pub is_found: bool,
    /// The subscription's user.
    #[serde(default)]
    pub user: Option<SubscriptionUser>,
    /// One importable link per host (`vless://…`, …).
    #[serde(default, deserialize_with = "wire::null_as_empty")]
    pub links: Vec<String>,
    /// Outline (`ss-conf`) links by host name.
    #[serde(default)]
    pub ss_conf_links: BTreeMap<String, String>,
    /// The URL customers import.
    #[serde(default)]
    pub subscription_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_parses_with_extra_fields_and_nulls() {
        let user: User = serde_json::from_value(serde_json::json!({
            "id": 7, "uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "shortUuid": "abc", "username": "c_1",
            "status": "ACTIVE", "trafficLimitBytes": 0, "trafficLimitStrategy": "MONTH_ROLLING",
            "expireAt": "2030-01-01T00:00:00.000Z", "telegramId": null, "email": null, "hwidDeviceLimit": null,
            "tag": null, "description": null, "subscriptionUrl": "https://sub/abc", "activeInternalSquads": [],
            "userTraffic": {"usedTrafficBytes": 5, "lifetimeUsedTrafficBytes": 9, "onlineAt": null,
                "firstConnectedAt": null, "lastConnectedNodeUuid": null},
            "createdAt": "2025-01-01T00:00:00Z", "updatedAt": "2025-01-01T00:00:00Z",
            "vlessUuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "somethingNew": {"x": 1}
        }))
        .expect("user");
        assert_eq!(user.id, 7);
        assert_eq!(
            user.traffic_limit_strategy,
            TrafficLimitStrategy::MonthRolling
        );
        assert_eq!(user.user_traffic.lifetime_used_traffic_bytes, 9);
    }

    #[test]
    fn update_sends_only_the_key_and_set_fields() {
        let update = UpdateUser {
            status: Some(UserStatus::Disabled),
            ..UpdateUser::new(UserKey::Username("c_1".to_owned()))
        };
        assert_eq!(
            serde_json::to_value(&update).expect("json"),
            serde_json::json!({"username": "c_1", "status": "DISABLED"})
        );
        assert_eq!(
            serde_json::to_value(UserRef::ShortUuid("abc".to_owned())).expect("json"),
            serde_json::json!({"shortUuid": "abc"})
        );
    }

    #[test]
    fn versions_parse_their_major() {
        let major = |version: &str| {
            Metadata {
                version: version.to_owned(),
            }
            .major()
        };
        assert_eq!(major("3.3.1"), Some(3));
        assert_eq!(major("v2.7.0"), Some(2));
        assert_eq!(major("10-dev"), Some(10));
        assert_eq!(major("dev"), None);
    }
}
