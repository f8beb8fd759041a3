//! Access tokens: PASETO v4.public (Ed25519) with a key ring that supports rotation.
//!
//! Every token's footer is `{"kid":"k4.pid.…"}`, the PASERK id of the signing key's public half.
//! Rotation: deploy the new secret as current and the old key's k4.public in `previous`; keep it
//! there for at least the access-token lifetime, then drop it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use pasetors::Public;
use pasetors::keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest token string we try to parse; real ones are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 4096;
/// How far in the future `iat`/`nbf` may be, for clock drift between our own servers.
const CLOCK_LEEWAY: Duration = Duration::seconds(60);
/// PASERK prefix of a v4 secret key.
const SECRET_PASERK_PREFIX: &str = "k4.secret.";

/// Who a token is for; a token is only accepted where its audience is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A signed-in customer.
    Customer,
    /// A signed-in staff member.
    Staff,
    /// A customer who passed the password step and still owes a second factor.
    CustomerTwoFactor,
    /// A staff member who passed the password step and still owes a second factor.
    StaffTwoFactor,
}

impl Audience {
    /// The `aud` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "cybervpn:customer",
            Self::Staff => "cybervpn:staff",
            Self::CustomerTwoFactor => "cybervpn:customer:2fa-pending",
            Self::StaffTwoFactor => "cybervpn:staff:2fa-pending",
        }
    }

    /// Reads an `aud` claim value.
    fn from_wire(value: &str) -> Option<Self> {
        [
            Self::Customer,
            Self::Staff,
            Self::CustomerTwoFactor,
            Self::StaffTwoFactor,
        ]
        .into_iter()
        .find(|aud| aud.as_str() == value)
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The customer's or staff member's id.
    pub sub: Uuid,
    /// `"customer"` for customers, the staff role name for staff.
    pub role: String,
    /// Unique token id (for revocation lists and logs).
    pub jti: Uuid,
    /// Who the token is for.
    pub aud: Audience,
    /// When the token was issued.
    pub iat: DateTime<Utc>,
    /// When the token stops being accepted.
    pub exp: DateTime<Utc>,
}

impl Claims {
    /// Claims issued at `iat`, valid for `ttl`, with a fresh random `jti`.
    pub fn new(
        sub: Uuid,
        role: impl Into<String>,
        aud: Audience,
        iat: DateTime<Utc>,
        ttl: Duration,
    ) -> Self {
        Self {
            sub,
            role: role.into(),
            jti: Uuid::new_v4(),
            aud,
            iat,
            exp: iat + ttl,
        }
    }
}

/// The claims as they travel in the token payload.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    /// Subject id.
    sub: Uuid,
    /// Role name.
    role: String,
    /// Token id.
    jti: Uuid,
    /// Audience string.
    aud: String,
    /// Issued-at, RFC 3339.
    iat: String,
    /// Not-before, RFC 3339 (equal to `iat` in tokens we issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<String>,
    /// Expiry, RFC 3339.
    exp: String,
}

/// The token footer.
#[derive(Serialize, Deserialize)]
struct Footer {
    /// PASERK id (`k4.pid.…`) of the key that signed the token.
    kid: String,
}

/// Why a key ring could not be loaded or made; never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The current key is not a usable `k4.secret` PASERK.
    #[error("current signing key is not a valid k4.secret PASERK")]
    InvalidSecretKey,
    /// A previous key is not a `k4.public` PASERK.
    #[error("previous public key #{index} is not a valid k4.public PASERK")]
    InvalidPublicKey {
        /// Position of the bad key in the list given.
        index: usize,
    },
    /// Generating or serialising a key failed.
    #[error("could not generate a signing key")]
    Generation,
}

/// Why a token was refused or could not be issued; messages are short and safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed v4.public token with our footer and claims.
    #[error("malformed token")]
    Malformed,
    /// Signed by a key that is not (or no longer) in the key ring.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("invalid token signature")]
    BadSignature,
    /// Valid, but meant for another audience.
    #[error("token is not meant for this audience")]
    WrongAudience,
    /// Past its expiry, or issued further in the future than clock drift explains.
    #[error("token expired or not yet valid")]
    Expired,
    /// Issuing failed on our side.
    #[error("token operation failed: {0}")]
    Internal(String),
}

