//! Migrations on the real ClickHouse: idempotent, recorded once, retention follows the option,
//! and a database made by the collector's and the aggregator's old lists is taken over as is.

use footfall_store::cluster::Layout;
use footfall_store::migrations::migrate;
use footfall_store::schema::MIGRATIONS;
use footfall_store::testing::TestDb;

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
