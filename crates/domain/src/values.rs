//! Validated value types. Parse, don't validate: each constructor is the only way in, and serde
//! deserialisation goes through the same constructor, so holding a value means it is valid.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{DomainError, macros::string_value};

/// An email address, trimmed and lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(String);

impl Email {
    /// Longest accepted address, in characters (RFC 5321 path limit less the angle brackets).
    pub const MAX_LEN: usize = 254;
    const MAX_LOCAL_LEN: usize = 64;
    const MAX_LABEL_LEN: usize = 63;
    const FIELD: &'static str = "email";

    /// Parses an address: trims, lowercases, then checks the local part and the domain.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let email = input.trim().to_lowercase();
        let invalid = |reason: &str| DomainError::invalid(Self::FIELD, reason);
        if email.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if email.chars().count() > Self::MAX_LEN {
            return Err(invalid("must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("must contain an @"));
        };
        if domain.contains('@') {
            return Err(invalid("must contain exactly one @"));
        }
        Self::check_local(local)?;
        Self::check_domain(domain)?;
        Ok(Self(email))
    }

    fn check_local(local: &str) -> Result<(), DomainError> {
        let invalid = |reason: &str| DomainError::invalid(Self::FIELD, reason);
        let len = local.chars().count();
        if len == 0 {
            return Err(invalid("must have a part before the @"));
        }
        if len > Self::MAX_LOCAL_LEN {
            return Err(invalid("part before the @ must be at most 64 characters"));
        }
        if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces or control characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid(
                "part before the @ must not start or end with a dot or contain two dots in a row",
            ));
        }
        Ok(())
    }

    fn check_domain(domain: &str) -> Result<(), DomainError> {
        let invalid = |reason: &str| DomainError::invalid(Self::FIELD, reason);
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(invalid("domain must contain a dot"));
        }
        for label in &labels {
            if label.is_empty() || label.len() > Self::MAX_LABEL_LEN {
                return Err(invalid("domain labels must be 1 to 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(
                    "domain may only contain letters, digits, '-' and '.'",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("domain labels must not start or end with '-'"));
            }
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(invalid("top-level domain must be at least 2 letters"));
        }
        Ok(())
    }
}

string_value!(Email);

/// A public handle: 3 to 32 ASCII letters, digits or underscores, case preserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Username(String);

impl Username {
    /// Shortest accepted username, in characters.
    pub const MIN_LEN: usize = 3;
    /// Longest accepted username, in characters.
    pub const MAX_LEN: usize = 32;

    /// Parses a username after trimming outer whitespace.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let name = input.trim();
        let invalid = |reason: &str| DomainError::invalid("username", reason);
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(invalid("may only contain ASCII letters, digits and '_'"));
        }
        // Only ASCII is left, so the byte length is the character count.
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&name.len()) {
            return Err(invalid("must be 3 to 32 characters"));
        }
        Ok(Self(name.to_owned()))
    }
}

string_value!(Username);

/// A Telegram user id: positive and below 2^52, as Telegram promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "i64")]
pub struct TelegramId(i64);

impl TelegramId {
    /// Exclusive upper bound: Telegram ids fit in 52 bits (safe in a double).
    pub const LIMIT: i64 = 1 << 52;

    /// Accepts ids in `1..2^52`.
    pub fn new(id: i64) -> Result<Self, DomainError> {
        if id <= 0 {
            return Err(DomainError::invalid("telegram_id", "must be positive"));
        }
        if id >= Self::LIMIT {
            return Err(DomainError::invalid("telegram_id", "must be below 2^52"));
        }
        Ok(Self(id))
    }

    /// The raw id.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for TelegramId {
    type Error = DomainError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl FromStr for TelegramId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "telegram_id",
                "must be a positive integer",
            ));
        }
        let id = s
            .parse::<i64>()
            .map_err(|_| DomainError::invalid("telegram_id", "must be below 2^52"))?;
        Self::new(id)
    }
}

impl fmt::Display for TelegramId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for TelegramId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

/// A currency we take payments in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// US dollar.
    Usd,
    /// Russian rouble.
    Rub,
    /// Telegram Stars.
    Xtr,
}

