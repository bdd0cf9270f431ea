//! The privacy budget: how much ε one actor (an API token, or an operator at the command line)
//! may spend on noisy exports per calendar period.
//!
//! Differential privacy composes: k exports at ε each are together k·ε-private. Fixed noise
//! ([`crate::noise`]) makes asking the same question again useless to an attacker, but every
//! different question (another range, another site) is a fresh draw, so without a bound enough
//! questions would average the noise away. Every noisy export is charged its ε, and an export
//! that would take the period's total past the limit is refused until the next period begins.
//! What was spent is read from the audit ([`crate::audit`]), which records each export's ε: one
//! ledger, kept before any data is handed out.
//!
//! Pure arithmetic on whole thousandths of ε, so that sums never drift.

use crate::day::Day;
use crate::noise::Epsilon;

/// The calendar period a budget is spent over (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Day,
    /// ISO weeks, from Monday.
    Week,
    Month,
}

/// A limit per period, in thousandths of ε.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit_thousandths: u64,
    pub period: Period,
}

/// An export refused because the budget of its period is spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the privacy budget is spent: {spent} of ε {limit} used this {period:?}, this export needs \
     {cost}; it resets at {resets_at}",
    spent = *spent_thousandths as f64 / 1000.0,
    limit = *limit_thousandths as f64 / 1000.0,
    resets_at = iso(*resets_at),
)]
pub struct Exhausted {
    pub spent_thousandths: u64,
    pub limit_thousandths: u64,
    pub cost: Epsilon,
    pub period: Period,
    /// Seconds since the Unix epoch when the next period begins.
    pub resets_at: i64,
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Day::from_epoch(secs.div_euclid(86_400)),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

impl Budget {
    /// The start of the period holding `now` (seconds since the Unix epoch).
    pub fn period_start(&self, now: i64) -> i64 {
        let today = Day::from_epoch(now.div_euclid(86_400));
        let first = match self.period {
            Period::Day => today,
            // 1970-01-01 was a Thursday: three days after a Monday.
            Period::Week => today.plus(-(today.since_epoch() + 3).rem_euclid(7)),
            Period::Month => today.month_start(),
        };
        first.since_epoch() * 86_400
    }

    /// The start of the next period after `now`.
    pub fn resets_at(&self, now: i64) -> i64 {
        let start = Day::from_epoch(self.period_start(now) / 86_400);
        let next = match self.period {
            Period::Day => start.plus(1),
            Period::Week => start.plus(7),
            Period::Month => start.month_end().plus(1),
        };
        next.since_epoch() * 86_400
    }

    /// Charges `cost` against what the period already spent; the thousandths left after it.
    pub fn charge(
        &self,
        spent_thousandths: u64,
        cost: Epsilon,
        now: i64,
    ) -> Result<u64, Exhausted> {
        let after = spent_thousandths + u64::from(cost.thousandths());
        if after > self.limit_thousandths {
            return Err(Exhausted {
                spent_thousandths,
                limit_thousandths: self.limit_thousandths,
                cost,
                period: self.period,
                resets_at: self.resets_at(now),
            });
        }
        Ok(self.limit_thousandths - after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: &str, secs: i64) -> i64 {
        Day::parse(day).unwrap().since_epoch() * 86_400 + secs
    }

    #[test]
    fn periods_are_calendar_aligned_in_utc() {
        let month = Budget {
            limit_thousandths: 1000,
            period: Period::Month,
        };
        let now = at("2026-02-14", 3600);
        assert_eq!(month.period_start(now), at("2026-02-01", 0));
        assert_eq!(month.resets_at(now), at("2026-03-01", 0));
        assert_eq!(
            month.resets_at(at("2026-12-31", 86_399)),
            at("2027-01-01", 0)
        );
        let week = Budget {
            period: Period::Week,
            ..month
        };
        // 2026-02-14 is a Saturday; its ISO week began on Monday the 9th.
        assert_eq!(week.period_start(now), at("2026-02-09", 0));
        assert_eq!(week.resets_at(at("2026-02-09", 0)), at("2026-02-16", 0));
        let day = Budget {
            period: Period::Day,
            ..month
        };
        assert_eq!(day.resets_at(now), at("2026-02-15", 0));
        assert_eq!(iso(at("2200-01-01", 61)), "2200-01-01T00:01:01Z");
    }

    #[test]
    fn the_budget_is_spent_exactly_and_then_refused_with_the_reset_time() {
        let budget = Budget {
            limit_thousandths: 3000,
            period: Period::Month,
        };
        let one = Epsilon::from_f64(1.0).unwrap();
        let now = at("2026-02-14", 0);
        let mut spent = 0;
        for left in [2000, 1000, 0] {
            assert_eq!(budget.charge(spent, one, now), Ok(left));
            spent += 1000;
        }
        let refused = budget.charge(spent, one, now).unwrap_err();
        assert_eq!(refused.resets_at, at("2026-03-01", 0));
        assert!(
            refused.to_string().contains("2026-03-01T00:00:00Z"),
            "{refused}"
        );
        let small = Epsilon::from_f64(0.001).unwrap();
        assert!(budget.charge(2999, small, now).is_ok());
        assert!(budget.charge(3000, small, now).is_err());
    }
}
