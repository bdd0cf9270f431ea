//! What a load run found: counts, throughput, latency percentiles, and hits lost between the
//! collector's answer and ClickHouse. One line for people, JSON for scripts (`compare.sh`).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded exactly, in microseconds; slower answers count as this.
const LATENCY_MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static bounds are valid")
}

/// What the load loop counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Requests that got an answer or failed.
    pub requests: u64,
    /// Hits the collector took: a pixel's `200` with the `ff_id` cookie, a beacon's `204`.
    pub acknowledged: u64,
    /// Answers that did not take the hit (no cookie, another status).
    pub refused: u64,
    /// Requests without an answer (connection failed or closed).
    pub errors: u64,
    pub pixel_hits: u64,
    pub beacon_hits: u64,
    /// Hits that sent an `ff_id` back (returning visitors).
    pub with_cookie: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.acknowledged += other.acknowledged;
        self.refused += other.refused;
        self.errors += other.errors;
        self.pixel_hits += other.pixel_hits;
        self.beacon_hits += other.beacon_hits;
        self.with_cookie += other.with_cookie;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// What was asked of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `closed` (as fast as answers come) or `open` (a fixed rate).
    pub mode: &'static str,
    pub target: String,
    pub connections: u32,
    /// The open loop's intended rate, requests per second.
    pub rate: Option<f64>,
    pub site: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub run: RunInfo,
    pub elapsed_secs: f64,
    #[serde(flatten)]
    pub counts: Counts,
    /// Answered requests per second.
    pub throughput: f64,
    /// From the intended send time in open loop, from the send in closed loop.
    pub latency: Latency,
    /// Rows of this run's site in ClickHouse; absent when not checked.
    pub stored: Option<u64>,
    /// Acknowledged hits not stored.
    pub lost: Option<u64>,
}

impl Report {
    pub fn new(
        run: RunInfo,
        elapsed: Duration,
        counts: Counts,
        histogram: &Histogram<u64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let answered = counts.requests - counts.errors;
        Self {
            run,
            elapsed_secs: secs,
            counts,
            throughput: if secs > 0.0 {
                answered as f64 / secs
            } else {
                0.0
            },
            latency: Latency::of(histogram),
            stored: None,
            lost: None,
        }
    }

    /// Records what ClickHouse holds for the run's site.
    pub fn set_stored(&mut self, stored: u64) {
        self.stored = Some(stored);
        self.lost = Some(self.counts.acknowledged.saturating_sub(stored));
    }

    /// The one-line summary.
    pub fn line(&self) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let l = &self.latency;
        let mode = match self.run.rate {
            Some(rate) => format!("open loop at {rate:.0}/s"),
            None => "closed loop".to_owned(),
        };
        let stored = match (self.stored, self.lost) {
            (Some(stored), Some(lost)) => format!(", stored {stored}, lost {lost}"),
            _ => String::new(),
        };
        format!(
            "{mode}, {} connections, {:.1} s: {:.0} req/s; latency p50 {:.3} ms, p90 {:.3} ms, \
             p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms; {} requests, {} acknowledged, \
             {} refused, {} errors{stored}",
            self.run.connections,
            self.elapsed_secs,
            self.throughput,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us),
            self.counts.requests,
            self.counts.acknowledged,
            self.counts.refused,
            self.counts.errors,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut h = latency_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let counts = Counts {
            requests: 1000,
            acknowledged: 990,
            refused: 5,
            errors: 5,
            pixel_hits: 1000,
            ..Counts::default()
        };
        let run = RunInfo {
            mode: "closed",
            target: "127.0.0.1:8080".into(),
            connections: 4,
            rate: None,
            site: "s".into(),
        };
        Report::new(run, Duration::from_secs(2), counts, &h)
    }

    #[test]
    fn throughput_counts_answered_requests_only() {
        assert_eq!(report().throughput, 497.5);
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let l = report().latency;
        assert_eq!(l.p50_us, 500);
        assert_eq!(l.p99_us, 990);
        assert_eq!(l.max_us, 1000);
        assert!((l.mean_us - 500.5).abs() < 1.0);
    }

    #[test]
    fn lost_is_acknowledged_minus_stored_never_negative() {
        let mut r = report();
        assert_eq!(r.lost, None);
        r.set_stored(980);
        assert_eq!(r.lost, Some(10));
        r.set_stored(1200);
        assert_eq!(r.lost, Some(0));
    }

    #[test]
    fn the_line_and_the_json_say_the_same() {
        let mut r = report();
        r.set_stored(990);
        let line = r.line();
        assert!(line.starts_with("closed loop, 4 connections, 2.0 s: 498 req/s"));
        assert!(line.contains("p99 0.990 ms"));
        assert!(line.ends_with("stored 990, lost 0"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["acknowledged"], 990);
        assert_eq!(json["lost"], 0);
        assert_eq!(json["latency"]["p99_us"], 990);
    }

    #[test]
    fn counts_add_up() {
        let mut total = Counts::default();
        let one = Counts {
            requests: 3,
            acknowledged: 2,
            with_cookie: 1,
            ..Counts::default()
        };
        total.add(&one);
        total.add(&one);
        assert_eq!(total.requests, 6);
        assert_eq!(total.with_cookie, 2);
    }
}
