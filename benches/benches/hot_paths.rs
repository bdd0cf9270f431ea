//! The pieces of the pixel path one by one: visitor cookie, query and URL parsing, client-IP
//! resolution and IP sealing. Each bench is one call on realistic input, so a regression in the
//! whole-path bench (`pixel`) can be traced to its piece.
//!
//! `cargo bench -p footfall-benches --bench hot_paths`

use std::hint::black_box;
use std::net::IpAddr;
use std::num::NonZeroU32;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use footfall_benches::cpu_time::ThreadCpuTime;
use footfall_collector::hit::client_ip::{TrustedProxies, network_prefix};
use footfall_collector::hit::page::{KeptParams, Page, Referrer};
use footfall_collector::hit::query::PixelQuery;
use footfall_collector::hit::visitor::{CookiePolicy, CookieWriter, Visitor};
use footfall_collector::rate_limit::RateLimit;
use footfall_collector::routes::now_ms;
use footfall_collector::sealer::Sealer;
use footfall_seal::{EpochKey, SecretKey};
use footfall_store::id::Id;
use http::header::{COOKIE, HeaderMap, HeaderValue};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERY: &str = "site=shop.example.com&url=https%3A%2F%2Fshop.example.com%2Fshoes%2Fred%3Futm_source%3Dnewsletter%26utm_medium%3Demail&ref=https%3A%2F%2Fwww.google.com%2F&title=Red%20shoes";
const PAGE: &str = "https://shop.example.com/shoes/red?utm_source=newsletter&utm_medium=email";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn cookie(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("cookie");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mint", |b| b.iter(Id::random));
    let id = Id::random().to_string();
    group.bench_function("parse_id", |b| b.iter(|| Id::parse(black_box(&id))));
    let returning = headers(&[(
        COOKIE.as_str(),
        &format!("_ga=GA1.2.3; ff_id={id}; theme=dark"),
    )]);
    group.bench_function("visitor_returning", |b| {
        b.iter(|| Visitor::from_headers(black_box(&returning)))
    });
    let new = headers(&[(COOKIE.as_str(), "_ga=GA1.2.3; theme=dark")]);
    group.bench_function("visitor_new", |b| {
        b.iter(|| Visitor::from_headers(black_box(&new)))
    });
    let writer = CookieWriter::new(&CookiePolicy {
        max_age_days: 395,
        same_site: cookie::SameSite::Lax,
        domain: None,
        secure: true,
    });
    let id = Id::random();
    group.bench_function("set_cookie_header", |b| {
        b.iter(|| writer.header(black_box(&id)))
    });
    group.finish();
}

fn parsing(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pixel_query", |b| {
        b.iter(|| PixelQuery::parse(black_box(QUERY)))
    });
    let kept = KeptParams::default();
    group.bench_function("page", |b| b.iter(|| Page::parse(black_box(PAGE), &kept)));
    group.bench_function("referrer", |b| {
        b.iter(|| Referrer::parse(black_box("https://www.google.com/"), &kept, &mut false))
    });
    group.finish();
}

fn client_ip(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("client_ip");
    group.throughput(Throughput::Elements(1));
    let trusted: TrustedProxies = "10.0.0.0/8, 192.168.0.0/16".parse().unwrap();
    let untrusted_peer: IpAddr = "198.51.100.9".parse().unwrap();
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    let none = HeaderMap::new();
    group.bench_function("direct_peer", |b| {
        b.iter(|| trusted.client_ip(black_box(untrusted_peer), black_box(&none)))
    });
    let xff = headers(&[("x-forwarded-for", "203.0.113.77, 192.168.1.1")]);
    group.bench_function("x_forwarded_for", |b| {
        b.iter(|| trusted.client_ip(black_box(proxy), black_box(&xff)))
    });
    let forwarded = headers(&[(
        "forwarded",
        r#"for=203.0.113.77;proto=https, for="[2001:db8::2]:443""#,
    )]);
    group.bench_function("forwarded", |b| {
        b.iter(|| trusted.client_ip(black_box(proxy), black_box(&forwarded)))
    });
    let client: IpAddr = "203.0.113.77".parse().unwrap();
    group.bench_function("network_prefix", |b| {
        b.iter(|| network_prefix(black_box(client)))
    });
    // An allowance no loop of the bench exhausts: every call is a full check that passes.
    let limit = RateLimit::new(NonZeroU32::MAX, NonZeroU32::MAX);
    group.bench_function("rate_limit", |b| {
        b.iter(|| limit.allows(black_box(client), NonZeroU32::MIN))
    });
    group.finish();
}

fn sealing(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(1));
    let public = SecretKey::generate().public_key();
    let ip: IpAddr = "203.0.113.77".parse().unwrap();
    let key = EpochKey::generate(&public);
    group.bench_function("seal_ip", |b| b.iter(|| key.seal_ip(black_box(ip))));
    let sealer = Sealer::new(public.clone(), 60_000, now_ms());
    // A fixed time inside the current epoch: no rotation in the loop, as on all but one hit a minute.
    let now = now_ms();
    group.bench_function("sealer", |b| {
        b.iter(|| sealer.seal(black_box(ip), black_box(now)))
    });
    group.bench_function("epoch_key_generate", |b| {
        b.iter(|| EpochKey::generate(black_box(&public)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cookie, parsing, client_ip, sealing
}
criterion_main!(benches);
