//! Secrets: the redacting [`SecretString`], the [`SecretKey`] that seals IdP client secrets at
//! rest (AES-256-GCM), and the helpers for bearer secrets (API tokens, SCIM secrets), which
//! are random, shown once, and stored only as SHA-256 hashes.
//!
//! Invariants: no `Debug` or `Display` here prints secret material; comparisons of secret
//! material are constant-time.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

/// A string that must never be printed: `Debug`/`Display` show `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where the value is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Errors of the secret primitives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The key text is not 32 bytes in hex or base64.
    #[error("secret key must be 32 bytes, written as 64 hex characters or base64")]
    KeyFormat,
    /// Sealed data failed authentication: wrong key, or tampered data.
    #[error("sealed data could not be opened: wrong secret key or corrupted data")]
    Open,
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
}

/// The at-rest encryption key (256 bits). Cloning is cheap; `Debug` prints nothing secret.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; 32],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; 32];
        random_fill(&mut bytes)?;
        Ok(Self { bytes })
    }

    /// Parses a key written as 64 hex characters or as base64 (standard or URL-safe) of 32 bytes.
    /// Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            STANDARD.decode(text).ok().or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
        };
        let bytes: [u8; 32] = decoded.and_then(|v| v.try_into().ok()).ok_or(SecretError::KeyFormat)?;
        Ok(Self { bytes })
    }

    /// The key as base64, the form written to a key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    fn aead(&self) -> LessSafeKey {
        // AES_256_GCM accepts any 32-byte key, so this cannot fail for our fixed-size array.
        let unbound = UnboundKey::new(&AES_256_GCM, &self.bytes)
            .unwrap_or_else(|_| unreachable!("32-byte key is valid for AES-256-GCM"));
        LessSafeKey::new(unbound)
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the row id) so a sealed value moved
    /// to another row fails to open. Output: `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        random_fill(&mut nonce)?;
        let mut buf = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut buf)
            .map_err(|_| SecretError::Open)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`SecretKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Open)?;
        let mut buf = body.to_vec();
        let plain = self.aead().open_in_place(nonce, Aad::from(context), &mut buf).map_err(|_| SecretError::Open)?;
        Ok(plain.to_vec())
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_fill(buf: &mut [u8]) -> Result<(), SecretError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| SecretError::Random)
}

/// A new bearer secret: `prefix` followed by 32 random bytes in URL-safe base64 (43 chars).
pub fn generate_bearer_secret(prefix: &str) -> Result<SecretString, SecretError> {
    let mut bytes = [0u8; 32];
    random_fill(&mut bytes)?;
    Ok(SecretString::new(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))))
}

/// The stored form of a bearer secret: lowercase hex SHA-256. Bearer secrets are 256-bit
/// random values, so a fast hash is sufficient (no password stretching needed).
pub fn hash_bearer_secret(secret: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

/// Constant-time equality of two byte strings (length may leak, content does not).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
pub fn verify_bearer_secret(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(hash_bearer_secret(presented).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let sealed = key.seal(b"client-secret", b"idp-1").unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.windows(13).any(|w| w == b"client-secret"));
        assert_eq!(key.open(&sealed, b"idp-1").ok().as_deref(), Some(&b"client-secret"[..]));
        assert_eq!(key.open(&sealed, b"idp-2"), Err(SecretError::Open));
        let other = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(other.open(&sealed, b"idp-1"), Err(SecretError::Open));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(&tampered, b"idp-1"), Err(SecretError::Open));
        assert_eq!(key.open(&[1, 2, 3], b"idp-1"), Err(SecretError::Open));
    }

    #[test]
    fn key_parses_hex_and_base64() {
        let key = SecretKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let b64 = key.to_base64();
        let again = SecretKey::parse(&format!(" {b64}\n")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.bytes, key.bytes);
        let hexed = hex::encode(key.bytes);
        assert_eq!(SecretKey::parse(&hexed).map(|k| k.bytes), Ok(key.bytes));
        assert_eq!(SecretKey::parse("short").map(|k| k.bytes), Err(SecretError::KeyFormat));
    }

    #[test]
    fn bearer_secret_hash_verifies() {
        let s = generate_bearer_secret("t_").unwrap_or_else(|e| panic!("{e}"));
        let h = hash_bearer_secret(s.expose());
        assert!(verify_bearer_secret(s.expose(), &h));
        assert!(!verify_bearer_secret("t_other", &h));
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
