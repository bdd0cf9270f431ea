//! The export audit: one `export_audit` row for every export, from the CLI (`cli`) or the API
//! (the token's name), and `footfall-aggregator audit` to read them.

use clickhouse::Client;
use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::report::Request;
use crate::{ClickHouseError, ch};

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub actor: String,
    pub report: String,
    /// Days since the Unix epoch (`Date`).
    pub from_day: u16,
    pub to_day: u16,
    pub site: String,
    pub min_visitors: u32,
    /// 0 when no noise was added.
    pub epsilon: f64,
    pub rows: u64,
}

/// Records that `actor` exported `rows` rows of `req`.
pub async fn record(
    client: &Client,
    actor: &str,
    req: &Request,
    rows: u64,
) -> Result<(), ClickHouseError> {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let entry = Entry {
        at,
        actor: actor.into(),
        report: req.report.name().into(),
        from_day: req.from.since_epoch() as u16,
        to_day: req.to.since_epoch() as u16,
        site: req.site.clone().unwrap_or_default(),
        min_visitors: req.min_visitors,
        epsilon: req.privacy.as_ref().map_or(0.0, |p| p.epsilon()),
        rows,
    };
    let mut insert = client
        .insert::<Entry>("export_audit")
        .await
        .map_err(ch("audit the export"))?;
    insert.write(&entry).await.map_err(ch("audit the export"))?;
    insert.end().await.map_err(ch("audit the export"))
}

/// The latest `limit` exports, newest first.
pub async fn list(client: &Client, limit: u64) -> Result<Vec<Entry>, ClickHouseError> {
    client
        .query("SELECT ?fields FROM export_audit ORDER BY at DESC LIMIT ?")
        .bind(limit)
        .fetch_all()
        .await
        .map_err(ch("read the export audit"))
}

impl Entry {
    /// One line for `footfall-aggregator audit`: tab-separated.
    pub fn line(&self) -> String {
        let secs = self.at / 1000;
        let day = Day::from_epoch(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400);
        format!(
            "{day}T{:02}:{:02}:{:02}Z\t{}\t{}\t{}..{}\t{}\tK={}\tε={}\t{} rows",
            s / 3600,
            s / 60 % 60,
            s % 60,
            self.actor,
            self.report,
            Day::from_epoch(i64::from(self.from_day)),
            Day::from_epoch(i64::from(self.to_day)),
            if self.site.is_empty() {
                "(all sites)"
            } else {
                &self.site
            },
            self.min_visitors,
            if self.epsilon == 0.0 {
                "-".to_string()
            } else {
                self.epsilon.to_string()
            },
            self.rows
        )
    }
}
