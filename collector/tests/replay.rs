//! A batch the collector inserts again (replayed from its spool after a crash, or retried after
//! an answer that never arrived) is stored once: in `events`, and in every rollup the
//! materialized views fill from it (`traffic_keyed_daily`, with its visitor and network states),
//! so a replay cannot inflate a report.

mod common;

use common::TestDb;
use footfall_collector::sink::batch::Batch;
use footfall_collector::sink::insert::insert_batch;
use footfall_store::event::{Event, Kind};

/// 2026-03-02T10:00:00Z in milliseconds.
const T0: i64 = 1_772_445_600_000;

fn pageview(n: i64) -> Event {
    let mut e = Event::new(Kind::Pageview, T0 + n * 1000);
    e.site = "shop".into();
    e.visitor_id = format!("visitor{n:015}").into();
    e.host = "shop.example".into();
    e.path = "/".into();
    e.ip_prefix = format!("192.0.{}.0/24", n % 3).into();
    e.url = "https://shop.example/".into();
    e
}

#[tokio::test]
async fn a_batch_inserted_twice_with_its_token_counts_once_in_events_and_rollups() {
    let db = TestDb::new();
    db.migrate().await;
    let events: Vec<Event> = (0..7).map(pageview).collect();
    let batch = Batch::of(uuid::Uuid::new_v4(), &events);
    // As on a server where asynchronous inserts are on by default, which would skip the token.
    let client = db.client().with_setting("async_insert", "1");
    for _ in 0..3 {
        insert_batch(&client, &batch).await.unwrap();
    }
    assert_eq!(db.count("SELECT count() FROM events").await, 7);
    assert_eq!(
        db.count("SELECT sum(hits) FROM traffic_keyed_daily WHERE dimension = 'all'")
            .await,
        7,
        "the rollup counts each page view once"
    );
    assert_eq!(
        db.count(
            "SELECT uniqExactMerge(visitors) FROM traffic_keyed_daily WHERE dimension = 'all'"
        )
        .await,
        7
    );
    assert_eq!(
        db.count(
            "SELECT uniqExactMerge(networks) FROM traffic_keyed_daily WHERE dimension = 'all'"
        )
        .await,
        3
    );

    // The same rows under a new token are a new batch: stored again, counted again.
    let again = Batch::of(uuid::Uuid::new_v4(), &events);
    insert_batch(&client, &again).await.unwrap();
    assert_eq!(
        db.count("SELECT sum(hits) FROM traffic_keyed_daily WHERE dimension = 'all'")
            .await,
        14
    );
}
