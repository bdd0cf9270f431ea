//! Calendar days (UTC) as reports take them: `YYYY-MM-DD`, checked before they reach SQL.
//!
//! Days are counted from 1970-01-01 with the proleptic Gregorian calendar (Howard Hinnant's
//! `days_from_civil`), which is all that report ranges and the rollup refresh need.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// One UTC day; prints as `YYYY-MM-DD`, which ClickHouse reads as a `Date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(i64);

impl Day {
    /// Parses `YYYY-MM-DD` (years 1970 to 2299, ClickHouse's `Date` range), else `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            s.get(r.clone())
                .filter(|p| p.bytes().all(|c| c.is_ascii_digit()))?
                .parse()
                .ok()
        };
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let valid = (1970..=2299).contains(&y)
            && (1..=12).contains(&m)
            && d >= 1
            && d <= month_days[(m - 1) as usize];
        valid.then(|| Day(days_from_civil(y, m, d)))
    }

    pub fn today() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Day((secs / 86_400) as i64)
    }

    /// The day `n` days after 1970-01-01.
    pub fn from_epoch(n: i64) -> Self {
        Day(n)
    }

    /// Days since 1970-01-01 (ClickHouse's `Date`).
    pub fn since_epoch(self) -> i64 {
        self.0
    }

    /// The day `n` days later (earlier when negative).
    pub fn plus(self, n: i64) -> Self {
        Day(self.0 + n)
    }

    /// The first day of this day's month.
    pub fn month_start(self) -> Self {
        let (y, m, _) = civil_from_days(self.0);
        Day(days_from_civil(y, m, 1))
    }

    /// The last day of this day's month.
    pub fn month_end(self) -> Self {
        let (y, m, _) = civil_from_days(self.0);
        let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Day(days_from_civil(y, m, 1) - 1)
    }

    /// Days from `self` to `other`, inclusive of both.
    pub fn days_through(self, other: Day) -> i64 {
        other.0 - self.0 + 1
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_count() {
        for s in ["1970-01-01", "2024-02-29", "2026-12-31", "2299-12-31"] {
            assert_eq!(Day::parse(s).unwrap().to_string(), s);
        }
        let a = Day::parse("2026-02-27").unwrap();
        assert_eq!(a.plus(2).to_string(), "2026-03-01");
        assert_eq!(a.days_through(Day::parse("2026-03-01").unwrap()), 3);
        assert_eq!(Day::parse("1970-01-01").unwrap(), Day(0));
        assert_eq!(a.month_start().to_string(), "2026-02-01");
        assert_eq!(a.month_end().to_string(), "2026-02-28");
        assert_eq!(
            Day::parse("2026-12-05").unwrap().month_end().to_string(),
            "2026-12-31"
        );
    }

    #[test]
    fn malformed_days_are_refused() {
        for s in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026-01-00",
            "2026/01/01",
            "1969-12-31",
            "2026-01-01'",
            "+026-01-01",
            "",
        ] {
            assert!(Day::parse(s).is_none(), "{s}");
        }
    }
}