/// One verification key with its id.
#[derive(Clone)]
struct VerifyingKey {
    /// `k4.pid.…` of `key`.
    kid: String,
    /// The Ed25519 public key.
    key: AsymmetricPublicKey<V4>,
}

impl VerifyingKey {
    /// Computes the key id of a public key.
    fn new(key: AsymmetricPublicKey<V4>) -> Result<Self, fmt::Error> {
        let kid = paserk(&Id::from(&key))?;
        Ok(Self { kid, key })
    }
}

/// The signing key ring: the current secret key, plus earlier public keys still accepted.
#[derive(Clone)]
pub struct TokenKeys {
    /// Signs new tokens.
    secret: AsymmetricSecretKey<V4>,
    /// Public half of `secret`.
    current: VerifyingKey,
    /// `k4.public` PASERK of `current`.
    public_paserk: String,
    /// Retired keys whose tokens are still accepted.
    previous: Vec<VerifyingKey>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("current_kid", &self.current.kid)
            .field(
                "previous_kids",
                &self.previous.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Loads the ring from the current `k4.secret` PASERK and the `k4.public` PASERKs of
    /// retired keys that are still accepted. Surrounding whitespace is ignored.
    pub fn from_paserk(current_secret: &str, previous_public: &[String]) -> Result<Self, KeyError> {
        let current_secret = current_secret.trim();
        // pasetors panics on an all-zero Ed25519 seed; refuse it before it gets there.
        if !has_nonzero_seed(current_secret) {
            return Err(KeyError::InvalidSecretKey);
        }
        let secret = AsymmetricSecretKey::<V4>::try_from(current_secret)
            .map_err(|_| KeyError::InvalidSecretKey)?;
        let previous = previous_public
            .iter()
            .enumerate()
            .map(|(index, paserk)| {
                AsymmetricPublicKey::<V4>::try_from(paserk.trim())
                    .ok()
                    .and_then(|key| VerifyingKey::new(key).ok())
                    .ok_or(KeyError::InvalidPublicKey { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_secret(secret, previous).map_err(|_| KeyError::InvalidSecretKey)
    }

    /// Makes a new ring with a fresh key and no previous keys; the returned `k4.secret`
    /// PASERK is what must be persisted.
    pub fn generate() -> Result<(Self, String), KeyError> {
        let pair = AsymmetricKeyPair::<V4>::generate().map_err(|_| KeyError::Generation)?;
        let secret_paserk = paserk(&pair.secret).map_err(|_| KeyError::Generation)?;
        let keys = Self::from_secret(pair.secret, Vec::new()).map_err(|_| KeyError::Generation)?;
        Ok((keys, secret_paserk))
    }

    /// Builds the ring around a validated secret key.
    fn from_secret(
        secret: AsymmetricSecretKey<V4>,
        previous: Vec<VerifyingKey>,
    ) -> Result<Self, ()> {
        let public = AsymmetricPublicKey::<V4>::try_from(&secret).map_err(|_| ())?;
        let public_paserk = paserk(&public).map_err(|_| ())?;
        let current = VerifyingKey::new(public).map_err(|_| ())?;
        Ok(Self {
            secret,
            current,
            public_paserk,
            previous,
        })
    }

    /// Key id (`k4.pid.…`) of the current signing key.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// `k4.public` PASERK of the current signing key (to hand to verifiers and `previous`).
    pub fn public_paserk(&self) -> String {
        self.public_paserk.clone()
    }

    /// Signs the claims as a v4.public token whose footer names the current key.
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let iat = rfc3339(claims.iat);
        let wire = WireClaims {
            sub: claims.sub,
            role: claims.role.clone(),
            jti: claims.jti,
            aud: claims.aud.as_str().to_owned(),
            nbf: Some(iat.clone()),
            iat,
            exp: rfc3339(claims.exp),
        };
        let payload = serde_json::to_vec(&wire).map_err(|e| TokenError::Internal(e.to_string()))?;
        let footer = serde_json::to_vec(&Footer {
            kid: self.current.kid.clone(),
        })
        .map_err(|e| TokenError::Internal(e.to_string()))?;
        PublicToken::sign(&self.secret, &payload, Some(&footer), None)
            .map_err(|e| TokenError::Internal(format!("signing failed: {e:?}")))
    }

    /// Checks signature, audience and time window, and returns the claims.
    pub fn verify(
        &self,
        token: &str,
        audience: Audience,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let untrusted =
            UntrustedToken::<Public, V4>::try_from(token).map_err(|_| TokenError::Malformed)?;
        // The footer is read before the signature is checked only to pick the key; the
        // signature covers it, so a forged kid cannot get a token accepted.
        let footer: Footer = serde_json::from_slice(untrusted.untrusted_footer())
            .map_err(|_| TokenError::Malformed)?;
        let key = self.key_for(&footer.kid).ok_or(TokenError::UnknownKey)?;
        let trusted = PublicToken::verify(&key.key, &untrusted, None, None)
            .map_err(|_| TokenError::BadSignature)?;

        let wire: WireClaims =
            serde_json::from_str(trusted.payload()).map_err(|_| TokenError::Malformed)?;
        let aud = Audience::from_wire(&wire.aud).ok_or(TokenError::WrongAudience)?;
        if aud != audience {
            return Err(TokenError::WrongAudience);
        }
        let iat = parse_time(&wire.iat)?;
        let exp = parse_time(&wire.exp)?;
        let nbf = wire.nbf.as_deref().map(parse_time).transpose()?;
        if exp <= now {
            return Err(TokenError::Expired);
        }
        let latest_start = now + CLOCK_LEEWAY;
        if iat > latest_start || nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(TokenError::Expired);
        }
        Ok(Claims {
            sub: wire.sub,
            role: wire.role,
            jti: wire.jti,
            aud,
            iat,
            exp,
        })
    }

    /// The verification key with this id, current first.
    fn key_for(&self, kid: &str) -> Option<&VerifyingKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.kid == kid)
    }
}

/// Serialises a key or key id as its PASERK string.
fn paserk(value: &dyn FormatAsPaserk) -> Result<String, fmt::Error> {
    let mut out = String::new();
    value.fmt(&mut out)?;
    Ok(out)
}

/// True when `paserk` is a `k4.secret` whose Ed25519 seed is not all zeros.
fn has_nonzero_seed(paserk: &str) -> bool {
    paserk
        .strip_prefix(SECRET_PASERK_PREFIX)
        .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
        .is_some_and(|bytes| bytes.len() == 64 && bytes[..32].iter().any(|&b| b != 0))
}

/// RFC 3339 in UTC, with exactly as many fractional digits as needed to be lossless.
fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 claim.
fn parse_time(value: &str) -> Result<DateTime<Utc>, TokenError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 5, 17, 12, 0, 0).unwrap()
    }

    fn claims(aud: Audience) -> Claims {
        Claims::new(
            Uuid::new_v4(),
            "customer",
            aud,
            now(),
            Duration::minutes(15),
        )
    }

    fn keys() -> TokenKeys {
        TokenKeys::generate().unwrap().0
    }

    fn decode_part(token: &str, index: usize) -> serde_json::Value {
        let part = token.split('.').nth(index).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(part).unwrap();
        if index == 2 {
            bytes.truncate(bytes.len() - 64);
        }
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn round_trip() {
        let keys = keys();
        let claims = claims(Audience::Customer);
        let token = keys.issue(&claims).unwrap();
        assert!(token.starts_with("v4.public."));
        assert_eq!(
            keys.verify(&token, Audience::Customer, now()).unwrap(),
            claims
        );
    }

    #[test]
    fn sub_second_times_survive() {
        let keys = keys();
        let mut claims = claims(Audience::Staff);
        claims.iat += Duration::nanoseconds(123_456_789);
        claims.exp += Duration::milliseconds(5);
        let token = keys.issue(&claims).unwrap();
        assert_eq!(keys.verify(&token, Audience::Staff, now()).unwrap(), claims);
    }

    #[test]
    fn payload_and_footer_shape() {
        let keys = keys();
        let claims = claims(Audience::CustomerTwoFactor);
        let token = keys.issue(&claims).unwrap();
        let payload = decode_part(&token, 2);
        assert_eq!(payload["sub"], claims.sub.to_string());
        assert_eq!(payload["jti"], claims.jti.to_string());
        assert_eq!(payload["role"], "customer");
        assert_eq!(payload["aud"], "cybervpn:customer:2fa-pending");
        assert_eq!(payload["iat"], "2030-05-17T12:00:00Z");
        assert_eq!(payload["nbf"], "2030-05-17T12:00:00Z");
        assert_eq!(payload["exp"], "2030-05-17T12:15:00Z");
        let footer = decode_part(&token, 3);
        assert_eq!(footer, serde_json::json!({ "kid": keys.current_kid() }));
        assert!(keys.current_kid().starts_with("k4.pid."));
        assert_eq!(keys.current_kid().len(), "k4.pid.".len() + 44);
    }

    #[test]
    fn audiences() {
        assert_eq!(Audience::Customer.as_str(), "cybervpn:customer");
        assert_eq!(Audience::Staff.as_str(), "cybervpn:staff");
        assert_eq!(
            Audience::CustomerTwoFactor.as_str(),
            "cybervpn:customer:2fa-pending"
        );
        assert_eq!(
            Audience::StaffTwoFactor.as_str(),
            "cybervpn:staff:2fa-pending"
        );
        let keys = keys();
        let token = keys.issue(&claims(Audience::CustomerTwoFactor)).unwrap();
        for other in [
            Audience::Customer,
            Audience::Staff,
            Audience::StaffTwoFactor,
        ] {
            assert_eq!(
                keys.verify(&token, other, now()),
                Err(TokenError::WrongAudience)
            );
        }
    }

    #[test]
    fn expiry_and_future_issue() {
        let keys = keys();
        let claims = claims(Audience::Customer);
        let token = keys.issue(&claims).unwrap();
        assert!(
            keys.verify(
                &token,
                Audience::Customer,
                claims.exp - Duration::seconds(1)
            )
            .is_ok()
        );
        assert_eq!(
            keys.verify(&token, Audience::Customer, claims.exp),
            Err(TokenError::Expired)
        );
        assert_eq!(
            keys.verify(&token, Audience::Customer, claims.exp + Duration::days(1)),
            Err(TokenError::Expired)
        );
        // Up to 60 s of clock drift between servers is tolerated.
        assert!(
            keys.verify(&token, Audience::Customer, now() - Duration::seconds(60))
                .is_ok()
        );
        assert_eq!(
            keys.verify(&token, Audience::Customer, now() - Duration::seconds(61)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn rotation() {
        let (old, _) = TokenKeys::generate().unwrap();
        let (fresh, fresh_secret) = TokenKeys::generate().unwrap();
        let old_token = old.issue(&claims(Audience::Staff)).unwrap();

        // Before the old key is listed as previous, its tokens are from an unknown key.
        assert_eq!(
            fresh.verify(&old_token, Audience::Staff, now()),
            Err(TokenError::UnknownKey)
        );

        let ring = TokenKeys::from_paserk(&fresh_secret, &[old.public_paserk()]).unwrap();
        assert_eq!(ring.current_kid(), fresh.current_kid());
        assert!(ring.verify(&old_token, Audience::Staff, now()).is_ok());
        let new_token = ring.issue(&claims(Audience::Staff)).unwrap();
        assert!(
            new_token.ends_with(
                &URL_SAFE_NO_PAD.encode(format!(r#"{{"kid":"{}"}}"#, fresh.current_kid()))
            )
        );
        // The old ring does not know the new key.
        assert_eq!(
            old.verify(&new_token, Audience::Staff, now()),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn forged_kid_does_not_help() {
        let a = keys();
        let b = keys();
        let token = a.issue(&claims(Audience::Customer)).unwrap();
        // Swap in a footer naming b's key: the signature covers the footer.
        let (body, _) = token.rsplit_once('.').unwrap();
        let footer = URL_SAFE_NO_PAD.encode(format!(r#"{{"kid":"{}"}}"#, b.current_kid()));
        let forged = format!("{body}.{footer}");
        assert_eq!(
            b.verify(&forged, Audience::Customer, now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_bad_signature() {
        let keys = keys();
        let token = keys.issue(&claims(Audience::Customer)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut body = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let pos = body.iter().position(|&b| b == b'c').unwrap();
        body[pos] = b'C';
        let forged = format!("v4.public.{}.{}", URL_SAFE_NO_PAD.encode(&body), parts[3]);
        assert_eq!(
            keys.verify(&forged, Audience::Customer, now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_inputs() {
        let keys = keys();
        let token = keys.issue(&claims(Audience::Customer)).unwrap();
        let (no_footer, _) = token.rsplit_once('.').unwrap();
        for bad in [
            "",
            "v4.public.",
            "v4.local.AAAA",
            "v3.public.AAAA",
            "not a token",
            no_footer,
            &format!("{token}.extra"),
            &"a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(
                keys.verify(bad, Audience::Customer, now()),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn key_errors_do_not_echo_material() {
        let (_, secret) = TokenKeys::generate().unwrap();
        let broken = format!("{}x", &secret);
        let err = TokenKeys::from_paserk(&broken, &[]).unwrap_err();
        assert_eq!(err, KeyError::InvalidSecretKey);
        assert!(!err.to_string().contains(&secret[10..]));
        assert!(!format!("{err:?}").contains(&secret[10..]));

        let err = TokenKeys::from_paserk(&secret, &["k4.public.nope".to_owned()]).unwrap_err();
        assert_eq!(err, KeyError::InvalidPublicKey { index: 0 });

        // A public key where the secret belongs, and vice versa.
        let (keys, _) = TokenKeys::generate().unwrap();
        assert_eq!(
            TokenKeys::from_paserk(&keys.public_paserk(), &[]).unwrap_err(),
            KeyError::InvalidSecretKey
        );
        assert_eq!(
            TokenKeys::from_paserk(&secret, std::slice::from_ref(&secret)).unwrap_err(),
            KeyError::InvalidPublicKey { index: 0 }
        );
        assert!(!format!("{keys:?}").contains("k4.secret"));
    }

    #[test]
    fn all_zero_seed_is_refused_without_panicking() {
        // The official k4.secret-1 vector: a valid encoding of the all-zero seed.
        let zero = "k4.secret.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA7aie8zrakLWKjqNAqbw1zZTIVdx3iQ6Y6wEihi1naKQ";
        assert_eq!(
            TokenKeys::from_paserk(zero, &[]).unwrap_err(),
            KeyError::InvalidSecretKey
        );
    }

    #[test]
    fn from_paserk_round_trip_and_whitespace() {
        let (keys, secret) = TokenKeys::generate().unwrap();
        assert!(secret.starts_with("k4.secret."));
        let again = TokenKeys::from_paserk(&format!("{secret}\n"), &[]).unwrap();
        assert_eq!(again.current_kid(), keys.current_kid());
        assert_eq!(again.public_paserk(), keys.public_paserk());
        assert!(keys.public_paserk().starts_with("k4.public."));
        let token = keys.issue(&claims(Audience::Customer)).unwrap();
        assert!(again.verify(&token, Audience::Customer, now()).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_verify(input in ".{0,600}") {
            let keys = keys();
            prop_assert!(keys.verify(&input, Audience::Customer, now()).is_err());
        }

        #[test]
        fn token_shaped_garbage_never_verifies(
            body in "[A-Za-z0-9_-]{0,300}",
            footer in proptest::option::of("[A-Za-z0-9_-]{0,120}"),
        ) {
            let keys = keys();
            let token = match footer {
                Some(footer) => format!("v4.public.{body}.{footer}"),
                None => format!("v4.public.{body}"),
            };
            prop_assert!(keys.verify(&token, Audience::Customer, now()).is_err());
        }

        #[test]
        fn mutated_tokens_never_verify_as_something_else(index in 0usize..400, replacement in any::<char>()) {
            let keys = keys();
            let claims = claims(Audience::Customer);
            let token = keys.issue(&claims).unwrap();
            let mut chars: Vec<char> = token.chars().collect();
            let index = index % chars.len();
            chars[index] = replacement;
            let mutated: String = chars.into_iter().collect();
            if let Ok(got) = keys.verify(&mutated, Audience::Customer, now()) {
                prop_assert_eq!(got, claims);
            }
        }
    }
}
