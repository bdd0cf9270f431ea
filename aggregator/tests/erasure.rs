//! `subject erase` during an outage between a collector and ClickHouse: the collector (the real
//! binary, behind a proxy that refuses it) answers hits and spools them; the aggregator, which
//! still reaches ClickHouse, erases a visitor and a customer; the collector reconnects and
//! drains. Nothing either did before the erasure is stored, counted or reported, on a shared
//! browser the other person's hits stay, every other acknowledged hit is stored once, and what
//! the visitor does after the erasure is stored as usual. The erasure record and its key go
//! with the retention period.

mod run;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use footfall_store::testing::TestDb;
use footfall_store::testing::http::get;
use footfall_store::testing::proxy::{Proxy, ProxyMode};
use run::{Collector, aggregator, binaries, ok};
use serde_json::Value;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/131.0.0.0 Safari/537.36";
const LIMIT: Duration = Duration::from_secs(30);

/// `footfall-collector serve --dev` for `db`, reaching ClickHouse at `url`; returns once it
/// has applied the schema.
async fn collector(db: &TestDb, url: &str) -> Collector {
    let collector = Collector::spawn(url, &db.name, db.data_dir.path(), &[]);
    let addr = collector.addr;
    assert!(
        eventually(|| async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
                && !String::from_utf8_lossy(&get(addr, "/readyz", &[]).await.body)
                    .contains("schema not applied")
        })
        .await,
        "the collector starts"
    );
    collector
}

async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + LIMIT;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check().await
}