impl Currency {
    /// Every currency, in declaration (and price-list) order.
    pub const ALL: &'static [Self] = &[Self::Usd, Self::Rub, Self::Xtr];

    /// The ISO 4217-style code: "USD", "RUB", "XTR".
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Usd => "USD",
            Self::Rub => "RUB",
            Self::Xtr => "XTR",
        }
    }

    /// How many decimal places the minor unit has (cents: 2; Stars are indivisible: 0).
    pub const fn minor_exponent(self) -> u32 {
        match self {
            Self::Usd | Self::Rub => 2,
            Self::Xtr => 0,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| DomainError::invalid("currency", "expected one of: USD, RUB, XTR"))
    }
}

/// A non-negative amount of money in a currency's minor unit (cents, kopecks, Stars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    amount_minor: i64,
    currency: Currency,
}

impl Money {
    /// Accepts any non-negative amount of minor units.
    pub fn new(amount_minor: i64, currency: Currency) -> Result<Self, DomainError> {
        if amount_minor < 0 {
            return Err(DomainError::invalid("amount", "must not be negative"));
        }
        Ok(Self {
            amount_minor,
            currency,
        })
    }

    /// Parses a decimal amount in major units exactly ("4.99", "150", "0.5"), without floats.
    ///
    /// No sign, no whitespace, digits on both sides of a '.', and at most as many fraction
    /// digits as the currency has ([`Currency::minor_exponent`]).
    pub fn parse_major(input: &str, currency: Currency) -> Result<Self, DomainError> {
        let invalid = |reason: String| DomainError::invalid("amount", reason);
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let exponent = currency.minor_exponent();
        let (whole, fraction) = match input.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (input, None),
        };
        if !is_digits(whole) || fraction.is_some_and(|f| !is_digits(f)) {
            return Err(invalid(
                "must be a non-negative decimal number such as 4.99".to_owned(),
            ));
        }
        let fraction = fraction.unwrap_or("");
        let fraction_len = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
        if fraction_len > exponent {
            return Err(invalid(format!(
                "{currency} allows at most {exponent} decimal places"
            )));
        }
        let too_large = || invalid("is too large".to_owned());
        let whole: i64 = whole.parse().map_err(|_| too_large())?;
        let fraction_minor: i64 = if fraction.is_empty() {
            0
        } else {
            // At most `exponent` (≤ 2) digits, so neither step can overflow.
            let digits: i64 = fraction.parse().map_err(|_| too_large())?;
            digits * 10_i64.pow(exponent - fraction_len)
        };
        let amount_minor = whole
            .checked_mul(10_i64.pow(exponent))
            .and_then(|minor| minor.checked_add(fraction_minor))
            .ok_or_else(too_large)?;
        Self::new(amount_minor, currency)
    }

    /// The amount in minor units.
    pub const fn amount_minor(&self) -> i64 {
        self.amount_minor
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// The sum, or `None` if the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        if self.currency != other.currency {
            return None;
        }
        let amount_minor = self.amount_minor.checked_add(other.amount_minor)?;
        Some(Self {
            amount_minor,
            currency: self.currency,
        })
    }

    /// The amount in major units as a decimal string with every minor digit ("4.99", "5.00", "150"),
    /// as payment gateways expect it; [`Money::parse_major`] reads it back.
    pub fn to_major_string(&self) -> String {
        let exponent = self.currency.minor_exponent();
        if exponent == 0 {
            return self.amount_minor.to_string();
        }
        let scale = 10_i64.pow(exponent);
        let width = usize::try_from(exponent).unwrap_or(0);
        format!(
            "{}.{:0width$}",
            self.amount_minor / scale,
            self.amount_minor % scale
        )
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_major_string(), self.currency)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            amount_minor: i64,
            currency: Currency,
        }
        let wire = Wire::deserialize(deserializer)?;
        Self::new(wire.amount_minor, wire.currency).map_err(serde::de::Error::custom)
    }
}

/// An amount of traffic in bytes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TrafficBytes(u64);

impl TrafficBytes {
    /// No traffic.
    pub const ZERO: Self = Self(0);

