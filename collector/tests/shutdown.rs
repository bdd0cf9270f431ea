//! SIGTERM under traffic: every hit the collector answered is in ClickHouse after it exits.

mod common;

use std::time::Duration;

use common::{TestDb, Traffic, signal_and_wait, spawn_collector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_traffic_loses_no_acknowledged_hit() {
    let db = TestDb::new();
    // A long flush interval and big batches: most hits are still unwritten at SIGTERM.
    let (child, addr) = spawn_collector(
        &db,
        &["--flush-interval-ms", "10000", "--batch-rows", "100000"],
    )
    .await;
    let traffic = Traffic::start(addr, "shutdown", 4, Duration::ZERO);
    while traffic.acknowledged() < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = signal_and_wait(child, "TERM").await;
    let acknowledged = traffic.stop().await.len() as u64;
    assert!(exit.success(), "collector exited with {exit}");

    let stored = db
        .count("SELECT count() FROM events WHERE site = 'shutdown'")
        .await;
    assert_eq!(
        stored, acknowledged,
        "every acknowledged hit is stored, and nothing else"
    );
    let distinct = db.count("SELECT uniqExact(event_id) FROM events").await;
    assert_eq!(distinct, stored, "no duplicates");
}
