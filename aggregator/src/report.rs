//! Reports: anonymous aggregates read from the rollups, made safe, written as CSV.
//!
//! The only way data leaves Footfall. Every report is a set of rows keyed by site and one
//! dimension, and every row is checked before it is written:
//!
//! - it stands for at least K distinct visitors (exact count, `uniqExact`; for `email`, distinct
//!   recipients), else it is left out. No total or "other" row is ever written, so a left-out
//!   row cannot be recomputed from the rest of the same report;
//! - its cells hold no identifier: paths without query string or fragment, referrer hosts,
//!   country and device names, UTM values and campaign names. Visitor ids, customer ids,
//!   recipients and IP prefixes are not in the rollups at all (only inside exact-count states);
//! - with an epsilon, counts get Laplace noise (see [`crate::noise`]) and only counts whose
//!   per-visitor contribution is bounded are written.
//!
//! Cells that a spreadsheet would read as a formula are prefixed with `'` ([`spreadsheet_safe`]).

use clickhouse::Client;
use serde::Deserialize;

use crate::day::Day;
use crate::noise::Laplace;
use crate::{ClickHouseError, ch, rollup};

/// The default for `--min-visitors`.
pub const DEFAULT_MIN_VISITORS: u32 = 10;
/// Longest range one export covers.
pub const MAX_DAYS: i64 = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Daily,
    Pages,
    Referrers,
    Countries,
    Devices,
    Campaigns,
    Email,
}

