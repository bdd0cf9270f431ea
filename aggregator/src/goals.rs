//! Goals: what a site counts as a conversion, and the `goals` report.
//!
//! A goal is a page (a path pattern, see [`Pattern`]) or a custom event, optionally with one
//! property value, kept per site in the `goals` table (`footfall-aggregator goal add|list|
//! remove`), so that the command line, the API and the dashboard see the same goals. A goal's
//! numbers come from the daily rollup, never from raw events: its conversions are the page
//! views or events it matches, its visitors the exact union of their visitors (the rollup's
//! distinct-count states merge), and its conversion rate those visitors over the site's.

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::report::valid_site;
use crate::{ClickHouseError, ch};

/// A path pattern: `*` stands for any run of characters but `/` (one path segment, or part of
/// one), `**` for any run at all; everything else is literal and the whole path must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern is a path: it starts with `/`, holds no `?`, `#` or control character, and
    /// has at most 256 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.starts_with('/')
            && text.len() <= 256
            && !text.contains(['?', '#'])
            && !text.chars().any(char::is_control);
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pattern as an anchored RE2 regular expression (ClickHouse's `match`).
    pub fn regex(&self) -> String {
        let mut re = String::from("^");
        let mut rest = self.0.as_str();
        while let Some(c) = rest.chars().next() {
            if let Some(after) = rest.strip_prefix("**") {
                re.push_str(".*");
                rest = after;
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' => re.push_str("[^/]*"),
                c if c.is_ascii_alphanumeric() || c == '/' || !c.is_ascii() => re.push(c),
                c => {
                    re.push('\\');
                    re.push(c);
                }
            }
        }
        re.push('$');
        re
    }
}

/// What a goal matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Page(Pattern),
    Event {
        name: String,
        /// A property and the value it must have.
        property: Option<(String, String)>,
    },
}

/// A goal as stored in `goals`.
#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct Goal {
    pub site: String,
    pub name: String,
    /// A path pattern, or empty for an event goal.
    pub page: String,
    pub event: String,
    pub prop_key: String,
    pub prop_value: String,
    pub removed: bool,
    /// Microseconds since the Unix epoch: the row's version.
    pub updated: i64,
}

impl Goal {
    pub fn target(&self) -> Target {
        match Pattern::parse(&self.page) {
            Some(p) => Target::Page(p),
            None => Target::Event {
                name: self.event.clone(),
                property: (!self.prop_key.is_empty())
                    .then(|| (self.prop_key.clone(), self.prop_value.clone())),
            },
        }
    }

