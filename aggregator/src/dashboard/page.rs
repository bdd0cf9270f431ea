//! The dashboard's HTML (maud escapes every value it interpolates): the sign-in page, the
//! dashboard itself, and an error page.
//!
//! Tables are real `<table>`s with captions and header cells, the chart has a text summary, the
//! range controls are a plain form, focus is always visible and a skip link leads past the
//! header: it works with a keyboard, a screen reader and without JavaScript. Every number cell
//! carries the CSV's exact value in `data-value`; the text is the same number made readable.

use maud::{DOCTYPE, Markup, html};

use super::chart::{self, Series};
use super::range::PRESETS;
use super::{Loaded, View, assets};
use crate::day::Day;
use crate::report::{CURRENT_MINUTES, Cell, Export as Table, Report};

/// Rows a card shows; the CSV has them all.
const TOP_ROWS: usize = 10;

fn layout(title: &str, dev: bool, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Footfall" }
                link rel="stylesheet" href=(assets::url("style.css"));
                link rel="icon" type="image/svg+xml" href=(assets::url("icon.svg"));
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if dev {
                    div.dev-banner role="note" {
                        strong { "Development mode." }
                        " Thresholds are relaxed: rows are shown from a single visitor (K = 1). "
                        "Never run the aggregator with --dev on real data."
                    }
                }
                header.top {
                    a.brand href="/" {
                        img src=(assets::url("icon.svg")) alt="" width="24" height="24";
                        span { "Footfall" }
                    }
                    (header)
                }
                main #main { (body) }
                footer.foot { "Footfall · anonymous aggregates only" }
            }
        }
    }
}

