//! What a visit is and how long a page was looked at: one SQL text for each rule.
//!
//! The aggregator's `sessions_daily` rollup is computed from exactly these queries, and the
//! tests run the same queries on events laid out by hand, so what is tested is what the reports
//! use. The files in `store/sql/` say the rules in full; in short: a visit ends after 30
//! minutes without activity and belongs to the day it starts on; time on page is the engaged
//! time the tracker reported, else the gap to the next page view of the same visit, else
//! unknown (left out of averages, never capped to a guess).

use std::fmt::Display;

/// A visit ends after this long without activity of the visitor on the site.
pub const VISIT_GAP_MS: u64 = 30 * 60 * 1000;

const ACTIVITY: &str = include_str!("../sql/activity.sql");
const VISITS: &str = include_str!("../sql/visits.sql");
const TIME_ON_PAGE: &str = include_str!("../sql/time_on_page.sql");
const SESSIONS_DAILY: &str = include_str!("../sql/sessions_daily.sql");

/// `sql` for the days `[from, to]` (anything that prints as `YYYY-MM-DD`), with the
/// activity it reads.
fn render(sql: &str, from: &dyn Display, to: &dyn Display) -> String {
    let days = |text: &str| {
        text.replace("{gap_ms}", &VISIT_GAP_MS.to_string())
            .replace("{from}", &from.to_string())
            .replace("{to}", &to.to_string())
    };
    days(sql).replace("{activity}", &days(ACTIVITY))
}

/// Every site's activity of the days `[from, to]` (with a day of margin on both sides), each
/// row numbered with its `visit` (per site and visitor): `site, visitor_id, ts, kind,
/// pageview_id, path, event_name, ...`.
pub fn activity(from: impl Display, to: impl Display) -> String {
    render("{activity}", &from, &to)
}

/// One row per visit started on the days `[from, to]`: `site, visitor_id, visit, day, started,
/// ended, duration_ms, pageviews, bounce` and the entry page view's dimensions.
pub fn visits(from: impl Display, to: impl Display) -> String {
    render(VISITS, &from, &to)
}

/// One row per page view of the days `[from, to]`: `site, day, path, pageview_id, visitor_id,
/// ts, time_on_page_ms` (NULL when unknown).
pub fn time_on_page(from: impl Display, to: impl Display) -> String {
    render(TIME_ON_PAGE, &from, &to)
}

/// The columns [`sessions_daily`] gives, in its order: for `INSERT INTO sessions_daily (...)`.
pub const SESSIONS_DAILY_COLUMNS: &str = "site, day, dimension, k1, k2, k3, visits, \
     visit_visitors, bounces, visit_ms, engaged_ms, engaged_views, timed_visitors, exits, \
     exit_visitors, scroll_sum, scroll_views, scroll_visitors";

/// The `sessions_daily` rows of the days `[from, to]`, in the order of [`SESSIONS_DAILY_COLUMNS`],
/// ids hashed with `member_hash` (the table's [`crate::rollup::member_hash`]).
pub fn sessions_daily(from: impl Display, to: impl Display, member_hash: &str) -> String {
    render(SESSIONS_DAILY, &from, &to)
        .replace("{member_hash}", member_hash)
        .replace("{visits}", &visits(&from, &to))
        .replace("{time_on_page}", &time_on_page(&from, &to))
}
