//! The official PASETO v4 and PASERK k4 test vectors (paseto-standard/test-vectors, ISC; see
//! `tests/vectors/LICENSE` and `SOURCE`), run through the same pasetors APIs this crate uses,
//! plus the crate's own key ring and secret box where a vector fits them.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns; a panic is the failure report"
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cybervpn_auth::{Audience, SecretBox, TokenKeys};
use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey, SymmetricKey};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::UntrustedToken;
use pasetors::version4::{LocalToken, PublicToken, V4};
use pasetors::{Local, Public};
use serde_json::Value;

/// The PASERK k4.secret vector with an all-zero seed, which pasetors cannot load (it panics).
const ALL_ZERO_SEED: &str = "k4.secret-1";

fn tests(json: &str) -> Vec<Value> {
    let file: Value = serde_json::from_str(json).unwrap();
    file["tests"].as_array().unwrap().clone()
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn str_field<'a>(test: &'a Value, field: &str) -> Option<&'a str> {
    test[field].as_str()
}

fn name(test: &Value) -> &str {
    str_field(test, "name").unwrap()
}

fn expect_fail(test: &Value) -> bool {
    test["expect-fail"].as_bool().unwrap()
}

fn paserk(value: &dyn FormatAsPaserk) -> String {
    let mut out = String::new();
    value.fmt(&mut out).unwrap();
    out
}

fn opt_bytes(s: &str) -> Option<&[u8]> {
    if s.is_empty() {
        None
    } else {
        Some(s.as_bytes())
    }
}

#[test]
fn v4_public_success_vectors() {
    let mut seen = 0;
    for test in tests(include_str!("vectors/v4.json")) {
        if !name(&test).starts_with("4-S-") {
            continue;
        }
        seen += 1;
        let name = name(&test);
        assert!(!expect_fail(&test), "{name}");
        let pk =
            AsymmetricPublicKey::<V4>::from(&hex(str_field(&test, "public-key").unwrap()).unwrap())
                .unwrap();
        let sk_bytes = hex(str_field(&test, "secret-key").unwrap()).unwrap();
        let sk = AsymmetricSecretKey::<V4>::from(&sk_bytes).unwrap();
        let seed = hex(str_field(&test, "secret-key-seed").unwrap()).unwrap();
        assert_eq!(&sk_bytes[..32], seed.as_slice(), "{name}");
        assert_eq!(
            AsymmetricPublicKey::<V4>::try_from(&sk).unwrap(),
            pk,
            "{name}"
        );

        let token = str_field(&test, "token").unwrap();
        let payload = str_field(&test, "payload").unwrap();
        let footer = str_field(&test, "footer").unwrap();
        let implicit = str_field(&test, "implicit-assertion").unwrap();

        // Verify with the public key; the footer is checked both as given and unchecked.
        let untrusted = UntrustedToken::<Public, V4>::try_from(token).unwrap();
        for expected_footer in [opt_bytes(footer), None] {
            let trusted =
                PublicToken::verify(&pk, &untrusted, expected_footer, Some(implicit.as_bytes()))
                    .unwrap();
            assert_eq!(trusted.payload(), payload, "{name}");
            assert_eq!(trusted.footer(), footer.as_bytes(), "{name}");
            assert_eq!(trusted.implicit_assert(), implicit.as_bytes(), "{name}");
        }
        // A wrong implicit assertion must fail.
        assert!(
            PublicToken::verify(&pk, &untrusted, None, Some(b"something else")).is_err(),
            "{name}"
        );

        // Ed25519 is deterministic: signing reproduces the token byte for byte.
        let signed = PublicToken::sign(
            &sk,
            payload.as_bytes(),
            opt_bytes(footer),
            Some(implicit.as_bytes()),
        )
        .unwrap();
        assert_eq!(signed, token, "{name}");

        // Our key ring loads the same key from its PASERK and agrees on public key and kid.
        let keys = TokenKeys::from_paserk(&paserk(&sk), &[]).unwrap();
        assert_eq!(keys.public_paserk(), paserk(&pk), "{name}");
        assert_eq!(keys.current_kid(), paserk(&Id::from(&pk)), "{name}");
        // The vector's footer kid is not a PASERK id of ours, so our verify refuses it.
        assert!(
            keys.verify(token, Audience::Customer, chrono::Utc::now())
                .is_err(),
            "{name}"
        );
    }
    assert_eq!(seen, 3);
}

