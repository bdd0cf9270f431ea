//! The schema on the two-shard dev cluster (`scripts/clickhouse start --cluster`): every node
//! gets every local table, Distributed table and view; rows spread by the sharding keys; the
//! views roll up each shard's events, and the rollups read through the Distributed tables
//! count as one server does; a replayed insert is stored once.

use footfall_store::cluster::{
    Layout, REPLICATED_DEDUP_WINDOW, REPLICATED_DEDUP_WINDOW_SECONDS, Scope,
};
use footfall_store::rollup::with_member_hash;
use footfall_store::schema::MIGRATIONS;
use footfall_store::testing::{DEV_CLUSTER, TestDb, cluster_urls};

/// The tables, views and their engines a node holds in `db`.
async fn objects(url: &str, db: &TestDb) -> Vec<(String, String)> {
    clickhouse::Client::default()
        .with_url(url)
        .query("SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name")
        .bind(&db.name)
        .fetch_all()
        .await
        .unwrap()
}

async fn on(url: &str, sql: &str) -> u64 {
    clickhouse::Client::default()
        .with_url(url)
        .query(sql)
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_node_gets_the_whole_schema_once() {
    let [first, second] = cluster_urls();
    let db = TestDb::on_cluster(first.clone());
    let applied = db.migrate().await;
    assert_eq!(
        applied,
        footfall_store::schema::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );
    assert!(db.migrate().await.is_empty(), "applied twice");
    let one = objects(&first, &db).await;
    assert_eq!(one, objects(&second, &db).await, "the nodes differ");
    let engine = |name: &str| {
        one.iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_str())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    for table in [
        "events",
        "ip_keys",
        "identities",
        "traffic_keyed_daily",
        "sessions_daily",
        "traffic_monthly",
        "api_tokens",
        "audit_log",
        "goals",
        "funnels",
    ] {
        assert_eq!(engine(table), "Distributed", "{table}");
        assert!(engine(&format!("{table}_local")).ends_with("MergeTree"));
    }
    assert_eq!(engine("traffic_keyed_from_pageviews"), "MaterializedView");
    assert_eq!(engine("rollup_keys"), "Join", "the same keys on every node");
    for gone in ["export_audit", "traffic_daily", "traffic_from_"] {
        assert!(!one.iter().any(|(n, _)| n.starts_with(gone)), "{gone}");
    }
    // The TTLs are on the shards' tables.
    for url in [&first, &second] {
        let ttl = on(
            url,
            &format!(
                "SELECT count() FROM system.tables WHERE database = '{}' AND name = 'events_local' \
                 AND create_table_query LIKE '% TTL toDateTime(ts) + toIntervalDay(395)%'",
                db.name
            ),
        )
        .await;
        assert_eq!(ttl, 1, "{url}");
    }
    // Each node records what it applied, once.
    for url in [&first, &second] {
        let recorded = on(
            url,
            &format!(
                "SELECT count() FROM {}.schema_migrations WHERE component = 'footfall'",
                db.name
            ),
        )
        .await;
        assert_eq!(recorded as usize, MIGRATIONS.len(), "{url}");
    }
}

/// A node that lost the database (restarted empty) gets the whole schema again from the next
/// program that applies it, while the other keeps its tables and its rows.
#[tokio::test]
async fn a_node_restarted_empty_gets_the_schema_again() {
    let [first, second] = cluster_urls();
    let db = TestDb::on_cluster(first.clone());
    db.migrate().await;
    db.client()
        .query("INSERT INTO events (event_id, ts, site, kind, visitor_id) SELECT generateUUIDv4(), now64(3), 's', 'pageview', toString(number) FROM numbers(50)")
        .execute()
        .await
        .unwrap();
    let kept = on(
        &first,
        &format!("SELECT count() FROM {}.events_local", db.name),
    )
    .await;
    clickhouse::Client::default()
        .with_url(&second)
        .query(&format!("DROP DATABASE {} SYNC", db.name))
        .execute()
        .await
        .unwrap();
    assert!(!db.migrate().await.is_empty());
    assert_eq!(objects(&first, &db).await, objects(&second, &db).await);
    assert_eq!(db.count("SELECT count() FROM events").await, kept);
    assert!(db.migrate().await.is_empty(), "applied again");
}

#[tokio::test]
async fn visitors_stay_on_one_shard_and_rollups_count_across_shards() {
    let [first, second] = cluster_urls();
    let db = TestDb::on_cluster(first.clone());
    db.migrate().await;
    // 40 visitors with 3 page views each, 30 email opens without a visitor id, inserted twice
    // with the same token (a replayed batch).
    let insert =
        "INSERT INTO events (event_id, ts, site, kind, visitor_id, path, campaign, recipient)
         SELECT generateUUIDv4(), now64(3) - number, 's',
                if(number < 120, 'pageview', 'email_open'),
                if(number < 120, 'v' || toString(number % 40), ''),
                '/p' || toString(number % 3),
                if(number < 120, '', 'c'), if(number < 120, '', 'r' || toString(number))
         FROM numbers(150)
         SETTINGS insert_deduplication_token = 'batch-1',
                  deduplicate_blocks_in_dependent_materialized_views = 1";
    let client = db.client();
    for _ in 0..2 {
        client.query(insert).execute().await.unwrap();
    }
    assert_eq!(db.count("SELECT count() FROM events").await, 150);
    let local = |url: String, sql: &'static str| {
        let name = db.name.clone();
        async move { on(&url, &sql.replace("{db}", &name)).await }
    };
    let shard_rows = [
        local(first.clone(), "SELECT count() FROM {db}.events_local").await,
        local(second.clone(), "SELECT count() FROM {db}.events_local").await,
    ];
    assert!(shard_rows.iter().all(|&n| n > 0), "{shard_rows:?}");
    let opens_per_shard = [
        local(
            first.clone(),
            "SELECT count() FROM {db}.events_local WHERE kind = 'email_open'",
        )
        .await,
        local(
            second.clone(),
            "SELECT count() FROM {db}.events_local WHERE kind = 'email_open'",
        )
        .await,
    ];
    assert!(
        opens_per_shard.iter().all(|&n| n > 0),
        "{opens_per_shard:?}"
    );
    let on_both = db
        .count(
            "SELECT count() FROM (SELECT visitor_id FROM events WHERE visitor_id != ''
             GROUP BY visitor_id HAVING uniqExact(_shard_num) > 1)",
        )
        .await;
    assert_eq!(on_both, 0, "visitors on both shards");
    // Each shard's view rolled up its own events; merged across shards they count as one.
    let rollup = db
        .rows(
            "SELECT k1 AS path, sum(hits) AS hits, uniqExactMerge(visitors) AS visitors
             FROM traffic_keyed_daily WHERE dimension = 'page' GROUP BY k1 ORDER BY k1",
        )
        .await;
    let direct = db
        .rows(
            "SELECT path, count() AS hits, uniqExact(visitor_id) AS visitors FROM events
             WHERE kind = 'pageview' GROUP BY path ORDER BY path",
        )
        .await;
    assert_eq!(rollup, direct);
    assert_eq!(rollup.len(), 3);
    let opens = db
        .rows(
            "SELECT sum(hits) AS opens, uniqExactMerge(visitors) AS unique FROM traffic_keyed_daily
             WHERE dimension = 'email'",
        )
        .await;
    assert_eq!(opens, [serde_json::json!({"opens": 30, "unique": 30})]);
}

