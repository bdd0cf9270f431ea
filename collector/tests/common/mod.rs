//! Shared helpers for the collector's integration tests: a throwaway database on the real dev
//! ClickHouse (FOOTFALL_TEST_CLICKHOUSE_URL, started by `scripts/test`), collectors started with
//! real command-line options, and a minimal HTTP client.
#![allow(dead_code)] // each test binary uses a different subset

pub mod mmdb;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser as _;
use footfall_collector::config::{Cli, ServeArgs};
use footfall_collector::server::{self, Collector};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub fn clickhouse_url() -> String {
    std::env::var("FOOTFALL_TEST_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

/// A database of its own for one test, dropped at the end.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub data_dir: tempfile::TempDir,
}

impl TestDb {
    pub fn new() -> Self {
        Self::on(clickhouse_url())
    }

    /// A database on the ClickHouse at `url`.
    pub fn on(url: String) -> Self {
        let id = footfall_collector::id::Id::random();
        let name = format!("footfall_test_{}", id.as_str().to_lowercase());
        Self {
            name,
            url,
            data_dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The options of `footfall-collector serve --dev` for this database, plus `extra`.
    pub fn serve_args(&self, extra: &[&str]) -> ServeArgs {
        self.args(&["--dev"], extra)
    }

    /// The options of `footfall-collector serve` as in production (keys given, not made), plus
    /// `extra`.
    pub fn production_args(&self, extra: &[&str]) -> ServeArgs {
        let ip_public_key = footfall_seal::SecretKey::generate().public_key().to_text();
        let secret = "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj";
        self.args(
            &["--secret", secret, "--ip-public-key", &ip_public_key],
            extra,
        )
    }

    fn args(&self, mode: &[&str], extra: &[&str]) -> ServeArgs {
        let url = self.url.clone();
        let data_dir = self.data_dir.path().display().to_string();
        let mut argv = vec![
            "footfall-collector",
            "serve",
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
        argv.extend_from_slice(mode);
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(footfall_collector::config::Command::Serve(args)) => *args,
            _ => unreachable!(),
        }
    }

    pub async fn start(&self, extra: &[&str]) -> Collector {
        server::start(self.serve_args(extra))
            .await
            .expect("collector starts")
    }

    pub fn client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.url)
            .with_database(&self.name)
            .with_setting("output_format_json_quote_64bit_integers", "0")
    }

    /// Rows of `sql` as JSON objects.
    pub async fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        let bytes = self
            .client()
            .query(sql)
            .fetch_bytes("JSONEachRow")
            .unwrap()
            .collect()
            .await
            .unwrap();
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect()
    }

    pub async fn count(&self, sql: &str) -> u64 {
        let rows = self.rows(sql).await;
        rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_u64()
            .unwrap()
    }

    /// Opens a stored sealed IP (`hex(ip_sealed)` of a row sealed under `key_id`) the way a
    /// subject export does: the private key `--dev` left in the data dir opens the epoch key
    /// stored in `ip_keys`, and that opens the IP.
    pub async fn unseal(&self, key_id: &serde_json::Value, sealed_hex: &str) -> std::net::IpAddr {
        let private = std::fs::read_to_string(self.data_dir.path().join("ip-seal.key")).unwrap();
        let secret = footfall_seal::SecretKey::from_text(&private).unwrap();
        let sql = format!("SELECT hex(sealed_key) AS k FROM ip_keys WHERE key_id = {key_id}");
        let keys = self.rows(&sql).await;
        assert_eq!(keys.len(), 1, "the epoch key of {key_id} is stored once");
        let epoch = secret
            .open_epoch_key(&unhex(keys[0]["k"].as_str().unwrap()))
            .unwrap();
        epoch.open_ip(&unhex(sealed_hex)).unwrap()
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
        let url = self.url.clone();
        // Best effort, on a thread of its own: Drop may run inside a runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                clickhouse::Client::default()
                    .with_url(url)
                    .query(&sql)
                    .execute()
                    .await
            })
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
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    send(addr, method, target, headers, Bytes::new()).await
}

/// `POST` of `body` on a new connection.
pub async fn post(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    send(addr, "POST", target, headers, body.into()).await
}

async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(target);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        req = req.header("host", "collector.test");
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Answer {
    request(addr, "GET", target, headers).await
}

