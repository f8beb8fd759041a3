//! Signing and encryption keys: from configuration, or generated once and kept in `data_dir` (standalone).

use std::path::Path;

use anyhow::Context as _;
use cybervpn_auth::{SecretBox, TokenKeys};
use cybervpn_config::Config;

use crate::Mode;

/// Loads the token key ring and the secret box; standalone creates missing keys under `data_dir/keys`.
pub(crate) fn load_keys(config: &Config, mode: Mode) -> anyhow::Result<(TokenKeys, SecretBox)> {
    let auth = &config.auth;
    let keys_dir = config.data_dir.join("keys");
    let signing = match (&auth.token_signing_key, mode) {
        (Some(key), _) => key.expose().clone(),
        (None, Mode::Standalone) => load_or_create(&keys_dir.join("token-signing.paserk"), || {
            TokenKeys::generate()
                .map(|(_, paserk)| paserk)
                .map_err(anyhow::Error::from)
        })?,
        (None, Mode::Service) => anyhow::bail!(
            "invalid configuration key `auth.token_signing_key`: required by cybervpn-api \
             (generate one with `cybervpn-api keys generate`)"
        ),
    };
    let keys = TokenKeys::from_paserk(&signing, &auth.previous_public_keys).context(
        "invalid configuration key `auth.token_signing_key` or `auth.previous_public_keys`",
    )?;
    let encryption = match (&auth.encryption_key, mode) {
        (Some(key), _) => key.expose().clone(),
        (None, Mode::Standalone) => load_or_create(&keys_dir.join("encryption.paserk"), || {
            Ok(SecretBox::generate().1)
        })?,
        (None, Mode::Service) => anyhow::bail!(
            "invalid configuration key `auth.encryption_key`: required by cybervpn-api \
             (generate one with `cybervpn-api keys generate`)"
        ),
    };
    let secret_box = SecretBox::from_paserk(&encryption)
        .context("invalid configuration key `auth.encryption_key`")?;
    Ok((keys, secret_box))
}

/// Reads a key file, or writes a new key to it (readable by the owner only).
fn load_or_create(
    path: &Path,
    create: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if path.exists() {
        return Ok(std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_owned());
    }
    let key = create()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
