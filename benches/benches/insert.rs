//! Writing a batch to ClickHouse, as the sink's writer does: the spooled RowBinary rows sent
//! as they are, LZ4, HTTP and the server's insert.
//!
//! This suite calls the writer's own `insert_batch` against a real ClickHouse
//! (FOOTFALL_BENCH_CLICKHOUSE_URL, e.g. one started by `scripts/clickhouse start`; the suite is
//! skipped without it) and reports two clocks per batch:
//!
//! - `wall`: the whole insert, ClickHouse's work included: the ingest rate one writer sustains;
//! - `client_cpu`: CPU time this process spent (the collector's side of the insert: compression
//!   and HTTP; the rows were encoded once, when spooled), measured with CLOCK_PROCESS_CPUTIME_ID
//!   while ClickHouse runs in its own process.
//!
//! Events are made by the real pixel handler (sealed IPs, fresh ids, a few hundred distinct
//! pages), so the compression ratio is a fair one. Each insert carries a fresh deduplication
//! token: a repeated token would make ClickHouse skip the insert.
//!
//! `FOOTFALL_BENCH_CLICKHOUSE_URL=http://127.0.0.1:8123 cargo bench -p footfall-benches --bench insert`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clickhouse::Client;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use footfall_benches::cpu_time::process_cpu_time;
use footfall_benches::fixtures::{app, pixel_request};
use footfall_collector::sink::Queue;
use footfall_collector::sink::batch::Batch;
use footfall_collector::sink::insert::insert_batch;
use footfall_store::id::Id;
use footfall_store::migrations;
use tokio::runtime::Runtime;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH_ROWS: [usize; 2] = [1_000, 10_000];

/// A batch of `rows` events as the pixel handler queues them.
fn batch(rows: usize) -> Batch {
    let queue = Queue::bounded(rows, u64::MAX);
    let app = app(queue.clone(), None);
    let peer: SocketAddr = "10.0.0.1:40000".parse().expect("an address");
    for i in 0..rows {
        let cookie = format!("ff_id={}", Id::random());
        let req = pixel_request(
            &format!("/section-{}/page-{}", i % 7, i % 300),
            Some(&cookie),
        );
        app.handle(&req, peer);
    }
    let (mut bytes, mut ends) = (Vec::new(), Vec::with_capacity(rows));
    while let Some(row) = queue.pop() {
        bytes.extend_from_slice(row.bytes());
        ends.push(u32::try_from(bytes.len()).expect("a bench batch is small"));
    }
    Batch {
        token: Uuid::new_v4(),
        rows: bytes.into(),
        ends,
    }
}

/// Inserts `batch` `iters` times under fresh tokens; returns the CPU time this process spent
/// if `cpu`, else the wall time.
fn timed_inserts(
    rt: &Runtime,
    client: &Client,
    batch: &mut Batch,
    iters: u64,
    cpu: bool,
) -> Duration {
    let (wall, cpu_start) = (Instant::now(), process_cpu_time());
    for _ in 0..iters {
        batch.token = Uuid::new_v4();
        rt.block_on(insert_batch(client, batch))
            .expect("insert into the bench database");
    }
    if cpu {
        process_cpu_time() - cpu_start
    } else {
        wall.elapsed()
    }
}

fn insert(c: &mut Criterion) {
    let Ok(url) = std::env::var("FOOTFALL_BENCH_CLICKHOUSE_URL") else {
        eprintln!("insert: skipped, set FOOTFALL_BENCH_CLICKHOUSE_URL to a ClickHouse to measure");
        return;
    };
    let rt = Runtime::new().expect("a tokio runtime");
    let database = format!("footfall_bench_{}", Id::random().as_str().to_lowercase());
    let server = Client::default().with_url(&url);
    rt.block_on(migrations::migrate(
        &server,
        &database,
        395,
        &Default::default(),
    ))
    .expect("the schema applies");
    let client = server.clone().with_database(&database);

    let mut group = c.benchmark_group("insert");
    group.sample_size(10);
    for rows in BATCH_ROWS {
        let mut batch = batch(rows);
        group.throughput(Throughput::Elements(rows as u64));
        for (name, cpu) in [("wall", false), ("client_cpu", true)] {
            group.bench_function(BenchmarkId::new(name, rows), |b| {
                b.iter_custom(|iters| timed_inserts(&rt, &client, &mut batch, iters, cpu))
            });
        }
    }
    group.finish();
    rt.block_on(
        server
            .query(&format!("DROP DATABASE IF EXISTS {database}"))
            .execute(),
    )
    .expect("the bench database is dropped");
}

criterion_group!(benches, insert);
criterion_main!(benches);
