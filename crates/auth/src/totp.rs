//! Second factor: RFC 6238 TOTP codes (SHA-1, 6 digits, 30 s), enrolment URI and QR code,
//! secrets sealed at rest with PASETO v4.local, and single-use backup codes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use pasetors::Local;
use pasetors::keys::SymmetricKey;
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::UntrustedToken;
use pasetors::version4::{LocalToken, V4};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::secret_token::{random_array, sha256_hex};

/// Length of a new TOTP secret in bytes (160 bits, as RFC 4226 recommends).
const SECRET_BYTES: usize = 20;
/// Shortest secret accepted from storage (RFC 4226's 128-bit minimum).
const MIN_SECRET_BYTES: usize = 16;
/// Seconds per time step.
const STEP_SECONDS: u64 = 30;
/// Digits in a code.
const DIGITS: u32 = 6;
/// Binds sealed values to this use, so a sealed TOTP secret cannot be replayed elsewhere.
const SEAL_ASSERTION: &[u8] = b"cybervpn:totp-secret";
/// PASERK prefix of a v4 symmetric key.
const LOCAL_PASERK_PREFIX: &str = "k4.local.";
/// Longest sealed value we try to open.
const MAX_SEALED_LEN: usize = 16 * 1024;
/// Number of backup codes handed out at enrolment.
const BACKUP_CODE_COUNT: usize = 10;
/// Crockford's base32 alphabet, lowercase: no i, l, o or u, so codes read back unambiguously.
const BACKUP_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// What went wrong with a TOTP secret, its QR code, or sealing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not base32, or shorter than 128 bits.
    #[error("TOTP secret is not valid base32 of at least 128 bits")]
    InvalidSecret,
    /// The sealing key is not a `k4.local` PASERK.
    #[error("sealing key is not a valid k4.local PASERK")]
    InvalidKey,
    /// The sealed value names another key (rotated or foreign).
    #[error("sealed value was made with another key")]
    WrongKey,
    /// The sealed value is not one of ours, or was altered.
    #[error("sealed value is corrupt or was tampered with")]
    Unseal,
    /// The QR code could not be made.
    #[error("could not render QR code: {0}")]
    Qr(String),
    /// Sealing failed on our side.
    #[error("sealing failed: {0}")]
    Internal(String),
}

/// A shared TOTP secret; `Debug` never prints it.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new random 160-bit secret.
    ///
    /// # Panics
    /// If the operating system's random source fails.
    pub fn generate() -> Self {
        Self(random_array::<SECRET_BYTES>().to_vec())
    }

    /// The secret as unpadded RFC 4648 base32 (what authenticator apps take).
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.0.clone()).to_base32()
    }

    /// Reads base32, ignoring case, spaces, dashes and `=` padding.
    pub fn from_base32(encoded: &str) -> Result<Self, TotpError> {
        let cleaned: String = encoded
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '='))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let secret =
            totp_rs::Secret::try_from_base32(&cleaned).map_err(|_| TotpError::InvalidSecret)?;
        Self::from_bytes(secret.as_bytes().to_vec())
    }

    /// Wraps raw secret bytes (at least 128 bits), e.g. after [`SecretBox::open`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(TotpError::InvalidSecret);
        }
        Ok(Self(bytes))
    }

    /// The raw secret bytes, e.g. for [`SecretBox::seal`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// The `otpauth://` enrolment URI: SHA-1, 6 digits, 30 s period; issuer and account URL-encoded.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// Renders the URI as a QR code in PNG.
pub fn qr_png(uri: &str) -> Result<Vec<u8>, TotpError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| TotpError::Qr(e.to_string()))?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(256, 256)
        .build();
    let mut png = Vec::new();
    image
        .write_with_encoder(image::codecs::png::PngEncoder::new(&mut png))
        .map_err(|e| TotpError::Qr(e.to_string()))?;
    Ok(png)
}

