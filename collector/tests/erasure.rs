//! An erasure reaches the hits a collector answered before it but could only send after it.
//!
//! The attack: while ClickHouse cannot be reached from the collector, a visitor and a customer
//! (on a browser first linked during the outage) browse, others too; the erasure is recorded
//! as `subject erase` records it; then the collector reconnects and drains its spool. Nothing
//! the two did before the erasure may be stored, in `events` or in a rollup; every other
//! acknowledged hit must be, once; and what they do after the erasure is stored as usual.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Proxy, ProxyMode, Serve, TestDb, enc, eventually, get, metric, sign_customer, wait_for_schema,
};
use footfall_collector::server::{self, Collector};
use footfall_store::erasure::{self, Entry};

const LIMIT: Duration = Duration::from_secs(30);
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/131.0.0.0 Safari/537.36";

/// A browser on site `s`, keeping the visitor cookie it is given.
struct Browser {
    addr: SocketAddr,
    id: Option<String>,
}

impl Browser {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, id: None }
    }

    /// Views `path` (the pixel, as an image of the page, `extra` added to its query); true if
    /// the hit was acknowledged (answered with a visitor cookie).
    async fn view(&mut self, path: &str, extra: &str) -> bool {
        let target = format!(
            "/p.gif?site=s&url={}{extra}",
            enc(&format!("https://shop.example.com{path}"))
        );
        let cookie = self.id.as_ref().map(|id| format!("ff_id={id}"));
        let mut headers = vec![
            ("user-agent", UA),
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "image"),
            ("sec-fetch-site", "same-site"),
        ];
        if let Some(cookie) = &cookie {
            headers.push(("cookie", cookie));
        }
        let answer = get(self.addr, &target, &headers).await;
        assert_eq!(answer.status, 200);
        let given = answer.visitor_cookie();
        if self.id.is_none() {
            self.id = given.clone();
        }
        given.is_some()
    }

    fn id(&self) -> &str {
        self.id.as_deref().expect("a visitor id")
    }
}

async fn backlog(collector: &Collector) -> u64 {
    metric(collector, "footfall_spool_backlog_rows").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_spooled_before_an_erasure_are_not_stored_after_it() {
    let db = TestDb::new();
    let proxy = Proxy::start(&db.url, ProxyMode::Forward).await;
    let collector = server::start(db.serve_args_via(&proxy.url(), &[]))
        .await
        .unwrap();
    let addr = collector.local_addr();
    wait_for_schema(addr).await;
    proxy.set(ProxyMode::Refuse);

    let mut acknowledged = 0;
    let mut gone = Browser::new(addr);
    for _ in 0..4 {
        assert!(gone.view("/private", "").await);
    }
    let mut others: Vec<Browser> = (0..5).map(|_| Browser::new(addr)).collect();
    for browser in &mut others {
        for _ in 0..3 {
            acknowledged += u64::from(browser.view("/a", "").await);
        }
    }
    let (link, _) = sign_customer("alice", "s", db.data_dir.path().to_str().unwrap());
    let mut laptop = Browser::new(addr);
    assert!(laptop.view("/account", &format!("&{link}")).await);
    assert!(laptop.view("/orders", "").await);
    assert!(laptop.view("/orders/1", "").await);
    assert!(
        eventually(LIMIT, || async { backlog(&collector).await == 22 }).await,
        "every hit waits in the spool"
    );

    // The erasure, as `subject erase` records it (ClickHouse is reachable from everywhere but
    // the collector).
    let client = db.client();
    let erased = erasure::now_ms(&client).await.unwrap();
    let entries = [Entry::Visitor(gone.id()), Entry::Customer("alice")];
    erasure::record(&client, &entries, erased).await.unwrap();

    // After it, both come back.
    assert!(gone.view("/after", "").await);
    assert!(gone.view("/after", "").await);
    assert!(laptop.view("/after", "").await);
    acknowledged += 3;

    proxy.set(ProxyMode::Forward);
    assert!(
        eventually(LIMIT, || async { backlog(&collector).await == 0 }).await,
        "the spool drains"
    );
    let erased_rows = metric(&collector, "footfall_rows_erased_total").await;
    let written = metric(&collector, "footfall_rows_written_total").await;
    collector.shutdown().await;

    assert_eq!(erased_rows, 4 + 3, "dropped and counted");
    assert_eq!(written, acknowledged);
    let stored = db.count("SELECT count() FROM events").await;
    let distinct = db.count("SELECT uniqExact(event_id) FROM events").await;
    assert_eq!(
        (stored, distinct),
        (acknowledged, acknowledged),
        "every other hit stored, once"
    );
    for (browser, after) in [(&gone, 2), (&laptop, 1)] {
        let theirs = db
            .rows(&format!(
                "SELECT path, ts >= fromUnixTimestamp64Milli({erased}, 'UTC') AS later
                 FROM events WHERE visitor_id = '{}'",
                browser.id()
            ))
            .await;
        assert_eq!(theirs.len(), after, "only what came after: {theirs:?}");
        assert!(
            theirs
                .iter()
                .all(|r| r["path"] == "/after" && r["later"] == 1)
        );
    }
    for browser in &others {
        let n = db
            .count(&format!(
                "SELECT count() FROM events WHERE visitor_id = '{}'",
                browser.id()
            ))
            .await;
        assert_eq!(n, 3);
    }
    assert_eq!(
        db.count("SELECT count() FROM identities").await,
        0,
        "no link of the erased customer"
    );
    // The rollups never saw the dropped rows: as many page views and visitors as stored.
    let all = db
        .rows(
            "SELECT sum(hits) AS hits, uniqExactMerge(visitors) AS visitors
             FROM traffic_keyed_daily WHERE dimension = 'all' AND site = 's'",
        )
        .await;
    assert_eq!(all[0]["hits"], acknowledged);
    assert_eq!(all[0]["visitors"], 5 + 2);
    let pages = db
        .rows(
            "SELECT k1, sum(hits) AS hits FROM traffic_keyed_daily
             WHERE dimension = 'page' GROUP BY k1 ORDER BY k1",
        )
        .await;
    let pages: Vec<(String, u64)> = pages
        .iter()
        .map(|r| {
            (
                r["k1"].as_str().unwrap().to_owned(),
                r["hits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pages, [("/a".to_owned(), 15), ("/after".to_owned(), 3)]);
}