/// The sign-in form; `error` when a token was refused.
pub fn login(dev: bool, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        dev,
        html! {},
        html! {
            section.signin aria-labelledby="signin-title" {
                h1 #signin-title { "Sign in" }
                p.muted {
                    "Use a report token. An operator makes one with "
                    code { "footfall-aggregator token create --name NAME" }
                    "."
                }
                @if let Some(e) = error {
                    p.error role="alert" #signin-error { (e) }
                }
                form method="post" action="/login" {
                    label for="token" { "Report token" }
                    input #token type="password" name="token" required autocomplete="current-password"
                        spellcheck="false" placeholder="fft_…" autofocus
                        aria-describedby=[error.map(|_| "signin-error")];
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

pub fn problem(reason: &str) -> Markup {
    layout(
        "Problem",
        false,
        html! {},
        html! {
            section.signin {
                h1 { "Something is not right" }
                p role="alert" { (reason) }
                p { a href="/" { "Back to the dashboard" } }
            }
        },
    )
}

/// `2026-03-02` → `2 Mar 2026`.
fn pretty(day: Day) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let s = day.to_string();
    let m: usize = s[5..7].parse().unwrap_or(1);
    let d: u32 = s[8..10].parse().unwrap_or(1);
    format!("{d} {} {}", MONTHS[m - 1], &s[..4])
}

fn range_text(from: Day, to: Day) -> String {
    if from == to {
        pretty(from)
    } else {
        format!("{} – {}", pretty(from), pretty(to))
    }
}

/// A link to this dashboard with some parameters changed.
fn href(view: &View, changes: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let get = |k: &str| {
        changes
            .iter()
            .find(|(c, _)| *c == k)
            .map(|(_, v)| (*v).to_owned())
    };
    if let Some(site) = get("site").or_else(|| view.site.clone()) {
        q.append_pair("site", &site);
    }
    match get("range").or_else(|| view.range.preset.map(str::to_owned)) {
        Some(preset) => {
            q.append_pair("range", &preset);
        }
        None => {
            q.append_pair("from", &view.range.from.to_string());
            q.append_pair("to", &view.range.to.to_string());
        }
    }
    if get("compare").map_or(view.compare, |c| c == "1") {
        q.append_pair("compare", "1");
    }
    format!("/?{}", q.finish())
}

fn csv_href(report: Report, view: &View) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("from", &view.range.from.to_string());
    q.append_pair("to", &view.range.to.to_string());
    if report != Report::Email
        && let Some(site) = &view.site
    {
        q.append_pair("site", site);
    }
    format!("/v1/reports/{}.csv?{}", report.name(), q.finish())
}

pub fn dashboard(view: &View) -> Markup {
    let header = html! {
        @if view.sites.len() > 1 {
            form.site-picker method="get" action="/" {
                label for="site" { "Site" }
                select #site name="site" {
                    @for s in &view.sites {
                        option value=(s) selected[Some(s) == view.site.as_ref()] { (s) }
                    }
                }
                @if let Some(p) = view.range.preset {
                    input type="hidden" name="range" value=(p);
                } @else {
                    input type="hidden" name="from" value=(view.range.from.to_string());
                    input type="hidden" name="to" value=(view.range.to.to_string());
                }
                button type="submit" { "Show" }
            }
        }
        span.who { "Signed in as " strong { (view.token.name) } }
        form.signout method="post" action="/logout" {
            button.link type="submit" { "Sign out" }
        }
    };
    let title = view.site.clone().unwrap_or_else(|| "Dashboard".into());
    let body = match &view.site {
        None => html! {
            section.empty {
                h1 { "No data yet" }
                p {
                    "No site has recorded a page view in the last 400 days. Embed the collector's "
                    "snippet in a page and visit it; it shows here within a minute."
                }
            }
        },
        Some(site) => html! {
            (controls(view))
            div.heading {
                h1 { (site) }
                p.period {
                    (range_text(view.range.from, view.range.to))
                    @if view.compare {
                        @let before = view.range.previous();
                        span.muted { " compared with " (range_text(before.from, before.to)) }
                    }
                }
            }
            (headline(view))
            (traffic(view))
            div.grid {
                @for (report, loaded) in &view.reports {
                    @if !matches!(report, Report::Sites | Report::Daily | Report::Hourly | Report::Current) {
                        (cards(view, *report, loaded))
                    }
                }
            }
            (privacy_note(view))
        },
    };
    layout(&title, view.dev, header, body)
}

fn controls(view: &View) -> Markup {
    html! {
        nav.ranges aria-label="Date range" {
            ul {
                @for (value, label) in PRESETS {
                    li {
                        a href=(href(view, &[("range", value)]))
                            aria-current=[(view.range.preset == Some(value)).then_some("true")] { (label) }
                    }
                }
            }
            form.custom method="get" action="/" {
                @if let Some(site) = &view.site { input type="hidden" name="site" value=(site); }
                input type="hidden" name="range" value="custom";
                label { span { "From" } input type="date" name="from" value=(view.range.from.to_string()) required; }
                label { span { "To" } input type="date" name="to" value=(view.range.to.to_string()) max=(Day::today().to_string()) required; }
                label.check {
                    input type="checkbox" name="compare" value="1" checked[view.compare];
                    span { "Compare with the period before" }
                }
                button type="submit" { "Apply" }
            }
        }
    }
}

/// The value of `column` in the first row of `table`.
fn first(table: &Table, column: &str) -> Option<Cell> {
    let i = table.column(column)?;
    table.rows.first().map(|r| r[i].clone())
}

fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Count(n) => Some(*n as f64),
        Cell::Ratio(x, _) => *x,
        Cell::Text(_) | Cell::Withheld => None,
    }
}

fn headline(view: &View) -> Markup {
    let Some(Loaded::Table(now)) = view.get(Report::Sites) else {
        return html! {};
    };
    let before = view.previous.as_ref().and_then(Loaded::table);
    let metrics = [
        ("visitors", "Visitors"),
        ("pageviews", "Page views"),
        ("visits", "Visits"),
        ("bounce_rate", "Bounce rate"),
        ("avg_visit_duration_s", "Visit duration"),
    ];
    let current = view.get(Report::Current);
    html! {
        section.headline aria-label="Totals" {
            dl.cards {
                @for (col, label) in metrics {
                    @if let Some(i) = now.column(col) {
                        div.card.stat data-metric=(col) {
                            dt { (label) }
                            @match now.rows.first() {
                                Some(row) => {
                                    dd.value data-value=(row[i].text()) { (display(col, &row[i])) }
                                    @if let Some(prev) = before {
                                        (delta(col, &row[i], first(prev, col).as_ref()))
                                    }
                                }
                                None => dd.value.withheld { "—" }
                            }
                        }
                    }
                }
                @if let Some(Loaded::Table(live)) = current {
                    div.card.stat.live data-metric="current" {
                        dt { "Now" span.muted { " (last " (CURRENT_MINUTES) " min)" } }
                        @match first(live, "visitors") {
                            Some(v) => dd.value data-value=(v.text()) { span.pulse aria-hidden="true" {} (display("visitors", &v)) },
                            None => dd.value.withheld { "fewer than " (view.min_visitors) }
                        }
                    }
                }
            }
            @if now.rows.is_empty() {
                p.note role="note" {
                    @if now.suppressed > 0 {
                        "This site had fewer than " (view.min_visitors) " visitors in this range, so its totals are withheld."
                    } @else {
                        "No page views in this range."
                    }
                }
            }
        }
    }
}

