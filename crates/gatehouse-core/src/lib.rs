//! The domain model of Gatehouse, shared by every other crate.
//!
//! This crate owns identifiers, the identity-provider and organisation models with their
//! validation rules, Go-style durations, and the small cryptographic primitives used for
//! secrets (sealing at rest, hashing bearer secrets, constant-time comparison).
//!
//! It must not do I/O: no sockets, no files, no SQL, no HTTP types.

pub mod app;
pub mod duration;
pub mod idp;
pub mod ids;
pub mod org;
pub mod policy;
pub mod secret;
pub mod validate;

pub use duration::GoDuration;
pub use ids::{AccountId, AppId, IdpId, TokenId};
pub use validate::{FieldError, ValidationErrors};

/// Milliseconds since the Unix epoch; the one time representation stored and compared.
pub type UnixMillis = i64;

/// The current wall-clock time in Unix milliseconds.
pub fn now_millis() -> UnixMillis {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats Unix milliseconds as RFC 3339 (UTC, `Z` suffix), the API's timestamp format.
pub fn rfc3339(millis: UnixMillis) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
