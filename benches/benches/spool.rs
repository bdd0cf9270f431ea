//! The spool's cost per event: appending (the RowBinary row + CRC32C framing into the write
//! buffer) and reading a batch back (its frames walked once for what the insert must know
//! first, then read again row by row as the insert sends them, checksummed both times). Both run off the request path, on the appender
//! thread and the inserter; together they bound the sustained ingest rate of one collector.
//! Last, the batch's rows cut into the columns of `Native` blocks, as the insert sends them.
//!
//! `cargo bench -p footfall-benches --bench spool`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use footfall_collector::sink::batch::Rows;
use footfall_collector::sink::spool::{self, SpoolGauge, SpoolOptions};
use footfall_store::event::{Event, Kind};
use uuid::Uuid;

// As in the collector binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 10_000;

fn event(i: usize) -> Event {
    let mut e = Event::new(Kind::Pageview, 1_700_000_000_000 + i as i64);
    e.site = "shop.example.com".into();
    e.visitor_id = "13KUz8PUUxsdP7NvsMSn57".into();
    e.pageview_id = "2ccFrjjMP6V6oOcUCXBLS6".into();
    e.url = "https://shop.example.com/shoes/red?utm_source=newsletter".into();
    e.host = "shop.example.com".into();
    e.path = "/shoes/red".into();
    e.title = "Red shoes".into();
    e.referrer = "https://www.google.com/".into();
    e.referrer_host = "www.google.com".into();
    e.utm_source = "newsletter".into();
    e.ip_key_id = 42;
    e.ip_sealed.0 = Some([7; footfall_seal::SEALED_IP_LEN]);
    e.ip_prefix = "203.0.113.0/24".into();
    e.user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36".into();
    e
}

fn spool_bench(c: &mut Criterion) {
    let events: Vec<Event> = (0..BATCH).map(event).collect();
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("append_and_cut_10k", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let gauge = SpoolGauge::default();
                let (writer, reader, _) =
                    spool::open(dir.path(), SpoolOptions::for_bound(1 << 30), &gauge).unwrap();
                (dir, gauge, writer, reader)
            },
            |(dir, gauge, mut writer, reader)| {
                for e in &events {
                    writer.append_event(e, &gauge);
                }
                writer.cut(Uuid::new_v4(), &gauge).unwrap();
                (dir, writer, reader)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("read_batch_10k", |b| {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, _reader, _) =
            spool::open(dir.path(), SpoolOptions::for_bound(1 << 30), &gauge).unwrap();
        for e in &events {
            writer.append_event(e, &gauge);
        }
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        writer.sync(&gauge).unwrap();
        drop((writer, _reader));
        let (_, mut reader, _) = spool::open(
            dir.path(),
            SpoolOptions::for_bound(1 << 30),
            &SpoolGauge::default(),
        )
        .unwrap();
        // Without a commit the reader stays put: each call reads the same batch again, then
        // its rows, as an insert does.
        b.iter(|| {
            let batch = reader.next_batch().unwrap().unwrap();
            let (mut rows, mut bytes) = (batch.rows().unwrap(), 0);
            while let Some(row) = rows.next_row().unwrap() {
                bytes += row.len();
            }
            black_box(bytes)
        })
    });
    // The rows of a batch cut into the columns of `Native` blocks, as the inserter sends them.
    group.bench_function("native_blocks_10k", |b| {
        let rows: Vec<Vec<u8>> = events
            .iter()
            .map(|e| {
                let mut row = Vec::new();
                footfall_store::row_binary::encode(e, &mut row);
                row
            })
            .collect();
        let mut block = footfall_store::native::Block::new();
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            for row in &rows {
                block.push(row).unwrap();
            }
            block.write_to(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, spool_bench);
criterion_main!(benches);