/// The dev ClickHouse has no Keeper, so the Replicated schema cannot run on it: every statement
/// of it must parse (`EXPLAIN AST`), name the shard and replica macros where it replicates,
/// and, with the plain engines in place of the Replicated ones, apply on one node (its
/// Distributed tables, views and deduplication settings included).
#[tokio::test]
async fn the_replicated_schema_parses_and_applies_with_plain_engines() {
    let [first, _] = cluster_urls();
    let layout = Layout::cluster(DEV_CLUSTER, true, &first).unwrap();
    let db = TestDb::on(first.clone());
    let server = db.server();
    let on_cluster = format!(" ON CLUSTER '{DEV_CLUSTER}'");
    let mut statements = vec!["CREATE DATABASE IF NOT EXISTS {db}"];
    statements.extend(MIGRATIONS.iter().flat_map(|m| m.statements.iter().copied()));
    for statement in statements {
        let statement = with_member_hash(&server, &db.name, statement)
            .await
            .unwrap();
        for (scope, sql) in layout.render(&statement, &db.name).unwrap() {
            server
                .query(&format!("EXPLAIN AST {sql}"))
                .fetch_all::<String>()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            if sql.starts_with("INSERT") {
                // Data, read through Distributed tables of both nodes: parsed, not run here.
                assert_eq!(scope, Scope::Once);
                continue;
            }
            assert!(sql.contains(&on_cluster), "{sql}");
            if sql.contains("ENGINE = Replicated") {
                assert!(sql.contains("'/clickhouse/tables/{shard}/"), "{sql}");
                assert!(sql.contains("_local', '{replica}'"), "{sql}");
            }
            server
                .query(&plain(&sql.replace(&on_cluster, "")))
                .execute()
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    let create = |table: &str| {
        let (server, name) = (server.clone(), db.name.clone());
        let table = table.to_owned();
        async move {
            server
                .query(
                    "SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?",
                )
                .bind(name)
                .bind(table)
                .fetch_one::<String>()
                .await
                .unwrap()
        }
    };
    for table in ["events_local", "traffic_keyed_daily_local"] {
        let sql = create(table).await;
        assert!(
            sql.contains(&format!(
                "replicated_deduplication_window = {REPLICATED_DEDUP_WINDOW}, \
                 replicated_deduplication_window_seconds = {REPLICATED_DEDUP_WINDOW_SECONDS}"
            )),
            "{sql}"
        );
    }
    assert!(
        create("events")
            .await
            .contains("ENGINE = Distributed('footfall_dev'")
    );
}

/// `sql` with a Replicated engine replaced by its plain one (the replication path and replica
/// dropped from its arguments).
fn plain(sql: &str) -> String {
    let Some(at) = sql.find("ENGINE = Replicated") else {
        return sql.to_owned();
    };
    let (head, rest) = sql.split_at(at + "ENGINE = ".len());
    let rest = &rest["Replicated".len()..];
    let open = rest.find('(').unwrap();
    let (engine, args) = rest.split_at(open);
    // Skip `('path', 'replica'` and a following `, `.
    let after_replica = args.find("{replica}'").unwrap();
    let tail = &args[after_replica + "{replica}'".len()..];
    let tail = tail.strip_prefix(", ").unwrap_or(tail);
    format!("{head}{engine}({tail}")
}
