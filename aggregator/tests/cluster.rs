//! Footfall on the two-shard dev cluster (`scripts/clickhouse start --cluster`, started by
//! `scripts/test`): two collectors, one on each node, take the same visitors' hits; nothing is
//! lost or doubled, no visitor is on both shards, and every report equals the report of one
//! server holding the same events, also after a customer whose visitors live on both shards
//! is erased. Retention empties both shards.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use footfall_store::testing::http::{get, post};
use footfall_store::testing::{TestDb, cluster_urls};

mod run;

use run::{Collector, aggregator, binaries, ok};

const SITE: &str = "shop.test";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/131.0.0.0 Safari/537.36";
const CLUSTER: &str = footfall_store::testing::DEV_CLUSTER;

/// A collector of `db`'s cluster on the node at `url`, sealing with the key pair in `keys`.
async fn collector(url: &str, db: &TestDb, keys: &Path, secret: &str) -> Collector {
    let public_key = keys.join("ip-seal.pub");
    let extra = [
        "--clickhouse-cluster",
        CLUSTER,
        "--ip-public-key",
        public_key.to_str().unwrap(),
        "--secret",
        secret,
    ];
    let collector = Collector::spawn_in_temp_dir(url, &db.name, &extra);
    let addr = collector.addr;
    for _ in 0..400 {
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            drop(stream);
            let ready = get(addr, "/readyz", &[]).await;
            if !String::from_utf8_lossy(&ready.body).contains("schema not applied") {
                return collector;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the collector on {url} did not start");
}

/// The `/o/TOKEN.gif` path of an email open.
fn email_open(campaign: &str, recipient: &str, secret: &str) -> String {
    let out = Command::new(binaries().join("footfall-collector"))
        .args([
            "sign",
            "email",
            "--campaign",
            campaign,
            "--recipient",
            recipient,
        ])
        .args(["--secret", secret])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Lets a millisecond pass between two hits of one visitor, as between a browser's: the visit
/// rules order a visitor's hits by time, and hits of one millisecond have no order, so an exit
/// page among them would be either.
async fn pace() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

/// Visitors' page views (pixel and beacon), engagement, custom events and email opens, each
/// visitor's hits alternating between the two collectors. Returns the events they stand for.
async fn traffic(collectors: &[&Collector; 2], secret: &str) -> u64 {
    let mut events = 0;
    for i in 0..24usize {
        let (a, b) = (collectors[i % 2].addr, collectors[(i + 1) % 2].addr);
        // Each visitor on a network of its own (the collectors believe the loopback proxy).
        let network = format!("198.51.{i}.7");
        let from = ("x-forwarded-for", network.as_str());
        let first = get(
            a,
            &format!(
                "/p.gif?site={SITE}&url=https%3A%2F%2F{SITE}%2F&ref=https%3A%2F%2Fsearch.test%2F"
            ),
            &[("user-agent", UA), from],
        )
        .await;
        let cookie = format!("ff_id={}", first.visitor_cookie().expect("a stored hit"));
        pace().await;
        let with = [("user-agent", UA), ("cookie", cookie.as_str()), from];
        let product = format!(
            "/p.gif?site={SITE}&url=https%3A%2F%2F{SITE}%2Fproduct%2F{}%3Futm_source%3Dnews",
            i % 4
        );
        assert_eq!(get(b, &product, &with).await.status, 200);
        events += 2;
        pace().await;
        if i % 3 == 0 {
            let pv = format!("PageView{i:016}");
            let beacon = [
                ("content-type", "text/plain"),
                ("origin", "https://shop.test"),
                ("user-agent", UA),
                ("cookie", cookie.as_str()),
                from,
            ];
            let view = serde_json::json!({"kind": "pageview", "site": SITE,
                "url": "https://shop.test/pricing", "pageview_id": pv});
            let engaged = serde_json::json!({"kind": "engagement", "site": SITE,
                "url": "https://shop.test/pricing", "pageview_id": pv,
                "engaged_ms": 4000 + i * 250, "scroll_depth": 40 + i});
            for (at, body) in [(a, view), (b, engaged)] {
                assert_eq!(post(at, "/e", &beacon, body.to_string()).await.status, 204);
                pace().await;
            }
            events += 2;
        }
        if i % 4 == 0 {
            let signup = format!(
                "/p.gif?site={SITE}&url=https%3A%2F%2F{SITE}%2Fsignup&event=Signup&p.plan=pro"
            );
            assert_eq!(get(a, &signup, &with).await.status, 200);
            events += 1;
        }
    }
    for r in 0..12 {
        let open = email_open("spring", &format!("reader-{r}@example.com"), secret);
        assert_eq!(get(collectors[r % 2].addr, &open, &[]).await.status, 200);
        events += 1;
    }
    events
}

/// Every report of today, as CSV, of `db`.
fn reports(db: &TestDb) -> Vec<(String, String)> {
    let today = footfall_aggregator::day::Day::today().to_string();
    let mut out = Vec::new();
    ok(aggregator(
        db,
        &["backfill", "--from", &today, "--to", &today],
    ));
    for report in [
        "sites",
        "daily",
        "hourly",
        "current",
        "pages",
        "referrers",
        "countries",
        "devices",
        "campaigns",
        "email",
        "events",
        "properties",
        "outbound",
        "downloads",
        "goals",
        "exits",
        "scroll",
        "funnel",
    ] {
        let mut args = vec![
            "export", "--report", report, "--from", &today, "--to", &today,
        ];
        args.extend(["--min-visitors", "2", "--min-networks", "2"]);
        if report == "funnel" {
            args.extend(["--site", SITE, "--steps", "/,/product/*,event:Signup"]);
        }
        out.push((report.to_owned(), ok(aggregator(db, &args))));
    }
    out
}

fn same(cluster: &[(String, String)], single: &[(String, String)]) {
    assert_eq!(cluster.len(), single.len());
    for ((report, a), (_, b)) in cluster.iter().zip(single) {
        assert_eq!(a, b, "{report}: the cluster's, then one server's");
    }
}

/// Copies `table` of `from` into `to`, as stored.
async fn copy(table: &str, from: &TestDb, to: &TestDb) {
    let native = from
        .client()
        .query(&format!("SELECT * FROM {table}"))
        .fetch_bytes("Native")
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut insert = to
        .client()
        .insert_formatted_with(format!("INSERT INTO {table} FORMAT Native"));
    insert.send(native).await.unwrap();
    insert.end().await.unwrap();
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
async fn two_collectors_on_two_shards_report_as_one_server() {
    let urls = cluster_urls();
    let db = TestDb::on_cluster(urls[0].clone());
    ok(aggregator(
        &db,
        &["keygen", "--data-dir", db.data_dir.path().to_str().unwrap()],
    ));
    let secret = format!(
        "{}{}{}",
        footfall_store::id::Id::random(),
        footfall_store::id::Id::random(),
        footfall_store::id::Id::random()
    );
    let one = collector(&urls[0], &db, db.data_dir.path(), &secret).await;
    let two = collector(&urls[1], &db, db.data_dir.path(), &secret).await;
    let sent = traffic(&[&one, &two], &secret).await;
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events", sent).await,
        sent
    );
    drop((one, two));
    assert_eq!(
        db.count("SELECT count() FROM events").await,
        sent,
        "stored twice"
    );
    let per_shard = db
        .rows("SELECT _shard_num AS shard, count() AS n FROM events GROUP BY shard ORDER BY shard")
        .await;
    assert_eq!(per_shard.len(), 2, "{per_shard:?}");
    let on_both = db
        .count(
            "SELECT count() FROM (SELECT visitor_id FROM events WHERE visitor_id != ''
             GROUP BY visitor_id HAVING uniqExact(_shard_num) > 1)",
        )
        .await;
    assert_eq!(on_both, 0, "a visitor on both shards");

    let single = TestDb::new();
    single.migrate().await;
    std::fs::copy(
        db.data_dir.path().join("ip-seal.key"),
        single.data_dir.path().join("ip-seal.key"),
    )
    .unwrap();
    for table in ["ip_keys", "events"] {
        copy(table, &db, &single).await;
    }
    for goal in [&db, &single] {
        ok(aggregator(
            goal,
            &[
                "goal", "add", "--site", SITE, "--name", "Signup", "--event", "Signup",
            ],
        ));
    }
    let cluster_reports = reports(&db);
    assert!(
        cluster_reports[4].1.lines().count() > 3,
        "{}",
        cluster_reports[4].1
    );
    same(&cluster_reports, &reports(&single));

    // A customer seen with a visitor on each shard.
    let visitors: Vec<(String, u32)> = db
        .client()
        .query(
            "SELECT any(visitor_id), _shard_num AS shard FROM events WHERE visitor_id != ''
             GROUP BY shard ORDER BY shard",
        )
        .fetch_all()
        .await
        .unwrap();
    // Each browser linked to the customer a millisecond before its first hit: everything it did
    // after is the customer's.
    let mut linked_at = Vec::new();
    for (visitor, _) in &visitors {
        let first: String = db
            .client()
            .query("SELECT toString(min(ts) - toIntervalMillisecond(1)) FROM events WHERE visitor_id = ?")
            .bind(visitor)
            .fetch_one()
            .await
            .unwrap();
        linked_at.push(first);
    }
    for target in [&db, &single] {
        for (i, (visitor, _)) in visitors.iter().enumerate() {
            target
                .client()
                .query(
                    "INSERT INTO events (event_id, ts, site, kind, visitor_id, customer_id, url,
                                         host, path)
                     VALUES (?, toDateTime64(?, 3), ?, 'pageview', ?, 'cust-1', 'https://shop.test/account',
                             'shop.test', '/account')",
                )
                .bind(format!("00000000-0000-4000-8000-00000000000{i}"))
                .bind(&linked_at[i])
                .bind(SITE)
                .bind(visitor)
                .execute()
                .await
                .unwrap();
        }
    }
    let export = |target: &TestDb| {
        let json = ok(aggregator(
            target,
            &["subject", "export", "--customer", "cust-1"],
        ));
        serde_json::from_str::<serde_json::Value>(&json).unwrap()
    };
    let exported = export(&db);
    let ids: Vec<&str> = (exported["visitor_ids"].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = visitors.iter().map(|(v, _)| v.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let theirs = db
        .count(&format!(
            "SELECT count() FROM events WHERE visitor_id IN ('{}', '{}')",
            visitors[0].0, visitors[1].0
        ))
        .await;
    assert_eq!(exported["events"].as_array().unwrap().len() as u64, theirs);
    let unsealed = (exported["events"].as_array().unwrap().iter())
        .filter(|e| e["ip"].is_string())
        .count() as u64;
    assert_eq!(
        unsealed,
        theirs - 2,
        "every collected event's IP, on either shard"
    );
    let one_server = export(&single);
    for key in ["visitor_ids", "identities", "events", "email_opens"] {
        let (a, b) = (
            exported[key].as_array().unwrap(),
            one_server[key].as_array().unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{key}");
        for (a, b) in a.iter().zip(b) {
            assert_eq!(a, b, "{key}");
        }
    }
    assert_eq!(exported, one_server);

    for target in [&db, &single] {
        ok(aggregator(
            target,
            &["subject", "erase", "--customer", "cust-1"],
        ));
    }
    for url in &urls {
        let left = on(
            url,
            &format!(
                "SELECT sum(n) FROM (
                     SELECT count() AS n FROM {d}.events_local WHERE visitor_id IN ('{a}', '{b}')
                     UNION ALL
                     SELECT count() FROM {d}.identities_local WHERE customer_id = 'cust-1')",
                d = db.name,
                a = visitors[0].0,
                b = visitors[1].0
            ),
        )
        .await;
        assert_eq!(left, 0, "left on {url}");
    }
    assert!(export(&db)["events"].as_array().unwrap().is_empty());
    same(&reports(&db), &reports(&single));
}

async fn run_on(url: &str, sql: &str) {
    clickhouse::Client::default()
        .with_url(url)
        .query(sql)
        .execute()
        .await
        .unwrap();
}

/// A shard that cannot store its part of a batch fails the whole insert: the collector keeps
/// the batch in its spool and sends it again once the shard is back, and every event is stored
/// once (also where the other shard stored its part the first time).
#[tokio::test]
async fn a_batch_is_committed_only_once_every_shard_has_it() {
    let urls = cluster_urls();
    let db = TestDb::on_cluster(urls[0].clone());
    ok(aggregator(
        &db,
        &["keygen", "--data-dir", db.data_dir.path().to_str().unwrap()],
    ));
    let secret = format!(
        "{}{}{}",
        footfall_store::id::Id::random(),
        footfall_store::id::Id::random(),
        footfall_store::id::Id::random()
    );
    let one = collector(&urls[0], &db, db.data_dir.path(), &secret).await;
    let events_local = format!("{}.events_local", db.name);
    run_on(&urls[1], &format!("DETACH TABLE {events_local}")).await;
    let hits = 20;
    for _ in 0..hits {
        let hit = format!("/p.gif?site={SITE}&url=https%3A%2F%2F{SITE}%2F");
        assert!(get(one.addr, &hit, &[]).await.visitor_cookie().is_some());
    }
    let failing = async || {
        let metrics = get(one.metrics, "/metrics", &[]).await;
        let metrics = String::from_utf8_lossy(&metrics.body).into_owned();
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("footfall_insert_failures_total "))
            .unwrap_or_else(|| panic!("no insert failures counted in {metrics}"));
        failures.trim() != "0"
    };
    for _ in 0..200 {
        if failing().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failing().await, "the insert did not fail");
    // Whether the first shard stored its part before the insert failed is ClickHouse's choice.
    let first_shard = on(&urls[0], &format!("SELECT count() FROM {events_local}")).await;
    assert!(first_shard < hits, "{first_shard}");
    run_on(&urls[1], &format!("ATTACH TABLE {events_local}")).await;
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events", hits).await,
        hits
    );
    drop(one);
    let stored = db
        .rows("SELECT count() AS rows, uniqExact(event_id) AS events FROM events")
        .await;
    assert_eq!(stored, [serde_json::json!({"rows": hits, "events": hits})]);
    assert!(on(&urls[1], &format!("SELECT count() FROM {events_local}")).await > 0);
}

#[tokio::test]
async fn retention_empties_every_shard() {
    let urls = cluster_urls();
    let db = TestDb::on_cluster(urls[0].clone());
    db.migrate().await;
    // Keep TTL merges from racing the command: what goes must go because of `retention`.
    for url in &urls {
        for table in ["events", "identities", "ip_keys"] {
            clickhouse::Client::default()
                .with_url(url)
                .query(&format!("SYSTEM STOP TTL MERGES {}.{table}_local", db.name))
                .execute()
                .await
                .unwrap();
        }
    }
    // Old and recent events of 40 visitors, and old identities, spread over both shards.
    db.client()
        .query(
            "INSERT INTO events (event_id, ts, site, kind, visitor_id, customer_id, path)
             SELECT generateUUIDv4(), now64(3) - toIntervalDay(if(number < 40, 400, 1)), 's',
                    'pageview', 'v' || toString(number % 40), 'c' || toString(number % 40), '/'
             FROM numbers(80)",
        )
        .execute()
        .await
        .unwrap();
    let old = format!(
        "SELECT sum(n) FROM (
             SELECT count() AS n FROM {d}.events_local WHERE ts < now() - INTERVAL 395 DAY
             UNION ALL
             SELECT count() FROM {d}.identities_local WHERE last_seen < now() - INTERVAL 395 DAY
             UNION ALL
             SELECT count() FROM {d}.ip_keys_local WHERE created < now() - INTERVAL 396 DAY)",
        d = db.name
    );
    for url in &urls {
        assert!(on(url, &old).await > 0, "nothing old on {url}");
    }
    // The identities of the 40 visitors were last seen yesterday: they stay.
    db.client()
        .query("INSERT INTO events (event_id, ts, site, kind, visitor_id, customer_id, path) SELECT generateUUIDv4(), now64(3) - toIntervalDay(400), 's', 'pageview', 'old' || toString(number), 'old' || toString(number), '/' FROM numbers(20)")
        .execute()
        .await
        .unwrap();
    db.client()
        .query(
            "INSERT INTO ip_keys (key_id, created, sealed_key)
             SELECT number, now() - toIntervalDay(if(number < 10, 397, 1)), 'k' FROM numbers(20)",
        )
        .execute()
        .await
        .unwrap();
    ok(aggregator(&db, &["retention"]));
    for url in &urls {
        assert_eq!(on(url, &old).await, 0, "expired rows left on {url}");
    }
    assert_eq!(db.count("SELECT count() FROM events").await, 40);
    assert_eq!(db.count("SELECT count() FROM identities").await, 40);
    assert_eq!(db.count("SELECT count() FROM ip_keys").await, 10);
}
