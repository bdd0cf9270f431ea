//! The definitions of visits and time on page (`store/sql/*.sql`), the very queries the
//! aggregator's `sessions_daily` rollup is computed from, run against the real ClickHouse on
//! events laid out by hand.

use footfall_store::rules;
use footfall_store::testing::TestDb;

const DAY: &str = "2026-03-02";

/// (minute of the day, visitor, kind, page view, dwell ms, bot)
type Row = (u32, &'static str, &'static str, &'static str, u32, bool);

async fn events(db: &TestDb, rows: &[Row]) {
    db.migrate().await;
    let values: Vec<String> = rows
        .iter()
        .map(|(minute, visitor, kind, pv, dwell, bot)| {
            format!("(toDateTime64('2026-03-02 00:00:00', 3, 'UTC') + INTERVAL {minute} MINUTE, 's', '{kind}', '{visitor}', '{pv}', '/{pv}', {dwell}, {bot})")
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (ts, site, kind, visitor_id, pageview_id, path, dwell_ms, is_bot) VALUES {}",
        values.join(",")
    );
    db.client().query(&sql).execute().await.unwrap();
}

#[tokio::test]
async fn visits_end_after_30_minutes_without_activity() {
    let db = TestDb::new();
    events(
        &db,
        &[
            (600, "alice", "pageview", "a1", 0, false),
            (605, "alice", "pageview", "a2", 0, false),
            (606, "alice", "engagement", "a2", 60_000, false),
            // 54 minutes later: a new visit of one page.
            (660, "alice", "pageview", "a3", 0, false),
            (600, "bob", "pageview", "b1", 0, false),
            // An engagement report long after, without a page view: not a visit.
            (900, "bob", "engagement", "b1", 2_000, false),
            (600, "crawler", "pageview", "c1", 0, true),
            (600, "", "pageview", "n1", 0, false),
            // 30 minutes exactly is still the same visit.
            (600, "dora", "pageview", "d1", 0, false),
            (630, "dora", "pageview", "d2", 0, false),
        ],
    )
    .await;
    let visits = db
        .rows(&format!(
            "SELECT * FROM ({}) ORDER BY site, visitor_id, visit",
            rules::visits(DAY, DAY)
        ))
        .await;
    let got: Vec<_> = visits
        .iter()
        .map(|v| {
            (
                v["visitor_id"].as_str().unwrap(),
                v["duration_ms"].as_u64().unwrap(),
                v["pageviews"].as_u64().unwrap(),
                v["bounce"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("alice", 360_000, 2, false),
            ("alice", 0, 1, true),
            ("bob", 0, 1, true),
            ("dora", 1_800_000, 2, false)
        ]
    );
}

#[tokio::test]
async fn time_on_page_is_engaged_time_or_the_gap_to_the_next_page_view() {
    let db = TestDb::new();
    events(
        &db,
        &[
            (600, "alice", "pageview", "a1", 0, false),
            (605, "alice", "pageview", "a2", 0, false),
            (606, "alice", "engagement", "a2", 40_000, false),
            (607, "alice", "engagement", "a2", 65_000, false),
            // Someone else naming alice's page view adds nothing to it.
            (608, "mallory", "engagement", "a2", 999_000, false),
            (700, "alice", "pageview", "a3", 0, false),
            (600, "bob", "pageview", "b1", 0, false),
            (645, "bob", "pageview", "b2", 0, false),
            (600, "", "pageview", "n1", 0, false),
            (601, "", "pageview", "n2", 0, false),
            (600, "crawler", "pageview", "c1", 0, true),
            // An engagement beacon of another page keeps eve's visit going, but the 40 minutes
            // until her next page view are not time anyone saw e1: unknown, not 30 minutes.
            (600, "eve", "pageview", "e1", 0, false),
            (620, "eve", "engagement", "e0", 1_000, false),
            (640, "eve", "pageview", "e2", 0, false),
            (641, "eve", "pageview", "e3", 0, false),
        ],
    )
    .await;
    let rows = db
        .rows(&format!(
            "SELECT pageview_id, time_on_page_ms FROM ({}) ORDER BY pageview_id",
            rules::time_on_page(DAY, DAY)
        ))
        .await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["pageview_id"].as_str().unwrap(),
                r["time_on_page_ms"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a1", Some(300_000)),
            ("a2", Some(65_000)),
            ("a3", None),
            ("b1", None),
            ("b2", None),
            ("e1", None),
            ("e2", Some(60_000)),
            ("e3", None),
        ]
    );
}
