//! Running the `footfall-aggregator` binary against a test database, for the integration tests.

use std::process::Output;

use footfall_store::testing::{self, TestDb};

/// Runs `footfall-aggregator ARGS` against `db`, with `db`'s data dir and no key or seed from
/// the environment of the test run.
pub fn aggregator(db: &TestDb, args: &[&str]) -> Output {
    let url = testing::clickhouse_url();
    let mut argv: Vec<&str> = args.to_vec();
    if args[0] != "keygen" {
        argv.extend(["--clickhouse-url", &url, "--clickhouse-database", &db.name]);
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_footfall-aggregator"))
        .args(argv)
        .env("FOOTFALL_DATA_DIR", db.data_dir.path())
        .env_remove("FOOTFALL_IP_PRIVATE_KEY")
        .env_remove("FOOTFALL_DP_KEY")
        .output()
        .unwrap()
}

/// The standard output of a run that must have succeeded.
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

    let url = testing::clickhouse_url();
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