/// The value of the sample `name` (with its labels) in the collector's `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let metrics = String::from_utf8(get(addr, "/metrics", &[]).await.body.to_vec()).unwrap();
    let line = metrics
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} in {metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The time now in Unix seconds, as signed customer links carry it.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `url` percent-encoded for a query string.
pub fn enc(url: &str) -> String {
    form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

/// Steady pixel traffic on keep-alive connections, recording when each hit was acknowledged
/// (answered with a visitor cookie, i.e. accepted for storage).
pub struct Traffic {
    stop: Arc<std::sync::atomic::AtomicBool>,
    acks: Arc<Mutex<Vec<Instant>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// `connections` clients hitting `/p.gif?site=SITE`, each pausing `pause` between hits.
    pub fn start(addr: SocketAddr, site: &str, connections: usize, pause: Duration) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let target = format!("/p.gif?site={site}&url={}", enc("https://example.com/load"));
        let clients = (0..connections)
            .map(|_| {
                tokio::spawn(client_loop(
                    addr,
                    target.clone(),
                    pause,
                    stop.clone(),
                    acks.clone(),
                ))
            })
            .collect();
        Self {
            stop,
            acks,
            clients,
        }
    }

    pub fn acknowledged(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Stops the clients and returns the acknowledgement times.
    pub async fn stop(self) -> Vec<Instant> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for client in self.clients {
            client.await.unwrap();
        }
        Arc::try_unwrap(self.acks).unwrap().into_inner().unwrap()
    }
}

/// One keep-alive client; reconnects when the collector closes the connection, until stopped.
async fn client_loop(
    addr: SocketAddr,
    target: String,
    pause: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acks: Arc<Mutex<Vec<Instant>>>,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
        let Ok(stream) = TcpStream::connect(addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && sender.ready().await.is_ok() {
            let req = Request::get(&target)
                .header("host", "collector.test")
                .body(Empty::<Bytes>::new())
                .unwrap();
            match sender.send_request(req).await {
                Ok(resp) if resp.headers().contains_key("set-cookie") => {
                    acks.lock().unwrap().push(Instant::now())
                }
                Ok(_) => {}
                Err(_) => break,
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// A ClickHouse of its own (scripts/clickhouse on a free port), for tests that stop and start it.
pub struct OwnClickHouse {
    pub port: u16,
    data: tempfile::TempDir,
}

impl OwnClickHouse {
    pub fn start() -> Self {
        let port = loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            // The TCP interface takes port + 1000.
            if port < 64000 && std::net::TcpListener::bind(("127.0.0.1", port + 1000)).is_ok() {
                break port;
            }
        };
        let ch = Self {
            port,
            data: tempfile::tempdir().unwrap(),
        };
        ch.up();
        ch
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn up(&self) {
        self.script(&["start", "--data", &self.data.path().display().to_string()]);
    }

    pub fn down(&self) {
        self.script(&["stop"]);
    }

    fn script(&self, args: &[&str]) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/clickhouse");
        let status = std::process::Command::new(script)
            .args(args)
            .args(["--port", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/clickhouse {args:?} failed");
    }
}

impl Drop for OwnClickHouse {
    fn drop(&mut self) {
        self.down();
    }
}

/// Waits until something accepts connections on `addr`.
pub async fn wait_for_listener(addr: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {addr}");
}

/// The collector binary. `option_env!`: the aggregator's tests share this file and have none.
fn collector_binary() -> &'static str {
    match option_env!("CARGO_BIN_EXE_footfall-collector") {
        Some(path) => path,
        None => panic!("only the collector's tests start its binary"),
    }
}

/// Starts the collector binary on a free port for `db`, with `extra` options.
pub async fn spawn_collector(db: &TestDb, extra: &[&str]) -> (std::process::Child, SocketAddr) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = std::process::Command::new(collector_binary())
        .args([
            "serve",
            "--dev",
            "--listen",
            &addr.to_string(),
            "--clickhouse-url",
            &db.url,
        ])
        .args([
            "--clickhouse-database",
            &db.name,
            "--data-dir",
            &db.data_dir.path().display().to_string(),
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(addr).await;
    (child, addr)
}

/// Sends `signal` (`TERM`, `KILL`) to a child and waits for it to exit.
pub async fn signal_and_wait(
    mut child: std::process::Child,
    signal: &str,
) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// Bytes of a hex string, as ClickHouse's `hex()` writes them.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