    /// Wraps a byte count.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The byte count.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The sum, or `None` on overflow.
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Self(sum)),
            None => None,
        }
    }

    /// The sum, capped at `u64::MAX` bytes.
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    fn unit_multiplier(unit: &str) -> Option<u64> {
        const UNITS: [(&str, u64); 9] = [
            ("b", 1),
            ("kb", 1_000),
            ("mb", 1_000_000),
            ("gb", 1_000_000_000),
            ("tb", 1_000_000_000_000),
            ("kib", 1 << 10),
            ("mib", 1 << 20),
            ("gib", 1 << 30),
            ("tib", 1 << 40),
        ];
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, multiplier)| *multiplier)
    }
}

impl FromStr for TrafficBytes {
    type Err = DomainError;

    /// Reads a whole number with an optional unit: "1024", "10GB", "10 GiB" (case-insensitive;
    /// KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024; at most one space).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| DomainError::invalid("traffic", reason);
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, rest) = s.split_at(digits_end);
        if digits.is_empty() {
            return Err(invalid(
                "must be a whole number with an optional unit, such as 10 GiB",
            ));
        }
        let unit = rest.strip_prefix(' ').unwrap_or(rest);
        let multiplier = if rest.is_empty() {
            1
        } else {
            Self::unit_multiplier(unit).ok_or_else(|| {
                invalid("unit must be one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB")
            })?
        };
        let count: u64 = digits.parse().map_err(|_| invalid("is too large"))?;
        count
            .checked_mul(multiplier)
            .map(Self)
            .ok_or_else(|| invalid("is too large"))
    }
}

impl fmt::Display for TrafficBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// How much traffic a subscription may use. Serialised as a byte count, or `null` for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Option<u64>", into = "Option<u64>")]
pub enum TrafficLimit {
    /// No cap.
    Unlimited,
    /// At most this many bytes.
    Limited(TrafficBytes),
}

impl TrafficLimit {
    /// `None` is unlimited; `Some(n)` is a cap of `n` bytes (so `Some(0)` allows nothing).
    pub const fn from_optional_bytes(bytes: Option<u64>) -> Self {
        match bytes {
            Some(bytes) => Self::Limited(TrafficBytes(bytes)),
            None => Self::Unlimited,
        }
    }

    /// The cap in bytes, `None` when unlimited.
    pub const fn as_optional_bytes(self) -> Option<u64> {
        match self {
            Self::Unlimited => None,
            Self::Limited(limit) => Some(limit.0),
        }
    }

    /// Whether a customer who has used `used` may keep going: true while usage is below the cap.
    pub fn allows(self, used: TrafficBytes) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Limited(limit) => used < limit,
        }
    }
}

impl From<Option<u64>> for TrafficLimit {
    fn from(bytes: Option<u64>) -> Self {
        Self::from_optional_bytes(bytes)
    }
}

impl From<TrafficLimit> for Option<u64> {
    fn from(limit: TrafficLimit) -> Self {
        limit.as_optional_bytes()
    }
}

/// An ISO 3166-1 alpha-2 country code, stored uppercase ("NL", "DE").
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct CountryCode(String);

impl CountryCode {
    /// Accepts exactly two ASCII letters in any case.
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        if input.len() != 2 || !input.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(DomainError::invalid(
                "country_code",
                "must be exactly two letters",
            ));
        }
        Ok(Self(input.to_ascii_uppercase()))
    }
}

string_value!(CountryCode);

/// A language the product speaks to customers in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English (the fallback).
    #[default]
    En,
    /// Russian.
    Ru,
}

impl Language {
    /// Every language, in declaration order.
    pub const ALL: &'static [Self] = &[Self::En, Self::Ru];

    /// The lowercase primary language subtag: "en", "ru".
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Ru => "ru",
        }
    }

    /// Reads the primary subtag of an IETF tag ("ru-RU" → Ru, "EN" → En); `_` also separates.
    pub fn parse_tag(tag: &str) -> Result<Self, DomainError> {
        let primary = tag.split(['-', '_']).next().unwrap_or_default();
        Self::ALL
            .iter()
            .copied()
            .find(|language| language.as_str().eq_ignore_ascii_case(primary))
            .ok_or_else(|| DomainError::invalid("language", "expected one of: en, ru"))
    }
}

