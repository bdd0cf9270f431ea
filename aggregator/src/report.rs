//! Reports: anonymous aggregates read from the rollups, made safe, written as CSV.
//!
//! The only way data leaves Footfall. Every report is a set of rows keyed by site and one
//! dimension, and every row passes one function, [`Rules::publish`], whatever the report or
//! the way out (command line, API, dashboard):
//!
//! - it stands for at least K distinct visitors (exact count, `uniqExact`; for `email`, distinct
//!   recipients) from at least `--min-networks` distinct networks, else it is left out; a number
//!   computed from a subset of its visitors (visits, exits, rates, averages) is withheld unless
//!   that subset holds K visitors too. No total or "other" row is ever written, so a left-out
//!   row cannot be recomputed from the rest of the same report;
//! - with an epsilon, the decision and the counts are noisy ([`crate::noise`]: discrete
//!   Laplace, fixed per actor, report, range and row), only counts whose per-visitor
//!   contribution is bounded are written, and the export is paid for from the actor's privacy
//!   budget ([`crate::budget`]);
//! - its cells hold no identifier: paths without query string or fragment, referrer hosts,
//!   country and device names, UTM values and campaign names, made safe for spreadsheets
//!   ([`crate::spreadsheet`]).
//!
//! Every export is audited before it is handed out ([`crate::audit`]).

use clickhouse::Client;
use serde::Deserialize;

use crate::budget::{Budget, Exhausted};
use crate::day::Day;
use crate::funnel::{self, FunnelError, Step};
use crate::goals;
use crate::noise::{Epsilon, Noise, NoiseKey, NoiseKeyError};
use crate::spreadsheet::{Csv, neutralise};
use crate::{ClickHouseError, audit, ch, rollup};

/// The default for `--min-visitors`.
pub const DEFAULT_MIN_VISITORS: u32 = 10;
/// Longest range one export covers.
pub const MAX_DAYS: i64 = 400;
/// Longest range of the `hourly` report, which reads raw events.
pub const MAX_HOURLY_DAYS: i64 = 7;
/// What `current` calls current: the last this many minutes.
pub const CURRENT_MINUTES: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Sites,
    Daily,
    Hourly,
    Current,
    Pages,
    Referrers,
    Countries,
    Devices,
    Campaigns,
    Email,
    Events,
    Properties,
    Outbound,
    Downloads,
    Goals,
    Funnel,
    Exits,
    Scroll,
}

/// The names the tracker gives its automatic events.
const OUTBOUND_EVENT: &str = "Outbound Link: Click";
const DOWNLOAD_EVENT: &str = "File Download";

impl Report {
    pub const ALL: [Report; 18] = [
        Report::Sites,
        Report::Daily,
        Report::Hourly,
        Report::Current,
        Report::Pages,
        Report::Referrers,
        Report::Countries,
        Report::Devices,
        Report::Campaigns,
        Report::Email,
        Report::Events,
        Report::Properties,
        Report::Outbound,
        Report::Downloads,
        Report::Goals,
        Report::Funnel,
        Report::Exits,
        Report::Scroll,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Report::Sites => "sites",
            Report::Daily => "daily",
            Report::Hourly => "hourly",
            Report::Current => "current",
            Report::Pages => "pages",
            Report::Referrers => "referrers",
            Report::Countries => "countries",
            Report::Devices => "devices",
            Report::Campaigns => "campaigns",
            Report::Email => "email",
            Report::Events => "events",
            Report::Properties => "properties",
            Report::Outbound => "outbound",
            Report::Downloads => "downloads",
            Report::Goals => "goals",
            Report::Funnel => "funnel",
            Report::Exits => "exits",
            Report::Scroll => "scroll",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What it tells, in a few words (for listings and the dashboard).
    pub fn title(self) -> &'static str {
        match self {
            Report::Sites => "Sites",
            Report::Daily => "Days",
            Report::Hourly => "Hours",
            Report::Current => "Current visitors (last 30 minutes)",
            Report::Pages => "Pages",
            Report::Referrers => "Referrers",
            Report::Countries => "Countries",
            Report::Devices => "Devices, browsers, operating systems",
            Report::Campaigns => "UTM campaigns",
            Report::Email => "Email campaigns",
            Report::Events => "Custom events",
            Report::Properties => "Event properties",
            Report::Outbound => "Outbound links",
            Report::Downloads => "Downloads",
            Report::Goals => "Goals",
            Report::Funnel => "Funnel",
            Report::Exits => "Exit pages",
            Report::Scroll => "Scroll depth",
        }
    }

    /// Whether it reads raw events instead of the rollups: the last minutes, or hours, which
    /// the daily rollups cannot tell.
    fn reads_events(self) -> bool {
        matches!(self, Report::Hourly | Report::Current)
    }