#[test]
fn v4_failure_vectors() {
    let mut seen = 0;
    for test in tests(include_str!("vectors/v4.json")) {
        if !expect_fail(&test) {
            continue;
        }
        seen += 1;
        let name = name(&test);
        let token = str_field(&test, "token").unwrap();
        let footer = opt_bytes(str_field(&test, "footer").unwrap());
        let implicit = str_field(&test, "implicit-assertion").unwrap().as_bytes();

        if let Some(pk) = str_field(&test, "public-key") {
            let pk = AsymmetricPublicKey::<V4>::from(&hex(pk).unwrap()).unwrap();
            if let Ok(untrusted) = UntrustedToken::<Public, V4>::try_from(token) {
                assert!(
                    PublicToken::verify(&pk, &untrusted, footer, Some(implicit)).is_err(),
                    "{name}"
                );
                assert!(
                    PublicToken::verify(&pk, &untrusted, None, Some(implicit)).is_err(),
                    "{name}"
                );
            }
        }
        if let Some(key) = str_field(&test, "key") {
            let key = hex(key).unwrap();
            let local = SymmetricKey::<V4>::from(&key).unwrap();
            if let Ok(untrusted) = UntrustedToken::<Local, V4>::try_from(token) {
                assert!(
                    LocalToken::decrypt(&local, &untrusted, footer, Some(implicit)).is_err(),
                    "{name}"
                );
            }
            // A local key used as if it were a public key must not verify either.
            let as_public = AsymmetricPublicKey::<V4>::from(&key).unwrap();
            if let Ok(untrusted) = UntrustedToken::<Public, V4>::try_from(token) {
                assert!(
                    PublicToken::verify(&as_public, &untrusted, footer, Some(implicit)).is_err(),
                    "{name}"
                );
            }
        }

        // Nor does our own verifier accept any of them (and it never panics).
        let (keys, _) = TokenKeys::generate().unwrap();
        for audience in [Audience::Customer, Audience::Staff] {
            assert!(
                keys.verify(token, audience, chrono::Utc::now()).is_err(),
                "{name}"
            );
        }
        // Nor does the secret box open them.
        let (secret_box, _) = SecretBox::generate();
        assert!(secret_box.open(token).is_err(), "{name}");
    }
    assert_eq!(seen, 5);
}

#[test]
fn v4_local_vectors_decrypt() {
    let mut seen = 0;
    for test in tests(include_str!("vectors/v4.json")) {
        if !name(&test).starts_with("4-E-") {
            continue;
        }
        seen += 1;
        let name = name(&test);
        let key =
            SymmetricKey::<V4>::from(&hex(str_field(&test, "key").unwrap()).unwrap()).unwrap();
        let token = str_field(&test, "token").unwrap();
        let footer = str_field(&test, "footer").unwrap();
        let implicit = str_field(&test, "implicit-assertion").unwrap();
        let untrusted = UntrustedToken::<Local, V4>::try_from(token).unwrap();
        let trusted = LocalToken::decrypt(
            &key,
            &untrusted,
            opt_bytes(footer),
            Some(implicit.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            trusted.payload(),
            str_field(&test, "payload").unwrap(),
            "{name}"
        );
        assert_eq!(trusted.footer(), footer.as_bytes(), "{name}");
        // The nonce is the first 32 bytes of the token body.
        let body = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(2).unwrap())
            .unwrap();
        assert_eq!(
            body[..32],
            hex(str_field(&test, "nonce").unwrap()).unwrap(),
            "{name}"
        );
        // Without the right implicit assertion, decryption fails.
        assert!(
            LocalToken::decrypt(&key, &untrusted, None, Some(b"cybervpn:totp-secret")).is_err(),
            "{name}"
        );
    }
    assert_eq!(seen, 9);
}

#[test]
fn paserk_k4_public() {
    for test in tests(include_str!("vectors/k4.public.json")) {
        let name = name(&test);
        let key = hex(str_field(&test, "key").unwrap()).unwrap();
        if expect_fail(&test) {
            assert!(AsymmetricPublicKey::<V4>::from(&key).is_err(), "{name}");
            if let Some(p) = str_field(&test, "paserk") {
                assert!(AsymmetricPublicKey::<V4>::try_from(p).is_err(), "{name}");
            }
            continue;
        }
        let expected = str_field(&test, "paserk").unwrap();
        let from_bytes = AsymmetricPublicKey::<V4>::from(&key).unwrap();
        assert_eq!(paserk(&from_bytes), expected, "{name}");
        let parsed = AsymmetricPublicKey::<V4>::try_from(expected).unwrap();
        assert_eq!(parsed.as_bytes(), key.as_slice(), "{name}");
        // Wrong type or version must be refused.
        assert!(
            AsymmetricPublicKey::<V4>::try_from(expected.replacen("k4.", "k3.", 1).as_str())
                .is_err()
        );
        assert!(
            AsymmetricPublicKey::<V4>::try_from(expected.replacen("public", "local", 1).as_str())
                .is_err()
        );
    }
}