impl FromStr for Language {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_tag(s)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[track_caller]
    fn assert_invalid<T: fmt::Debug>(result: Result<T, DomainError>, expected_field: &str) {
        match result {
            Err(DomainError::Invalid { field, .. }) => assert_eq!(field, expected_field),
            other => panic!("expected Invalid {{ field: {expected_field:?} }}, got {other:?}"),
        }
    }

    // ---- Email ----

    #[test]
    fn email_accepts_and_normalises() {
        let cases = [
            ("user@example.com", "user@example.com"),
            (
                "  John.Doe+vpn@Mail.Example.COM \n",
                "john.doe+vpn@mail.example.com",
            ),
            ("a@b.co", "a@b.co"),
            ("x_y-z@sub-1.example-2.org", "x_y-z@sub-1.example-2.org"),
            ("пользователь@example.ru", "пользователь@example.ru"),
        ];
        for (input, expected) in cases {
            let email = Email::parse(input).unwrap();
            assert_eq!(email.as_str(), expected, "input {input:?}");
        }
    }

    #[test]
    fn email_length_limits() {
        let local64 = "a".repeat(64);
        assert!(Email::parse(&format!("{local64}@example.com")).is_ok());
        assert_invalid(Email::parse(&format!("{local64}a@example.com")), "email");

        let label63 = "b".repeat(63);
        assert!(Email::parse(&format!("a@{label63}.com")).is_ok());
        assert_invalid(Email::parse(&format!("a@{label63}b.com")), "email");

        // 64 + 1 + (63 + 1) * 2 + 58 + 1 + 2 = 254 exactly.
        let domain = format!("{label63}.{label63}.{}.io", "c".repeat(58));
        let longest = format!("{local64}@{domain}");
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        let too_long = format!("{local64}@{label63}.{label63}.{}.io", "c".repeat(59));
        assert_invalid(Email::parse(&too_long), "email");
    }

    #[test]
    fn email_rejects_malformed() {
        let cases = [
            "",
            "   ",
            "plainaddress",
            "@example.com",
            "user@",
            "a@b@example.com",
            "user name@example.com",
            "user\t@example.com",
            "user\u{0}x@example.com",
            ".user@example.com",
            "user.@example.com",
            "us..er@example.com",
            "user@localhost",
            "user@example",
            "user@.example.com",
            "user@example..com",
            "user@example.com.",
            "user@-example.com",
            "user@example-.com",
            "user@exa_mple.com",
            "user@exämple.com",
            "user@example.c",
            "user@example.c0m",
            "user@example.123",
        ];
        for input in cases {
            assert_invalid(Email::parse(input), "email");
        }
    }

    #[test]
    fn email_serde_goes_through_parse() {
        let email = Email::parse("A@Example.com").unwrap();
        assert_eq!(serde_json::to_string(&email).unwrap(), "\"a@example.com\"");
        let back: Email = serde_json::from_str("\" B@Example.com \"").unwrap();
        assert_eq!(back.as_str(), "b@example.com");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
        assert_eq!(String::from(back.clone()), "b@example.com");
        assert_eq!(back.as_ref(), "b@example.com");
        assert_eq!(Email::try_from("b@example.com".to_owned()), Ok(back));
    }

    // ---- Username ----