impl Report {
    pub const ALL: [Report; 7] = [
        Report::Daily,
        Report::Pages,
        Report::Referrers,
        Report::Countries,
        Report::Devices,
        Report::Campaigns,
        Report::Email,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Report::Daily => "daily",
            Report::Pages => "pages",
            Report::Referrers => "referrers",
            Report::Countries => "countries",
            Report::Devices => "devices",
            Report::Campaigns => "campaigns",
            Report::Email => "email",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The rollup dimensions it reads and the key columns it groups by (as SQL over
    /// `dimension`, `day`, `k1..k3`), with their CSV names.
    fn shape(self) -> (&'static str, [(&'static str, &'static str); 3]) {
        const NONE: (&str, &str) = ("", "''");
        match self {
            Report::Daily => ("'all'", [("date", "toString(day)"), NONE, NONE]),
            Report::Pages => ("'page'", [("path", "k1"), NONE, NONE]),
            Report::Referrers => ("'referrer'", [("referrer", "k1"), NONE, NONE]),
            Report::Countries => ("'country'", [("country", "k1"), NONE, NONE]),
            Report::Devices => (
                "'device', 'browser', 'os'",
                [("dimension", "toString(dimension)"), ("value", "k1"), NONE],
            ),
            Report::Campaigns => (
                "'campaign'",
                [
                    ("utm_source", "k1"),
                    ("utm_medium", "k2"),
                    ("utm_campaign", "k3"),
                ],
            ),
            Report::Email => ("'email'", [("campaign", "k1"), NONE, NONE]),
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    pub report: Report,
    pub from: Day,
    pub to: Day,
    pub site: Option<String>,
    pub min_visitors: u32,
    pub privacy: Option<Laplace>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "unknown report '{0}'; reports are daily, pages, referrers, countries, devices, campaigns, email"
    )]
    UnknownReport(String),
    #[error("'{0}' is not a date; give YYYY-MM-DD")]
    BadDate(String),
    #[error("the range ends before it starts; give from <= to")]
    Backwards,
    #[error("the range is longer than {MAX_DAYS} days; export it in parts")]
    TooLong,
    #[error("'{0}' is not a site name: 1-128 letters, digits and .-_:")]
    BadSite(String),
    #[error("the minimum number of visitors per row must be at least 2")]
    MinVisitorsTooLow,
    #[error("epsilon must be a number above 0 and at most 10")]
    BadEpsilon,
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
    #[error("could not write the CSV: {0}")]
    Csv(#[from] csv::Error),
}

impl Request {
    /// A request from the textual parameters of the command line or the HTTP API, checked.
    pub fn parse(
        report: &str,
        from: &str,
        to: &str,
        site: Option<&str>,
        min_visitors: u32,
        epsilon: Option<f64>,
        seed: Option<u64>,
    ) -> Result<Self, ReportError> {
        let report =
            Report::parse(report).ok_or_else(|| ReportError::UnknownReport(report.into()))?;
        let day = |s: &str| Day::parse(s).ok_or_else(|| ReportError::BadDate(s.into()));
        let (from, to) = (day(from)?, day(to)?);
        if to < from {
            return Err(ReportError::Backwards);
        }
        if from.days_through(to) > MAX_DAYS {
            return Err(ReportError::TooLong);
        }
        let site = site.filter(|s| !s.is_empty());
        if let Some(s) = site
            && !valid_site(s)
        {
            return Err(ReportError::BadSite(s.into()));
        }
        if min_visitors < 2 {
            return Err(ReportError::MinVisitorsTooLow);
        }
        let privacy = match epsilon {
            None => None,
            Some(e) if e > 0.0 && e <= 10.0 => Some(Laplace::new(e, seed)),
            Some(_) => return Err(ReportError::BadEpsilon),
        };
        Ok(Self {
            report,
            from,
            to,
            site: site.map(str::to_owned),
            min_visitors,
            privacy,
        })
    }
}

/// The collector's rule for `site` (letters, digits and `.-_:`, 1 to 128).
pub fn valid_site(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

/// One grouped row as the rollups give it, before anonymisation.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct Aggregate {
    site: String,
    a: String,
    b: String,
    c: String,
    hits: u64,
    visitors: u64,
    visitor_days: u64,
    visits: u64,
    bounces: u64,
    visit_ms: u64,
    engaged_ms: u64,
    engaged_views: u64,
}

/// A finished export.
pub struct Export {
    pub csv: Vec<u8>,
    /// Rows written (the header not counted).
    pub rows: u64,
    /// Rows left out for standing for fewer than K visitors.
    pub suppressed: u64,
}

/// Runs the report and writes it as CSV.
pub async fn export(client: &Client, req: &mut Request) -> Result<Export, ReportError> {
    let rows = fetch(client, req).await?;
    // RFC 4180 ends records with CRLF.
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    out.write_record(header(req))?;
    let (mut written, mut suppressed) = (0, 0);
    let days = req.from.days_through(req.to) as f64;
    for row in rows {
        if row.visitors < u64::from(req.min_visitors) {
            suppressed += 1;
            continue;
        }
        let mut cells: Vec<String> = Vec::new();
        if req.report != Report::Email {
            cells.push(spreadsheet_safe(&row.site));
        }
        let (_, keys) = req.report.shape();
        for (value, (name, _)) in [&row.a, &row.b, &row.c].into_iter().zip(keys) {
            if !name.is_empty() {
                cells.push(spreadsheet_safe(&key_cell(req.report, value)));
            }
        }
        match &mut req.privacy {
            Some(noise) => {
                // A visitor is in a row's distinct count once (sensitivity 1), and in its
                // visitor-days at most once per day of the range.
                cells.push(noise.count(row.visitors, 1.0).to_string());
                cells.push(noise.count(row.visitor_days, days).to_string());
            }
            None => cells.extend(metrics(req.report, &row)),
        }
        out.write_record(&cells)?;
        written += 1;
    }
    let csv = out
        .into_inner()
        .map_err(|e| ReportError::Csv(e.into_error().into()))?;
    Ok(Export {
        csv,
        rows: written,
        suppressed,
    })
}

fn header(req: &Request) -> Vec<&'static str> {
    let mut h = Vec::new();
    if req.report != Report::Email {
        h.push("site");
    }
    h.extend(
        req.report
            .shape()
            .1
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !n.is_empty()),
    );
    let metrics: &[&str] = match (req.report, req.privacy.is_some()) {
        (Report::Email, true) => &["unique_opens", "opener_days"],
        (_, true) => &["visitors", "visitor_days"],
        (Report::Email, false) => &["opens", "unique_opens"],
        (Report::Pages, false) => &[
            "pageviews",
            "visitors",
            "entries",
            "bounce_rate",
            "avg_time_on_page_s",
        ],
        (_, false) => &[
            "pageviews",
            "visitors",
            "visits",
            "bounce_rate",
            "avg_visit_duration_s",
        ],
    };
    h.extend_from_slice(metrics);
    h
}

fn metrics(report: Report, row: &Aggregate) -> Vec<String> {
    let ratio = |num: u64, den: u64, scale: f64, places: usize| {
        if den == 0 {
            String::new()
        } else {
            format!("{:.places$}", num as f64 / den as f64 / scale)
        }
    };
    match report {
        Report::Email => vec![row.hits.to_string(), row.visitors.to_string()],
        Report::Pages => vec![
            row.hits.to_string(),
            row.visitors.to_string(),
            row.visits.to_string(),
            ratio(row.bounces, row.visits, 1.0, 4),
            ratio(row.engaged_ms, row.engaged_views, 1000.0, 1),
        ],
        _ => vec![
            row.hits.to_string(),
            row.visitors.to_string(),
            row.visits.to_string(),
            ratio(row.bounces, row.visits, 1.0, 4),
            ratio(row.visit_ms, row.visits, 1000.0, 1),
        ],
    }
}

/// A key as a cell: paths lose any query string or fragment (the collector stores none; this is
/// the second lock), empty values read `(none)`.
fn key_cell(report: Report, value: &str) -> String {
    let value = match report {
        Report::Pages => value.split(['?', '#']).next().unwrap_or_default(),
        _ => value,
    };
    if value.is_empty() {
        "(none)".into()
    } else {
        value.into()
    }
}

/// A text cell a spreadsheet will not run: one starting with `=`, `+`, `-`, `@`, tab or CR
/// gets a leading `'` (the OWASP advice for CSV injection).
pub fn spreadsheet_safe(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

async fn fetch(client: &Client, req: &Request) -> Result<Vec<Aggregate>, ClickHouseError> {
    let (dimensions, [(_, a), (_, b), (_, c)]) = req.report.shape();
    let (from, to) = (req.from, req.to);
    let site = match (&req.site, req.report) {
        (_, Report::Email) => "site = ''",
        (Some(_), _) => "site = ?",
        (None, _) => "true",
    };
    let keys = format!("site, {a} AS a, {b} AS b, {c} AS c");
    let group = "site, a, b, c";
    let metrics = "hits, visitors, visitor_days, visits, bounces, visit_ms, engaged_ms, \
                   engaged_views";
    let whole_month = req.report != Report::Daily
        && from == from.month_start()
        && to == from.month_end()
        && rollup::month_closed(from)
        && rollup::month_ready(client, from).await?;
    let (source, binds) = if whole_month {
        let filter = format!("dimension IN ({dimensions}) AND month = toDate('{from}') AND {site}");
        (
            format!("SELECT {keys}, {metrics} FROM traffic_monthly WHERE {filter}"),
            1,
        )
    } else {
        let filter = format!(
            "dimension IN ({dimensions}) AND day BETWEEN toDate('{from}') AND toDate('{to}') \
             AND {site}"
        );
        // Visitor-days (for noise) need each day's distinct count, a level more; without noise
        // the states merge once.
        let traffic = if req.privacy.is_some() {
            rollup::traffic_select(&keys, group, &filter)
        } else {
            format!(
                "SELECT {keys}, sum(hits) AS hits, uniqExactMerge(visitors) AS visitors,
                        toUInt64(0) AS visitor_days
                 FROM traffic_daily WHERE {filter} GROUP BY {group}"
            )
        };
        let source = format!(
            "SELECT {group}, {metrics}
             FROM ({traffic}) AS t
             LEFT JOIN (
                 SELECT {keys}, sum(visits) AS visits, sum(bounces) AS bounces,
                        sum(visit_ms) AS visit_ms, sum(engaged_ms) AS engaged_ms,
                        sum(engaged_views) AS engaged_views
                 FROM sessions_daily WHERE {filter} GROUP BY {group}) AS s USING ({group})"
        );
        (source, 2)
    };
    // Under noise, rows go in key order: an order by exact counts would tell them.
    let order = if req.report == Report::Daily || req.privacy.is_some() {
        "a, b, c"
    } else {
        "visitors DESC, hits DESC, a, b, c"
    };
    let sql = format!(
        "SELECT {group}, {metrics} FROM ({source}) ORDER BY site, {order}
         SETTINGS join_use_nulls = 0"
    );
    let mut query = client.query(&sql);
    if let (Some(s), false) = (&req.site, req.report == Report::Email) {
        for _ in 0..binds {
            query = query.bind(s);
        }
    }
    query
        .fetch_all()
        .await
        .map_err(ch(format!("read the {} report", req.report.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(bad), format!("'{bad}"));
        }
        assert_eq!(spreadsheet_safe("/pricing"), "/pricing");
        assert_eq!(spreadsheet_safe(""), "");
    }

    #[test]
    fn paths_lose_query_and_fragment() {
        assert_eq!(key_cell(Report::Pages, "/a?email=x@y"), "/a");
        assert_eq!(key_cell(Report::Pages, "/a#frag"), "/a");
        assert_eq!(key_cell(Report::Referrers, ""), "(none)");
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        let p = |r, f, t, s, k, e| Request::parse(r, f, t, s, k, e, None).map(|_| ());
        assert!(
            p(
                "daily",
                "2026-01-01",
                "2026-01-31",
                Some("s"),
                10,
                Some(1.0)
            )
            .is_ok()
        );
        assert!(matches!(
            p("nope", "2026-01-01", "2026-01-01", None, 10, None),
            Err(ReportError::UnknownReport(_))
        ));
        assert!(matches!(
            p("daily", "2026-01-32", "2026-01-01", None, 10, None),
            Err(ReportError::BadDate(_))
        ));
        assert!(matches!(
            p("daily", "2026-02-01", "2026-01-01", None, 10, None),
            Err(ReportError::Backwards)
        ));
        assert!(matches!(
            p("daily", "2020-01-01", "2026-01-01", None, 10, None),
            Err(ReportError::TooLong)
        ));
        assert!(matches!(
            p("daily", "2026-01-01", "2026-01-01", Some("a'b"), 10, None),
            Err(ReportError::BadSite(_))
        ));
        assert!(matches!(
            p("daily", "2026-01-01", "2026-01-01", None, 1, None),
            Err(ReportError::MinVisitorsTooLow)
        ));
        assert!(matches!(
            p("daily", "2026-01-01", "2026-01-01", None, 10, Some(0.0)),
            Err(ReportError::BadEpsilon)
        ));
    }
}
