//! Faults the collector must survive without losing an acknowledged hit: ClickHouse going away
//! under traffic, and the collector itself being killed (`kill -9`) mid-write.

mod common;

use std::time::{Duration, Instant};

use common::{
    OwnClickHouse, Serve, TestDb, Traffic, get, metric, signal_and_wait, spawn_collector,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_for_seconds_under_traffic_loses_and_duplicates_nothing() {
    let clickhouse = OwnClickHouse::start();
    let db = TestDb::on(clickhouse.url());
    let collector = db.start(&["--shutdown-grace-secs", "60"]).await;
    let addr = collector.local_addr();
    let traffic = Traffic::start(addr, "outage", 2, Duration::from_millis(2));
    db.wait_for_count("SELECT count() FROM events", 50).await;

    clickhouse.down();
    let acked_at_outage = traffic.acknowledged();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        traffic.acknowledged() > acked_at_outage + 100,
        "hits are still accepted while ClickHouse is down"
    );
    assert_eq!(
        get(addr, "/readyz", &[]).await.status,
        200,
        "the spool keeps the hits: still ready"
    );
    assert_ne!(
        metric(&collector, "footfall_insert_failures_total").await,
        0,
        "inserts failed meanwhile"
    );

    clickhouse.up();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acknowledged = traffic.stop().await.len() as u64;
    collector.shutdown().await;

    let stored = db
        .count("SELECT count() FROM events WHERE site = 'outage'")
        .await;
    eprintln!("outage: {acknowledged} hits acknowledged, {stored} stored, ClickHouse down for 4 s");
    assert_eq!(stored, acknowledged, "rows = hits acknowledged");
    assert_eq!(
        db.count("SELECT uniqExact(event_id) FROM events").await,
        stored,
        "no duplicates"
    );
    let orphans = db
        .count("SELECT count() FROM events WHERE ip_key_id NOT IN (SELECT key_id FROM ip_keys)")
        .await;
    assert_eq!(orphans, 0, "every sealed IP's key is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_fsync_window_and_replays_no_garbage() {
    const FSYNC_MS: u64 = 100;
    let db = TestDb::new();
    let fsync = FSYNC_MS.to_string();
    // Batches are cut every 5 s: at the kill, most acknowledged hits exist only in the spool.
    let (child, addr) = spawn_collector(
        &db,
        &["--flush-interval-ms", "5000", "--spool-fsync-ms", &fsync],
    )
    .await;
    let traffic = Traffic::start(addr, "crash", 2, Duration::from_millis(1));
    while traffic.acknowledged() < 1000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    let exit = signal_and_wait(child, "KILL").await;
    assert!(!exit.success());
    let acks = traffic.stop().await;

    // A write torn by the crash: half a record at the end of the newest segment.
    let spool = db.data_dir.path().join("spool");
    let mut segments: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let newest = segments.last().expect("the spool has a segment");
    let mut bytes = std::fs::read(newest).unwrap();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]);
    std::fs::write(newest, bytes).unwrap();

    let restarted = db.start(&[]).await;
    let metrics = restarted.metrics().render();
    assert!(
        metrics.contains("footfall_spool_torn_bytes_total 11"),
        "{metrics}"
    );
    restarted.shutdown().await;

    let stored = db
        .count("SELECT count() FROM events WHERE site = 'crash'")
        .await;
    let window = Duration::from_millis(FSYNC_MS + 50);
    let durable = acks.iter().filter(|t| **t + window < killed_at).count() as u64;
    let lost = (acks.len() as u64).saturating_sub(stored);
    eprintln!(
        "kill -9: {} hits acknowledged, {stored} stored, {lost} lost; {durable} were acknowledged over {} ms before the kill",
        acks.len(),
        window.as_millis()
    );
    assert!(
        stored <= acks.len() as u64,
        "nothing is invented: {stored} stored, {} acknowledged",
        acks.len()
    );
    assert!(
        stored >= durable,
        "{stored} stored, but {durable} were acknowledged more than one fsync window before the kill"
    );
    assert_eq!(
        db.count("SELECT uniqExact(event_id) FROM events").await,
        stored,
        "no duplicates"
    );
    let garbage = db
        .count(&format!(
            "SELECT count() FROM events WHERE site != 'crash' OR path != '/load' OR length(ip_sealed) != {}",
            footfall_seal::SEALED_IP_LEN
        ))
        .await;
    assert_eq!(garbage, 0, "no garbage rows");
}
