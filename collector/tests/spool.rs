//! The spool and the inserter under the faults that once lost or held back acknowledged hits:
//! a failing disk, damaged records, a commit mark past the end, a backlog under steady traffic,
//! ClickHouse down, hanging or restarted empty at start, two collectors on one data dir, and a
//! batch ClickHouse refuses for good. Every test counts the hits acknowledged against the rows
//! stored and their duplicates.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Proxy, ProxyMode, Serve, TestDb, Traffic, enc, eventually, get, metric, readiness,
    wait_for_schema,
};
use footfall_collector::server::{self, Collector};
use footfall_collector::sink::disk::{DiskFaults, Fault};

const LIMIT: Duration = Duration::from_secs(60);

/// Rows stored for `site`, and how many distinct event ids they have; none while the table
/// does not exist.
async fn stored(db: &TestDb, site: &str) -> (u64, u64) {
    let tables = clickhouse::Client::default()
        .with_url(&db.url)
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'events'")
        .bind(&db.name)
        .fetch_one::<u64>()
        .await
        .unwrap();
    if tables == 0 {
        return (0, 0);
    }
    let rows = db
        .rows(&format!(
            "SELECT count() AS n, uniqExact(event_id) AS u FROM events WHERE site = '{site}'"
        ))
        .await;
    (
        rows[0]["n"].as_u64().unwrap(),
        rows[0]["u"].as_u64().unwrap(),
    )
}

/// Waits until `site` has `n` rows stored (or the limit passes); returns rows and distinct ids.
async fn stored_eventually(db: &TestDb, site: &str, n: u64) -> (u64, u64) {
    eventually(LIMIT, || async { stored(db, site).await.0 >= n }).await;
    stored(db, site).await
}

async fn backlog(collector: &Collector) -> u64 {
    metric(collector, "footfall_spool_backlog_rows").await
}

/// Offsets of the spool's frames in `bytes` (each starts with the sync marker).
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    const SYNC: [u8; 4] = [0xF7, 0x0F, 0xA1, 0xC5];
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == SYNC)
        .map(|(i, _)| i)
        .collect()
}

