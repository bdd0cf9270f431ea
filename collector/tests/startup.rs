//! What the collector says when it starts: a deployment that lets no page send beacons is
//! warned about, outside `--dev` only.

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use common::TestDb;

/// The collector's log from starting with `args` until it says it listens (then SIGTERM).
async fn start_log(db: &TestDb, args: &[&str]) -> String {
    let port = common::free_addr().port();
    let secret = "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj";
    let public = footfall_seal::SecretKey::generate().public_key().to_text();
    let mut child = Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args([
            "--clickhouse-url",
            &db.url,
            "--clickhouse-database",
            &db.name,
        ])
        .args(["--secret", secret, "--ip-public-key", &public, "--data-dir"])
        .arg(db.data_dir.path())
        .args(args)
        .env_remove("FOOTFALL_ALLOWED_ORIGINS")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Until the line that says it listens: the signal handler is installed by then.
    let log = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap();
                log.push_str(&line);
                log.push('\n');
                if line.contains("collector listening") {
                    break;
                }
            }
            log
        }),
    )
    .await
    .expect("the collector starts within 30 s")
    .unwrap();
    common::signal_and_wait(child, "TERM").await;
    log
}

#[tokio::test]
async fn a_collector_that_allows_no_origin_warns_at_start_outside_dev() {
    let db = TestDb::new();
    let warning = "FOOTFALL_ALLOWED_ORIGINS is empty";
    let none = start_log(&db, &[]).await;
    assert!(none.contains(warning), "{none}");
    let allowed = start_log(&db, &["--allowed-origins", "https://www.example.com"]).await;
    assert!(!allowed.contains(warning), "{allowed}");
    assert!(!start_log(&db, &["--dev"]).await.contains(warning));
}
