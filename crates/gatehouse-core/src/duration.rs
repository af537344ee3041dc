//! Go-style durations (`300ms`, `2h45m`, `1.5h`), the format Cloudflare's API uses for
//! `session_duration` and friends. Parsing is strict and total: any input either yields a
//! duration or a [`DurationError`]; it never panics or overflows.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A non-negative duration written and read in Go's `time.ParseDuration` syntax.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GoDuration(Duration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not of the form `<number><unit>...`.
    #[error("invalid duration {0:?}: expected a number and a unit, e.g. \"24h\", \"30m\", \"1h30m\"")]
    Syntax(String),
    /// A unit other than ns, us, µs, ms, s, m, h.
    #[error("invalid duration {0:?}: unknown unit (use ns, us, ms, s, m or h)")]
    Unit(String),
    /// Larger than the supported range.
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
    /// A leading minus sign.
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
}

impl GoDuration {
    /// Wraps a standard duration.
    pub const fn new(d: Duration) -> Self {
        Self(d)
    }

    /// The wrapped standard duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Whole seconds, saturating.
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Upper bound on accepted durations: 100 years is far beyond any session setting.
const MAX_NANOS: u128 = 100 * 366 * 24 * 3_600_000_000_000;

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = || DurationError::Syntax(input.to_owned());
        let mut s = input;
        if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        } else if s.starts_with('-') {
            return Err(DurationError::Negative(input.to_owned()));
        }
        if s == "0" {
            return Ok(Self(Duration::ZERO));
        }
        if s.is_empty() {
            return Err(syntax());
        }
        let mut total: u128 = 0;
        while !s.is_empty() {
            // Integer part, optional fraction.
            let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, rest) = s.split_at(int_len);
            let (frac_part, rest) = match rest.strip_prefix('.') {
                Some(r) => {
                    let n = r.bytes().take_while(u8::is_ascii_digit).count();
                    r.split_at(n)
                }
                None => ("", rest),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(syntax());
            }
            let unit_len =
                rest.char_indices().find(|(_, c)| c.is_ascii_digit() || *c == '.').map_or(rest.len(), |(i, _)| i);
            let (unit, rest) = rest.split_at(unit_len);
            if unit.is_empty() {
                return Err(syntax());
            }
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, n)| *n)
                .ok_or_else(|| DurationError::Unit(input.to_owned()))?;
            let overflow = || DurationError::Overflow(input.to_owned());
            let int: u128 = if int_part.is_empty() {
                0
            } else if int_part.len() > 30 {
                return Err(overflow());
            } else {
                int_part.parse().map_err(|_| syntax())?
            };
            let mut value = int.checked_mul(scale).ok_or_else(overflow)?;
            // Fractions beyond nanosecond precision are truncated, as Go does.
            let mut frac_scale = scale;
            for digit in frac_part.bytes().take(30) {
                frac_scale /= 10;
                value = value.checked_add(u128::from(digit - b'0') * frac_scale).ok_or_else(overflow)?;
            }
            total = total.checked_add(value).ok_or_else(overflow)?;
            if total > MAX_NANOS {
                return Err(overflow());
            }
            s = rest;
        }
        let secs = (total / 1_000_000_000) as u64;
        let nanos = (total % 1_000_000_000) as u32;
        Ok(Self(Duration::new(secs, nanos)))
    }
}

impl TryFrom<String> for GoDuration {
    type Error = DurationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<GoDuration> for String {
    fn from(d: GoDuration) -> Self {
        d.to_string()
    }
}

/// Compact canonical form: `24h`, `2h45m`, `1m30s`, `300ms`, `0s`.
impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (3_600_000_000_000u128, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        let mut rest = total;
        for (scale, unit) in parts {
            let n = rest / scale;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest -= n * scale;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GoDuration({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Duration {
        s.parse::<GoDuration>().map(GoDuration::get).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_go_examples() {
        assert_eq!(d("24h"), Duration::from_secs(86_400));
        assert_eq!(d("2h45m"), Duration::from_secs(9_900));
        assert_eq!(d("300ms"), Duration::from_millis(300));
        assert_eq!(d("1.5h"), Duration::from_secs(5_400));
        assert_eq!(d("1µs"), Duration::from_micros(1));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d(".5s"), Duration::from_millis(500));
        assert_eq!(d("1h0m0s"), Duration::from_secs(3_600));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "h", "24", "1x", "-1h", "1h-5m", "1..5h", ".h", "1 h", "99999999999999999999999999999999h"] {
            assert!(bad.parse::<GoDuration>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(GoDuration::new(Duration::from_secs(86_400)).to_string(), "24h");
        assert_eq!(GoDuration::new(Duration::from_secs(9_900)).to_string(), "2h45m");
        assert_eq!(GoDuration::new(Duration::from_millis(90_500)).to_string(), "1m30s500ms");
        assert_eq!(GoDuration::new(Duration::ZERO).to_string(), "0s");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<GoDuration>();
        }

        #[test]
        fn display_round_trips(nanos in 0u64..(50 * 365 * 24 * 3_600_000_000_000)) {
            let g = GoDuration::new(Duration::from_nanos(nanos));
            prop_assert_eq!(g.to_string().parse::<GoDuration>(), Ok(g));
        }

        #[test]
        fn unit_sums_parse(h in 0u64..10_000, m in 0u64..60, s in 0u64..60) {
            let text = format!("{h}h{m}m{s}s");
            prop_assert_eq!(d(&text), Duration::from_secs(h * 3600 + m * 60 + s));
        }
    }
}
