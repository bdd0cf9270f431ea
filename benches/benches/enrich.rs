//! Enrichment on the hot path: user-agent classification (cached, as every hit sees it, and
//! uncached, as a new agent costs once, for four common agents and for every agent of the
//! browser corpora; beside it the rules alone and woothee, the parser they replaced), the GeoIP
//! lookup of a client IP, and all of it as a hit pays it ([`Enricher::apply`]: what enrichment
//! adds to the pixel path).
//!
//! The GeoIP database is [`common::city_db::city_database`].
//!
//! `cargo bench -p footfall-benches --bench enrich`

mod common {
    pub mod city_db;
}

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use footfall_benches::ua_corpus::{BROWSER_CORPORA, Corpus};
use footfall_benches::ua_labels::woothee_agent;
use footfall_collector::enrich::Enricher;
use footfall_collector::enrich::bots::is_bot;
use footfall_collector::enrich::client_hints::Hints;
use footfall_collector::enrich::user_agent::{AgentCache, classify, classify_by_rules};
use footfall_store::event::{Event, Kind};

const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

fn user_agent(c: &mut Criterion) {
    let mut group = c.benchmark_group("user_agent");
    group.throughput(Throughput::Elements(AGENTS.len() as u64));
    group.bench_function("uncached", |b| {
        b.iter(|| {
            AGENTS
                .iter()
                .for_each(|ua| drop(black_box(classify(black_box(ua)))))
        })
    });
    group.bench_function("uncached_by_rules", |b| {
        b.iter(|| {
            AGENTS
                .iter()
                .for_each(|ua| drop(black_box(classify_by_rules(black_box(ua)))))
        })
    });
    group.bench_function("uncached_bots_only", |b| {
        b.iter(|| {
            AGENTS
                .iter()
                .for_each(|ua| _ = black_box(is_bot(black_box(ua))))
        })
    });
    group.bench_function("uncached_woothee", |b| {
        b.iter(|| {
            AGENTS
                .iter()
                .for_each(|ua| drop(black_box(woothee_agent(black_box(ua)))))
        })
    });
    let cache = AgentCache::new(10_000);
    group.bench_function("cached", |b| {
        b.iter(|| {
            AGENTS
                .iter()
                .for_each(|ua| drop(black_box(cache.classify(black_box(ua)))))
        })
    });
    group.finish();

    // Every distinct agent of the real-browser corpora, once each: the long tail a flood of
    // new agents would bring, where the common shapes are a minority.
    let corpus: Vec<String> = BROWSER_CORPORA
        .iter()
        .flat_map(|name| {
            let corpus = Corpus::load(name).expect("corpus is vendored");
            corpus.agents().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    let mut group = c.benchmark_group("user_agent_corpus");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.sample_size(10);
    for (name, classify) in [
        ("uncached", classify as fn(&str) -> _),
        ("uncached_by_rules", classify_by_rules),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                corpus
                    .iter()
                    .for_each(|ua| drop(black_box(classify(black_box(ua)))))
            })
        });
    }
    group.finish();
}

fn geoip(c: &mut Criterion) {
    let geoip = common::city_db::city_database();

    let mut group = c.benchmark_group("geoip");
    group.throughput(Throughput::Elements(1));
    let v4: IpAddr = "203.203.7.9".parse().unwrap();
    let v6: IpAddr = "2001:db8::77".parse().unwrap();
    let unknown: IpAddr = "10.1.2.3".parse().unwrap();
    group.bench_function("ipv4_city", |b| {
        b.iter(|| black_box(geoip.lookup(black_box(v4))))
    });
    group.bench_function("ipv6_city", |b| {
        b.iter(|| black_box(geoip.lookup(black_box(v6))))
    });
    group.bench_function("not_found", |b| {
        b.iter(|| black_box(geoip.lookup(black_box(unknown))))
    });
    group.finish();

    let mut group = c.benchmark_group("enricher");
    group.throughput(Throughput::Elements(1));
    let enrichers = [
        ("apply_with_geoip", Enricher::new(Some(geoip))),
        ("apply_without_geoip", Enricher::new(None)),
    ];
    for (name, enricher) in enrichers {
        let mut event = Event::new(Kind::Pageview, 0);
        group.bench_function(name, |b| {
            b.iter(|| {
                enricher.apply(
                    black_box(&mut event),
                    black_box(v4),
                    AGENTS[0],
                    Hints::default(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, user_agent, geoip);
criterion_main!(benches);