/// [`qr_png`] as standard base64, ready for a `data:image/png;base64,` URL.
pub fn qr_png_base64(uri: &str) -> Result<String, TotpError> {
    qr_png(uri).map(|png| STANDARD.encode(png))
}

/// Checks a 6-digit code against the steps just before, at and after `now`, and returns the
/// step it matched, but only if that step is later than `last_used_step`: each code works once.
/// The caller stores the returned step as the new `last_used_step`.
pub fn verify_code(
    secret: &TotpSecret,
    code: &str,
    now: DateTime<Utc>,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = u64::try_from(now.timestamp()).ok()? / STEP_SECONDS;
    let mut accepted = None;
    // Every candidate is computed and compared, so timing does not reveal which one matched.
    for step in [
        current.checked_sub(1),
        Some(current),
        current.checked_add(1),
    ]
    .into_iter()
    .flatten()
    {
        let matches: bool = code_at(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        let unused = last_used_step.is_none_or(|last| step > last);
        if matches && unused && accepted.is_none() {
            accepted = Some(step);
        }
    }
    accepted
}

/// The 6-digit code for a time step (Unix time / 30).
pub fn code_at(secret: &TotpSecret, step: u64) -> String {
    hotp(&secret.0, step, DIGITS)
}

/// RFC 4226 HOTP: HMAC-SHA-1 of the counter (via totp-rs), dynamic truncation, `digits` digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    // A one-second step makes totp-rs sign the counter itself.
    let totp = totp_rs::Builder::new()
        .with_secret(secret.to_vec())
        .with_step_duration(1)
        .build_noncompliant();
    let mac = totp.sign(counter);
    let mac = mac.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let binary = match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    };
    let code = binary % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Ten new backup codes like `k7m2-q9xp`: 8 characters of lowercase Crockford base32 (40 bits).
///
/// # Panics
/// If the operating system's random source fails.
pub fn generate_backup_codes() -> Vec<String> {
    (0..BACKUP_CODE_COUNT).map(|_| backup_code()).collect()
}

/// One backup code.
fn backup_code() -> String {
    let bytes = random_array::<5>();
    let bits = bytes
        .iter()
        .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
    let mut code = String::with_capacity(9);
    for i in 0..8 {
        if i == 4 {
            code.push('-');
        }
        let index = (bits >> (35 - 5 * i)) & 0x1f;
        code.push(char::from(BACKUP_ALPHABET[index as usize]));
    }
    code
}

/// SHA-256 hex of a backup code after normalising what users mistype: case, spaces, dashes,
/// and Crockford's look-alikes (`i`/`l` → `1`, `o` → `0`). Codes carry 40 random bits and are
/// rate-limited, so a fast hash is enough.
pub fn hash_backup_code(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'i' | 'l' => '1',
            'o' => '0',
            other => other,
        })
        .collect();
    sha256_hex(normalised.as_bytes())
}

/// Payload of a sealed value.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The plaintext, base64url (PASETO payloads must be UTF-8).
    data: String,
}

/// Footer of a sealed value.
#[derive(Serialize, Deserialize)]
struct SealFooter {
    /// PASERK id (`k4.lid.…`) of the sealing key.
    kid: String,
}

/// Encrypts secrets at rest (TOTP secrets) as PASETO v4.local tokens.
#[derive(Clone)]
pub struct SecretBox {
    /// The 256-bit symmetric key.
    key: [u8; 32],
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox([redacted])")
    }
}

impl SecretBox {
    /// Loads the key from a `k4.local` PASERK (surrounding whitespace ignored).
    pub fn from_paserk(paserk: &str) -> Result<Self, TotpError> {
        let key = SymmetricKey::<V4>::try_from(paserk.trim()).map_err(|_| TotpError::InvalidKey)?;
        let key = key
            .as_bytes()
            .try_into()
            .map_err(|_| TotpError::InvalidKey)?;
        Ok(Self { key })
    }

