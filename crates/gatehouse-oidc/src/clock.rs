//! Time for the relying party: the [`Clock`] trait, the wall clock [`SystemClock`] and the
//! test clock [`ManualClock`].
//!
//! Everything in this crate that depends on time — token lifetimes with their skew, the age
//! of a pending sign-in, the JWKS refetch rate limit, waiting out Microsoft Graph's
//! `Retry-After` — reads an injected [`Clock`], so tests move time instead of sleeping. No
//! other module may read the system time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// A future returned by [`Clock::sleep`].
pub type SleepFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of the current time and of waiting.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;

    /// Waits for `duration`. The wall clock sleeps; a test clock may move forward at once.
    fn sleep(&self, duration: Duration) -> SleepFuture<'_>;

    /// The current time in Unix seconds.
    fn unix(&self) -> i64 {
        self.now().unix_timestamp()
    }
}

/// The system's wall clock and tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to. [`Clock::sleep`] returns at once, records the
/// requested duration and moves the clock forward by it, so code that waits (Graph's
/// `Retry-After`) runs instantly and tests can assert how long it would have waited.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
    sleeps: Mutex<Vec<Duration>>,
}

fn shift(at: OffsetDateTime, seconds: i64) -> OffsetDateTime {
    at.checked_add(time::Duration::seconds(seconds)).unwrap_or(at)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self { now: Mutex::new(start), sleeps: Mutex::new(Vec::new()) }
    }

    /// A clock showing the current wall-clock time, then standing still.
    pub fn starting_now() -> Self {
        Self::new(OffsetDateTime::now_utc())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = shift(*now, secs(by));
    }

    /// Moves the clock backward.
    pub fn rewind(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now = shift(*now, -secs(by));
    }

    /// Sets the clock.
    pub fn set(&self, at: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Every duration [`Clock::sleep`] was asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, duration: Duration) -> SleepFuture<'_> {
        self.sleeps.lock().unwrap_or_else(|e| e.into_inner()).push(duration);
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(clock.unix(), 0);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.unix(), 90);
        clock.sleep(Duration::from_secs(5)).await;
        assert_eq!(clock.unix(), 95);
        clock.rewind(Duration::from_secs(100));
        assert_eq!(clock.unix(), -5);
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(5)]);
    }
}
