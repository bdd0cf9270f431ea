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
