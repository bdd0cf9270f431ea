//! The in-process pixel path: request parsing → visitor cookie → client IP → sealed IP → event
//! queued, with the response built. No network and no ClickHouse: a thread drains the queue.
//! Without a GeoIP database, and once more with one ([`common::city_db`]) for a returning visitor.
//!
//! `cargo bench -p footfall-benches --bench pixel`

mod common {
    pub mod city_db;
}

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use footfall_benches::cpu_time::ThreadCpuTime;
use footfall_benches::fixtures::{app, pixel_request};
use footfall_collector::sink::Queue;
use footfall_store::id::Id;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn pixel(c: &mut Criterion<ThreadCpuTime>) {
    let queue = Queue::bounded(1 << 16, u64::MAX);
    let drain = queue.clone();
    // Runs for the life of the bench process, as the writer does in the server.
    std::thread::spawn(move || {
        loop {
            while let Some(row) = drain.pop() {
                drain.release(row.bytes().len() as u64);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let plain = app(queue.clone(), None);
    let peer: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let mut group = c.benchmark_group("pixel");
    group.throughput(Throughput::Elements(1));
    let new_visitor = pixel_request("/shoes/red", None);
    group.bench_function("new_visitor", |b| {
        b.iter(|| black_box(plain.handle(black_box(&new_visitor), peer)))
    });
    let returning = pixel_request(
        "/shoes/red",
        Some(&format!("_ga=GA1.2.3; ff_id={}; theme=dark", Id::random())),
    );
    group.bench_function("returning_visitor", |b| {
        b.iter(|| black_box(plain.handle(black_box(&returning), peer)))
    });
    let with_geoip = app(queue, Some(common::city_db::city_database()));
    group.bench_function("returning_visitor_geoip", |b| {
        b.iter(|| black_box(with_geoip.handle(black_box(&returning), peer)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = pixel
}
criterion_main!(benches);
