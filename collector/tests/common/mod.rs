//! Shared helpers for the collector's integration tests: collectors started with real
//! command-line options on a throwaway database (`footfall_store::testing`), and a minimal HTTP
//! client.
#![allow(dead_code)] // each test binary uses a different subset

pub mod mmdb;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser as _;
use footfall_collector::config::{Cli, ServeArgs};
use footfall_collector::server::{self, Collector};
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[allow(unused_imports)] // each test binary uses a different subset
pub use footfall_store::testing::http::{Answer, get, post, request};
#[allow(unused_imports)]
pub use footfall_store::testing::proxy::{Proxy, ProxyMode};
#[allow(unused_imports)]
pub use footfall_store::testing::{TestDb, clickhouse_url, unhex};

/// Collectors for a [`TestDb`], started with real command-line options.
pub trait Serve {
    /// The options of `footfall-collector serve --dev` for this database, plus `extra`.
    fn serve_args(&self, extra: &[&str]) -> ServeArgs;
    /// [`Serve::serve_args`], with the collector reaching ClickHouse at `url` (a [`Proxy`]).
    fn serve_args_via(&self, url: &str, extra: &[&str]) -> ServeArgs;
    /// The options of `footfall-collector serve` as in production (keys given, not made), plus
    /// `extra`.
    fn production_args(&self, extra: &[&str]) -> ServeArgs;
    /// Starts a collector and waits until it has applied the schema.
    async fn start(&self, extra: &[&str]) -> Collector;
}

impl Serve for TestDb {
    fn serve_args(&self, extra: &[&str]) -> ServeArgs {
        args(self, &self.url, &["--dev"], extra)
    }

    fn serve_args_via(&self, url: &str, extra: &[&str]) -> ServeArgs {
        args(self, url, &["--dev"], extra)
    }

    fn production_args(&self, extra: &[&str]) -> ServeArgs {
        let ip_public_key = footfall_seal::SecretKey::generate().public_key().to_text();
        let secret = "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj";
        args(
            self,
            &self.url,
            &["--secret", secret, "--ip-public-key", &ip_public_key],
            extra,
        )
    }

    async fn start(&self, extra: &[&str]) -> Collector {
        let collector = server::start(self.serve_args(extra))
            .await
            .expect("collector starts");
        wait_for_schema(collector.local_addr()).await;
        collector
    }
}

fn args(db: &TestDb, url: &str, mode: &[&str], extra: &[&str]) -> ServeArgs {
    let data_dir = db.data_dir.path().display().to_string();
    let mut argv = vec![
        "footfall-collector",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--clickhouse-url",
        url,
        "--clickhouse-database",
        &db.name,
        "--data-dir",
        &data_dir,
    ];
    if !extra.contains(&"--flush-interval-ms") {
        argv.extend_from_slice(&["--flush-interval-ms", "100"]);
    }
    if !extra.contains(&"--metrics-listen") {
        argv.extend_from_slice(&["--metrics-listen", "127.0.0.1:0"]);
    }
    argv.extend_from_slice(mode);
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(footfall_collector::config::Command::Serve(args)) => *args,
        _ => unreachable!(),
    }
}

/// What the collector's `/metrics` (on its metrics address) says.
pub async fn metrics_text(collector: &Collector) -> String {
    metrics_text_at(
        collector
            .metrics_addr()
            .expect("the collector serves /metrics"),
    )
    .await
}

/// What `/metrics` at `at` (a collector's metrics address) says.
pub async fn metrics_text_at(at: SocketAddr) -> String {
    let answer = get(at, "/metrics", &[]).await;
    assert_eq!(answer.status, 200);
    String::from_utf8(answer.body.to_vec()).unwrap()
}

/// The value of the sample `name` (with its labels) in the collector's `/metrics`.
pub async fn metric(collector: &Collector, name: &str) -> u64 {
    sample(&metrics_text(collector).await, name)
}

/// The value of the sample `name` in `/metrics` at `at`.
pub async fn metric_at(at: SocketAddr, name: &str) -> u64 {
    sample(&metrics_text_at(at).await, name)
}

fn sample(metrics: &str, name: &str) -> u64 {
    let line = metrics
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("{name} in {metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `footfall-collector sign customer --id ID --site SITE` with the secret in `data_dir`: the
/// link, and what it says on standard error.
pub fn sign_customer(id: &str, site: &str, data_dir: &str) -> (String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args([
            "sign",
            "customer",
            "--id",
            id,
            "--site",
            site,
            "--data-dir",
            data_dir,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        String::from_utf8(out.stderr).unwrap(),
    )
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

/// A loopback address nothing listens on now.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Starts the collector binary on a free port for `db`, with `extra` options.
pub async fn spawn_collector(db: &TestDb, extra: &[&str]) -> (std::process::Child, SocketAddr) {
    let addr = free_addr();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
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
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_listener(addr).await;
    wait_for_schema(addr).await;
    (child, addr)
}

/// Waits until the collector at `addr` says (in `/readyz`) that it has applied the schema.
pub async fn wait_for_schema(addr: SocketAddr) {
    for _ in 0..400 {
        let ready = get(addr, "/readyz", &[]).await;
        if !String::from_utf8_lossy(&ready.body).contains("schema not applied") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the collector at {addr} did not apply the schema");
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

/// Polls `check` every 50 ms until it holds, for at most `limit`; false if it never did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

/// The body of `/readyz` and its status.
pub async fn readiness(addr: SocketAddr) -> (u16, String) {
    let answer = get(addr, "/readyz", &[]).await;
    (
        answer.status.as_u16(),
        String::from_utf8_lossy(&answer.body).into_owned(),
    )
}
