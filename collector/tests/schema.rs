//! Migrations on the real ClickHouse: idempotent, recorded once, retention follows the option.

mod common;

use common::TestDb;
use footfall_collector::schema::{MIGRATIONS, migrate};

#[tokio::test]
async fn migrations_apply_once_and_are_idempotent() {
    let db = TestDb::new();
    let server = clickhouse::Client::default().with_url(common::clickhouse_url());
    let first = migrate(&server, &db.name, 395).await.unwrap();
    assert_eq!(
        first,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let again = migrate(&server, &db.name, 395).await.unwrap();
    assert!(again.is_empty(), "nothing left to apply");
    let recorded = db
        .count("SELECT count() FROM schema_migrations FINAL WHERE component = 'collector'")
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
}

#[tokio::test]
async fn retention_days_set_the_ttls() {
    let db = TestDb::new();
    let server = clickhouse::Client::default().with_url(common::clickhouse_url());
    let ttl = |table: &'static str| {
        let db = &db;
        async move {
            let rows = db
                .rows(&format!("SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = '{table}'"))
                .await;
            rows[0]["q"].as_str().unwrap().to_owned()
        }
    };
    migrate(&server, &db.name, 395).await.unwrap();
    assert!(
        ttl("events")
            .await
            .contains("TTL toDateTime(ts) + toIntervalDay(395)")
    );
    migrate(&server, &db.name, 1).await.unwrap();
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

    let bad = migrate(&server, "bad-name; DROP", 30).await.unwrap_err();
    assert!(bad.to_string().contains("not a usable database name"));
}
