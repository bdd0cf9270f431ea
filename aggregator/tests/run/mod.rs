//! Running the `footfall-aggregator` binary against a test database, for the integration tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use footfall_store::testing::TestDb;

/// Runs `footfall-aggregator ARGS` against `db` (on its server or cluster), with `db`'s data
/// dir and no key or seed from the environment of the test run.
#[allow(dead_code)] // not every test binary runs it
pub fn aggregator(db: &TestDb, args: &[&str]) -> Output {
    let mut argv: Vec<&str> = args.to_vec();
    if args[0] != "keygen" {
        argv.extend([
            "--clickhouse-url",
            &db.url,
            "--clickhouse-database",
            &db.name,
        ]);
        if let Some(cluster) = db.layout.cluster_name() {
            argv.extend(["--clickhouse-cluster", cluster]);
        }
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_footfall-aggregator"))
        .args(argv)
        .env("FOOTFALL_DATA_DIR", db.data_dir.path())
        .env_remove("FOOTFALL_IP_PRIVATE_KEY")
        .env_remove("FOOTFALL_DP_KEY")
        .output()
        .unwrap()
}

/// The directory of the workspace's debug binaries, with the collector built (it is not a
/// dependency of the aggregator, whose tests run it).
#[allow(dead_code)] // not every test binary runs the collector
pub fn binaries() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_footfall-aggregator"))
        .parent()
        .unwrap()
        .to_owned();
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "footfall-collector",
            "--bin",
            "footfall-collector",
        ])
        .status()
        .unwrap();
    assert!(built.success());
    dir
}

/// A free loopback address.
#[allow(dead_code)]
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The collector binary, `serve --dev` behind 127.0.0.1 as a trusted proxy, stopped when
/// dropped.
#[allow(dead_code)] // not every test binary runs the collector
pub struct Collector {
    child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    _data: Option<tempfile::TempDir>,
}

#[allow(dead_code)]
impl Collector {
    /// Starts it for `database` on ClickHouse at `url`, spooling in `data_dir`, flushing every
    /// 100 ms, with `extra` options; does not wait for it to listen.
    pub fn spawn(url: &str, database: &str, data_dir: &Path, extra: &[&str]) -> Self {
        let (addr, metrics) = (free_addr(), free_addr());
        let child = Command::new(binaries().join("footfall-collector"))
            .args(["serve", "--dev", "--listen", &addr.to_string()])
            .args(["--metrics-listen", &metrics.to_string()])
            .args(["--trusted-proxies", "127.0.0.1"])
            .args(["--clickhouse-url", url, "--clickhouse-database", database])
            .args(["--flush-interval-ms", "100"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            addr,
            metrics,
            _data: None,
        }
    }

    /// [`Collector::spawn`] with a data dir of its own, removed when it is dropped.
    pub fn spawn_in_temp_dir(url: &str, database: &str, extra: &[&str]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut collector = Self::spawn(url, database, data.path(), extra);
        collector._data = Some(data);
        collector
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The standard output of a run that must have succeeded.
#[allow(dead_code)]
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `footfall-aggregator serve` as the binary starts it, in process on a free port, for `db`
/// (its data dir, rollups refreshed only on demand unless `extra` sets `--refresh-secs`).
#[allow(dead_code)] // not every test binary serves the API
pub async fn serve_api(db: &TestDb, extra: &[&str]) -> footfall_aggregator::serve::Server {
    use clap::Parser as _;
    use footfall_aggregator::cli::{Cli, Command};

    let url = footfall_store::testing::clickhouse_url();
    let data_dir = db.data_dir.path().to_str().unwrap();
    let mut argv = vec![
        "footfall-aggregator",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--clickhouse-url",
        &url,
        "--clickhouse-database",
        &db.name,
        "--data-dir",
        data_dir,
    ];
    if !extra.contains(&"--refresh-secs") {
        argv.extend(["--refresh-secs", "0"]);
    }
    argv.extend_from_slice(extra);
    let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!("a serve command")
    };
    footfall_aggregator::serve::start(args).await.unwrap()
}

/// The time now, in Unix milliseconds (as events' `ts`).
#[allow(dead_code)] // not every test binary needs it
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