#[test]
fn paserk_k4_secret() {
    for test in tests(include_str!("vectors/k4.secret.json")) {
        let name = name(&test);
        let key = hex(str_field(&test, "key").unwrap()).unwrap();
        if expect_fail(&test) {
            assert!(AsymmetricSecretKey::<V4>::from(&key).is_err(), "{name}");
            continue;
        }
        let expected = str_field(&test, "paserk").unwrap();
        // The encoding itself is checked for every success vector.
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(expected.strip_prefix("k4.secret.").unwrap())
                .unwrap(),
            key,
            "{name}"
        );
        if name == ALL_ZERO_SEED {
            // pasetors panics on an all-zero seed; our key ring refuses it first.
            assert!(TokenKeys::from_paserk(expected, &[]).is_err(), "{name}");
            continue;
        }
        let from_bytes = AsymmetricSecretKey::<V4>::from(&key).unwrap();
        assert_eq!(paserk(&from_bytes), expected, "{name}");
        let parsed = AsymmetricSecretKey::<V4>::try_from(expected).unwrap();
        assert_eq!(parsed.as_bytes(), key.as_slice(), "{name}");
        let public = AsymmetricPublicKey::<V4>::try_from(&parsed).unwrap();
        assert_eq!(
            public.as_bytes(),
            hex(str_field(&test, "public-key").unwrap()).unwrap(),
            "{name}"
        );
        assert_eq!(
            &key[..32],
            hex(str_field(&test, "secret-key-seed").unwrap()).unwrap(),
            "{name}"
        );
        let keys = TokenKeys::from_paserk(expected, &[]).unwrap();
        assert_eq!(keys.public_paserk(), paserk(&public), "{name}");
    }
}

#[test]
fn paserk_k4_pid() {
    for test in tests(include_str!("vectors/k4.pid.json")) {
        let name = name(&test);
        let key = hex(str_field(&test, "key").unwrap()).unwrap();
        if expect_fail(&test) {
            assert!(AsymmetricPublicKey::<V4>::from(&key).is_err(), "{name}");
            continue;
        }
        let expected = str_field(&test, "paserk").unwrap();
        let public = AsymmetricPublicKey::<V4>::from(&key).unwrap();
        let id = Id::from(&public);
        assert_eq!(paserk(&id), expected, "{name}");
        assert_eq!(Id::try_from(expected).unwrap(), id, "{name}");

        // Our key ring accepts the key as a previous (verification-only) key.
        let (_, secret) = TokenKeys::generate().unwrap();
        assert!(
            TokenKeys::from_paserk(&secret, &[paserk(&public)]).is_ok(),
            "{name}"
        );
    }
}

#[test]
fn paserk_k4_local_and_lid() {
    for test in tests(include_str!("vectors/k4.local.json")) {
        let name = name(&test);
        if expect_fail(&test) {
            let p = str_field(&test, "paserk").unwrap();
            assert!(SymmetricKey::<V4>::try_from(p).is_err(), "{name}");
            assert!(SecretBox::from_paserk(p).is_err(), "{name}");
            continue;
        }
        let key = hex(str_field(&test, "key").unwrap()).unwrap();
        let expected = str_field(&test, "paserk").unwrap();
        assert_eq!(
            paserk(&SymmetricKey::<V4>::from(&key).unwrap()),
            expected,
            "{name}"
        );
        let parsed = SymmetricKey::<V4>::try_from(expected).unwrap();
        assert_eq!(parsed.as_bytes(), key.as_slice(), "{name}");
        assert!(SecretBox::from_paserk(expected).is_ok(), "{name}");
    }

    let local = tests(include_str!("vectors/k4.local.json"));
    for test in tests(include_str!("vectors/k4.lid.json")) {
        let name = name(&test);
        let key = hex(str_field(&test, "key").unwrap()).unwrap();
        if expect_fail(&test) {
            assert!(SymmetricKey::<V4>::from(&key).is_err(), "{name}");
            continue;
        }
        let expected = str_field(&test, "paserk").unwrap();
        let id = Id::from(&SymmetricKey::<V4>::from(&key).unwrap());
        assert_eq!(paserk(&id), expected, "{name}");

        // A secret box loaded with this key names it by this lid in every sealed footer.
        let local_paserk = local
            .iter()
            .find(|t| str_field(t, "key") == str_field(&test, "key"))
            .and_then(|t| str_field(t, "paserk"))
            .unwrap();
        let sealed = SecretBox::from_paserk(local_paserk)
            .unwrap()
            .seal(b"x")
            .unwrap();
        let footer = URL_SAFE_NO_PAD
            .decode(sealed.rsplit('.').next().unwrap())
            .unwrap();
        let footer: Value = serde_json::from_slice(&footer).unwrap();
        assert_eq!(footer["kid"], expected, "{name}");
    }

    // The PASERK our generator writes is the one pasetors writes for the same key.
    let (_, generated) = SecretBox::generate();
    let parsed = SymmetricKey::<V4>::try_from(generated.as_str()).unwrap();
    assert_eq!(paserk(&parsed), generated);
}
