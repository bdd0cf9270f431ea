//! The collector's own RowBinary encoder and the `Native` blocks the insert makes of its rows,
//! against the real ClickHouse and against the crate they replace: events holding the edge
//! values of every column type (empty, long and non-ASCII strings, lengths past one LEB128
//! byte, maps empty and full, integer extremes, both booleans, a sealed IP or none; times within
//! the retention period, which would drop older rows) are inserted once through the collector's
//! insert (spooled rows, cut into columns) and once through the `clickhouse` crate's typed
//! insert, into two databases; every column must read back the same, and as set.

mod common;

use common::TestDb;
use footfall_collector::sink::batch::Batch;
use footfall_collector::sink::insert::insert_batch;
use footfall_store::event::{Event, Kind};
use uuid::Uuid;

fn edge_events() -> Vec<Event> {
    let now = footfall_collector::routes::now_ms();
    let mut plain = Event::new(Kind::Pageview, now / 1000 * 1000 + 123);
    plain.event_id = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
    plain.site = "shop.example.com".into();

    let mut full = Event::new(Kind::Custom, now - 86_400_001);
    full.event_id = Uuid::from_u128(u128::MAX);
    full.site = "s".into();
    full.visitor_id = "1a2B3c4D5e6F7g8H9i0JkL".into();
    full.pageview_id = "p".repeat(64).into();
    full.customer_id = "customer-ü-42".into();
    full.url = format!("https://shop.example.com/{}", "long/".repeat(400)).into();
    full.host = "shop.example.com".into();
    full.path = "/straße/ünïcödé/🛒".into();
    full.title = "Ti\"tle\\ with\nnewline and \u{0} nul".into();
    full.referrer = "https://www.google.com/search?q=a%20b".into();
    full.referrer_host = "www.google.com".into();
    full.utm_source = "x".repeat(127).into();
    full.utm_medium = "y".repeat(128).into();
    full.utm_campaign = "z".repeat(16_384).into();
    full.utm_term = "term".into();
    full.utm_content = "content".into();
    full.dwell_ms = u32::MAX;
    full.ip_key_id = u64::MAX;
    full.ip_sealed.0 = Some([0xa5; footfall_seal::SEALED_IP_LEN]);
    full.ip_prefix = "2001:db8:1:2::/64".into();
    full.country = "DE".into();
    full.region = "BE".into();
    full.city = "Berlin".into();
    full.browser = "Chrome".into();
    full.os = "Windows 10".into();
    full.device = "desktop".into();
    full.is_bot = true;
    full.user_agent = "Mozilla/5.0".into();
    full.campaign = "spring".into();
    full.recipient = "r".repeat(300).into();
    full.via_proxy = true;
    full.event_name = "signup".into();
    full.props = vec![
        ("plan".into(), "pro".into()),
        ("".into(), "empty key".into()),
        ("ключ".into(), "v".repeat(200).into()),
    ];
    full.scroll_depth = u8::MAX;

    let mut engaged = Event::new(Kind::Engagement, now);
    engaged.event_id = Uuid::from_u128(1);
    engaged.dwell_ms = 1;
    engaged.ip_key_id = 1;
    engaged.scroll_depth = 1;
    engaged.props = vec![("only".into(), "".into())];
    vec![plain, full, engaged]
}

async fn migrated() -> TestDb {
    let db = TestDb::new();
    db.migrate().await;
    db
}

/// A migrated database with `alter` applied to it.
async fn migrated_with(alter: &str) -> TestDb {
    let db = migrated().await;
    db.client().query(alter).execute().await.unwrap();
    db
}

const EVERY_COLUMN: &str =
    "SELECT * EXCEPT ip_sealed, hex(ip_sealed) AS sealed_hex, toUnixTimestamp64Milli(ts) AS ms
    FROM events ORDER BY event_id";

/// Every column of `events` as read back after the collector's insert of them, once they read
/// back the same after the crate's.
async fn stored_as_the_crate_stores(events: &[Event]) -> Vec<serde_json::Value> {
    let ours = migrated().await;
    let batch = Batch::of(Uuid::new_v4(), events);
    insert_batch(&ours.client(), &batch)
        .await
        .expect("ClickHouse takes the blocks");
    let reference = migrated().await;
    let mut insert = reference.client().insert::<Event>("events").await.unwrap();
    for event in events {
        insert.write(event).await.unwrap();
    }
    insert.end().await.unwrap();

    let rows = ours.rows(EVERY_COLUMN).await;
    assert_eq!(rows, reference.rows(EVERY_COLUMN).await);
    assert_eq!(rows.len(), events.len());
    rows
}