fn delta(col: &str, now: &Cell, before: Option<&Cell>) -> Markup {
    let (Some(a), Some(b)) = (number(now), before.and_then(number)) else {
        return html! { dd.delta.muted { "no figure before" } };
    };
    if b == 0.0 {
        return html! { dd.delta.muted { "none before" } };
    }
    let change = (a - b) / b * 100.0;
    // A higher bounce rate is worse; for everything else higher is better.
    let good = if col == "bounce_rate" {
        change < 0.0
    } else {
        change > 0.0
    };
    let class = if change.abs() < 0.5 {
        "flat"
    } else if good {
        "up"
    } else {
        "down"
    };
    let arrow = if change > 0.0 {
        "▲"
    } else if change < 0.0 {
        "▼"
    } else {
        ""
    };
    html! {
        dd.delta.(class) {
            span aria-hidden="true" { (arrow) " " }
            (format!("{:+.0} %", change))
            span.sr-only { " from the period before" }
        }
    }
}

/// A cell as the page shows it.
fn display(col: &str, cell: &Cell) -> String {
    match (col, cell) {
        (_, Cell::Text(t)) => t.clone(),
        (_, Cell::Count(n)) => grouped(*n),
        (_, Cell::Ratio(None, _) | Cell::Withheld) => "—".into(),
        ("bounce_rate", Cell::Ratio(Some(x), _)) => format!("{:.0} %", x * 100.0),
        (c, Cell::Ratio(Some(x), _)) if c.ends_with("_s") => duration(*x),
        (_, Cell::Ratio(Some(x), _)) => format!("{x}"),
    }
}

fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s / 60 % 60),
    }
}

fn traffic(view: &View) -> Markup {
    let one_day = view.range.days() == 1;
    let report = if one_day {
        Report::Hourly
    } else {
        Report::Daily
    };
    let Some(loaded) = view.get(report) else {
        return html! {};
    };
    let Loaded::Table(table) = loaded else {
        return card_problem(report, loaded, "Traffic");
    };
    let key = if one_day { "hour" } else { "date" };
    let now_hour = {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        secs / 3600
    };
    // Every period of the range, so that a missing row shows as such.
    let periods: Vec<(String, String, bool)> = if one_day {
        let day = view.range.from;
        (0..24)
            .map(|h| {
                let id = format!("{day}T{h:02}:00Z");
                let future = (day.since_epoch() as u64) * 24 + h > now_hour;
                (id, format!("{h:02}:00"), future)
            })
            .collect()
    } else {
        (0..view.range.days())
            .map(|i| {
                let d = view.range.from.plus(i);
                let p = pretty(d);
                let label = p.rsplit_once(' ').map_or(p.clone(), |(a, _)| a.to_owned());
                (d.to_string(), label, false)
            })
            .collect()
    };
    let k = table.column(key);
    let series_of = |col: &'static str| -> Option<Vec<Option<u64>>> {
        let c = table.column(col)?;
        Some(
            periods
                .iter()
                .map(|(id, _, future)| {
                    let row = table
                        .rows
                        .iter()
                        .find(|r| k.is_some_and(|k| r[k].text() == *id));
                    match row {
                        Some(r) => match r[c] {
                            Cell::Count(n) => Some(n),
                            _ => None,
                        },
                        // No row: nothing happened, unless rows were withheld (then it is
                        // unknown), or the hour is still to come.
                        None if *future || table.suppressed > 0 => None,
                        None => Some(0),
                    }
                })
                .collect(),
        )
    };
    let series: Vec<Series> = [
        ("visitors", "Visitors"),
        ("visits", "Visits"),
        ("pageviews", "Page views"),
    ]
    .into_iter()
    .filter_map(|(col, name)| {
        series_of(col).map(|values| Series {
            name,
            class: col,
            values,
        })
    })
    .collect();
    let labels: Vec<String> = periods.iter().map(|(_, l, _)| l.clone()).collect();
    let total: u64 = series
        .first()
        .map_or(0, |s| s.values.iter().flatten().sum());
    let summary = format!(
        "{} per {} from {}; {} in all on the {} shown.",
        series.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
        if one_day { "hour" } else { "day" },
        range_text(view.range.from, view.range.to),
        grouped(total),
        if one_day { "hours" } else { "days" },
    );
    let summary = format!(
        "{summary} The first series is {}.",
        series.first().map_or("none", |s| s.name)
    );
    html! {
        section.card.traffic aria-labelledby="traffic-title" {
            div.card-head {
                h2 #traffic-title { (if one_day { "Traffic by hour" } else { "Traffic by day" }) }
                ul.legend aria-hidden="true" {
                    @for s in &series { li.(s.class) { (s.name) } }
                }
                a.csv href=(csv_href(report, view)) download { "CSV" span.sr-only { " of " (report.title()) } }
            }
            (chart::svg(&labels, &series, &summary))
            @if table.suppressed > 0 {
                p.note role="note" {
                    "Some " (if one_day { "hours" } else { "days" }) " stand for fewer than "
                    (view.min_visitors) " visitors and are not shown; the line has a gap there."
                }
            }
            details.data {
                summary { "Chart data as a table" }
                (data_table(view, report, table, &[], None, None))
            }
        }
    }
}