fn newest_segment(db: &TestDb) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(db.data_dir.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// Sends hits from `clients` connections until `n` are acknowledged; returns how many were.
async fn acknowledge(addr: SocketAddr, site: &str, clients: usize, n: usize) -> u64 {
    let traffic = Traffic::start(addr, site, clients, Duration::ZERO);
    eventually(LIMIT, || async { traffic.acknowledged() >= n }).await;
    traffic.stop().await.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_refuses_hits_loses_none_and_recovers_by_itself() {
    let db = TestDb::new();
    let faults = Arc::new(DiskFaults::default());
    let args = db.serve_args(&["--flush-interval-ms", "20", "--spool-fsync-ms", "20"]);
    let collector = server::start_with_faults(args, faults.clone())
        .await
        .unwrap();
    let addr = collector.local_addr();
    wait_for_schema(addr).await;
    let traffic = Traffic::start(addr, "disk", 2, Duration::from_millis(1));
    stored_eventually(&db, "disk", 50).await;
    let refused = "footfall_hits_rejected_total{reason=\"disk_failing\"}";
    for fault in [Fault::ShortWrite, Fault::NoSpace, Fault::Io] {
        refuses_while_faulty(
            &collector,
            &traffic,
            &faults,
            fault,
            "spool write failing",
            refused,
            async || (),
        )
        .await;
    }
    let acknowledged = traffic.stop().await.len() as u64;
    let failures = metric(&collector, "footfall_spool_write_failures_total").await;
    let lost = metric(&collector, "footfall_spool_lost_events_total").await;
    let skipped = metric(&collector, "footfall_spool_skipped_bytes_total").await;
    let refused = metric(&collector, refused).await;
    collector.shutdown().await;
    let (rows, distinct) = stored(&db, "disk").await;
    eprintln!(
        "failing disk (short write, ENOSPC, EIO): {acknowledged} acknowledged, {rows} stored, {} duplicates, {refused} refused, {failures} write failures",
        rows - distinct
    );
    assert_eq!(rows, acknowledged, "every acknowledged hit is stored");
    assert_eq!(distinct, rows, "none twice");
    assert!(failures >= 3);
    assert_eq!((lost, skipped), (0, 0), "no partial frame was ever read");
}

/// Injects `fault` under `traffic` and checks the collector's answer: `/readyz` 503 saying
/// `why`, the counter `refused` growing; then `during` looks while the fault holds, the fault is
/// cleared (on a failed assertion too, so no write stays stalled), and the collector is ready
/// and acknowledging hits again by itself.
async fn refuses_while_faulty<T>(
    collector: &Collector,
    traffic: &Traffic,
    faults: &DiskFaults,
    fault: Fault,
    why: &str,
    refused: &str,
    during: impl AsyncFnOnce() -> T,
) -> T {
    let addr = collector.local_addr();
    faults.set(Some(fault));
    let cleared = Clear(faults);
    let said = eventually(LIMIT, || async {
        let (status, body) = readiness(addr).await;
        status == 503 && body.contains(why)
    })
    .await;
    assert!(said, "{fault:?}: /readyz says why hits are refused");
    let before = metric(collector, refused).await;
    assert!(
        eventually(LIMIT, || async {
            metric(collector, refused).await > before + 20
        })
        .await,
        "{fault:?}: hits are refused, not acknowledged"
    );
    let seen = during().await;
    drop(cleared);
    assert!(
        eventually(LIMIT, || async { readiness(addr).await.0 == 200 }).await,
        "{fault:?}: recovers by itself"
    );
    let acked = traffic.acknowledged();
    assert!(
        eventually(LIMIT, || async { traffic.acknowledged() > acked + 20 }).await,
        "{fault:?}: hits are acknowledged again"
    );
    seen
}

/// Clears the injected fault when dropped.
struct Clear<'a>(&'a DiskFaults);

impl Drop for Clear<'_> {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_holds_at_most_the_queues_bytes_and_loses_no_acknowledged_hit() {
    const QUEUE_BYTES: u64 = 1 << 20;
    let db = TestDb::new();
    let faults = Arc::new(DiskFaults::default());
    let args = db.serve_args(&[
        "--flush-interval-ms",
        "20",
        "--queue-max-bytes",
        &QUEUE_BYTES.to_string(),
    ]);
    let collector = server::start_with_faults(args, faults.clone())
        .await
        .unwrap();
    let addr = collector.local_addr();
    wait_for_schema(addr).await;
    let traffic = Traffic::start(addr, "stall", 4, Duration::from_millis(1));
    stored_eventually(&db, "stall", 50).await;
    let overloaded = "footfall_hits_rejected_total{reason=\"overloaded\"}";
    let (bytes, depth) = refuses_while_faulty(
        &collector,
        &traffic,
        &faults,
        Fault::Stall,
        "queue full",
        overloaded,
        async || {
            (
                metric(&collector, "footfall_queue_bytes").await,
                metric(&collector, "footfall_queue_depth").await,
            )
        },
    )
    .await;
    assert!(bytes <= QUEUE_BYTES, "{bytes} bytes queued");
    assert!(bytes > QUEUE_BYTES - 8192, "the bytes filled it: {bytes}");
    assert!(depth < 50_000, "not the slots: {depth} rows");
    let acknowledged = traffic.stop().await.len() as u64;
    assert!(
        eventually(LIMIT, || async {
            metric(&collector, "footfall_queue_bytes").await == 0
        })
        .await,
        "every row's room is given back once it is durable"
    );
    let refused = metric(&collector, overloaded).await;
    collector.shutdown().await;
    let (rows, distinct) = stored(&db, "stall").await;
    eprintln!(
        "stalled disk: {acknowledged} acknowledged, {rows} stored, {} duplicates, {refused} refused, {depth} rows in {bytes} bytes queued at the stall",
        rows - distinct
    );
    assert_eq!(rows, acknowledged, "every acknowledged hit is stored");
    assert_eq!(distinct, rows, "none twice");
}

/// Hits spooled while ClickHouse cannot be reached, left in the spool by a shutdown.
async fn spool_hits(db: &TestDb, site: &str, n: usize) -> u64 {
    let down = Proxy::start(&db.url, ProxyMode::Refuse).await;
    let args = db.serve_args_via(
        &down.url(),
        &["--shutdown-grace-secs", "0", "--batch-rows", "100"],
    );
    let collector = server::start(args).await.unwrap();
    let acknowledged = acknowledge(collector.local_addr(), site, 2, n).await;
    let report = collector.shutdown().await;
    assert!(report.bytes_left > 0, "the hits wait in the spool");
    acknowledged
}