    /// How the goal is defined, in the words of `goal add`.
    pub fn definition(&self) -> String {
        match self.target() {
            Target::Page(p) => p.as_str().to_owned(),
            Target::Event {
                name,
                property: None,
            } => format!("event:{name}"),
            Target::Event {
                name,
                property: Some((k, v)),
            } => format!("event:{name} {k}={v}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GoalError {
    #[error("'{0}' is not a site name: 1-128 letters, digits and .-_:")]
    BadSite(String),
    #[error("a goal name is 1 to 120 bytes without control characters")]
    BadName,
    #[error("give exactly one of --page PATTERN and --event NAME")]
    Target,
    #[error(
        "'{0}' is not a page pattern: a path starting with /, without ? or #, at most 256 bytes"
    )]
    BadPattern(String),
    #[error("--property is KEY=VALUE, for an event goal")]
    BadProperty,
    #[error("site {site} has no goal named '{name}' (see `footfall-aggregator goal list`)")]
    Unknown { site: String, name: String },
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

/// A plain name: 1 to 120 bytes, no control characters.
pub fn valid_name(name: &str) -> bool {
    (1..=120).contains(&name.len()) && !name.chars().any(char::is_control)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Adds (or replaces) goal `name` of `site`.
pub async fn add(
    client: &Client,
    site: &str,
    name: &str,
    page: Option<&str>,
    event: Option<&str>,
    property: Option<&str>,
) -> Result<Goal, GoalError> {
    if !valid_site(site) {
        return Err(GoalError::BadSite(site.into()));
    }
    if !valid_name(name) {
        return Err(GoalError::BadName);
    }
    let (page, event) = match (page, event) {
        (Some(p), None) => (
            Pattern::parse(p)
                .ok_or_else(|| GoalError::BadPattern(p.into()))?
                .0,
            String::new(),
        ),
        (None, Some(e)) if valid_name(e) => (String::new(), e.to_owned()),
        (None, Some(_)) => return Err(GoalError::BadName),
        _ => return Err(GoalError::Target),
    };
    let (prop_key, prop_value) = match property {
        None => (String::new(), String::new()),
        Some(_) if event.is_empty() => return Err(GoalError::BadProperty),
        Some(p) => match p.split_once('=') {
            Some((k, v)) if valid_name(k) && !v.chars().any(char::is_control) => {
                (k.to_owned(), v.to_owned())
            }
            _ => return Err(GoalError::BadProperty),
        },
    };
    let goal = Goal {
        site: site.into(),
        name: name.into(),
        page,
        event,
        prop_key,
        prop_value,
        removed: false,
        updated: now_micros(),
    };
    write(client, &goal).await?;
    Ok(goal)
}

async fn write(client: &Client, goal: &Goal) -> Result<(), ClickHouseError> {
    let mut insert = client
        .insert::<Goal>("goals")
        .await
        .map_err(ch("store a goal"))?;
    insert.write(goal).await.map_err(ch("store a goal"))?;
    insert.end().await.map_err(ch("store a goal"))
}

/// The goals of `site` (every site's, without one), by site and name.
pub async fn list(client: &Client, site: Option<&str>) -> Result<Vec<Goal>, ClickHouseError> {
    client
        .query(
            "SELECT ?fields FROM goals FINAL WHERE NOT removed AND (? = '' OR site = ?)
             ORDER BY site, name",
        )
        .bind(site.unwrap_or_default())
        .bind(site.unwrap_or_default())
        .fetch_all()
        .await
        .map_err(ch("read the goals"))
}

/// Removes goal `name` of `site`.
pub async fn remove(client: &Client, site: &str, name: &str) -> Result<(), GoalError> {
    let Some(mut goal) = list(client, Some(site))
        .await?
        .into_iter()
        .find(|g| g.name == name)
    else {
        return Err(GoalError::Unknown {
            site: site.into(),
            name: name.into(),
        });
    };
    goal.removed = true;
    goal.updated = now_micros();
    write(client, &goal).await?;
    Ok(())
}

/// One goal's numbers over a range, before anonymisation.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct Conversions {
    /// Page views or events that matched.
    pub hits: u64,
    /// Distinct visitors among them (once per calendar month: the rollups' hashes are keyed per
    /// month), the most of any one month, and the most distinct networks of any one month.
    pub visitors: u64,
    pub people: u64,
    pub networks: u64,
    /// Each day's distinct visitors, summed (for noise).
    pub visitor_days: u64,
    /// The site's distinct visitors over the range.
    pub site_visitors: u64,
}

/// `goal`'s conversions over `[from, to]`, from `traffic_keyed_daily`.
pub async fn conversions(
    client: &Client,
    goal: &Goal,
    from: Day,
    to: Day,
) -> Result<Conversions, ClickHouseError> {
    let (rows, binds): (&str, Vec<String>) = match goal.target() {
        Target::Page(p) => ("dimension = 'page' AND match(k1, ?)", vec![p.regex()]),
        Target::Event {
            name,
            property: None,
        } => ("dimension = 'event' AND k1 = ?", vec![name]),
        Target::Event {
            name,
            property: Some((k, v)),
        } => (
            "dimension = 'event_prop' AND k1 = ? AND k2 = ? AND k3 = ?",
            vec![name, k, v],
        ),
    };
    let days = format!("site = ? AND day BETWEEN toDate('{from}') AND toDate('{to}')");
    let sql = format!(
        "SELECT toUInt64(sum(m_hits)) AS hits, toUInt64(sum(m_visitors)) AS visitors,
                toUInt64(max(m_visitors)) AS people, toUInt64(max(m_networks)) AS networks,
                toUInt64(sum(m_uniques)) AS visitor_days,
                assumeNotNull((SELECT uniqExactMerge(visitors) FROM traffic_keyed_daily
                               WHERE dimension = 'all' AND {days})) AS site_visitors
         FROM (
             SELECT toStartOfMonth(day) AS month, sum(day_hits) AS m_hits,
                    uniqExactMerge(day_visitors) AS m_visitors,
                    uniqExactMerge(day_networks) AS m_networks, sum(day_uniques) AS m_uniques
             FROM (
                 SELECT day, sum(hits) AS day_hits, uniqExactMergeState(visitors) AS day_visitors,
                        uniqExactMerge(visitors) AS day_uniques,
                        uniqExactMergeState(networks) AS day_networks
                 FROM traffic_keyed_daily WHERE {rows} AND {days}
                 GROUP BY day)
             GROUP BY month)"
    );
    let mut query = client.query(&sql).bind(&goal.site);
    for b in &binds {
        query = query.bind(b);
    }
    query
        .bind(&goal.site)
        .fetch_one()
        .await
        .map_err(ch(format!("count the conversions of goal '{}'", goal.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments_or_everything() {
        let re = |p: &str| Pattern::parse(p).unwrap().regex();
        assert_eq!(re("/signup/*"), "^/signup/[^/]*$");
        assert_eq!(re("/docs/**"), "^/docs/.*$");
        assert_eq!(re("/a.b+(c)"), "^/a\\.b\\+\\(c\\)$");
        assert_eq!(re("/café"), "^/café$");
        for bad in ["signup", "/a?b=1", "/a#b", "/a\nb"] {
            assert!(Pattern::parse(bad).is_none(), "{bad}");
        }
        assert!(Pattern::parse(&format!("/{}", "a".repeat(256))).is_none());
    }

    #[test]
    fn a_goal_reads_back_its_definition() {
        let goal = |page: &str, event: &str, k: &str, v: &str| Goal {
            site: "s".into(),
            name: "g".into(),
            page: page.into(),
            event: event.into(),
            prop_key: k.into(),
            prop_value: v.into(),
            removed: false,
            updated: 0,
        };
        assert_eq!(goal("/signup/*", "", "", "").definition(), "/signup/*");
        assert_eq!(goal("", "Purchase", "", "").definition(), "event:Purchase");
        assert_eq!(
            goal("", "Signup", "plan", "pro").definition(),
            "event:Signup plan=pro"
        );
    }
}