fn card_problem(report: Report, loaded: &Loaded, title: &str) -> Markup {
    match loaded {
        Loaded::Forbidden => html! {},
        Loaded::Failed(reason) => html! {
            section.card {
                h2 { (title) }
                p.error role="alert" { (report.title()) " could not be loaded: " (reason) }
            }
        },
        Loaded::Table(..) => html! {},
    }
}

/// A column's heading.
fn label(col: &str) -> &str {
    match col {
        "pageviews" => "Page views",
        "visitors" => "Visitors",
        "visits" => "Visits",
        "entries" => "Entries",
        "bounce_rate" => "Bounce",
        "avg_time_on_page_s" => "Time on page",
        "avg_visit_duration_s" => "Duration",
        "visitor_days" => "Visitor-days",
        "opens" => "Opens",
        "unique_opens" => "Unique opens",
        "opener_days" => "Opener-days",
        "path" => "Page",
        "referrer" => "Referrer",
        "country" => "Country",
        "value" => "Value",
        "utm_source" => "Source",
        "utm_medium" => "Medium",
        "utm_campaign" => "Campaign",
        "campaign" => "Campaign",
        "date" => "Day",
        "hour" => "Hour",
        other => other,
    }
}

/// The cards of one report: most reports are one table; `pages` is also the entry pages, and
/// `devices` one table per dimension.
fn cards(view: &View, report: Report, loaded: &Loaded) -> Markup {
    let Loaded::Table(table) = loaded else {
        return card_problem(report, loaded, report.title());
    };
    let dp = view.epsilon.is_some();
    match report {
        Report::Pages if !dp => html! {
            (card(view, report, "Top pages", table, &["path", "visitors", "pageviews", "avg_time_on_page_s"], None, None))
            (card(view, report, "Entry pages", table, &["path", "entries", "bounce_rate"], None, Some("entries")))
        },
        Report::Devices => {
            let mut cols = vec!["value"];
            if !dp {
                cols.extend([
                    "visitors",
                    "pageviews",
                    "bounce_rate",
                    "avg_visit_duration_s",
                ]);
            } else {
                cols.extend(["visitors", "visitor_days"]);
            }
            html! {
                @for (dim, title) in [("device", "Devices"), ("browser", "Browsers"), ("os", "Operating systems")] {
                    (card(view, report, title, table, &cols, Some(dim), None))
                }
            }
        }
        // The usual traffic columns, where the report has them; the CSV has every column.
        _ if !dp && table.column("avg_visit_duration_s").is_some() => {
            let keys: Vec<&str> = table
                .columns
                .iter()
                .copied()
                .filter(|c| is_key(c) && *c != "site")
                .collect();
            let mut cols = keys;
            cols.extend([
                "visitors",
                "pageviews",
                "bounce_rate",
                "avg_visit_duration_s",
            ]);
            card(view, report, report.title(), table, &cols, None, None)
        }
        _ => card(view, report, report.title(), table, &[], None, None),
    }
}