    /// A new random key, and its `k4.local` PASERK to persist.
    ///
    /// # Panics
    /// If the operating system's random source fails.
    pub fn generate() -> (Self, String) {
        let key = random_array::<32>();
        let paserk = format!("{LOCAL_PASERK_PREFIX}{}", URL_SAFE_NO_PAD.encode(key));
        (Self { key }, paserk)
    }

    /// The key in pasetors' form, with its PASERK id.
    fn key(&self) -> Result<(SymmetricKey<V4>, String), TotpError> {
        let key = SymmetricKey::<V4>::from(&self.key)
            .map_err(|e| TotpError::Internal(format!("{e:?}")))?;
        let mut lid = String::new();
        FormatAsPaserk::fmt(&Id::from(&key), &mut lid)
            .map_err(|e| TotpError::Internal(e.to_string()))?;
        Ok((key, lid))
    }

    /// Encrypts and authenticates `plaintext` as a v4.local token whose footer names the key.
    pub fn seal(&self, plaintext: &[u8]) -> Result<String, TotpError> {
        let (key, lid) = self.key()?;
        let payload = serde_json::to_vec(&Sealed {
            data: URL_SAFE_NO_PAD.encode(plaintext),
        })
        .map_err(|e| TotpError::Internal(e.to_string()))?;
        let footer = serde_json::to_vec(&SealFooter { kid: lid })
            .map_err(|e| TotpError::Internal(e.to_string()))?;
        LocalToken::encrypt(&key, &payload, Some(&footer), Some(SEAL_ASSERTION))
            .map_err(|e| TotpError::Internal(format!("{e:?}")))
    }

