//! Migrations on the real ClickHouse: idempotent, recorded once, retention follows the option,
//! and a database made by the collector's and the aggregator's old lists is taken over as is.

use footfall_store::cluster::Layout;
use footfall_store::migrations::migrate;
use footfall_store::rollup::{member_hash, traffic_daily};
use footfall_store::rules::{SESSIONS_DAILY_COLUMNS, sessions_daily};
use footfall_store::schema::MIGRATIONS;
use footfall_store::testing::TestDb;
use serde_json::json;

fn versions() -> Vec<u32> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    let db = TestDb::new();
    let first = migrate(&db.server(), &db.name, 395, &Layout::default())
        .await
        .unwrap();
    assert_eq!(first, versions());
    let again = migrate(&db.server(), &db.name, 395, &Layout::default())
        .await
        .unwrap();
    assert!(again.is_empty(), "nothing left to apply");
    let recorded = db
        .count("SELECT count() FROM schema_migrations FINAL WHERE component = 'footfall'")
        .await;
    assert_eq!(recorded, MIGRATIONS.len() as u64);
    let engine = db.rows("SELECT partition_key, sorting_key FROM system.tables WHERE database = currentDatabase() AND name = 'events'").await;
    assert_eq!(engine[0]["partition_key"], "toYYYYMM(ts)");
    assert!(
        engine[0]["sorting_key"]
            .as_str()
            .unwrap()
            .starts_with("site, toDate(ts)")
    );
    let tables = db
        .count(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN \
             ('events', 'ip_keys', 'identities', 'identities_from_events', 'traffic_keyed_daily', \
              'traffic_keyed_from_pageviews', 'traffic_keyed_from_email_opens', \
              'traffic_keyed_from_custom_events', 'sessions_daily', 'traffic_monthly', \
              'api_tokens', 'audit_log', 'rollup_keys', 'goals', 'funnels', 'erasures', \
              'erasure_keys')",
        )
        .await;
    assert_eq!(tables, 17, "one list makes both programs' tables");
    let unkeyed = db
        .count(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN \
             ('traffic_daily', 'traffic_from_pageviews', 'traffic_from_email_opens', \
              'traffic_from_custom_events')",
        )
        .await;
    assert_eq!(unkeyed, 0, "the unkeyed rollup and its views are gone");
    let keyed = db
        .rows("SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = 'traffic_keyed_daily'")
        .await;
    assert!(
        keyed[0]["q"]
            .as_str()
            .unwrap()
            .contains("non_replicated_deduplication_window = 10000"),
        "the keyed rollup keeps block hashes, so a replayed insert counts once"
    );
}

/// Two programs applying the list to one fresh database at once (the collector does it in the
/// background while the aggregator starts) both succeed: where one drops a table the other's
/// earlier migration still reads, the other tries again from the records. Started when the
/// first has recorded its first migration, so that they overlap, on several databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_programs_migrating_at_once_both_succeed() {
    for _ in 0..4 {
        let db = TestDb::new();
        let (server, name) = (db.server(), db.name.clone());
        let first =
            tokio::spawn(async move { migrate(&server, &name, 395, &Layout::default()).await });
        let recorded = format!(
            "SELECT count() FROM system.tables AS t
             WHERE t.database = '{}' AND t.name = 'schema_migrations' AND t.total_rows > 0",
            db.name
        );
        while db
            .server()
            .query(&recorded)
            .fetch_one::<u64>()
            .await
            .unwrap()
            == 0
        {
            tokio::task::yield_now().await;
        }
        let second = migrate(&db.server(), &db.name, 395, &Layout::default()).await;
        let first = first.await.unwrap();
        assert!(first.is_ok(), "{first:?}");
        assert!(second.is_ok(), "{second:?}");
        let mut applied = first.unwrap();
        applied.extend(second.unwrap());
        applied.sort_unstable();
        applied.dedup();
        assert_eq!(applied, versions(), "between them, every migration");
        assert_eq!(
            db.count("SELECT count() FROM schema_migrations FINAL WHERE component = 'footfall'")
                .await,
            MIGRATIONS.len() as u64
        );
    }
}

/// The versions whose old record is not in `old`.
fn left_to_apply(old: &[(&str, u32)]) -> Vec<u32> {
    MIGRATIONS
        .iter()
        .filter(|m| !m.was.is_some_and(|was| old.contains(&was)))
        .map(|m| m.version)
        .collect()
}