/// One table card. `columns` empty: every column but `site` (and `dimension`). `dimension`:
/// only the rows of that dimension (of `devices`). `by`: the rows with a count in this column,
/// largest first (else the report's order).
#[allow(clippy::too_many_arguments)]
fn card(
    view: &View,
    report: Report,
    title: &str,
    table: &Table,
    columns: &[&str],
    dimension: Option<&str>,
    by: Option<&str>,
) -> Markup {
    let id = format!(
        "{}{}",
        report.name(),
        match (dimension, title) {
            (Some(d), _) => format!("-{d}"),
            (None, "Entry pages") => "-entries".into(),
            _ => String::new(),
        }
    );
    html! {
        section.card.table-card #(id) aria-labelledby=(format!("{id}-title")) {
            div.card-head {
                h2 #(format!("{id}-title")) { (title) }
                a.csv href=(csv_href(report, view)) download { "CSV" span.sr-only { " of " (report.title()) } }
            }
            (data_table(view, report, table, columns, dimension, by))
            @if table.suppressed > 0 {
                p.note role="note" {
                    "Rows that stand for fewer than " (view.min_visitors) " visitors are not shown."
                }
            }
        }
    }
}

fn data_table(
    view: &View,
    report: Report,
    table: &Table,
    columns: &[&str],
    dimension: Option<&str>,
    by: Option<&str>,
) -> Markup {
    let cols: Vec<(usize, &str)> = if columns.is_empty() {
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != "site" && **c != "dimension")
            .map(|(i, c)| (i, *c))
            .collect()
    } else {
        columns
            .iter()
            .filter_map(|c| table.column(c).map(|i| (i, *c)))
            .collect()
    };
    let dim_col = table.column("dimension");
    let mut rows: Vec<&Vec<Cell>> = table
        .rows
        .iter()
        .filter(|r| match (dimension, dim_col) {
            (Some(d), Some(i)) => r[i].text() == d,
            _ => true,
        })
        .collect();
    let sort_col = by.and_then(|c| table.column(c));
    if let Some(s) = sort_col {
        rows.retain(|r| number(&r[s]).is_some_and(|n| n > 0.0));
        rows.sort_by(|a, b| {
            number(&b[s])
                .partial_cmp(&number(&a[s]))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let time_series = matches!(report, Report::Daily | Report::Hourly);
    let shown = if time_series {
        rows.len()
    } else {
        rows.len().min(TOP_ROWS)
    };
    html! {
        @if rows.is_empty() {
            p.empty-table.muted {
                @if table.suppressed > 0 {
                    "Nothing to show: every row stands for fewer than " (view.min_visitors) " visitors."
                } @else {
                    "Nothing in this range."
                }
            }
        } @else {
            div.table-wrap {
                table {
                    thead {
                        tr {
                            @for (_, c) in &cols {
                                th scope="col" class=[(!is_key(c)).then_some("num")] {
                                    (match (*c, dimension) {
                                        ("value", Some("device")) => "Device",
                                        ("value", Some("browser")) => "Browser",
                                        ("value", Some("os")) => "System",
                                        (c, _) => label(c),
                                    })
                                }
                            }
                        }
                    }
                    tbody {
                        @for row in rows.iter().take(shown) {
                            tr {
                                @for (j, (i, c)) in cols.iter().enumerate() {
                                    @let cell = &row[*i];
                                    @if j == 0 {
                                        th scope="row" data-col=(c) title=(cell.text()) { (display(c, cell)) }
                                    } @else if is_key(c) {
                                        td.key data-col=(c) { (display(c, cell)) }
                                    } @else {
                                        td.num data-col=(c) data-value=(cell.text()) { (display(c, cell)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if rows.len() > shown {
                p.more.muted { "Top " (shown) " of " (rows.len()) "; the CSV has every row." }
            }
        }
    }
}

fn is_key(col: &str) -> bool {
    matches!(
        col,
        "site"
            | "path"
            | "referrer"
            | "country"
            | "dimension"
            | "value"
            | "utm_source"
            | "utm_medium"
            | "utm_campaign"
            | "campaign"
            | "date"
            | "hour"
    )
}

fn privacy_note(view: &View) -> Markup {
    html! {
        aside.privacy aria-label="How these numbers are protected" {
            p {
                "Every row stands for at least " strong { (view.min_visitors) } " distinct visitors from at least " strong { (view.min_networks) } " networks; smaller ones are withheld and never summed into another row. An average, rate or visit count from fewer visitors shows —. "
                @if let Some(e) = view.epsilon {
                    "Counts carry differential-privacy noise (ε = " (e) "), so they differ slightly from the exact figures. "
                }
                "Days are UTC. Each view is recorded in the export audit."
            }
        }
    }
}
