//! Funnels: ordered steps (pages or custom events) within one visit, and how many visitors
//! reach each.
//!
//! The steps are given as `--steps /pricing,/signup/*,event:Purchase` (path patterns as for
//! goals, [`crate::goals::Pattern`], or `event:NAME`) and kept per site in `funnels`, so the API
//! and the dashboard show the funnel last given. A visitor reaches step n when one of their
//! visits (the rule of the visit rollup: 30 minutes without activity end it) has steps 1 to n
//! in that order, other pages and events in between allowed (ClickHouse's `windowFunnel`).
//! Visits are [`footfall_store::rules`]' own, the ones every visit figure counts.
//!
//! Order within a visit cannot be read from daily rollups, so a funnel reads raw events of the
//! range.

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::goals::{Pattern, valid_name};
use crate::{ClickHouseError, ch};
use footfall_store::rules;

/// Most steps in one funnel.
pub const MAX_STEPS: usize = 8;

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Page(Pattern),
    Event(String),
}

impl Step {
    pub fn text(&self) -> String {
        match self {
            Step::Page(p) => p.as_str().to_owned(),
            Step::Event(name) => format!("event:{name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FunnelError {
    #[error("a funnel has 2 to {MAX_STEPS} steps, comma-separated")]
    Count,
    #[error(
        "'{0}' is not a step: give a path pattern starting with / (like /signup/*) or event:NAME"
    )]
    BadStep(String),
    #[error("a funnel is per site: give --site")]
    NoSite,
    #[error("site {0} has no funnel yet: give its steps once with --steps")]
    NoneStored(String),
    #[error(transparent)]
    ClickHouse(#[from] ClickHouseError),
}

/// `/pricing,/signup/*,event:Purchase` as steps.
pub fn parse_steps(text: &str) -> Result<Vec<Step>, FunnelError> {
    let steps = text
        .split(',')
        .map(str::trim)
        .map(|s| match s.strip_prefix("event:") {
            Some(name) if valid_name(name.trim()) => Ok(Step::Event(name.trim().to_owned())),
            Some(_) => Err(FunnelError::BadStep(s.into())),
            None => Pattern::parse(s)
                .map(Step::Page)
                .ok_or_else(|| FunnelError::BadStep(s.into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !(2..=MAX_STEPS).contains(&steps.len()) {
        return Err(FunnelError::Count);
    }
    Ok(steps)
}

#[derive(Debug, clickhouse::Row, Serialize, Deserialize)]
struct Stored {
    site: String,
    steps: String,
    /// Microseconds since the Unix epoch: the row's version.
    updated: i64,
}

/// Keeps `steps` as the funnel of `site`.
pub async fn store(client: &Client, site: &str, steps: &[Step]) -> Result<(), ClickHouseError> {
    let row = Stored {
        site: site.into(),
        steps: steps.iter().map(Step::text).collect::<Vec<_>>().join(","),
        updated: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64),
    };
    let mut insert = client
        .insert::<Stored>("funnels")
        .await
        .map_err(ch("store the funnel"))?;
    insert.write(&row).await.map_err(ch("store the funnel"))?;
    insert.end().await.map_err(ch("store the funnel"))
}

/// The funnel last stored for `site`.
pub async fn stored(client: &Client, site: &str) -> Result<Vec<Step>, FunnelError> {
    let steps: Option<String> = client
        .query("SELECT steps FROM funnels FINAL WHERE site = ?")
        .bind(site)
        .fetch_optional()
        .await
        .map_err(ch("read the funnel"))?;
    match steps {
        Some(text) => parse_steps(&text),
        None => Err(FunnelError::NoneStored(site.into())),
    }
}

/// One step's numbers, before anonymisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub visitors: u64,
    /// The distinct networks those visitors came from (each visit's first).
    pub networks: u64,
    /// The (visitor, day) pairs with a visit reaching it (for noise: a visitor adds at most
    /// one a day).
    pub visitor_days: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Levels {
    visitors: Vec<u64>,
    networks: Vec<u64>,
    visitor_days: Vec<u64>,
}

/// How many visitors of `site` reached each step in a visit that began in `[from, to]`.
pub async fn reached(
    client: &Client,
    site: &str,
    steps: &[Step],
    from: Day,
    to: Day,
) -> Result<Vec<Reached>, ClickHouseError> {
    let conditions: Vec<&str> = steps
        .iter()
        .map(|s| match s {
            Step::Page(_) => "kind = 'pageview' AND match(path, ?)",
            Step::Event(_) => "kind = 'custom' AND event_name = ?",
        })
        .collect();
    let per_step = |what: &str| {
        (1..=steps.len())
            .map(|i| format!("toUInt64(uniqExactIf({what}, level >= {i}))"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (visitors, visitor_days) = (per_step("visitor_id"), per_step("(visitor_id, day)"));
    let networks = per_step("if(network = '', NULL, network)");
    let sql = format!(
        "SELECT [{visitors}] AS visitors, [{networks}] AS networks, [{visitor_days}] AS visitor_days
FROM (
    SELECT visitor_id, toDate(min(ts)) AS day, argMin(ip_prefix, ts) AS network,
           windowFunnel({window})(toUInt64(toUnixTimestamp64Milli(ts)), {conditions}) AS level
    FROM ({activity})
    WHERE site = ?
    GROUP BY visitor_id, visit
    HAVING day BETWEEN toDate('{from}') AND toDate('{to}')
)",
        activity = rules::activity(from, to),
        window = u32::MAX,
        conditions = conditions.join(", "),
    );
    let mut query = client.query(&sql);
    for step in steps {
        query = match step {
            Step::Page(p) => query.bind(p.regex()),
            Step::Event(name) => query.bind(name),
        };
    }
    query = query.bind(site);
    let levels: Levels = query.fetch_one().await.map_err(ch("compute the funnel"))?;
    Ok(levels
        .visitors
        .into_iter()
        .zip(levels.networks)
        .zip(levels.visitor_days)
        .map(|((visitors, networks), visitor_days)| Reached {
            visitors,
            networks,
            visitor_days,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_patterns_or_events() {
        let steps = parse_steps("/pricing, /signup/*,event:Purchase").unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[1].text(), "/signup/*");
        assert_eq!(steps[2], Step::Event("Purchase".into()));
        assert!(matches!(parse_steps("/a"), Err(FunnelError::Count)));
        assert!(matches!(
            parse_steps(&["/a"; MAX_STEPS + 1].join(",")),
            Err(FunnelError::Count)
        ));
        for bad in ["/a,pricing", "/a,event:", "/a,/b?c=1", "/a,event:x\ny"] {
            assert!(
                matches!(parse_steps(bad), Err(FunnelError::BadStep(_))),
                "{bad}"
            );
        }
    }
}