/// The value of the sample `name` in the collector's `/metrics`.
async fn metric(collector: &Collector, name: &str) -> u64 {
    let text = get(collector.metrics, "/metrics", &[]).await.body;
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// `footfall-collector sign customer` with the secret in `db`'s data dir.
fn link(db: &TestDb, customer: &str) -> String {
    let out = Command::new(binaries().join("footfall-collector"))
        .args(["sign", "customer", "--id", customer, "--site", "s"])
        .arg("--data-dir")
        .arg(db.data_dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A browser on its own network, keeping the visitor cookie it is given.
struct Browser {
    addr: SocketAddr,
    network: String,
    id: Option<String>,
}

impl Browser {
    fn new(addr: SocketAddr, n: u8) -> Self {
        Self {
            addr,
            network: format!("198.51.{n}.7"),
            id: None,
        }
    }

    /// Views `path` (with `extra` in the pixel's query). Returns whether the hit was
    /// acknowledged (answered with a visitor cookie). A millisecond apart, as a person's views
    /// are: the rules order one browser's hits by time.
    async fn view(&mut self, path: &str, extra: &str) -> u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let target = format!(
            "/p.gif?site=s&url=https%3A%2F%2Fshop.test{}{extra}",
            path.replace('/', "%2F")
        );
        let cookie = self.id.as_ref().map(|id| format!("ff_id={id}"));
        let mut headers = vec![
            ("user-agent", UA),
            ("x-forwarded-for", self.network.as_str()),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "image"),
            ("sec-fetch-site", "same-site"),
        ];
        if let Some(cookie) = &cookie {
            headers.push(("cookie", cookie));
        }
        let answer = get(self.addr, &target, &headers).await;
        let given = answer.visitor_cookie();
        if self.id.is_none() {
            self.id = given.clone();
        }
        u64::from(given.is_some())
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap()
    }
}

fn export(db: &TestDb, who: &str, id: &str) -> Value {
    serde_json::from_str(&ok(aggregator(db, &["subject", "export", who, id]))).unwrap()
}

fn paths(export: &Value) -> Vec<String> {
    let mut paths: Vec<String> = (export["events"].as_array().unwrap().iter())
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_during_an_outage_reaches_the_hits_spooled_before_it() {
    let db = TestDb::new();
    let proxy = Proxy::start(&db.url, ProxyMode::Forward).await;
    let collector = collector(&db, &proxy.url()).await;
    let addr = collector.addr;
    let mut acknowledged = 0;

    // Before the outage: Bob signs in on a shared computer and browses; a visitor looks around.
    let mut shared = Browser::new(addr, 1);
    shared
        .view("/welcome", &format!("&{}", link(&db, "bob")))
        .await;
    shared.view("/bob/orders", "").await;
    let mut gone = Browser::new(addr, 2);
    gone.view("/private/1", "").await;
    let mut others: Vec<Browser> = (10..13).map(|n| Browser::new(addr, n)).collect();
    for browser in &mut others {
        acknowledged += browser.view("/a", "").await;
    }
    // Stored, and known to the collector to be (an answer cut by the outage would be retried).
    let stored_before = db
        .wait_for_count("SELECT count() FROM events", 3 + acknowledged)
        .await;
    assert_eq!(stored_before, 3 + acknowledged);
    assert!(
        eventually(|| async { metric(&collector, "footfall_spool_backlog_rows").await == 0 }).await
    );

    // The outage: the collector answers and spools.
    proxy.set(ProxyMode::Refuse);
    shared.view("/bob/address", "").await;
    shared.view("/bob/payment", "").await;
    acknowledged += shared
        .view("/hello", &format!("&{}", link(&db, "carol")))
        .await;
    acknowledged += shared.view("/carol/basket", "").await;
    for _ in 0..3 {
        gone.view("/private/2", "").await;
    }
    for browser in &mut others {
        acknowledged += browser.view("/b", "").await;
    }
    let spooled =
        eventually(|| async { metric(&collector, "footfall_spool_backlog_rows").await == 10 })
            .await;
    assert!(
        spooled,
        "every hit waits in the spool: {}",
        metric(&collector, "footfall_spool_backlog_rows").await
    );

    let said = ok(aggregator(
        &db,
        &["subject", "erase", "--visitor", gone.id()],
    ));
    assert!(said.contains("erased 1 events"), "{said}");
    let said = ok(aggregator(&db, &["subject", "erase", "--customer", "bob"]));
    assert!(said.contains("erased 2 events"), "{said}");
    assert!(said.contains("spool"), "it says what it promises: {said}");

    // After the erasure the visitor comes back.
    acknowledged += gone.view("/after", "").await;

    proxy.set(ProxyMode::Forward);
    assert!(
        eventually(|| async { metric(&collector, "footfall_spool_backlog_rows").await == 0 }).await,
        "the spool drains"
    );
    assert_eq!(
        metric(&collector, "footfall_rows_erased_total").await,
        3 + 2
    );
    drop(collector);

    let stored = db.count("SELECT count() FROM events").await;
    let distinct = db.count("SELECT uniqExact(event_id) FROM events").await;
    assert_eq!(
        (stored, distinct),
        (acknowledged, acknowledged),
        "once each"
    );
    assert_eq!(
        paths(&export(&db, "--customer", "bob")),
        Vec::<String>::new()
    );
    assert_eq!(paths(&export(&db, "--visitor", gone.id())), ["/after"]);
    assert_eq!(
        paths(&export(&db, "--customer", "carol")),
        ["/carol/basket", "/hello"],
        "the next person on the shared computer keeps hers"
    );
    for browser in &others {
        assert_eq!(paths(&export(&db, "--visitor", browser.id())), ["/a", "/b"]);
    }

    // Neither rollups nor reports count what was dropped.
    let pages = db
        .rows(
            "SELECT k1, sum(hits) AS hits, uniqExactMerge(visitors) AS visitors
             FROM traffic_keyed_daily WHERE dimension = 'page' GROUP BY k1 ORDER BY k1",
        )
        .await;
    let pages: Vec<String> = pages
        .iter()
        .map(|r| format!("{} {} {}", r["k1"], r["hits"], r["visitors"]))
        .collect();
    assert_eq!(
        pages,
        [
            "\"/a\" 3 3",
            "\"/after\" 1 1",
            "\"/b\" 3 3",
            "\"/carol/basket\" 1 1",
            "\"/hello\" 1 1"
        ]
    );
    let today: String = db
        .client()
        .query("SELECT toString(today())")
        .fetch_one()
        .await
        .unwrap();
    let daily = ok(aggregator(
        &db,
        &[
            "export",
            "--report",
            "daily",
            "--from",
            &today,
            "--to",
            &today,
            "--min-visitors",
            "2",
        ],
    ));
    let mut lines = daily.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().expect("a row for today").split(',').collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    // Three others, the shared computer (Carol now) and the visitor after the erasure.
    assert_eq!(column("visitors"), "5", "{daily}");
    assert_eq!(column("pageviews"), acknowledged.to_string(), "{daily}");

    // The records hold keyed hashes, no id: testing them for someone takes the key...
    for id in [gone.id(), shared.id(), "bob"] {
        assert!(hashed_now(&db, id).await);
    }
    assert!(!hashed_now(&db, others[0].id()).await);
    // ...and records and keys go with the retention period.
    db.client()
        .query(
            "ALTER TABLE erasures UPDATE erased = erased - toIntervalDay(400)
             WHERE 1 SETTINGS mutations_sync = 2",
        )
        .execute()
        .await
        .unwrap();
    db.client()
        .query(
            "ALTER TABLE erasure_keys UPDATE created = created - toIntervalDay(430)
             WHERE 1 SETTINGS mutations_sync = 2",
        )
        .execute()
        .await
        .unwrap();
    ok(aggregator(&db, &["retention"]));
    assert_eq!(db.count("SELECT count() FROM erasures").await, 0);
    assert_eq!(db.count("SELECT count() FROM erasure_keys").await, 0);
    assert!(
        !hashed_now(&db, gone.id()).await,
        "nothing left to test against"
    );
}

/// Whether a stored erasure record is the hash of `id` under its stored key.
async fn hashed_now(db: &TestDb, id: &str) -> bool {
    let (keys, records) = footfall_store::erasure::fetch(&db.client()).await.unwrap();
    records.iter().any(|r| {
        keys.iter().any(|k| {
            k.key_id == r.key_id
                && r.hash == footfall_store::erasure::Hasher::new(&k.key).hash(id.as_bytes())
        })
    })
}

/// The race: an insert that began before the erasure was recorded (its collector's list did
/// not have it yet) and is still running when the erasure deletes. The erasure waits for it,
/// so its rows are there to be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_running_when_the_erasure_starts_lands_before_the_deletion() {
    use footfall_store::event::{Event, Kind};
    use footfall_store::native::Block;
    use footfall_store::row_binary;

    let db = TestDb::new();
    db.migrate().await;
    let visitor = footfall_store::id::Id::random().to_string();
    let now_ms = footfall_store::erasure::now_ms(&db.client()).await.unwrap();
    let mut event = Event::new(Kind::Pageview, now_ms - 1000);
    event.site = "s".into();
    event.visitor_id = visitor.as_str().into();
    let mut block = Block::new();
    let mut row = Vec::new();
    row_binary::encode(&event, &mut row);
    block.push(&row).unwrap();
    // Enough rows behind it for ClickHouse to start the insert before its end.
    let mut other = Event::new(Kind::Pageview, now_ms - 1000);
    other.site = "s".into();
    other.visitor_id = "someone".into();
    row.clear();
    row_binary::encode(&other, &mut row);
    for _ in 0..20_000 {
        block.push(&row).unwrap();
    }
    let mut body = Vec::new();
    block.write_to(&mut body);
    let mut insert = db
        .client()
        .insert_formatted_with("INSERT INTO events FORMAT Native");
    // Sent but not ended: the insert runs, its rows not yet stored.
    insert.send(body.into()).await.unwrap();

    let erase = {
        let db_name = db.name.clone();
        let url = db.url.clone();
        let data_dir = db.data_dir.path().to_owned();
        let visitor = visitor.clone();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_footfall-aggregator"))
                .args(["subject", "erase", "--visitor", &visitor])
                .args(["--clickhouse-url", &url, "--clickhouse-database", &db_name])
                .env("FOOTFALL_DATA_DIR", data_dir)
                .output()
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!erase.is_finished(), "the erasure waits for the insert");
    insert.end().await.unwrap();
    let said = ok(tokio::task::spawn_blocking(move || erase.join().unwrap())
        .await
        .unwrap());
    assert!(said.contains("erased 1 events"), "{said}");
    let left = db
        .count(&format!(
            "SELECT count() FROM events WHERE visitor_id = '{visitor}'"
        ))
        .await;
    assert_eq!(left, 0);
    assert_eq!(db.count("SELECT count() FROM events").await, 20_000);
}