    /// The rollup rows it reads (an SQL condition over `dimension`, `k1..k3`) and the key
    /// columns it groups by (as SQL over `dimension`, `day`, `k1..k3`), with their CSV names.
    fn shape(self) -> (String, [(&'static str, &'static str); 3]) {
        const NONE: (&str, &str) = ("", "''");
        let dimension = |d: &str| format!("dimension = '{d}'");
        let link =
            |event: &str| format!("dimension = 'event_prop' AND k1 = '{event}' AND k2 = 'url'");
        match self {
            Report::Sites | Report::Current => (dimension("all"), [NONE, NONE, NONE]),
            Report::Hourly => (dimension("all"), [("hour", "hour"), NONE, NONE]),
            Report::Daily => (dimension("all"), [("date", "toString(day)"), NONE, NONE]),
            Report::Pages | Report::Exits | Report::Scroll => {
                (dimension("page"), [("path", "k1"), NONE, NONE])
            }
            Report::Referrers => (dimension("referrer"), [("referrer", "k1"), NONE, NONE]),
            Report::Countries => (dimension("country"), [("country", "k1"), NONE, NONE]),
            Report::Devices => (
                "dimension IN ('device', 'browser', 'os')".into(),
                [("dimension", "toString(dimension)"), ("value", "k1"), NONE],
            ),
            Report::Campaigns => (
                dimension("campaign"),
                [
                    ("utm_source", "k1"),
                    ("utm_medium", "k2"),
                    ("utm_campaign", "k3"),
                ],
            ),
            Report::Email => (dimension("email"), [("campaign", "k1"), NONE, NONE]),
            Report::Events => (dimension("event"), [("event", "k1"), NONE, NONE]),
            Report::Properties => (
                dimension("event_prop"),
                [("event", "k1"), ("property", "k2"), ("value", "k3")],
            ),
            Report::Outbound => (link(OUTBOUND_EVENT), [("url", "k3"), NONE, NONE]),
            Report::Downloads => (link(DOWNLOAD_EVENT), [("url", "k3"), NONE, NONE]),
            // Not read through `fetch` (see `goals` and `funnel`); keys only.
            Report::Goals => ("false".into(), [("goal", ""), ("definition", ""), NONE]),
            Report::Funnel => ("false".into(), [("step", ""), ("definition", ""), NONE]),
        }
    }
}

/// How every row is anonymised: one set of rules for every report and every way out (CLI,
/// CSV and JSON API, dashboard).
#[derive(Debug, Clone)]
pub struct Rules {
    /// K: a row stands for at least this many distinct visitors.
    pub min_visitors: u32,
    /// A row's visitors come from at least this many distinct networks (/24 or /48), so that
    /// visitors minted by one machine cannot unlock it.
    pub min_networks: u32,
    /// With differential privacy: the mechanism, and the budget it spends per actor.
    pub noise: Option<Noise>,
    pub budget: Budget,
}

/// Counts noised per row (visitors, visitor-days, and the networks that decide publication):
/// each gets a third of ε, so that one row costs ε.
const NOISY_PER_ROW: u64 = 3;

/// What the rules know of one row: exact counts, never published as such under noise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Distinct visitors; over a range of several calendar months a visitor counts once in
    /// each month (the rollups' hashes are keyed per month, see [`crate::rollup`]).
    pub visitors: u64,
    /// The most distinct visitors of any one month of the range: at least this many people
    /// stand behind the row. K is tested on it.
    pub people: u64,
    /// Distinct networks of those visitors, the most of any one month; `None` where visitors
    /// cannot be made up (email recipients are named by signed tokens), so the rule is moot.
    pub networks: Option<u64>,
    /// Sum over the range's days of each day's distinct visitors.
    pub visitor_days: u64,
}

/// The range a row covers, which bounds what one visitor can add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub days: u64,
    pub months: u64,
}

impl Span {
    pub fn of(from: Day, to: Day) -> Self {
        let mut months = 0;
        let mut month = from.month_start();
        while month <= to {
            months += 1;
            month = month.month_end().plus(1);
        }
        Self {
            days: from.days_through(to) as u64,
            months,
        }
    }
}

/// A row that passed [`Rules::publish`], with the counts to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Without noise: the exact counts are printed.
    Exact,
    /// With noise: these replace the counts.
    Noisy { visitors: u64, visitor_days: u64 },
}

impl Rules {
    /// The rules from the command line's privacy options.
    pub fn new(
        min_visitors: u32,
        min_networks: u32,
        epsilon: Option<f64>,
        key: impl FnOnce() -> Result<NoiseKey, NoiseKeyError>,
        budget: Budget,
    ) -> Result<Self, ReportError> {
        if min_visitors < 2 {
            return Err(ReportError::MinVisitorsTooLow);
        }
        if min_networks < 2 {
            return Err(ReportError::MinNetworksTooLow);
        }
        let noise = match epsilon {
            None => None,
            Some(e) => {
                let e = Epsilon::from_f64(e).ok_or(ReportError::BadEpsilon)?;
                Some(Noise::new(key()?, e))
            }
        };
        Ok(Self {
            min_visitors,
            min_networks,
            noise,
            budget,
        })
    }