    /// Decrypts a value made by [`Self::seal`] with the same key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, TotpError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(TotpError::Unseal);
        }
        let (key, lid) = self.key()?;
        let untrusted =
            UntrustedToken::<Local, V4>::try_from(sealed).map_err(|_| TotpError::Unseal)?;
        let footer: SealFooter =
            serde_json::from_slice(untrusted.untrusted_footer()).map_err(|_| TotpError::Unseal)?;
        if footer.kid != lid {
            return Err(TotpError::WrongKey);
        }
        let trusted = LocalToken::decrypt(&key, &untrusted, None, Some(SEAL_ASSERTION))
            .map_err(|_| TotpError::Unseal)?;
        let payload: Sealed =
            serde_json::from_str(trusted.payload()).map_err(|_| TotpError::Unseal)?;
        URL_SAFE_NO_PAD
            .decode(payload.data)
            .map_err(|_| TotpError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(unix: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(unix, 0).unwrap()
    }

    fn rfc_secret() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (time, expected) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(hotp(&rfc_secret().0, time / 30, 8), expected, "t={time}");
            // The 6-digit code is the last six digits of the 8-digit one.
            assert_eq!(code_at(&rfc_secret(), time / 30), expected[2..], "t={time}");
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(code_at(&rfc_secret(), counter as u64), *code);
        }
    }

    #[test]
    fn verify_accepts_adjacent_steps_once() {
        let secret = TotpSecret::generate();
        let now = at(1_700_000_015);
        let step = 1_700_000_015 / 30;
        for candidate in [step - 1, step, step + 1] {
            let code = code_at(&secret, candidate);
            assert_eq!(verify_code(&secret, &code, now, None), Some(candidate));
            // Replay of the same step, or of an older one, is refused.
            assert_eq!(verify_code(&secret, &code, now, Some(candidate)), None);
            assert_eq!(verify_code(&secret, &code, now, Some(candidate + 1)), None);
            assert_eq!(
                verify_code(&secret, &code, now, Some(candidate - 1)),
                Some(candidate)
            );
        }
        for far in [step - 2, step + 2, step + 100] {
            let code = code_at(&secret, far);
            if [step - 1, step, step + 1]
                .iter()
                .all(|s| code_at(&secret, *s) != code)
            {
                assert_eq!(verify_code(&secret, &code, now, None), None);
            }
        }
    }

    #[test]
    fn verify_rejects_badly_shaped_codes() {
        let secret = rfc_secret();
        let now = at(59);
        let good = code_at(&secret, 1);
        assert_eq!(verify_code(&secret, &good, now, None), Some(1));
        for bad in [
            "",
            "12345",
            "1234567",
            "28708 ",
            " 287082",
            "２８７０８２",
            "abcdef",
            "+87082",
            "94287082",
        ] {
            assert_eq!(verify_code(&secret, bad, now, None), None, "{bad:?}");
        }
        assert_eq!(verify_code(&secret, &good, at(-30), None), None);
    }

    #[test]
    fn step_zero_has_no_previous() {
        let secret = rfc_secret();
        assert_eq!(
            verify_code(&secret, &code_at(&secret, 0), at(5), None),
            Some(0)
        );
    }

    #[test]
    fn base32_round_trip_and_leniency() {
        let secret = TotpSecret::generate();
        assert_eq!(secret.as_bytes().len(), 20);
        let b32 = secret.to_base32();
        assert_eq!(b32.len(), 32);
        assert!(!b32.contains('='));
        let back = TotpSecret::from_base32(&b32).unwrap();
        assert_eq!(back.as_bytes(), secret.as_bytes());
        let spaced = b32
            .to_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            TotpSecret::from_base32(&spaced).unwrap().as_bytes(),
            secret.as_bytes()
        );
        assert_eq!(
            TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                .unwrap()
                .as_bytes(),
            b"12345678901234567890"
        );
    }

    #[test]
    fn bad_base32_is_refused() {
        for bad in ["", "1189", "!!!!", "GEZDGNBV"] {
            assert_eq!(
                TotpSecret::from_base32(bad).unwrap_err(),
                TotpError::InvalidSecret,
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let secret = rfc_secret();
        assert_eq!(format!("{secret:?}"), "TotpSecret([redacted])");
        let (sb, paserk) = SecretBox::generate();
        assert!(!format!("{sb:?}").contains(&paserk[9..]));
    }

    #[test]
    fn uri_format() {
        let secret = rfc_secret();
        let uri = otpauth_uri(&secret, "Cyber VPN", "ann+vpn@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Cyber%20VPN:ann%2Bvpn%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Cyber%20VPN&algorithm=SHA1&digits=6&period=30"
        );
        let parsed = totp_rs::Totp::from_url(&uri).unwrap();
        assert_eq!(parsed.issuer(), Some("Cyber VPN"));
        assert_eq!(parsed.account_name(), "ann+vpn@example.com");
        assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
        assert_eq!(parsed.digits(), 6);
        assert_eq!(parsed.step(), 30);
    }

    #[test]
    fn qr_png_is_png() {
        let uri = otpauth_uri(&TotpSecret::generate(), "CyberVPN", "ann@example.com");
        let png = qr_png(&uri).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let b64 = qr_png_base64(&uri).unwrap();
        assert_eq!(STANDARD.decode(b64).unwrap(), png);
        assert!(matches!(qr_png(&"x".repeat(8000)), Err(TotpError::Qr(_))));
    }

    #[test]
    fn backup_codes() {
        let codes = generate_backup_codes();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 9, "{code}");
            assert_eq!(&code[4..5], "-");
            assert!(
                code.chars()
                    .filter(|&c| c != '-')
                    .all(|c| BACKUP_ALPHABET.contains(&(c as u8)))
            );
        }
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn backup_code_hash_normalises() {
        let expected = hash_backup_code("k7m2-q9xp");
        assert_eq!(expected.len(), 64);
        for typed in ["k7m2q9xp", "K7M2-Q9XP", " k7m2 q9xp ", "k7m2--q9xp"] {
            assert_eq!(hash_backup_code(typed), expected, "{typed}");
        }
        assert_eq!(hash_backup_code("1000-abcd"), hash_backup_code("iOoO-ABCD"));
        assert_eq!(hash_backup_code("l000-abcd"), hash_backup_code("1000-abcd"));
        assert_ne!(hash_backup_code("k7m2-q9xq"), expected);
    }

    #[test]
    fn secret_box_round_trip() {
        let (sb, paserk) = SecretBox::generate();
        assert!(paserk.starts_with("k4.local."));
        let secret = TotpSecret::generate();
        let sealed = sb.seal(secret.as_bytes()).unwrap();
        assert!(sealed.starts_with("v4.local."));
        let reloaded = SecretBox::from_paserk(&paserk).unwrap();
        assert_eq!(reloaded.open(&sealed).unwrap(), secret.as_bytes());
        // Fresh nonce every time.
        assert_ne!(sb.seal(secret.as_bytes()).unwrap(), sealed);
        // Empty plaintext is fine too.
        assert_eq!(sb.open(&sb.seal(b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn secret_box_footer_names_the_key() {
        let (sb, paserk) = SecretBox::generate();
        let sealed = sb.seal(b"x").unwrap();
        let footer = URL_SAFE_NO_PAD
            .decode(sealed.rsplit('.').next().unwrap())
            .unwrap();
        let footer: serde_json::Value = serde_json::from_slice(&footer).unwrap();
        let key = SymmetricKey::<V4>::try_from(paserk.as_str()).unwrap();
        let mut lid = String::new();
        FormatAsPaserk::fmt(&Id::from(&key), &mut lid).unwrap();
        assert!(lid.starts_with("k4.lid."));
        assert_eq!(footer, serde_json::json!({ "kid": lid }));
    }

    #[test]
    fn secret_box_refuses_other_keys_and_tampering() {
        let (a, _) = SecretBox::generate();
        let (b, _) = SecretBox::generate();
        let sealed = a.seal(b"secret").unwrap();
        assert_eq!(b.open(&sealed), Err(TotpError::WrongKey));

        // Same footer, other key: authentication fails.
        let (body, footer) = sealed.rsplit_once('.').unwrap();
        let b_sealed = b.seal(b"secret").unwrap();
        let (_, b_footer) = b_sealed.rsplit_once('.').unwrap();
        let relabelled = format!("{body}.{b_footer}");
        assert_eq!(b.open(&relabelled), Err(TotpError::Unseal));
        assert!(!footer.is_empty());

        // Another implicit assertion (a plain v4.local token with the same key) fails.
        let key = SymmetricKey::<V4>::from(&a.key).unwrap();
        let (_, lid) = a.key().unwrap();
        let plain = LocalToken::encrypt(
            &key,
            br#"{"data":"c2VjcmV0"}"#,
            Some(
                serde_json::to_string(&SealFooter { kid: lid })
                    .unwrap()
                    .as_bytes(),
            ),
            None,
        )
        .unwrap();
        assert_eq!(a.open(&plain), Err(TotpError::Unseal));

        for bad in [
            "",
            "v4.local.",
            "v4.public.AAAA",
            "garbage",
            &"v".repeat(20_000),
        ] {
            assert_eq!(a.open(bad), Err(TotpError::Unseal), "{bad:?}");
        }
    }

    #[test]
    fn secret_box_paserk_errors() {
        for bad in [
            "",
            "k4.local.",
            "k3.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8",
            "k4.local.HFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8",
            "k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8",
        ] {
            assert_eq!(
                SecretBox::from_paserk(bad).unwrap_err(),
                TotpError::InvalidKey
            );
        }
        let paserk = "k4.local.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8";
        let sb = SecretBox::from_paserk(paserk).unwrap();
        assert_eq!(sb.key[0], 0x70);
        assert_eq!(sb.key[31], 0x8f);
    }
}
