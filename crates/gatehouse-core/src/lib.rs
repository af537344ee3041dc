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

/// The current wall-clock time in Unix milliseconds. Read on every proxied request, so it
/// does no calendar arithmetic and no 128-bit division.
pub fn now_millis() -> UnixMillis {
    fn millis(d: std::time::Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000) * 1000 + i64::from(d.subsec_millis())
    }
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => millis(after),
        // A clock set before 1970.
        Err(before) => -millis(before.duration()),
    }
}

/// Formats Unix milliseconds as RFC 3339 (UTC, `Z` suffix), the API's timestamp format.
pub fn rfc3339(millis: UnixMillis) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_millis_is_the_wall_clock_in_milliseconds() {
        let before = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let now = i128::from(super::now_millis());
        let after = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
    }
}
