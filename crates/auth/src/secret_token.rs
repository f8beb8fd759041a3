//! Opaque refresh tokens: random bearer strings stored only as their SHA-256 hash.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in an opaque token (256 bits).
const OPAQUE_TOKEN_BYTES: usize = 32;

/// Returns a new opaque token: 32 random bytes, base64url without padding (43 characters).
///
/// # Panics
/// If the operating system's random source fails.
pub fn generate_opaque_token() -> String {
    URL_SAFE_NO_PAD.encode(random_array::<OPAQUE_TOKEN_BYTES>())
}

/// SHA-256 of the token as lowercase hex: what is stored and looked up, never the token itself.
pub fn hash_opaque_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lowercase hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lowercase hex encoding.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Fills an array from the operating system's random source.
///
/// # Panics
/// If the OS random source fails. Tokens, salts and secrets cannot be made safely without it,
/// and handing out a predictable value would be far worse than failing the request.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    #[expect(
        clippy::expect_used,
        reason = "no safe fallback exists when the OS random source fails"
    )]
    getrandom::fill(&mut bytes).expect("operating system random source failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_tokens_are_43_url_safe_chars_and_unique() {
        let a = generate_opaque_token();
        let b = generate_opaque_token();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_opaque_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash_opaque_token("abc"), hash_opaque_token("abc"));
        assert_ne!(hash_opaque_token("abc"), hash_opaque_token("abd"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sama"));
        assert!(!constant_time_eq(b"same", b"samesame"));
        assert!(constant_time_eq(b"", b""));
    }
}