#[tokio::test]
async fn every_column_type_reads_back_as_the_crate_would_have_written_it() {
    let events = edge_events();
    let rows = stored_as_the_crate_stores(&events).await;
    let full = rows
        .iter()
        .find(|r| r["kind"] == "custom")
        .expect("the full row");
    assert_eq!(full["event_id"], "ffffffff-ffff-ffff-ffff-ffffffffffff");
    assert_eq!(full["ms"], events[1].ts);
    assert_eq!(full["path"], "/straße/ünïcödé/🛒");
    assert_eq!(full["title"], "Ti\"tle\\ with\nnewline and \u{0} nul");
    assert_eq!(full["utm_campaign"].as_str().unwrap().len(), 16_384);
    assert_eq!(full["dwell_ms"], u32::MAX);
    assert_eq!(full["ip_key_id"], u64::MAX);
    assert_eq!(
        full["sealed_hex"],
        "A5".repeat(footfall_seal::SEALED_IP_LEN)
    );
    assert_eq!(
        (&full["is_bot"], &full["via_proxy"]),
        (&true.into(), &true.into())
    );
    assert_eq!(full["props"]["plan"], "pro");
    assert_eq!(full["props"][""], "empty key");
    assert_eq!(full["props"]["ключ"], "v".repeat(200));
    assert_eq!(full["scroll_depth"], 255);
    let plain = rows.iter().find(|r| r["kind"] == "pageview").unwrap();
    assert_eq!(plain["event_id"], "01234567-89ab-cdef-fedc-ba9876543210");
    assert_eq!(plain["ms"], events[0].ts);
    assert_eq!(plain["sealed_hex"], "");
    assert_eq!(plain["props"], serde_json::json!({}));
    assert_eq!(
        (&plain["is_bot"], &plain["via_proxy"]),
        (&false.into(), &false.into())
    );
}

/// An insert of many blocks (each about a MiB of rows): every row in one, none twice.
#[tokio::test]
async fn a_batch_of_many_blocks_reads_back_row_for_row() {
    let mut events = Vec::new();
    for i in 0..150u128 {
        for mut event in edge_events() {
            event.event_id = Uuid::from_u128(event.event_id.as_u128() ^ (i << 64));
            event.props.push((format!("n{i}").into(), "".into()));
            events.push(event);
        }
    }
    let bytes: usize = Batch::of(Uuid::nil(), &events).rows.len();
    assert!(bytes > 2 << 20, "{bytes} bytes: more than two blocks");
    stored_as_the_crate_stores(&events).await;
}

/// A block names its columns, so a column changed in the table can never take another's bytes:
/// a type ClickHouse can convert to is stored as the value it was; a column the table lost
/// refuses the insert (rather than being left out without a word), naming the column.
#[tokio::test]
async fn a_changed_column_is_converted_or_refused_never_stored_shifted() {
    let events = edge_events();
    let db = migrated_with("ALTER TABLE events MODIFY COLUMN dwell_ms UInt64").await;
    insert_batch(&db.client(), &Batch::of(Uuid::new_v4(), &events))
        .await
        .expect("a UInt32 goes into a UInt64");
    let dwell = db
        .rows("SELECT dwell_ms, ip_key_id FROM events ORDER BY event_id")
        .await;
    let expected: Vec<_> = {
        let mut by_id: Vec<_> = events.iter().collect();
        by_id.sort_by_key(|e| e.event_id);
        by_id
            .iter()
            .map(|e| serde_json::json!({"dwell_ms": e.dwell_ms, "ip_key_id": e.ip_key_id}))
            .collect()
    };
    assert_eq!(dwell, expected, "each value as it was, in its own column");

    let db = migrated_with("ALTER TABLE events DROP COLUMN utm_term").await;
    let error = insert_batch(&db.client(), &Batch::of(Uuid::new_v4(), &events))
        .await
        .expect_err("a column the table no longer has is refused");
    assert!(error.to_string().contains("utm_term"), "{error}");
    assert_eq!(
        footfall_collector::sink::errors::classify(&error),
        footfall_collector::sink::errors::Class::Permanent
    );
    assert_eq!(db.count("SELECT count() FROM events").await, 0);
}
