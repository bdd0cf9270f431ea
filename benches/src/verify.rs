//! The end of a run: counting in ClickHouse the rows of the run's site, to compare with the
//! hits the collector acknowledged. Plain HTTP to ClickHouse's interface over loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

use crate::http::{Connection, HttpError};

/// Pause between two counts while waiting for the collector's writer.
const POLL_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the ClickHouse URL must be http://127.0.0.1:PORT or http://localhost:PORT")]
    BadUrl,
    #[error("ClickHouse: {0}")]
    Http(#[from] HttpError),
    #[error("ClickHouse answered {status}: {body}")]
    Query { status: StatusCode, body: String },
    #[error("ClickHouse answered something that is not a count: {0:?}")]
    NotACount(String),
}

pub struct ClickHouse {
    addr: SocketAddr,
    database: String,
    user: String,
    password: String,
}

impl ClickHouse {
    pub fn new(url: &str, database: &str, user: &str, password: &str) -> Result<Self, VerifyError> {
        if !crate::args::is_loopback_url(url) {
            return Err(VerifyError::BadUrl);
        }
        let uri: http::Uri = url.parse().map_err(|_| VerifyError::BadUrl)?;
        let host = uri.host().ok_or(VerifyError::BadUrl)?;
        let ip = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            other => other
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| VerifyError::BadUrl)?,
        };
        Ok(Self {
            addr: SocketAddr::new(ip, uri.port_u16().unwrap_or(8123)),
            database: database.to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Rows of `site` in the events table. `site` must be a valid site name (no quotes).
    pub async fn count(&self, site: &str) -> Result<u64, VerifyError> {
        let sql = count_query(site);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("database", &self.database)
            .append_pair("query", &sql)
            .finish();
        let request = Request::get(format!("/?{query}"))
            .header(http::header::HOST, self.addr.to_string())
            .header("x-clickhouse-user", &self.user)
            .header("x-clickhouse-key", &self.password)
            .body(Full::<Bytes>::default())
            .map_err(|_| VerifyError::BadUrl)?;
        let answer = Connection::open(self.addr).await?.send(request).await?;
        let body = String::from_utf8_lossy(&answer.body).trim().to_owned();
        if answer.status != StatusCode::OK {
            return Err(VerifyError::Query {
                status: answer.status,
                body,
            });
        }
        body.parse().map_err(|_| VerifyError::NotACount(body))
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

fn count_query(site: &str) -> String {
    debug_assert!(footfall_collector::hit::query::valid_site(site));
    format!("SELECT count() FROM events WHERE site = '{site}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_clickhouse_is_accepted() {
        let ch = ClickHouse::new("http://localhost:18700", "db", "default", "").unwrap();
        assert_eq!(ch.addr, "127.0.0.1:18700".parse().unwrap());
        let ch = ClickHouse::new("http://[::1]:9000/", "db", "default", "").unwrap();
        assert_eq!(ch.addr, "[::1]:9000".parse().unwrap());
        assert!(ClickHouse::new("http://192.0.2.1:8123", "db", "u", "").is_err());
    }

    #[test]
    fn the_count_names_the_site() {
        assert_eq!(
            count_query("loadgen-1.x"),
            "SELECT count() FROM events WHERE site = 'loadgen-1.x'"
        );
    }
}
