//! The end of a run: counting in ClickHouse the rows of the run's site, to compare with the
//! hits the collector acknowledged. Plain HTTP to ClickHouse's interface over loopback.

use std::time::Duration;

use footfall_store::config::ClickHouseArgs;
use tokio::time::Instant;

/// Pause between two counts while waiting for the collector's writer.
const POLL_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the ClickHouse URL must be http://127.0.0.1:PORT or http://localhost:PORT")]
    BadUrl,
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

pub struct ClickHouse {
    client: clickhouse::Client,
}

impl ClickHouse {
    /// The ClickHouse of `args`, on loopback only.
    pub fn new(args: &ClickHouseArgs) -> Result<Self, VerifyError> {
        if !crate::args::is_loopback_url(&args.clickhouse_url) {
            return Err(VerifyError::BadUrl);
        }
        Ok(Self {
            client: args.client(),
        })
    }

    /// Rows of `site` in the events table.
    pub async fn count(&self, site: &str) -> Result<u64, VerifyError> {
        let sql = "SELECT count() FROM events WHERE site = ?";
        Ok(self.client.query(sql).bind(site).fetch_one().await?)
    }

    /// Counts `site`'s rows until there are `expected` or `timeout` has passed; the last count.
    pub async fn wait_for(
        &self,
        site: &str,
        expected: u64,
        timeout: Duration,
    ) -> Result<u64, VerifyError> {
        let give_up = Instant::now() + timeout;
        loop {
            let stored = self.count(site).await?;
            if stored >= expected || Instant::now() >= give_up {
                return Ok(stored);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn clickhouse_at(url: &str) -> Result<ClickHouse, VerifyError> {
        let args = crate::args::Args::try_parse_from(["footfall-loadgen", "--clickhouse-url", url])
            .unwrap();
        ClickHouse::new(&args.clickhouse)
    }

    #[test]
    fn only_loopback_clickhouse_is_accepted() {
        assert!(clickhouse_at("http://localhost:18700").is_ok());
        assert!(clickhouse_at("http://[::1]:9000/").is_ok());
        assert!(matches!(
            clickhouse_at("http://192.0.2.1:8123"),
            Err(VerifyError::BadUrl)
        ));
    }
}
