//! Shared helpers for the collector's integration tests: a throwaway database on the real dev
//! ClickHouse (FOOTFALL_TEST_CLICKHOUSE_URL, started by `scripts/test`), collectors started with
//! real command-line options, and a minimal HTTP client.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser as _;
use footfall_collector::config::{Cli, ServeArgs};
use footfall_collector::server::{self, Collector};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub fn clickhouse_url() -> String {
    std::env::var("FOOTFALL_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub data_dir: tempfile::TempDir,
}

impl TestDb {
    pub fn new() -> Self {
        let name = format!("footfall_test_{}", footfall_collector::id::Id::random().as_str().to_lowercase());
        Self { name, data_dir: tempfile::tempdir().unwrap() }
    }

    /// The options of `footfall-collector serve --dev` for this database, plus `extra`.
    pub fn serve_args(&self, extra: &[&str]) -> ServeArgs {
        let url = clickhouse_url();
        let data_dir = self.data_dir.path().display().to_string();
        let mut argv = vec![
            "footfall-collector",
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--clickhouse-url",
            &url,
            "--clickhouse-database",
            &self.name,
            "--data-dir",
            &data_dir,
            "--flush-interval-ms",
            "100",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(footfall_collector::config::Command::Serve(args)) => args,
            _ => unreachable!(),
        }
    }

    pub async fn start(&self, extra: &[&str]) -> Collector {
        server::start(self.serve_args(extra)).await.expect("collector starts")
    }

    pub fn client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_database(&self.name)
            .with_setting("output_format_json_quote_64bit_integers", "0")
    }

    /// Rows of `sql` as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let bytes = self.client().query(sql).fetch_bytes("JSONEachRow").unwrap().collect().await.unwrap();
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect()
    }

    pub async fn count(&self, sql: &str) -> u64 {
        let rows = self.rows(sql).await;
        rows[0].as_object().unwrap().values().next().unwrap().as_u64().unwrap()
    }

    /// Polls until `sql` counts at least `n`, for rows the writer flushes in the background.
    pub async fn wait_for_count(&self, sql: &str, n: u64) -> u64 {
        for _ in 0..100 {
            let c = self.count(sql).await;
            if c >= n {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.count(sql).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} SYNC", self.name);
        let url = clickhouse_url();
        // Best effort, on a thread of its own: Drop may run inside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async { clickhouse::Client::default().with_url(url).query(&sql).execute().await })
        })
        .join();
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The `ff_id` value of `Set-Cookie`, if any.
    pub fn visitor_cookie(&self) -> Option<String> {
        self.headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("ff_id="))
            .map(|v| v.split(';').next().unwrap().to_owned())
    }
}

/// One request on a new connection.
pub async fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(target).header("host", "collector.test");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = sender.send_request(req.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    Answer { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes() }
}

pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Answer {
    request(addr, "GET", target, headers).await
}

/// `url` percent-encoded for a query string.
pub fn enc(url: &str) -> String {
    form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

/// Bytes of a hex string, as ClickHouse's `hex()` writes them.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