/// Starts a collector on the real ClickHouse, waits until the spool is drained, and stops it;
/// returns the named counters as they were.
async fn drain_spool(db: &TestDb, counters: &[&str]) -> Vec<u64> {
    let collector: Collector = db.start(&[]).await;
    assert!(eventually(LIMIT, || async { backlog(&collector).await == 0 }).await);
    let mut values = Vec::new();
    for name in counters {
        values.push(metric(&collector, name).await);
    }
    collector.shutdown().await;
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_damage_costs_at_most_its_batch_and_is_counted_once() {
    type Damage = fn(&mut Vec<u8>, usize);
    let kinds: [(&str, Damage); 4] = [
        ("bad length field", |b, at| b[at + 4..at + 8].fill(0xff)),
        ("4 KiB zeroed", |b, at| b[at..at + 4096].fill(0)),
        ("100 bytes cut out", |b, at| {
            b.drain(at + 10..at + 110);
        }),
        ("one flipped bit", |b, at| b[at + 20] ^= 0x10),
    ];
    for (name, damage) in kinds {
        let db = TestDb::new();
        let site = "damage";
        let acknowledged = spool_hits(&db, site, 3000).await;
        let segment = newest_segment(&db);
        let mut bytes = std::fs::read(&segment).unwrap();
        let starts = frame_starts(&bytes);
        let at = starts[starts.len() * 3 / 10];
        damage(&mut bytes, at);
        std::fs::write(&segment, bytes).unwrap();

        let counters = drain_spool(
            &db,
            &[
                "footfall_spool_corrupt_records_total",
                "footfall_spool_skipped_bytes_total",
            ],
        )
        .await;
        let (rows, distinct) = stored(&db, site).await;
        let lost = acknowledged - rows;
        eprintln!(
            "{name} 30 % into the segment: {acknowledged} acknowledged, {rows} stored, {lost} lost, {} duplicates, {} damaged stretch(es) of {} bytes skipped",
            rows - distinct,
            counters[0],
            counters[1]
        );
        assert!(lost <= 100, "{name}: at most the damaged batch is lost");
        assert_eq!(distinct, rows, "{name}: none twice");
        assert_eq!(counters[0], 1, "{name}: counted once");
        assert!(counters[1] > 0, "{name}: the skipped bytes are counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_mark_past_the_end_is_repaired_and_later_hits_are_stored() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let before = acknowledge(collector.local_addr(), "before", 2, 500).await;
    assert_eq!(stored_eventually(&db, "before", before).await.0, before);
    collector.shutdown().await;
    // Power loss: the commit mark made it to disk, the end of the segment did not.
    let segment = newest_segment(&db);
    let len = std::fs::metadata(&segment).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let repairs = metric(&collector, "footfall_spool_commit_mark_repairs_total").await;
    let after = acknowledge(addr, "after", 2, 500).await;
    let (rows, distinct) = stored_eventually(&db, "after", after).await;
    collector.shutdown().await;
    eprintln!(
        "commit mark past the end: {after} acknowledged after the restart, {rows} stored, {} duplicates",
        rows - distinct
    );
    assert_eq!(repairs, 1, "detected and counted");
    assert_eq!(rows, after, "nothing stalls behind the mark");
    assert_eq!(distinct, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_while_traffic_goes_on() {
    let db = TestDb::new();
    let proxy = Proxy::start(&db.url, ProxyMode::Forward).await;
    let args = db.serve_args_via(&proxy.url(), &["--flush-interval-ms", "200"]);
    let collector = server::start(args).await.unwrap();
    let addr = collector.local_addr();
    wait_for_schema(addr).await;
    let traffic = Traffic::start(addr, "drain", 1, Duration::from_millis(2));
    stored_eventually(&db, "drain", 50).await;

    proxy.set(ProxyMode::Refuse);
    let outage = Instant::now();
    assert!(eventually(LIMIT, || async { backlog(&collector).await >= 2000 }).await);
    let rate = traffic.acknowledged() as f64 / outage.elapsed().as_secs_f64();
    proxy.set(ProxyMode::Forward);
    let restored = Instant::now();
    let backlog_at_restore = backlog(&collector).await;
    let acked_at_restore = traffic.acknowledged();
    // Empty means at most what two flush intervals bring in.
    let empty = (rate * 0.4).max(50.0) as u64;
    let drained = eventually(LIMIT, || async { backlog(&collector).await <= empty }).await;
    let drain_secs = restored.elapsed().as_secs_f64();
    let incoming = traffic.acknowledged() - acked_at_restore;
    let still_coming = traffic.acknowledged();
    assert!(
        eventually(LIMIT, || async {
            traffic.acknowledged() > still_coming + 20
        })
        .await,
        "traffic went on throughout"
    );
    let acknowledged = traffic.stop().await.len() as u64;
    collector.shutdown().await;
    let (rows, distinct) = stored(&db, "drain").await;
    let drain_rate = (backlog_at_restore + incoming as u64) as f64 / drain_secs;
    let incoming_rate = incoming as f64 / drain_secs;
    eprintln!(
        "drain: backlog {backlog_at_restore} rows at restore, emptied in {drain_secs:.2} s while {incoming} hits arrived ({incoming_rate:.0}/s): {drain_rate:.0} rows/s, {:.1}x the incoming rate; {acknowledged} acknowledged, {rows} stored, {} duplicates",
        drain_rate / incoming_rate.max(1.0),
        rows - distinct
    );
    assert!(drained, "the backlog empties while hits keep arriving");
    assert_eq!(rows, acknowledged);
    assert_eq!(distinct, rows);

    // Caught up, an insert asks ClickHouse for a lower priority (the default nice value, 10);
    // the backlog's inserts, merged or retried, ask for nothing.
    let inserts = event_inserts(&db).await;
    let (largest_rows, largest_nice) = inserts.iter().max().unwrap();
    assert!(
        inserts.iter().any(|(_, nice)| nice == "10"),
        "no insert asked for a lower priority: {inserts:?}"
    );
    assert_eq!(
        largest_nice, "",
        "the largest insert ({largest_rows} rows, the backlog) asked for a lower priority"
    );
}

/// A ClickHouse whose profile fixes the thread priority (as a hosted one may) refuses the first
/// caught-up insert that asks for a lower one. The insert is retried at ClickHouse's own
/// priority and stored, and the collector stops asking: one failed insert in all, however many
/// batches follow. The test servers of `scripts/clickhouse` define the `fixed_priority` user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clickhouse_that_fixes_the_priority_takes_every_insert_at_its_own() {
    let db = TestDb::new();
    let collector = db.start(&["--clickhouse-user", "fixed_priority"]).await;
    let addr = collector.local_addr();
    let mut acknowledged = 0;
    for _ in 0..3 {
        acknowledged += acknowledge(addr, "fixed", 2, 200).await;
        stored_eventually(&db, "fixed", acknowledged).await;
    }
    // ClickHouse shows the rows before the collector has read its answer and counted the insert.
    assert!(
        eventually(LIMIT, || async {
            metric(&collector, "footfall_rows_written_total").await >= acknowledged
        })
        .await,
        "the collector counts every stored row as written"
    );
    let failures = metric(&collector, "footfall_insert_failures_total").await;
    let batches = metric(&collector, "footfall_batches_written_total").await;
    collector.shutdown().await;
    let (rows, distinct) = stored(&db, "fixed").await;
    eprintln!(
        "fixed priority: {acknowledged} acknowledged, {rows} stored, {batches} inserts, {failures} failed"
    );
    assert_eq!(rows, acknowledged, "every acknowledged hit is stored");
    assert_eq!(distinct, rows, "none twice");
    assert!(batches >= 3, "several inserts after the refusal: {batches}");
    assert_eq!(
        failures, 1,
        "the lower priority was asked for again after ClickHouse refused it"
    );
}

/// Every insert into `events` ClickHouse finished for `db`: rows written, and the nice value it
/// was asked to run at (empty if none; newer servers log the setting by its newer name).
async fn event_inserts(db: &TestDb) -> Vec<(u64, String)> {
    db.server()
        .query("SYSTEM FLUSH LOGS")
        .execute()
        .await
        .unwrap();
    db.rows(&format!(
        "SELECT toUInt32(written_rows) AS rows,
            concat(Settings['os_thread_priority'], Settings['os_threads_nice_value_query']) AS nice
         FROM system.query_log
         WHERE type = 'QueryFinish' AND current_database = '{}' AND query LIKE 'INSERT INTO events %'",
        db.name
    ))
    .await
    .iter()
    .map(|row| (row["rows"].as_u64().unwrap(), row["nice"].as_str().unwrap().to_owned()))
    .collect()
}

/// A ClickHouse that stores every insert but answers later than the insert's deadline: each
/// attempt is abandoned, and with the same deadline every time the batch would be sent forever
/// and never committed. Each timeout doubles the next attempt's deadline, so it gets through,
/// stored once although ClickHouse took every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_slower_than_its_deadline_gets_more_time_until_stored_once() {
    let db = TestDb::new();
    let proxy = Proxy::start(&db.url, ProxyMode::Forward).await;
    let args = db.serve_args_via(
        &proxy.url(),
        &["--insert-timeout-ms", "200", "--flush-interval-ms", "100"],
    );
    let collector = server::start(args).await.unwrap();
    let addr = collector.local_addr();
    wait_for_schema(addr).await;
    proxy.set(ProxyMode::Slow(Duration::from_millis(400)));
    let acknowledged = acknowledge(addr, "slow", 2, 300).await;
    assert!(
        eventually(LIMIT, || async { backlog(&collector).await == 0 }).await,
        "the backlog is committed in the end"
    );
    let timeouts = metric(&collector, "footfall_insert_timeouts_total").await;
    collector.shutdown().await;
    let (rows, distinct) = stored(&db, "slow").await;
    eprintln!(
        "slow ClickHouse: {acknowledged} acknowledged, {rows} stored, {} duplicates, {timeouts} inserts abandoned at their deadline",
        rows - distinct
    );
    assert!(timeouts >= 2, "the first deadlines were too short");
    assert_eq!(rows, acknowledged, "every acknowledged hit is stored");
    assert_eq!(distinct, rows, "none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_and_spools_while_clickhouse_hangs_or_is_down() {
    let db = TestDb::new();
    let proxy = Proxy::start(&db.url, ProxyMode::Freeze).await;
    let started = Instant::now();
    let collector = server::start(db.serve_args_via(&proxy.url(), &[]))
        .await
        .unwrap();
    let addr = collector.local_addr();
    let start_secs = started.elapsed().as_secs_f64();
    let traffic = Traffic::start(addr, "early", 2, Duration::from_millis(2));
    assert!(eventually(LIMIT, || async { traffic.acknowledged() >= 200 }).await);
    let (status, body) = readiness(addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("schema not applied"), "{body}");
    proxy.set(ProxyMode::Refuse);
    let acked = traffic.acknowledged();
    assert!(eventually(LIMIT, || async { traffic.acknowledged() >= acked + 200 }).await);
    proxy.set(ProxyMode::Forward);
    wait_for_schema(addr).await;
    let acknowledged = traffic.stop().await.len() as u64;
    let (rows, distinct) = stored_eventually(&db, "early", acknowledged).await;
    collector.shutdown().await;
    eprintln!(
        "start with ClickHouse frozen, then down, then up: listening after {start_secs:.2} s; {acknowledged} acknowledged, {rows} stored, {} duplicates",
        rows - distinct
    );
    assert!(start_secs < 5.0, "start does not wait for ClickHouse");
    assert_eq!(rows, acknowledged);
    assert_eq!(distinct, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropped_under_the_collector_is_created_again() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let before = acknowledge(addr, "before", 2, 300).await;
    assert_eq!(stored_eventually(&db, "before", before).await.0, before);
    clickhouse::Client::default()
        .with_url(&db.url)
        .query(&format!("DROP DATABASE {} SYNC", db.name))
        .execute()
        .await
        .unwrap();
    let after = acknowledge(addr, "after", 2, 300).await;
    let (rows, distinct) = stored_eventually(&db, "after", after).await;
    let applied = metric(&collector, "footfall_schema_applied_total").await;
    collector.shutdown().await;
    eprintln!(
        "database dropped: {after} acknowledged after the drop, {rows} stored, {} duplicates; schema applied {applied} times",
        rows - distinct
    );
    assert_eq!(
        rows, after,
        "inserts resume once the schema is applied again"
    );
    assert_eq!(distinct, rows);
    assert_eq!(applied, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_collector_on_the_same_data_dir_refuses_to_start() {
    let db = TestDb::new();
    let first = db.start(&[]).await;
    let second = server::start(db.serve_args(&[])).await;
    let error = second
        .err()
        .expect("the second collector does not start")
        .to_string();
    assert!(error.contains("another collector"), "{error}");
    let acknowledged = acknowledge(first.local_addr(), "one", 1, 100).await;
    let (rows, distinct) = stored_eventually(&db, "one", acknowledged).await;
    first.shutdown().await;
    assert_eq!((rows, distinct), (acknowledged, acknowledged));
    db.start(&[]).await.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_good_is_quarantined_and_replayed_once_fixed() {
    let db = TestDb::new();
    let collector = db.start(&["--flush-interval-ms", "50"]).await;
    let addr = collector.local_addr();
    let client = db.client();
    client
        .query("ALTER TABLE events ADD CONSTRAINT no_poison CHECK path != '/poison'")
        .execute()
        .await
        .unwrap();
    let traffic = Traffic::start(addr, "q", 2, Duration::from_millis(2));
    stored_eventually(&db, "q", 50).await;
    let poison = format!("/p.gif?site=q&url={}", enc("https://example.com/poison"));
    assert!(get(addr, &poison, &[]).await.visitor_cookie().is_some());
    assert!(
        eventually(LIMIT, || async {
            metric(&collector, "footfall_batches_quarantined_total").await >= 1
        })
        .await,
        "the refused batch is quarantined"
    );
    let (_, body) = readiness(addr).await;
    assert!(body.contains("replay-quarantine"), "{body}");
    let after_quarantine = stored(&db, "q").await.0;
    assert!(
        eventually(LIMIT, || async {
            stored(&db, "q").await.0 > after_quarantine + 50
        })
        .await,
        "later batches are not held behind it"
    );
    let acknowledged = traffic.stop().await.len() as u64 + 1;
    assert!(eventually(LIMIT, || async { backlog(&collector).await == 0 }).await);
    let quarantined = metric(&collector, "footfall_rows_quarantined_total").await;
    let (rows_before, _) = stored(&db, "q").await;
    assert_eq!(
        rows_before + quarantined,
        acknowledged,
        "every hit is stored or quarantined"
    );

    client
        .query("ALTER TABLE events DROP CONSTRAINT no_poison")
        .execute()
        .await
        .unwrap();
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args(["spool", "replay-quarantine", "--data-dir"])
        .arg(db.data_dir.path())
        .args([
            "--clickhouse-url",
            &db.url,
            "--clickhouse-database",
            &db.name,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{out}");
    collector.shutdown().await;
    let (rows, distinct) = stored(&db, "q").await;
    eprintln!(
        "refused batch: {acknowledged} acknowledged, {rows_before} stored and {quarantined} quarantined, {rows} stored after the replay, {} duplicates",
        rows - distinct
    );
    assert_eq!(rows, acknowledged);
    assert_eq!(distinct, rows);
    let left = std::fs::read_dir(db.data_dir.path().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "replayed batches leave the quarantine");
}

/// The collector on a real full disk: its data dir on a small tmpfs in a mount namespace of its
/// own (`unshare -rm`), filled by a file from outside through `/proc/PID/root`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_tmpfs_refuses_hits_and_recovers_when_space_returns() {
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"])
        .stderr(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED a_full_tmpfs_…: this machine does not let an unprivileged user mount a tmpfs \
             (unshare -rm); the fault-layer test a_failing_disk_… covers a failing disk everywhere"
        );
        return;
    }
    let db = TestDb::new();
    let data = db.data_dir.path().display().to_string();
    let (addr, metrics) = (common::free_addr(), common::free_addr());
    let script = format!("mount -t tmpfs -o size=8m tmpfs '{data}' && exec \"$0\" \"$@\"");
    let child = std::process::Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            &script,
            env!("CARGO_BIN_EXE_footfall-collector"),
        ])
        .args(["serve", "--dev", "--listen", &addr.to_string()])
        .args([
            "--clickhouse-url",
            &db.url,
            "--clickhouse-database",
            &db.name,
        ])
        .args(["--data-dir", &data, "--flush-interval-ms", "50"])
        .args(["--metrics-listen", &metrics.to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_listener(addr).await;
    wait_for_schema(addr).await;
    let traffic = Traffic::start(addr, "tmpfs", 2, Duration::from_millis(1));
    stored_eventually(&db, "tmpfs", 50).await;

    // Another file takes all the free space.
    let filler = format!("/proc/{}/root{data}/filler", child.id());
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    drop(file);
    let refused = "footfall_hits_rejected_total{reason=\"disk_failing\"}";
    let said = eventually(LIMIT, || async {
        let (status, body) = readiness(addr).await;
        status == 503 && body.contains("spool write failing")
    })
    .await;
    assert!(said, "/readyz says the disk fails");
    assert!(
        eventually(LIMIT, || async {
            common::metric_at(metrics, refused).await > 20
        })
        .await
    );
    std::fs::remove_file(&filler).unwrap();
    assert!(
        eventually(LIMIT, || async { readiness(addr).await.0 == 200 }).await,
        "recovers by itself once there is space"
    );
    let acked = traffic.acknowledged();
    assert!(eventually(LIMIT, || async { traffic.acknowledged() > acked + 20 }).await);
    let acknowledged = traffic.stop().await.len() as u64;
    let refused = common::metric_at(metrics, refused).await;
    common::signal_and_wait(child, "TERM").await;
    let (rows, distinct) = stored(&db, "tmpfs").await;
    eprintln!(
        "full tmpfs: {acknowledged} acknowledged, {rows} stored, {} duplicates, {refused} refused while full",
        rows - distinct
    );
    assert_eq!(rows, acknowledged);
    assert_eq!(distinct, rows);
}

/// A collector that stopped between an insert and its commit (a crash, or a commit mark the
/// full disk would not take) replays that batch alone under its own token: merged with the
/// batches behind it under a new token, its rows would be stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stored_before_its_commit_is_replayed_alone_and_stored_once() {
    use footfall_collector::sink::insert::insert_events;
    use footfall_collector::sink::spool::{self, SpoolGauge, SpoolOptions};
    use footfall_store::event::{Event, Kind};

    let db = TestDb::new();
    db.start(&[]).await.shutdown().await;
    let gauge = SpoolGauge::default();
    let (mut writer, mut reader, _) = spool::open(
        &db.data_dir.path().join("spool"),
        SpoolOptions::for_bound(1 << 30),
        &gauge,
    )
    .unwrap();
    let now = footfall_collector::routes::now_ms();
    for batch in 0..3 {
        for i in 0..5 {
            let mut event = Event::new(Kind::Pageview, now + batch * 10 + i);
            event.event_id = uuid::Uuid::new_v4();
            event.site = "resumed".into();
            event.path = "/load".into();
            writer.append_event(&event, &gauge);
        }
        writer.cut(uuid::Uuid::new_v4(), &gauge).unwrap();
    }
    writer.sync(&gauge).unwrap();
    let first = reader.next_batch().unwrap().expect("a batch");
    insert_events(&db.client(), first.token, [first.rows()], |_| true)
        .await
        .unwrap();
    drop((writer, reader));

    drain_spool(&db, &[]).await;
    assert_eq!(stored(&db, "resumed").await, (15, 15), "every event once");
}

/// The spool keeps an event only until it is stored: segments rotate after 10 s and are
/// deleted once every batch in them is committed, so a person's hits do not linger on the
/// collector's disk (where `subject erase`, which works on ClickHouse, could not reach them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_events_leave_the_spool_within_a_segments_age() {
    let db = TestDb::new();
    let collector = db.start(&["--flush-interval-ms", "50"]).await;
    let addr = collector.local_addr();
    let page = format!("/p.gif?site=lingering&url={}", enc("https://example.com/"));
    let first = get(addr, &page, &[]).await;
    let id = first.visitor_cookie().expect("a visitor id");
    let cookie = format!("ff_id={id}");
    for _ in 0..3 {
        get(addr, &page, &[("cookie", &cookie)]).await;
    }
    let theirs = format!("SELECT count() FROM events WHERE visitor_id = '{id}'");
    db.wait_for_count(&theirs, 4).await;
    let spool = db.data_dir.path().join("spool");
    let held = || {
        std::fs::read_dir(&spool)
            .unwrap()
            .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
            .any(|bytes| bytes.windows(id.len()).any(|w| w == id.as_bytes()))
    };
    assert!(held(), "the test can see the visitor in the spool");
    // Others' hits go on, so batches are cut and segments rotate.
    let traffic = Traffic::start(addr, "others", 1, Duration::from_millis(20));
    let gone = eventually(Duration::from_secs(40), || async { !held() }).await;
    traffic.stop().await;
    collector.shutdown().await;
    assert!(gone, "the visitor's stored hits are still in the spool");
}
