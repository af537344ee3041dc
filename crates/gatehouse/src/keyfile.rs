//! Finding the at-rest encryption key: `GATEHOUSE_SECRET_KEY` (or `secret_key`), else
//! `secret_key_file`, else `secret.key` in the data directory — generated there on first
//! start, readable by the owner only, with a warning to back it up.

use std::path::{Path, PathBuf};

use gatehouse_core::secret::SecretKey;

use crate::config::Config;

/// Why no key could be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key text is malformed.
    #[error("{source_name}: {reason}")]
    Invalid {
        /// Where the key came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Name of the generated key file inside `data_dir`.
pub const GENERATED_KEY_FILE: &str = "secret.key";

/// Loads the key, generating and saving one when `generate` is true and none is configured.
/// Returns `Ok(None)` only when `generate` is false and no key exists yet.
pub fn resolve(config: &Config, generate: bool) -> Result<Option<SecretKey>, KeyError> {
    if let Some(text) = &config.secret_key {
        return SecretKey::parse(text.0.expose())
            .map(Some)
            .map_err(|e| KeyError::Invalid { source_name: "GATEHOUSE_SECRET_KEY".into(), reason: e.to_string() });
    }
    if let Some(path) = &config.secret_key_file {
        return read(path).map(Some);
    }
    let path = config.data_dir.join(GENERATED_KEY_FILE);
    if path.exists() {
        return read(&path).map(Some);
    }
    if !generate {
        return Ok(None);
    }
    let key = SecretKey::generate()
        .map_err(|e| KeyError::Invalid { source_name: "key generation".into(), reason: e.to_string() })?;
    write_private(&path, &key.to_base64())?;
    tracing::warn!(
        path = %path.display(),
        "generated a new secret key for encrypting IdP secrets at rest; back it up — without it \
         stored client secrets cannot be read. Several instances must share one key (GATEHOUSE_SECRET_KEY)."
    );
    Ok(Some(key))
}

fn read(path: &Path) -> Result<SecretKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io { path: path.to_owned(), source })?;
    SecretKey::parse(&text)
        .map_err(|e| KeyError::Invalid { source_name: path.display().to_string(), reason: e.to_string() })
}

fn write_private(path: &Path, contents: &str) -> Result<(), KeyError> {
    use std::io::Write as _;
    let io = |source| KeyError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(format!("{contents}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}