    #[test]
    fn username_rules() {
        assert_eq!(Username::parse("  Neo_42 ").unwrap().as_str(), "Neo_42");
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"x".repeat(32)).is_ok());
        for input in ["ab", "", "   ", "has space", "dash-ed", "ümlaut", "dot.ted"] {
            assert_invalid(Username::parse(input), "username");
        }
        assert_invalid(Username::parse(&"x".repeat(33)), "username");
        assert!(serde_json::from_str::<Username>("\"a!\"").is_err());
        assert_eq!(
            serde_json::to_string(&Username::parse("Trinity").unwrap()).unwrap(),
            "\"Trinity\""
        );
    }

    // ---- TelegramId ----

    #[test]
    fn telegram_id_range() {
        assert_eq!(TelegramId::new(1).unwrap().get(), 1);
        assert_eq!(TelegramId::new((1 << 52) - 1).unwrap().get(), (1 << 52) - 1);
        for id in [0, -1, i64::MIN, 1 << 52, i64::MAX] {
            assert_invalid(TelegramId::new(id), "telegram_id");
        }
    }

    #[test]
    fn telegram_id_from_str_and_serde() {
        assert_eq!(
            "123456789".parse::<TelegramId>().unwrap().get(),
            123_456_789
        );
        for input in ["", "-5", "+5", "12a", " 1", "0", "99999999999999999999"] {
            assert_invalid(input.parse::<TelegramId>(), "telegram_id");
        }
        let id = TelegramId::new(42).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<TelegramId>("42").unwrap(), id);
        assert!(serde_json::from_str::<TelegramId>("0").is_err());
        assert!(serde_json::from_str::<TelegramId>("\"42\"").is_err());
        assert_eq!(id.to_string(), "42");
    }

    // ---- Currency ----

    #[test]
    fn currency_names_and_exponents() {
        assert_eq!(
            Currency::ALL,
            &[Currency::Usd, Currency::Rub, Currency::Xtr]
        );
        assert_eq!(Currency::Usd.minor_exponent(), 2);
        assert_eq!(Currency::Rub.minor_exponent(), 2);
        assert_eq!(Currency::Xtr.minor_exponent(), 0);
        assert_eq!("usd".parse::<Currency>().unwrap(), Currency::Usd);
        assert_eq!("Rub".parse::<Currency>().unwrap(), Currency::Rub);
        assert_eq!("XTR".parse::<Currency>().unwrap(), Currency::Xtr);
        assert_invalid("EUR".parse::<Currency>(), "currency");
        for currency in Currency::ALL {
            let json = serde_json::to_string(currency).unwrap();
            assert_eq!(json, format!("\"{}\"", currency.as_str()));
            assert_eq!(serde_json::from_str::<Currency>(&json).unwrap(), *currency);
            assert_eq!(currency.to_string(), currency.as_str());
        }
    }

    // ---- Money ----

    #[test]
    fn money_new_rejects_negative() {
        assert_eq!(Money::new(0, Currency::Usd).unwrap().amount_minor(), 0);
        assert_invalid(Money::new(-1, Currency::Usd), "amount");
    }

    #[test]
    fn money_parse_major_valid() {
        let cases = [
            ("4.99", Currency::Usd, 499),
            ("150", Currency::Xtr, 150),
            ("0.5", Currency::Usd, 50),
            ("0.05", Currency::Rub, 5),
            ("199", Currency::Rub, 19_900),
            ("007.10", Currency::Usd, 710),
            ("92233720368547758.07", Currency::Usd, i64::MAX),
            ("9223372036854775807", Currency::Xtr, i64::MAX),
        ];
        for (input, currency, minor) in cases {
            let money = Money::parse_major(input, currency).unwrap();
            assert_eq!(money.amount_minor(), minor, "input {input:?}");
            assert_eq!(money.currency(), currency);
        }
    }

    #[test]
    fn money_parse_major_invalid() {
        let cases = [
            ("", Currency::Usd),
            (".", Currency::Usd),
            (".5", Currency::Usd),
            ("5.", Currency::Usd),
            ("-1", Currency::Usd),
            ("+1", Currency::Usd),
            ("1.999", Currency::Usd),
            ("1.0", Currency::Xtr),
            ("1,99", Currency::Rub),
            (" 1", Currency::Usd),
            ("1e3", Currency::Usd),
            ("1.2.3", Currency::Usd),
            ("NaN", Currency::Usd),
            ("92233720368547758.08", Currency::Usd),
            ("9223372036854775808", Currency::Xtr),
            ("99999999999999999999999", Currency::Xtr),
        ];
        for (input, currency) in cases {
            assert_invalid(Money::parse_major(input, currency), "amount");
        }
    }

    #[test]
    fn money_display() {
        assert_eq!(
            Money::new(499, Currency::Usd).unwrap().to_string(),
            "4.99 USD"
        );
        assert_eq!(
            Money::new(500, Currency::Usd).unwrap().to_string(),
            "5.00 USD"
        );
        assert_eq!(
            Money::new(7, Currency::Rub).unwrap().to_string(),
            "0.07 RUB"
        );
        assert_eq!(
            Money::new(150, Currency::Xtr).unwrap().to_string(),
            "150 XTR"
        );
        assert_eq!(
            Money::new(499, Currency::Usd).unwrap().to_major_string(),
            "4.99"
        );
    }

    #[test]
    fn money_checked_add() {
        let usd = |minor| Money::new(minor, Currency::Usd).unwrap();
        assert_eq!(usd(100).checked_add(usd(250)), Some(usd(350)));
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), None);
        let stars = Money::new(1, Currency::Xtr).unwrap();
        assert_eq!(usd(1).checked_add(stars), None);
    }

    #[test]
    fn money_serde_shape_and_validation() {
        let money = Money::new(499, Currency::Usd).unwrap();
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount_minor": 499, "currency": "USD"})
        );
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
        let negative = serde_json::json!({"amount_minor": -1, "currency": "USD"});
        assert!(serde_json::from_value::<Money>(negative).is_err());
        let unknown = serde_json::json!({"amount_minor": 1, "currency": "EUR"});
        assert!(serde_json::from_value::<Money>(unknown).is_err());
    }

    // ---- TrafficBytes / TrafficLimit ----

    #[test]
    fn traffic_parses_units() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("5B", 5),
            ("10GB", 10_000_000_000),
            ("10 GiB", 10 << 30),
            ("10 gib", 10 << 30),
            ("3kb", 3_000),
            ("3 KiB", 3 << 10),
            ("2MB", 2_000_000),
            ("2MiB", 2 << 20),
            ("1 TB", 1_000_000_000_000),
            ("1TiB", 1 << 40),
            ("18446744073709551615", u64::MAX),
        ];
        for (input, bytes) in cases {
            assert_eq!(
                input.parse::<TrafficBytes>().unwrap().bytes(),
                bytes,
                "{input:?}"
            );
        }
    }

    #[test]
    fn traffic_rejects_bad_input() {
        let cases = [
            "",
            " ",
            "GB",
            "1.5 TB",
            "-1",
            "+1",
            "10  GB",
            "10 ",
            " 10",
            "10 PB",
            "10 G",
            "10GBs",
            "18446744073709551616",
            "16777216 TiB",
            "1e3",
        ];
        for input in cases {
            assert_invalid(input.parse::<TrafficBytes>(), "traffic");
        }
    }

    #[test]
    fn traffic_arithmetic_and_display() {
        let a = TrafficBytes::from_bytes(u64::MAX - 1);
        let one = TrafficBytes::from_bytes(1);
        assert_eq!(a.checked_add(one), Some(TrafficBytes::from_bytes(u64::MAX)));
        assert_eq!(a.checked_add(one.saturating_add(one)), None);
        assert_eq!(a.saturating_add(one.saturating_add(one)).bytes(), u64::MAX);
        assert_eq!(TrafficBytes::from_bytes(1536).to_string(), "1536");
        assert_eq!(TrafficBytes::default(), TrafficBytes::ZERO);
        assert_eq!(serde_json::to_string(&one).unwrap(), "1");
    }

    #[test]
    fn traffic_limit_rules_and_serde() {
        let cap = TrafficLimit::from_optional_bytes(Some(100));
        assert!(cap.allows(TrafficBytes::from_bytes(99)));
        assert!(!cap.allows(TrafficBytes::from_bytes(100)));
        assert!(!TrafficLimit::from_optional_bytes(Some(0)).allows(TrafficBytes::ZERO));
        assert!(TrafficLimit::Unlimited.allows(TrafficBytes::from_bytes(u64::MAX)));
        assert_eq!(cap.as_optional_bytes(), Some(100));
        assert_eq!(
            TrafficLimit::from_optional_bytes(None),
            TrafficLimit::Unlimited
        );
        assert_eq!(TrafficLimit::Unlimited.as_optional_bytes(), None);

        assert_eq!(serde_json::to_string(&cap).unwrap(), "100");
        assert_eq!(
            serde_json::to_string(&TrafficLimit::Unlimited).unwrap(),
            "null"
        );
        assert_eq!(serde_json::from_str::<TrafficLimit>("100").unwrap(), cap);
        assert_eq!(
            serde_json::from_str::<TrafficLimit>("null").unwrap(),
            TrafficLimit::Unlimited
        );
    }

    // ---- CountryCode / Language ----

    #[test]
    fn country_code_rules() {
        assert_eq!(CountryCode::parse("nl").unwrap().as_str(), "NL");
        assert_eq!(CountryCode::parse("De").unwrap().to_string(), "DE");
        for input in ["", "N", "NLD", "N1", "é", " NL", "🇳🇱"] {
            assert_invalid(CountryCode::parse(input), "country_code");
        }
        assert_eq!(
            serde_json::from_str::<CountryCode>("\"fi\"")
                .unwrap()
                .as_str(),
            "FI"
        );
        assert!(serde_json::from_str::<CountryCode>("\"FIN\"").is_err());
    }

    #[test]
    fn language_tags() {
        let cases = [
            ("en", Language::En),
            ("EN", Language::En),
            ("en-US", Language::En),
            ("ru", Language::Ru),
            ("ru-RU", Language::Ru),
            ("ru_RU", Language::Ru),
        ];
        for (tag, language) in cases {
            assert_eq!(Language::parse_tag(tag).unwrap(), language, "{tag:?}");
        }
        for tag in ["", "de", "english", "-ru", "r"] {
            assert_invalid(Language::parse_tag(tag), "language");
        }
        assert_eq!(Language::default(), Language::En);
        assert_eq!("ru".parse::<Language>().unwrap().as_str(), "ru");
        assert_eq!(serde_json::to_string(&Language::Ru).unwrap(), "\"ru\"");
        assert_eq!(
            serde_json::from_str::<Language>("\"en\"").unwrap(),
            Language::En
        );
    }

    // ---- Properties ----

    fn any_currency() -> impl Strategy<Value = Currency> {
        prop::sample::select(Currency::ALL)
    }

    proptest! {
        #[test]
        fn email_parse_never_panics_and_is_idempotent(input in any::<String>()) {
            if let Ok(email) = Email::parse(&input) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email));
            }
        }

        #[test]
        fn email_parse_accepts_well_formed_addresses_idempotently(
            input in "[ \t]{0,2}[a-zA-Z0-9_+-]{1,20}(\\.[a-zA-Z0-9_+-]{1,10})?@([a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?\\.){1,3}[a-zA-Z]{2,6}[ ]{0,2}"
        ) {
            let email = Email::parse(&input);
            prop_assert!(email.is_ok(), "{:?} rejected: {:?}", input, email);
            let email = email.unwrap();
            prop_assert_eq!(email.as_str(), input.trim().to_lowercase());
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email));
        }

        #[test]
        fn money_display_round_trips_through_parse_major(
            minor in prop_oneof![0..10_000_i64, 0..=i64::MAX],
            currency in any_currency(),
        ) {
            let money = Money::new(minor, currency).unwrap();
            let shown = money.to_string();
            let (amount, code) = shown.split_once(' ').unwrap();
            prop_assert_eq!(code, currency.as_str());
            prop_assert_eq!(Money::parse_major(amount, currency), Ok(money));
        }

        #[test]
        fn traffic_parse_never_panics(input in any::<String>()) {
            let _ = input.parse::<TrafficBytes>();
        }

        #[test]
        fn traffic_parse_matches_wide_arithmetic(
            count in "[0-9]{1,22}",
            space in prop::bool::ANY,
            unit in prop::sample::select(&["", "B", "kb", "MB", "Gb", "TB", "KiB", "mib", "GiB", "TIB"][..]),
        ) {
            let input = if space && !unit.is_empty() { format!("{count} {unit}") } else { format!("{count}{unit}") };
            let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1_000,
                "mb" => 1_000_000,
                "gb" => 1_000_000_000,
                "tb" => 1_000_000_000_000,
                "kib" => 1 << 10,
                "mib" => 1 << 20,
                "gib" => 1 << 30,
                _ => 1 << 40,
            };
            let expected = count.parse::<u128>().unwrap() * multiplier;
            match input.parse::<TrafficBytes>() {
                Ok(bytes) => prop_assert_eq!(u128::from(bytes.bytes()), expected),
                Err(_) => prop_assert!(expected > u128::from(u64::MAX)),
            }
        }
    }
}
