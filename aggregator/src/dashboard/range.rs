//! The dashboard's date ranges: presets, a custom range, and the period before for comparison.
//! Pure functions of the query and today's date.

use crate::api::Params;
use crate::day::Day;
use crate::report::MAX_DAYS;

/// The presets, in the order the dashboard offers them: (query value, label).
pub const PRESETS: [(&str, &str); 8] = [
    ("today", "Today"),
    ("yesterday", "Yesterday"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("90d", "Last 90 days"),
    ("month", "This month"),
    ("last-month", "Last month"),
    ("12m", "Last 12 months"),
];

/// A resolved range: both days included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: Day,
    pub to: Day,
    /// The preset it came from; `None` for a custom range.
    pub preset: Option<&'static str>,
}

impl Range {
    /// The range the query asks for: `range=PRESET`, or `from` and `to`; by default the last 30
    /// days. A custom range is clamped to [`MAX_DAYS`] ending at `to`, and never ends after
    /// today.
    pub fn from_params(params: &Params, today: Day) -> Result<Self, String> {
        let day = |k: &str| {
            params
                .get(k)
                .filter(|v| !v.is_empty())
                .map(|v| Day::parse(v).ok_or_else(|| format!("'{v}' is not a date (YYYY-MM-DD)")))
                .transpose()
        };
        let preset = params.get("range").map(String::as_str);
        if preset.is_none_or(|p| p == "custom")
            && let (Some(from), Some(to)) = (day("from")?, day("to")?)
        {
            let to = to.min(today);
            let from = from.min(to).max(to.plus(1 - MAX_DAYS));
            return Ok(Self {
                from,
                to,
                preset: None,
            });
        }
        let name = PRESETS
            .iter()
            .map(|(n, _)| *n)
            .find(|n| Some(*n) == preset)
            .unwrap_or("30d");
        let (from, to) = match name {
            "today" => (today, today),
            "yesterday" => (today.plus(-1), today.plus(-1)),
            "7d" => (today.plus(-6), today),
            "90d" => (today.plus(-89), today),
            "month" => (today.month_start(), today),
            "last-month" => {
                let end = today.month_start().plus(-1);
                (end.month_start(), end)
            }
            "12m" => (today.plus(-364), today),
            _ => (today.plus(-29), today),
        };
        Ok(Self {
            from,
            to,
            preset: Some(name),
        })
    }

    pub fn days(self) -> i64 {
        self.from.days_through(self.to)
    }

    /// The period of the same length just before (for a calendar month, the month before).
    pub fn previous(self) -> Self {
        let (from, to) = if self.preset == Some("last-month")
            || (self.from == self.from.month_start() && self.to == self.to.month_end())
        {
            let end = self.from.plus(-1);
            (end.month_start(), end)
        } else {
            (self.from.plus(-self.days()), self.from.plus(-1))
        };
        Self {
            from,
            to,
            preset: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn d(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    #[test]
    fn presets_resolve_against_today() {
        let today = d("2026-03-15");
        let r = |p: &str| Range::from_params(&params(&[("range", p)]), today).unwrap();
        assert_eq!((r("today").from, r("today").to), (today, today));
        assert_eq!(r("yesterday").from, d("2026-03-14"));
        assert_eq!((r("7d").from, r("7d").days()), (d("2026-03-09"), 7));
        assert_eq!(r("month").from, d("2026-03-01"));
        assert_eq!(
            (r("last-month").from, r("last-month").to),
            (d("2026-02-01"), d("2026-02-28"))
        );
        assert_eq!(r("12m").days(), 365);
        let default = Range::from_params(&params(&[]), today).unwrap();
        assert_eq!((default.days(), default.preset), (30, Some("30d")));
        assert_eq!(r("nonsense").preset, Some("30d"));
    }

    #[test]
    fn custom_ranges_are_bounded_and_checked() {
        let today = d("2026-03-15");
        let r = Range::from_params(
            &params(&[("from", "2026-03-10"), ("to", "2026-04-30")]),
            today,
        )
        .unwrap();
        assert_eq!((r.from, r.to, r.preset), (d("2026-03-10"), today, None));
        let long = Range::from_params(
            &params(&[("from", "2020-01-01"), ("to", "2026-03-01")]),
            today,
        )
        .unwrap();
        assert_eq!(long.days(), MAX_DAYS);
        let backwards = Range::from_params(
            &params(&[("from", "2026-03-12"), ("to", "2026-03-11")]),
            today,
        )
        .unwrap();
        assert_eq!(backwards.days(), 1);
        assert!(
            Range::from_params(
                &params(&[("from", "2026-02-30"), ("to", "2026-03-01")]),
                today
            )
            .is_err()
        );
    }

    #[test]
    fn the_previous_period_has_the_same_length_or_is_the_month_before() {
        let today = d("2026-03-15");
        let week = Range::from_params(&params(&[("range", "7d")]), today).unwrap();
        let before = week.previous();
        assert_eq!((before.from, before.to), (d("2026-03-02"), d("2026-03-08")));
        let feb = Range::from_params(&params(&[("range", "last-month")]), today).unwrap();
        let jan = feb.previous();
        assert_eq!((jan.from, jan.to), (d("2026-01-01"), d("2026-01-31")));
    }
}