#[tokio::test]
async fn a_database_of_the_old_lists_is_recognised_and_nothing_is_applied_twice() {
    let db = TestDb::new();
    let old = [
        ("collector", 1),
        ("collector", 3),
        ("aggregator", 1),
        ("aggregator", 2),
    ];
    db.as_left_by_the_old_code(&old).await;
    let insert = "INSERT INTO events (event_id, ts, site, kind, visitor_id) VALUES \
                  (generateUUIDv4(), now(), 's', 'pageview', 'v')";
    db.client().query(insert).execute().await.unwrap();
    db.client()
        .query("INSERT INTO export_audit (at, actor, report, rows) VALUES (now(), 'token:a', 'daily', 3)")
        .execute()
        .await
        .unwrap();
    let applied = migrate(&db.server(), &db.name, 395, &Layout::default())
        .await
        .unwrap();
    assert_eq!(applied, left_to_apply(&old));
    assert!(
        !applied.iter().any(|v| [1, 2, 3, 4].contains(v)),
        "the old lists' migrations are not applied again: {applied:?}"
    );
    assert_eq!(db.count("SELECT count() FROM events").await, 1);
    assert_eq!(
        db.count("SELECT count() FROM audit_log WHERE actor = 'token:a' AND rows = 3")
            .await,
        1,
        "the old audit is carried over"
    );
    assert_eq!(
        db.count("SELECT count() FROM schema_migrations FINAL WHERE component = 'footfall'")
            .await,
        MIGRATIONS.len() as u64,
        "recorded under the one list from now on"
    );
    assert!(
        migrate(&db.server(), &db.name, 395, &Layout::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_collector_only_database_gets_the_rollups() {
    let db = TestDb::new();
    let old = [("collector", 1), ("collector", 3)];
    db.as_left_by_the_old_code(&old).await;
    let applied = migrate(&db.server(), &db.name, 395, &Layout::default())
        .await
        .unwrap();
    assert_eq!(applied, left_to_apply(&old));
    assert!(applied.contains(&3) && applied.contains(&4), "{applied:?}");
    assert_eq!(
        db.count("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN ('traffic_keyed_daily', 'traffic_keyed_from_pageviews', 'sessions_daily')").await,
        3
    );
}

#[tokio::test]
async fn retention_days_set_the_ttls() {
    let db = TestDb::new();
    let ttl = |table: &'static str| {
        let db = &db;
        async move {
            let rows = db
                .rows(&format!("SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = '{table}'"))
                .await;
            rows[0]["q"].as_str().unwrap().to_owned()
        }
    };
    migrate(&db.server(), &db.name, 395, &Layout::default())
        .await
        .unwrap();
    assert!(
        ttl("events")
            .await
            .contains("TTL toDateTime(ts) + toIntervalDay(395)")
    );
    migrate(&db.server(), &db.name, 1, &Layout::default())
        .await
        .unwrap();
    assert!(
        ttl("events")
            .await
            .contains("TTL toDateTime(ts) + toIntervalDay(1)")
    );
    assert!(
        ttl("ip_keys")
            .await
            .contains("TTL created + toIntervalDay(2)"),
        "keys outlive their events by a day"
    );

    let bad = migrate(&db.server(), "bad-name; DROP", 30, &Layout::default())
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a usable database name"));
}

/// `table`'s hash, as the rollups' SQL uses it.
async fn hash_of(db: &TestDb, table: &str) -> &'static str {
    member_hash(&db.server(), &db.name, table).await.unwrap()
}

/// Three page views of two visitors, stored through the views, then the same events rolled up
/// again by the backfill's `SELECT`s: the visitors count 2 both times (the two hashes of an id
/// agree, or it would count twice), while hits double. Their visits, rolled up into
/// `sessions_daily`, count the same two visitors.
async fn the_rollups_count_each_visitor_once(db: &TestDb) {
    let client = db.client();
    client
        .query(
            "INSERT INTO events (event_id, ts, site, kind, visitor_id, path, ip_prefix)
             VALUES (generateUUIDv4(), now64(3), 's', 'pageview', 'v1', '/a', '203.0.113.0/24'),
                    (generateUUIDv4(), now64(3), 's', 'pageview', 'v1', '/b', '203.0.113.0/24'),
                    (generateUUIDv4(), now64(3), 's', 'pageview', 'v2', '/a', '198.51.100.0/24')",
        )
        .execute()
        .await
        .unwrap();
    let counts = || {
        db.rows(
            "SELECT sum(hits) AS hits, uniqExactMerge(visitors) AS visitors,
                    uniqExactMerge(networks) AS networks
             FROM traffic_keyed_daily WHERE dimension = 'all'",
        )
    };
    assert_eq!(
        counts().await,
        [json!({"hits": 3, "visitors": 2, "networks": 2})]
    );
    for select in traffic_daily(&db.name, "1", hash_of(db, "traffic_keyed_daily").await) {
        client
            .query(&format!("INSERT INTO traffic_keyed_daily {select}"))
            .execute()
            .await
            .unwrap();
    }
    assert_eq!(
        counts().await,
        [json!({"hits": 6, "visitors": 2, "networks": 2})]
    );
    let today = db.rows("SELECT toString(today()) AS d").await[0]["d"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions = sessions_daily(&today, &today, hash_of(db, "sessions_daily").await);
    client
        .query(&format!(
            "INSERT INTO sessions_daily ({SESSIONS_DAILY_COLUMNS}) {sessions} \
             SETTINGS join_use_nulls = 0"
        ))
        .execute()
        .await
        .unwrap();
    assert_eq!(
        db.rows(
            "SELECT sum(visits) AS visits, uniqExactMerge(visit_visitors) AS visitors
             FROM sessions_daily WHERE dimension = 'all'"
        )
        .await,
        [json!({"visits": 2, "visitors": 2})]
    );
}

#[tokio::test]
async fn the_rollups_states_hold_64_bit_hashes() {
    let db = TestDb::new();
    db.migrate().await;
    assert_eq!(
        db.count(
            "SELECT count() FROM system.columns WHERE database = currentDatabase()
             AND table IN ('traffic_keyed_daily', 'sessions_daily')
             AND type = 'AggregateFunction(uniqExact, UInt64)'"
        )
        .await,
        6
    );
    for table in ["traffic_keyed_daily", "sessions_daily"] {
        assert_eq!(hash_of(&db, table).await, "sipHash64Keyed");
    }
    the_rollups_count_each_visitor_once(&db).await;
}

/// A database whose rollups were made with 128-bit states (as version 10 made them when it
/// shipped) keeps them, as they cannot be converted: version 10 applied again there (as after a
/// stop part way) makes views that hash to match, and so do the backfill and `sessions_daily`.
#[tokio::test]
async fn rollups_made_with_128_bit_states_keep_them_and_are_hashed_to_match() {
    let db = TestDb::new();
    db.migrate().await;
    let client = db.client();
    let wide = "AggregateFunction(uniqExact, FixedString(16))";
    for sql in [
        "DROP VIEW traffic_keyed_from_pageviews".to_owned(),
        "DROP VIEW traffic_keyed_from_email_opens".to_owned(),
        "DROP VIEW traffic_keyed_from_custom_events".to_owned(),
        "DROP TABLE traffic_keyed_daily".to_owned(),
        format!(
            "CREATE TABLE traffic_keyed_daily (site LowCardinality(String), day Date,
                 dimension LowCardinality(String), k1 String, k2 String, k3 String,
                 hits SimpleAggregateFunction(sum, UInt64), visitors {wide}, networks {wide})
             ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(day)
             ORDER BY (dimension, site, day, k1, k2, k3)"
        ),
        "ALTER TABLE sessions_daily DROP COLUMN visit_visitors, DROP COLUMN timed_visitors,
             DROP COLUMN exit_visitors, DROP COLUMN scroll_visitors"
            .to_owned(),
        format!(
            "ALTER TABLE sessions_daily ADD COLUMN visit_visitors {wide} AFTER visits,
                 ADD COLUMN timed_visitors {wide}, ADD COLUMN exit_visitors {wide},
                 ADD COLUMN scroll_visitors {wide}"
        ),
        "ALTER TABLE schema_migrations DELETE WHERE version = 10 SETTINGS mutations_sync = 2"
            .to_owned(),
    ] {
        client.query(&sql).execute().await.unwrap();
    }
    assert_eq!(db.migrate().await, [10]);
    for table in ["traffic_keyed_daily", "sessions_daily"] {
        assert_eq!(hash_of(&db, table).await, "sipHash128Keyed");
    }
    the_rollups_count_each_visitor_once(&db).await;
}
