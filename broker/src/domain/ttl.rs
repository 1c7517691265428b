//! Time-to-live values such as `15m`, `1h`, `7d`, with saturating arithmetic.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use super::InvalidName;

/// A positive duration of at most a year, written `<n>s`, `<n>m`, `<n>h` or `<n>d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(u64);

const MAX_SECONDS: u64 = 365 * 24 * 3600;

impl Ttl {
    /// # Errors
    /// When `text` is not a positive number followed by a unit, or exceeds a year.
    pub fn parse(field: &'static str, text: &str) -> Result<Self, InvalidName> {
        let invalid = || {
            InvalidName {
            field,
            reason: "must be a positive duration such as \"90s\", \"15m\", \"1h\" or \"7d\", at most 365d".into(),
        }
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(invalid()),
        };
        let seconds = number.saturating_mul(unit_seconds);
        if seconds == 0 || seconds > MAX_SECONDS {
            return Err(invalid());
        }
        Ok(Self(seconds))
    }

    pub fn seconds(self) -> u64 {
        self.0
    }

    /// `now + self`, saturating at the largest representable time.
    pub fn after(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let seconds = i64::try_from(self.0).unwrap_or(i64::MAX);
        Duration::try_seconds(seconds)
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse() {
        for (text, seconds, case) in [
            ("90s", Some(90), "seconds"),
            ("15m", Some(900), "minutes"),
            ("1h", Some(3600), "hours"),
            ("7d", Some(604_800), "days"),
            ("0s", None, "zero"),
            ("366d", None, "over a year"),
            ("1w", None, "unknown unit"),
            ("h", None, "no number"),
            ("-1h", None, "negative"),
            (
                "18446744073709551615d",
                None,
                "overflow saturates and is refused",
            ),
        ] {
            assert_eq!(
                Ttl::parse("ttl", text).ok().map(Ttl::seconds),
                seconds,
                "case: {case}"
            );
        }
    }

    #[test]
    fn after_saturates() {
        let ttl = Ttl::parse("ttl", "365d").expect("ttl");
        assert!(
            ttl.after(DateTime::<Utc>::MAX_UTC - Duration::days(1)) <= DateTime::<Utc>::MAX_UTC
        );
    }
}
