//! Footfall's aggregator: everything that reads what the collector stored.
//!
//! One module per command, each a library function the binary (and the tests) call:
//!
//! - [`keygen`] makes the IP-sealing key pair;
//! - [`subject`] serves the data subject's rights: a copy of every record held about one person
//!   (IPs unsealed with the private key), and its erasure;
//! - [`retention`] deletes what is older than the retention period, now;
//! - [`rollup`] fills the rollups (their tables, like every table, are `footfall-store`'s);
//! - [`goals`] and [`funnel`] define conversions and ordered steps per site;
//! - [`report`] turns rollups into anonymous tables, written as CSV ([`spreadsheet`]) or JSON:
//!   K-anonymity, and with [`noise`] differential privacy paid for from a [`budget`]; the only
//!   data that leaves. [`serve`] offers them over HTTP to [`token`] holders: the report API and
//!   the dashboard, which reads the same API functions; [`audit`] records every export,
//!   subject request and refusal.
//!
//! [`cli`] is the command line. The schema, its migration runner, the row types and the
//! ClickHouse options ([`footfall_store::config::ClickHouseArgs`]) are `footfall-store`'s,
//! shared with the collector; the aggregator depends on no part of the collector.

mod api;
pub mod audit;
pub mod budget;
pub mod cli;
mod conn;
mod dashboard;
pub mod day;
pub mod funnel;
pub mod goals;
pub mod keygen;
pub mod noise;
pub mod report;
pub mod retention;
pub mod rollup;
pub mod serve;
mod session;
pub mod spreadsheet;
pub mod subject;
pub mod token;

/// A ClickHouse request that failed, and what it was for.
#[derive(Debug, thiserror::Error)]
#[error(
    "could not {what}: {source}. Is ClickHouse reachable at FOOTFALL_CLICKHOUSE_URL, with the schema applied \
     (footfall-aggregator migrate)?"
)]
pub struct ClickHouseError {
    what: String,
    #[source]
    source: clickhouse::error::Error,
}

fn ch(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> ClickHouseError {
    let what = what.into();
    move |source| ClickHouseError { what, source }
}