    /// Whether a number computed from `people` distinct visitors (an average, a rate, a count
    /// of visits) may be shown: only if they are at least K, like a row.
    pub fn shows(&self, people: u64) -> bool {
        people >= u64::from(self.min_visitors)
    }

    /// Whether a row with these exact counts may be published, and what it shows. The one test
    /// every row of every report passes. `context` names the row (who asks, the report, the
    /// range, the row's keys), so its noise is the same whenever the same row is asked for.
    ///
    /// Without noise: at least K distinct visitors from at least `min_networks` networks. With
    /// noise the exact test still holds, so that no row ever stands for fewer; and the decision
    /// is also taken on noisy counts, so that whether a row appears does not tell its exact
    /// count: the noisy visitors and the noisy networks must each pass their threshold plus a
    /// margin that a count below it passes with probability at most [`crate::noise::DELTA`].
    pub fn publish(&self, counts: &Counts, span: Span, context: &[&str]) -> Option<Published> {
        let k = u64::from(self.min_visitors);
        let kn = u64::from(self.min_networks);
        if counts.people < k || counts.networks.is_some_and(|n| n < kn) {
            return None;
        }
        let Some(noise) = &self.noise else {
            return Some(Published::Exact);
        };
        let column = |name: &'static str| {
            let mut c = context.to_vec();
            c.push(name);
            c
        };
        // A visitor is in a row's distinct count once a month, in its visitor-days at most once
        // a day, and adds the networks it came from once a month each.
        let months = NOISY_PER_ROW * span.months;
        let noisy_visitors = noise.count(counts.visitors, months, &column("visitors"));
        if noisy_visitors < (k + noise.margin(months)) as i64 {
            return None;
        }
        if let Some(networks) = counts.networks {
            let noisy = noise.count(networks, months, &column("networks"));
            if noisy < (kn + noise.margin(months)) as i64 {
                return None;
            }
        }
        let days = NOISY_PER_ROW * span.days;
        let noisy_days = noise.count(counts.visitor_days, days, &column("visitor_days"));
        Some(Published::Noisy {
            visitors: noisy_visitors.max(0) as u64,
            visitor_days: noisy_days.max(0) as u64,
        })
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Request {
    pub report: Report,
    pub from: Day,
    pub to: Day,
    pub site: Option<String>,
    pub rules: Rules,
    /// The `funnel` report's steps; without them, the site's stored funnel.
    pub steps: Option<Vec<Step>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("unknown report '{0}'; reports are {names}", names = Report::ALL.map(Report::name).join(", "))]
    UnknownReport(String),
    #[error("'{0}' is not a date; give YYYY-MM-DD")]
    BadDate(String),
    #[error("the range ends before it starts; give from <= to")]
    Backwards,
    #[error("the range is longer than {MAX_DAYS} days; export it in parts")]
    TooLong,
    #[error("the hourly report covers at most {MAX_HOURLY_DAYS} days")]
    TooManyHours,
    #[error("'{0}' is not a site name: 1-128 letters, digits and .-_:")]
    BadSite(String),
    #[error("the minimum number of visitors per row must be at least 2")]
    MinVisitorsTooLow,
    #[error("the minimum number of networks per row must be at least 2")]
    MinNetworksTooLow,
    #[error("epsilon must be a multiple of 0.001 above 0 and at most 10")]
    BadEpsilon,
    #[error(transparent)]
    NoiseKey(#[from] NoiseKeyError),
    #[error(transparent)]
    Budget(#[from] Exhausted),
    #[error(transparent)]
    Funnel(#[from] FunnelError),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

impl Request {
    /// A request from the textual parameters of the command line or the HTTP API, checked.
    pub fn parse(
        report: &str,
        from: &str,
        to: &str,
        site: Option<&str>,
        rules: &Rules,
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
        if report == Report::Hourly && from.days_through(to) > MAX_HOURLY_DAYS {
            return Err(ReportError::TooManyHours);
        }
        let site = site.filter(|s| !s.is_empty());
        if let Some(s) = site
            && !valid_site(s)
        {
            return Err(ReportError::BadSite(s.into()));
        }
        Ok(Self {
            report,
            from,
            to,
            site: site.map(str::to_owned),
            rules: rules.clone(),
            steps: None,
        })
    }
}

/// The collector's rule for `site` (letters, digits and `.-_:`, 1 to 128).
pub fn valid_site(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

/// The names of the sites with page views in the last [`MAX_DAYS`] days: for the dashboard's
/// site picker. Names only, no number: a site is the operator's own label, not a visitor's.
pub async fn site_names(client: &Client) -> Result<Vec<String>, ClickHouseError> {
    client
        .query(&format!(
            "SELECT DISTINCT site FROM traffic_keyed_daily
             WHERE dimension = 'all' AND site != '' AND day >= toDate('{}') ORDER BY site",
            Day::today().plus(1 - MAX_DAYS)
        ))
        .fetch_all()
        .await
        .map_err(ch("list the sites"))
}

/// One grouped row as the rollups give it, before anonymisation: the keys, then
/// [`rollup::METRICS`] in their order, then `site_visitors`.
#[derive(Debug, Default, clickhouse::Row, Deserialize)]
struct Aggregate {
    site: String,
    a: String,
    b: String,
    c: String,
    hits: u64,
    visitors: u64,
    /// The most distinct visitors, and networks, of any one calendar month of the range.
    people: u64,
    networks: u64,
    visitor_days: u64,
    visits: u64,
    /// The most distinct visitors of any one month behind the visits.
    visit_people: u64,
    bounces: u64,
    visit_ms: u64,
    engaged_ms: u64,
    engaged_views: u64,
    /// Likewise behind the timed page views.
    timed_people: u64,
    /// Visits that ended on the page, and the visitors behind them.
    exits: u64,
    exit_people: u64,
    /// Scroll depths (percent) of the page's page views that reported one, how many, and the
    /// visitors behind them.
    scroll_sum: u64,
    scroll_views: u64,
    scroll_people: u64,
    /// The site's distinct visitors over the range (for conversion rates; 0 where unused); in
    /// `funnel`, the visitors of the step before.
    site_visitors: u64,
}

/// One cell of a report: text (a key), a count, a ratio written with a fixed number of
/// decimals (`None`: nothing to divide by, an empty cell), or a number withheld because fewer
/// than K visitors stand behind it (empty too).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u64),
    Ratio(Option<f64>, usize),
    Withheld,
}

impl Cell {
    /// The cell as the CSV writes it (before spreadsheet safety).
    pub fn text(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Ratio(None, _) | Cell::Withheld => String::new(),
            Cell::Ratio(Some(x), places) => format!("{x:.places$}"),
        }
    }

    /// The cell as JSON: the number the CSV shows, as a number.
    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Text(t) => t.as_str().into(),
            Cell::Count(n) => (*n).into(),
            Cell::Ratio(None, _) | Cell::Withheld => serde_json::Value::Null,
            Cell::Ratio(Some(_), _) => self
                .text()
                .parse::<f64>()
                .map_or(serde_json::Value::Null, Into::into),
        }
    }
}

/// A finished export: what leaves, already anonymised. [`Export::csv`] and [`Export::json`] are
/// two spellings of the same cells, so the API, the dashboard and `export` show one number.
#[derive(Debug, Clone)]
pub struct Export {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows left out for standing for fewer than K visitors.
    pub suppressed: u64,
}

impl Export {
    /// The CSV ([`crate::spreadsheet`]): text cells neutralised for spreadsheets.
    pub fn csv(&self) -> Vec<u8> {
        let mut out = Csv::default();
        out.record(&self.columns);
        for row in &self.rows {
            out.record(row.iter().map(|c| match c {
                Cell::Text(t) => neutralise(t),
                other => other.text(),
            }));
        }
        out.into_bytes()
    }

