//! The in-process pixel path: request parsing → visitor cookie → client IP → sealed IP → event
//! queued, with the response built. No network and no ClickHouse: a thread drains the queue.
//!
//! `cargo bench -p footfall-benches --bench pixel`

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use footfall_collector::enrich::Enricher;
use footfall_collector::hit::privacy::{OptOutCookies, PrivacyPolicy};
use footfall_collector::hit::visitor::{CookiePolicy, CookieWriter};
use footfall_collector::id::Id;
use footfall_collector::metrics::Metrics;
use footfall_collector::routes::{App, now_ms};
use footfall_collector::sealer::Sealer;
use footfall_collector::signing::Signer;
use footfall_collector::sink::{Queue, SinkStatus};
use footfall_seal::SecretKey;
use http::Request;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn app() -> App {
    let cookie_policy = CookiePolicy {
        max_age_days: 395,
        same_site: cookie::SameSite::Lax,
        domain: None,
        secure: true,
    };
    let queue = Queue::bounded(1 << 16);
    let drain = queue.clone();
    std::thread::spawn(move || {
        loop {
            while drain.pop().is_some() {}
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    App {
        cookie: CookieWriter::new(&cookie_policy),
        opt_out_cookies: OptOutCookies::new(&cookie_policy),
        privacy: PrivacyPolicy {
            honor_dnt: true,
            honor_gpc: true,
            consent_required: false,
        },
        signer: Signer::new(&[7; 32]),
        trusted_proxies: "10.0.0.0/8".parse().unwrap(),
        enricher: Enricher::new(None),
        sealer: Arc::new(Sealer::new(
            SecretKey::generate().public_key(),
            60_000,
            now_ms(),
        )),
        queue,
        metrics: Arc::new(Metrics::new()),
        status: Arc::new(SinkStatus::default()),
        allowed_origins: Default::default(),
    }
}

fn pixel_request(cookie: Option<&str>) -> Request<()> {
    let mut req = Request::get(
        "/p.gif?site=shop.example.com&url=https%3A%2F%2Fshop.example.com%2Fshoes%2Fred%3Futm_source%3Dnewsletter%26utm_medium%3Demail&ref=https%3A%2F%2Fwww.google.com%2F&title=Red%20shoes",
    )
    .header("host", "collector.example.com")
    .header("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36")
    .header("accept", "image/avif,image/webp,image/apng,image/*,*/*;q=0.8")
    .header("x-forwarded-for", "203.0.113.77");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.body(()).unwrap()
}

fn pixel(c: &mut Criterion) {
    let app = app();
    let peer: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let mut group = c.benchmark_group("pixel");
    group.throughput(Throughput::Elements(1));
    let new_visitor = pixel_request(None);
    group.bench_function("new_visitor", |b| {
        b.iter(|| black_box(app.handle(black_box(&new_visitor), peer)))
    });
    let returning = pixel_request(Some(&format!(
        "_ga=GA1.2.3; ff_id={}; theme=dark",
        Id::random()
    )));
    group.bench_function("returning_visitor", |b| {
        b.iter(|| black_box(app.handle(black_box(&returning), peer)))
    });
    group.finish();
}

criterion_group!(benches, pixel);
criterion_main!(benches);
