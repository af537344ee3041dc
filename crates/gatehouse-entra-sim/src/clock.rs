//! The emulator's clock: wall time plus an offset that tests and the admin API can advance.
//!
//! Everything time-dependent (authorization code expiry, secret expiry, token `iat`/`exp`,
//! refresh-token inactivity) reads this clock, so expiry can be tested without sleeping.
//! The offset only ever moves forward.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// Wall-clock time shifted by an adjustable offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_secs: AtomicI64,
}

impl Clock {
    /// The emulator's current time.
    pub(crate) fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// The current time as Unix seconds.
    pub(crate) fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }

    /// Moves the clock forward.
    pub(crate) fn advance(&self, by: std::time::Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 2);
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_now_forward() {
        let clock = Clock::default();
        let before = clock.unix();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(clock.unix() >= before + 3600);
    }
}