    /// The rows as JSON objects keyed by column, and whether any row was withheld (never how
    /// many, nor which).
    pub fn json(&self, req: &Request) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|row| {
                let fields = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| ((*c).to_owned(), v.json()));
                serde_json::Value::Object(fields.collect())
            })
            .collect();
        serde_json::json!({
            "report": req.report.name(),
            "from": req.from.to_string(),
            "to": req.to.to_string(),
            "site": req.site,
            "min_visitors": req.rules.min_visitors,
            "min_networks": req.rules.min_networks,
            "epsilon": req.rules.noise.as_ref().map(|n| n.epsilon().as_f64()),
            "columns": self.columns,
            "rows": rows,
            "withheld": self.suppressed > 0,
        })
    }

    /// The column's index.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }
}

/// One noisy export at a time: the budget is read, charged and recorded as one step.
static BUDGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the report for `actor` (a token's name, or the operator at the command line), records
/// it in the audit and returns it as CSV. With noise, the export is first charged to the
/// actor's privacy budget, and refused ([`ReportError::Budget`]) past it. An export that cannot
/// be audited is not handed out.
pub async fn export(client: &Client, actor: &str, req: &Request) -> Result<Export, ReportError> {
    let _one_at_a_time = match &req.rules.noise {
        Some(_) => Some(BUDGET.lock().await),
        None => None,
    };
    let budget_left = match &req.rules.noise {
        Some(noise) => {
            let now = audit::now_secs();
            let budget = req.rules.budget;
            let spent = audit::spent(client, actor, budget.period_start(now)).await?;
            match budget.charge(spent, noise.epsilon(), now) {
                Ok(left) => Some(left),
                Err(refused) => {
                    let entry = audit::Entry {
                        report: req.report.name().into(),
                        ..audit::Entry::refused(actor, 429, &refused.to_string())
                    };
                    audit::write(client, &entry).await?;
                    return Err(refused.into());
                }
            }
        }
        None => None,
    };
    let export = write(client, actor, req).await?;
    audit::record(client, actor, req, export.rows.len() as u64, budget_left).await?;
    Ok(export)
}

async fn write(client: &Client, actor: &str, req: &Request) -> Result<Export, ReportError> {
    let rows = match req.report {
        Report::Goals => goal_rows(client, req).await?,
        Report::Funnel => funnel_rows(client, req).await?,
        _ => fetch(client, req).await?,
    };
    let mut export = Export {
        columns: header(req),
        rows: Vec::new(),
        suppressed: 0,
    };
    let span = Span::of(req.from, req.to);
    let (from, to) = (req.from.to_string(), req.to.to_string());
    for row in rows {
        let context = [
            actor,
            req.report.name(),
            &from,
            &to,
            req.site.as_deref().unwrap_or(""),
            &row.site,
            &row.a,
            &row.b,
            &row.c,
        ];
        let counts = Counts {
            visitors: row.visitors,
            people: row.people,
            networks: (req.report != Report::Email).then_some(row.networks),
            visitor_days: row.visitor_days,
        };
        let Some(published) = req.rules.publish(&counts, span, &context) else {
            export.suppressed += 1;
            continue;
        };
        let mut cells: Vec<Cell> = Vec::new();
        if req.report != Report::Email {
            cells.push(Cell::Text(row.site.clone()));
        }
        let (_, keys) = req.report.shape();
        for (value, (name, _)) in [&row.a, &row.b, &row.c].into_iter().zip(keys) {
            if !name.is_empty() {
                cells.push(Cell::Text(key_cell(req.report, value)));
            }
        }
        match published {
            Published::Noisy {
                visitors,
                visitor_days,
            } => {
                cells.push(Cell::Count(visitors));
                cells.push(Cell::Count(visitor_days));
            }
            Published::Exact => cells.extend(metrics(req.report, &row, &req.rules)),
        }
        export.rows.push(cells);
    }
    Ok(export)
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
    let metrics: &[&str] = match (req.report, req.rules.noise.is_some()) {
        (Report::Email, true) => &["unique_opens", "opener_days"],
        (_, true) => &["visitors", "visitor_days"],
        (Report::Email, false) => &["opens", "unique_opens"],
        (Report::Events, false) => &["events", "visitors", "conversion_rate"],
        (Report::Properties, false) => &["events", "visitors"],
        (Report::Outbound, false) => &["clicks", "visitors"],
        (Report::Downloads, false) => &["downloads", "visitors"],
        (Report::Goals, false) => &["conversions", "visitors", "conversion_rate"],
        (Report::Funnel, false) => &["visitors", "drop_off", "drop_off_rate"],
        (Report::Exits, false) => &["pageviews", "visitors", "exits", "exit_rate"],
        (Report::Scroll, false) => &["pageviews", "visitors", "avg_scroll_depth"],
        (Report::Current, false) => &["pageviews", "visitors"],
        (Report::Hourly, false) => &["pageviews", "visitors", "visits"],
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

/// The exact metric cells of a row: each number that is not a plain count of the row's own
/// visitors (visits, exits, rates, averages) is empty unless it stands for K visitors itself.
fn metrics(report: Report, row: &Aggregate, rules: &Rules) -> Vec<Cell> {
    let ratio = |num: u64, den: u64, scale: f64, places: usize| {
        Cell::Ratio((den > 0).then(|| num as f64 / den as f64 / scale), places)
    };
    let count = Cell::Count;
    // No visits (exits, timed or scrolled page views) describe no one.
    let visits = row.visits == 0 || rules.shows(row.visit_people);
    let exits = row.exits == 0 || rules.shows(row.exit_people);
    let shown = |cell: Cell, ok: bool| if ok { cell } else { Cell::Withheld };
    match report {
        Report::Email
        | Report::Current
        | Report::Properties
        | Report::Outbound
        | Report::Downloads => {
            vec![count(row.hits), count(row.visitors)]
        }
        Report::Exits => vec![
            count(row.hits),
            count(row.visitors),
            shown(count(row.exits), exits),
            shown(ratio(row.exits, row.hits, 1.0, 4), exits),
        ],
        Report::Scroll => vec![
            count(row.hits),
            count(row.visitors),
            shown(
                ratio(row.scroll_sum, row.scroll_views, 1.0, 1),
                rules.shows(row.scroll_people),
            ),
        ],
        Report::Goals => vec![
            count(row.hits),
            count(row.visitors),
            ratio(row.visitors, row.site_visitors, 1.0, 4),
        ],
        Report::Funnel => {
            let dropped = row.site_visitors.saturating_sub(row.visitors);
            vec![
                count(row.visitors),
                count(dropped),
                ratio(dropped, row.site_visitors, 1.0, 4),
            ]
        }
        Report::Events => vec![
            count(row.hits),
            count(row.visitors),
            ratio(row.visitors, row.site_visitors, 1.0, 4),
        ],
        Report::Hourly => vec![
            count(row.hits),
            count(row.visitors),
            shown(count(row.visits), visits),
        ],
        Report::Pages => vec![
            count(row.hits),
            count(row.visitors),
            shown(count(row.visits), visits),
            shown(ratio(row.bounces, row.visits, 1.0, 4), visits),
            shown(
                ratio(row.engaged_ms, row.engaged_views, 1000.0, 1),
                rules.shows(row.timed_people),
            ),
        ],
        _ => vec![
            count(row.hits),
            count(row.visitors),
            shown(count(row.visits), visits),
            shown(ratio(row.bounces, row.visits, 1.0, 4), visits),
            shown(ratio(row.visit_ms, row.visits, 1000.0, 1), visits),
        ],
    }
}

/// A key as a cell: paths lose any query string or fragment (the collector stores none; this is
/// the second lock), empty values read `(none)`.
fn key_cell(report: Report, value: &str) -> String {
    let value = match report {
        Report::Pages | Report::Exits | Report::Scroll | Report::Outbound | Report::Downloads => {
            value.split(['?', '#']).next().unwrap_or_default()
        }
        _ => value,
    };
    if value.is_empty() {
        "(none)".into()
    } else {
        value.into()
    }
}

/// The `goals` report's rows: each goal of the site (of every site, without one), by name.
async fn goal_rows(client: &Client, req: &Request) -> Result<Vec<Aggregate>, ReportError> {
    let mut rows = Vec::new();
    for goal in goals::list(client, req.site.as_deref()).await? {
        let c = goals::conversions(client, &goal, req.from, req.to).await?;
        rows.push(Aggregate {
            b: goal.definition(),
            site: goal.site,
            a: goal.name,
            hits: c.hits,
            visitors: c.visitors,
            people: c.people,
            networks: c.networks,
            visitor_days: c.visitor_days,
            site_visitors: c.site_visitors,
            ..Aggregate::default()
        });
    }
    Ok(rows)
}

/// The `funnel` report's rows, one per step in order. Steps given are stored as the site's
/// funnel; without them the stored funnel is read.
async fn funnel_rows(client: &Client, req: &Request) -> Result<Vec<Aggregate>, ReportError> {
    let site = req.site.as_deref().ok_or(FunnelError::NoSite)?;
    let steps = match &req.steps {
        Some(steps) => {
            funnel::store(client, site, steps).await?;
            steps.clone()
        }
        None => funnel::stored(client, site).await?,
    };
    let reached = funnel::reached(client, site, &steps, req.from, req.to).await?;
    let mut before = reached.first().map_or(0, |r| r.visitors);
    let mut rows = Vec::new();
    for (i, (step, r)) in steps.iter().zip(reached).enumerate() {
        rows.push(Aggregate {
            site: site.into(),
            a: (i + 1).to_string(),
            b: step.text(),
            visitors: r.visitors,
            people: r.visitors,
            networks: r.networks,
            visitor_days: r.visitor_days,
            site_visitors: before,
            ..Aggregate::default()
        });
        before = r.visitors;
    }
    Ok(rows)
}

async fn fetch(client: &Client, req: &Request) -> Result<Vec<Aggregate>, ClickHouseError> {
    if req.report.reads_events() {
        return fetch_events(client, req).await;
    }
    let (rows, [(_, a), (_, b), (_, c)]) = req.report.shape();
    let (from, to) = (req.from, req.to);
    let site = match (&req.site, req.report) {
        (_, Report::Email) => "site = ''",
        (Some(_), _) => "site = ?",
        (None, _) => "true",
    };
    let keys = format!("site, {a} AS a, {b} AS b, {c} AS c");
    let group = "site, a, b, c";
    let metrics = rollup::METRICS;
    let whole_month = req.report != Report::Daily
        && from == from.month_start()
        && to == from.month_end()
        && rollup::month_closed(from)
        && rollup::month_ready(client, from).await?;
    let (source, binds) = if whole_month {
        let filter = format!("({rows}) AND month = toDate('{from}') AND {site}");
        (
            format!("SELECT {keys}, {metrics} FROM traffic_monthly WHERE {filter}"),
            1,
        )
    } else {
        let filter =
            format!("({rows}) AND day BETWEEN toDate('{from}') AND toDate('{to}') AND {site}");
        let per_day = req.report == Report::Daily;
        (rollup::rows_select(&keys, group, &filter, per_day), 2)
    };
    // Under noise, rows go in key order: an order by exact counts would tell them.
    let order = if req.report == Report::Daily || req.rules.noise.is_some() {
        "a, b, c"
    } else {
        "visitors DESC, hits DESC, a, b, c"
    };
    // Conversion rates divide by the site's distinct visitors over the same range.
    let (totals, binds) = match (req.report, whole_month) {
        (Report::Events, true) => (
            format!(
                "LEFT JOIN (SELECT site, visitors AS site_visitors FROM traffic_monthly
                            WHERE dimension = 'all' AND month = toDate('{from}') AND {site})
                 AS totals USING (site)"
            ),
            binds + 1,
        ),
        (Report::Events, false) => (
            format!(
                "LEFT JOIN (SELECT site, uniqExactMerge(visitors) AS site_visitors FROM traffic_keyed_daily
                            WHERE dimension = 'all' AND day BETWEEN toDate('{from}') AND toDate('{to}')
                              AND {site} GROUP BY site)
                 AS totals USING (site)"
            ),
            binds + 1,
        ),
        _ => (String::new(), binds),
    };
    let site_visitors = if totals.is_empty() {
        "toUInt64(0)"
    } else {
        "site_visitors"
    };
    let sql = format!(
        "SELECT {group}, {metrics}, {site_visitors} AS site_visitors FROM ({source}) AS r {totals}
         ORDER BY site, {order}
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

/// `hourly` and `current` from raw events: page views, distinct visitors and their networks
/// (and visitor-days, for noise), and for `hourly` the visits that started with a page view in each hour, sessionised
/// as [`rollup::refresh`] does (a visitor's activity after a gap of more than
/// [`footfall_store::rules::VISIT_GAP_MS`], read from a day before the range so that a visit going on at
/// midnight is not counted again).
async fn fetch_events(client: &Client, req: &Request) -> Result<Vec<Aggregate>, ClickHouseError> {
    let gap = footfall_store::rules::VISIT_GAP_MS;
    let (range, key, lead_in) = match req.report {
        Report::Current => (
            format!("ts >= now64(3) - INTERVAL {CURRENT_MINUTES} MINUTE"),
            "''".to_owned(),
            format!(
                "ts >= now64(3) - INTERVAL {} MINUTE",
                CURRENT_MINUTES as u64 + gap / 60_000
            ),
        ),
        _ => (
            format!(
                "toDate(ts) BETWEEN toDate('{}') AND toDate('{}')",
                req.from, req.to
            ),
            "formatDateTime(toStartOfHour(ts), '%Y-%m-%dT%H:00Z')".to_owned(),
            format!(
                "toDate(ts) BETWEEN toDate('{}') AND toDate('{}')",
                req.from.plus(-1),
                req.to
            ),
        ),
    };
    let site = if req.site.is_some() {
        "site = ?"
    } else {
        "true"
    };
    let sql = format!(
        "SELECT site, {key} AS a, '' AS b, '' AS c,
                toUInt64(countIf(kind = 'pageview')) AS hits,
                toUInt64(uniqExactIf(visitor_id, kind = 'pageview')) AS visitors,
                visitors AS people,
                toUInt64(uniqExactIf(ip_prefix, kind = 'pageview' AND ip_prefix != '')) AS networks,
                toUInt64(uniqExactIf((visitor_id, toDate(ts)), kind = 'pageview')) AS visitor_days,
                toUInt64(sumIf(starts, kind = 'pageview')) AS visits,
                toUInt64(uniqExactIf(visitor_id, kind = 'pageview' AND starts = 1)) AS visit_people,
                toUInt64(0) AS bounces, toUInt64(0) AS visit_ms,
                toUInt64(0) AS engaged_ms, toUInt64(0) AS engaged_views, toUInt64(0) AS timed_people,
                toUInt64(0) AS exits, toUInt64(0) AS exit_people, toUInt64(0) AS scroll_sum,
                toUInt64(0) AS scroll_views, toUInt64(0) AS scroll_people,
                toUInt64(0) AS site_visitors
         FROM (
             SELECT site, ts, kind, visitor_id, ip_prefix,
                    if(dateDiff('millisecond',
                                lagInFrame(ts, 1, toDateTime64(0, 3, 'UTC')) OVER by_time, ts) > {gap},
                       1, 0) AS starts
             FROM events
             WHERE kind IN ('pageview', 'engagement') AND NOT is_bot AND visitor_id != ''
               AND {lead_in} AND {site}
             WINDOW by_time AS (PARTITION BY site, visitor_id ORDER BY ts
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
         WHERE {range}
         GROUP BY site, a
         ORDER BY site, a"
    );
    let mut query = client.query(&sql);
    if let Some(s) = &req.site {
        query = query.bind(s);
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
    fn paths_lose_query_and_fragment() {
        assert_eq!(key_cell(Report::Pages, "/a?email=x@y"), "/a");
        assert_eq!(key_cell(Report::Pages, "/a#frag"), "/a");
        assert_eq!(key_cell(Report::Referrers, ""), "(none)");
    }

    fn rules(k: u32, epsilon: Option<f64>) -> Result<Rules, ReportError> {
        let budget = Budget {
            limit_thousandths: 10_000,
            period: crate::budget::Period::Month,
        };
        Rules::new(k, k, epsilon, || Ok(NoiseKey::from_bytes([1; 32])), budget)
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        let r = rules(10, None).unwrap();
        let p = |rep, f, t, s| Request::parse(rep, f, t, s, &r).map(|_| ());
        assert!(p("daily", "2026-01-01", "2026-01-31", Some("s")).is_ok());
        assert!(matches!(
            p("nope", "2026-01-01", "2026-01-01", None),
            Err(ReportError::UnknownReport(_))
        ));
        assert!(matches!(
            p("daily", "2026-01-32", "2026-01-01", None),
            Err(ReportError::BadDate(_))
        ));
        assert!(matches!(
            p("daily", "2026-02-01", "2026-01-01", None),
            Err(ReportError::Backwards)
        ));
        assert!(matches!(
            p("daily", "2020-01-01", "2026-01-01", None),
            Err(ReportError::TooLong)
        ));
        assert!(matches!(
            p("daily", "2026-01-01", "2026-01-01", Some("a'b")),
            Err(ReportError::BadSite(_))
        ));
        assert!(matches!(
            rules(1, None),
            Err(ReportError::MinVisitorsTooLow)
        ));
        for bad in [0.0, 0.0001, 11.0] {
            assert!(matches!(rules(10, Some(bad)), Err(ReportError::BadEpsilon)));
        }
        assert!(rules(10, Some(0.5)).is_ok());
    }

    fn counts(visitors: u64, networks: u64) -> Counts {
        Counts {
            visitors,
            people: visitors,
            networks: Some(networks),
            visitor_days: visitors,
        }
    }

    const DAY: Span = Span { days: 1, months: 1 };

    #[test]
    fn without_noise_a_row_needs_k_visitors_from_k_networks() {
        let r = rules(10, None).unwrap();
        assert_eq!(r.publish(&counts(9, 9), DAY, &["x"]), None);
        assert_eq!(
            r.publish(&counts(10, 10), DAY, &["x"]),
            Some(Published::Exact)
        );
        // Made-up visitors from one machine: 9 or 100 of them are still one network.
        assert_eq!(r.publish(&counts(10, 2), DAY, &["x"]), None);
        assert_eq!(r.publish(&counts(101, 2), DAY, &["x"]), None);
        // Recipients are signed, not made up: no network rule.
        let email = Counts {
            networks: None,
            ..counts(10, 0)
        };
        assert_eq!(r.publish(&email, DAY, &["x"]), Some(Published::Exact));
        // Over several months, K is tested on the most people of one month.
        let spread = Counts {
            people: 6,
            ..counts(12, 12)
        };
        assert_eq!(r.publish(&spread, DAY, &["x"]), None);
        assert!(r.shows(10) && !r.shows(9));
    }

    #[test]
    fn spans_count_days_and_calendar_months() {
        let d = |s| Day::parse(s).unwrap();
        assert_eq!(
            Span::of(d("2026-01-31"), d("2026-03-01")),
            Span {
                days: 30,
                months: 3
            }
        );
        assert_eq!(Span::of(d("2026-03-02"), d("2026-03-02")), DAY);
    }

    /// Under noise, presence is decided on the noisy count: a row just at K and one just above
    /// it appear equally rarely (each with probability at most δ), a row far above appears
    /// always, and one at the threshold about half the time, with rates that differ at K+m and
    /// K+m+1 only by the noise's factor; never below K.
    #[test]
    fn under_noise_presence_follows_the_noisy_count() {
        let r = rules(10, Some(1.0)).unwrap();
        let m = r.noise.as_ref().unwrap().margin(NOISY_PER_ROW);
        let runs = 2000;
        let far = 10 + 3 * m;
        let rate = |visitors: u64, networks: u64| {
            (0..runs)
                .filter(|i| {
                    r.publish(&counts(visitors, networks), DAY, &[&i.to_string()])
                        .is_some()
                })
                .count() as f64
                / runs as f64
        };
        assert_eq!(rate(9, far), 0.0);
        assert_eq!(rate(10, far), 0.0);
        assert_eq!(rate(11, far), 0.0);
        assert_eq!(rate(far, far), 1.0);
        assert_eq!(
            rate(far, 11),
            0.0,
            "networks are thresholded with noise too"
        );
        let (at, above) = (rate(10 + m, far), rate(11 + m, far));
        assert!((0.4..0.7).contains(&at), "{at}");
        // One visitor more changes the chance by at most a factor exp(ε/3).
        assert!(
            above >= at && above <= at * (1.0f64 / 3.0).exp() + 0.05,
            "{at} {above}"
        );
        let same = |i: &str| r.publish(&counts(80, 80), Span { days: 5, months: 1 }, &[i]);
        assert_eq!(same("a"), same("a"));
    }
}
