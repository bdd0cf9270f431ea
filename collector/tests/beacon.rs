//! The tracker's side of the collector end to end: `GET /t.js`, `POST /e` with its validation
//! and CORS, and what enrichment stores, against the real ClickHouse.

mod common;

use common::{Serve, TestDb, get, metric, post, request};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const PAGE_ORIGIN: &str = "https://shop.example.com";

fn pageview(pageview_id: &str, url: &str) -> String {
    serde_json::json!({
        "kind": "pageview", "site": "shop.example.com", "url": url, "pageview_id": pageview_id,
        "referrer": "https://www.google.com/", "title": "Shoes",
    })
    .to_string()
}

fn engagement(pageview_id: &str, engaged_ms: u64) -> String {
    serde_json::json!({
        "kind": "engagement", "site": "shop.example.com", "url": "https://shop.example.com/shoes",
        "pageview_id": pageview_id, "engaged_ms": engaged_ms,
    })
    .to_string()
}

fn error_of(answer: &common::Answer) -> String {
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn beacons_become_pageview_and_engagement_rows_of_the_cookie_visitor() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let pv = "PageView0000000000000001";
    let headers = [
        ("content-type", "text/plain;charset=UTF-8"),
        ("origin", PAGE_ORIGIN),
        ("user-agent", CHROME),
    ];
    let first = post(
        addr,
        "/e",
        &headers,
        pageview(pv, "https://shop.example.com/shoes?utm_source=ad#x"),
    )
    .await;
    assert_eq!(first.status, 204, "{:?}", first.body);
    assert_eq!(first.headers["access-control-allow-origin"], PAGE_ORIGIN);
    assert_eq!(first.headers["access-control-allow-credentials"], "true");
    assert_eq!(first.headers["vary"], "Origin");
    let visitor = first
        .visitor_cookie()
        .expect("the beacon sets the visitor cookie");

    let cookie = format!("ff_id={visitor}");
    let mut with_cookie = headers.to_vec();
    with_cookie[0] = ("content-type", "application/json");
    with_cookie.push(("cookie", &cookie));
    let batch = format!("[{},{}]", engagement(pv, 1_200), engagement(pv, 4_500));
    let second = post(addr, "/e", &with_cookie, batch).await;
    assert_eq!(second.status, 204);
    assert_eq!(second.visitor_cookie().as_deref(), Some(visitor.as_str()));
    collector.shutdown().await;

    let rows = db
        .rows(
            "SELECT kind, visitor_id, pageview_id, path, url, referrer_host, title, utm_source, dwell_ms,
                    browser, os, device, is_bot
             FROM events ORDER BY kind DESC, dwell_ms",
        )
        .await;
    assert_eq!(rows.len(), 3);
    let view = &rows[0];
    assert_eq!(view["kind"], "pageview");
    assert_eq!(view["url"], "https://shop.example.com/shoes?utm_source=ad");
    assert_eq!(view["path"], "/shoes");
    assert_eq!(view["referrer_host"], "www.google.com");
    assert_eq!(view["title"], "Shoes");
    assert_eq!(view["utm_source"], "ad");
    assert_eq!(view["dwell_ms"], 0);
    let dwell: Vec<_> = rows[1..]
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["dwell_ms"].as_u64().unwrap()))
        .collect();
    assert_eq!(dwell, [("engagement", 1_200), ("engagement", 4_500)]);
    for row in &rows {
        assert_eq!(row["visitor_id"], visitor.as_str());
        assert_eq!(row["pageview_id"], pv);
        assert_eq!(
            (&row["browser"], &row["os"], &row["device"], &row["is_bot"]),
            (
                &"Chrome".into(),
                &"Windows".into(),
                &"desktop".into(),
                &false.into()
            )
        );
    }
}

#[tokio::test]
async fn bad_beacons_get_400_with_the_reason_and_nothing_is_stored() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let pv = "PageView0000000000000001";
    let json = [("content-type", "application/json")];
    let too_many = format!(
        "[{}]",
        vec![pageview(pv, "https://shop.example.com/"); 51].join(",")
    );
    let oversize = format!(
        "[{}]",
        vec![
            pageview(
                pv,
                &format!("https://shop.example.com/{}", "x".repeat(7000))
            );
            10
        ]
        .join(",")
    );
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: Vec<(Headers, String, &str)> = vec![
        (&json, "{not json".into(), "not valid JSON"),
        (
            &json,
            pageview(pv, "https://shop.example.com/").replace("\"pageview\"", "\"purchase\""),
            "unknown variant `purchase`",
        ),
        (
            &json,
            pageview(pv, "https://shop.example.com/").replace("\"title\"", "\"color\""),
            "unknown field `color`",
        ),
        (&json, too_many, "too many events"),
        (&json, oversize, "larger than 65536 bytes"),
        (&json, engagement(pv, 86_400_001), "more than a day"),
        (
            &json,
            pageview(pv, "javascript:alert(1)"),
            "event 0: `url` is not an absolute http(s) URL",
        ),
        (
            &json,
            format!(
                "[{},{}]",
                pageview(pv, "https://shop.example.com/"),
                pageview("bad id", "https://shop.example.com/")
            ),
            "event 1: `pageview_id`",
        ),
        (
            &json,
            pageview(pv, "https://shop.example.com/").replace("shop.example.com\",", "<b>\","),
            "`site` must be",
        ),
        (
            &[("content-type", "application/x-www-form-urlencoded")],
            pageview(pv, "https://shop.example.com/"),
            "Content-Type",
        ),
        (
            &[],
            pageview(pv, "https://shop.example.com/"),
            "Content-Type",
        ),
    ];
    for (headers, body, expected) in &cases {
        let answer = post(addr, "/e", headers, body.clone()).await;
        assert_eq!(answer.status, 400, "{body:.60}");
        assert_eq!(answer.headers["content-type"], "application/json");
        let error = error_of(&answer);
        assert!(error.contains(expected), "{body:.60}: {error}");
        assert!(answer.visitor_cookie().is_none());
    }
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="dwell_out_of_range"}"#
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="bad_beacon"}"#
        )
        .await,
        8
    );
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="bad_url"}"#
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="bad_site"}"#
        )
        .await,
        1
    );

    // A good beacon after all that is stored: the connection and the queue are fine.
    assert_eq!(
        post(addr, "/e", &json, pageview(pv, "https://shop.example.com/"))
            .await
            .status,
        204
    );
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 1);
}

#[tokio::test]
async fn only_allowed_origins_may_send_beacons() {
    let db = TestDb::new();
    let args = db.production_args(&[
        "--allowed-origins",
        "https://shop.example.com,https://blog.example.com",
    ]);
    let collector = footfall_collector::server::start(args).await.unwrap();
    let addr = collector.local_addr();
    let pv = "PageView0000000000000001";
    let body = pageview(pv, "https://shop.example.com/");

    let preflight = request(
        addr,
        "OPTIONS",
        "/e",
        &[
            ("origin", PAGE_ORIGIN),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.headers["access-control-allow-origin"],
        PAGE_ORIGIN
    );
    assert_eq!(
        preflight.headers["access-control-allow-credentials"],
        "true"
    );
    assert_eq!(preflight.headers["access-control-allow-methods"], "POST");
    assert!(
        preflight.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("content-type")
    );
    assert_eq!(preflight.headers["vary"], "Origin");

    let foreign = [
        ("origin", "https://evil.example.net"),
        ("content-type", "text/plain"),
    ];
    let refused = request(
        addr,
        "OPTIONS",
        "/e",
        &[foreign[0], ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    let refused = post(addr, "/e", &foreign, body.clone()).await;
    assert_eq!(refused.status, 403);
    assert!(error_of(&refused).contains("origin"));
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    assert!(refused.visitor_cookie().is_none());

    let allowed = post(
        addr,
        "/e",
        &[
            ("origin", "https://blog.example.com"),
            ("content-type", "text/plain"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://blog.example.com"
    );
    // Not a browser's cross-origin request: nothing to check, no CORS headers.
    let tool = post(addr, "/e", &[("content-type", "application/json")], body).await;
    assert_eq!(tool.status, 204);
    assert!(tool.headers.get("access-control-allow-origin").is_none());
    // A bad beacon from an allowed page still lets the page read why.
    let bad = post(
        addr,
        "/e",
        &[("origin", PAGE_ORIGIN), ("content-type", "text/plain")],
        "[]",
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.headers["access-control-allow-origin"], PAGE_ORIGIN);

    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="origin_not_allowed"}"#
        )
        .await,
        1
    );
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 2);
}

#[tokio::test]
async fn the_tracker_script_is_served_with_an_etag() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let script = get(addr, "/t.js", &[]).await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(script.headers["cache-control"], "public, max-age=3600");
    assert_eq!(&script.body[..], footfall_collector::tracker::script());
    let etag = script.headers["etag"].to_str().unwrap().to_owned();
    let again = get(addr, "/t.js", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.headers["etag"], etag.as_str());

    let wrong = get(addr, "/e", &[]).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.headers["allow"], "POST, OPTIONS");
    assert_eq!(request(addr, "POST", "/t.js", &[]).await.status, 405);
    collector.shutdown().await;
}

#[tokio::test]
async fn user_agents_are_classified_and_bots_are_flagged_but_stored() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let table = [
        (CHROME, "Chrome", "Windows", "desktop", false),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            "mobile",
            false,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            "tablet",
            false,
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Googlebot",
            "",
            "bot",
            true,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "Chrome",
            "Linux",
            "bot",
            true,
        ),
    ];
    for (i, (ua, ..)) in table.iter().enumerate() {
        let target = format!("/p.gif?site=s&url=https%3A%2F%2Fexample.com%2F{i}");
        assert!(
            get(addr, &target, &[("user-agent", ua)])
                .await
                .visitor_cookie()
                .is_some()
        );
    }
    collector.shutdown().await;
    let rows = db
        .rows("SELECT browser, os, device, is_bot FROM events ORDER BY path")
        .await;
    assert_eq!(rows.len(), table.len());
    for (row, (ua, browser, os, device, bot)) in rows.iter().zip(table) {
        assert_eq!(
            (
                row["browser"].as_str().unwrap(),
                row["os"].as_str().unwrap(),
                row["device"].as_str().unwrap(),
                row["is_bot"].as_bool().unwrap()
            ),
            (browser, os, device, bot),
            "{ua}"
        );
    }
}

#[tokio::test]
async fn beacons_honour_opt_out_dnt_gpc_and_consent_and_carry_customer_links() {
    let db = TestDb::new();
    let collector = db.start(&["--consent", "required"]).await;
    let addr = collector.local_addr();
    let secret = footfall_collector::keys::load_secret(db.data_dir.path(), None, true).unwrap();
    let signer = footfall_collector::signing::Signer::new(&secret);
    let link = footfall_collector::hit::customer::sign(
        "cust-7",
        "shop.example.com",
        common::now_secs(),
        &signer,
    )
    .unwrap();
    let pv = "PageView0000000000000001";
    let plain = ("content-type", "text/plain");
    let withheld = [
        ("/e?consent=1", ("dnt", "1")),
        ("/e?consent=1", ("sec-gpc", "1")),
        ("/e?consent=1", ("cookie", "ff_optout=1")),
        ("/e", ("user-agent", CHROME)),
    ];
    for (target, header) in withheld {
        let answer = post(
            addr,
            target,
            &[plain, header, ("origin", PAGE_ORIGIN)],
            pageview(pv, "https://shop.example.com/"),
        )
        .await;
        assert_eq!(answer.status, 204, "{target} {header:?}");
        assert!(
            answer.visitor_cookie().is_none(),
            "{target} {header:?}: no cookie"
        );
        assert_eq!(answer.headers["access-control-allow-origin"], PAGE_ORIGIN);
    }
    let body = format!(
        "[{},{}]",
        pageview(pv, "https://shop.example.com/"),
        engagement(pv, 500)
    );
    let stored = post(addr, &format!("/e?consent=1&{link}"), &[plain], body).await;
    assert_eq!(stored.status, 204);
    assert!(stored.visitor_cookie().is_some());

    for reason in ["dnt", "gpc", "opted_out", "no_consent"] {
        let name = format!("footfall_hits_withheld_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&collector, &name).await, 1, "{reason}");
    }
    collector.shutdown().await;
    let rows = db
        .rows("SELECT kind, customer_id FROM events ORDER BY kind")
        .await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["customer_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [("engagement", "cust-7"), ("pageview", "cust-7")]);
}

/// A beacon of `events` page views, each with a page-view id of its own (`{beacon}x{n}`).
fn numbered_beacon(beacon: usize, events: usize) -> String {
    let views: Vec<_> = (0..events)
        .map(|n| {
            pageview(
                &format!("Beacon{beacon:06}x{n:010}"),
                "https://shop.example.com/",
            )
        })
        .collect();
    format!("[{}]", views.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_beacon_the_collector_cannot_keep_whole_stores_none_of_its_events() {
    let db = TestDb::new();
    // Room for 25 queued events: a beacon of 30 never fits, and concurrent beacons of 10 often
    // find the queue too full for all of theirs.
    let collector = db.start(&["--queue-capacity", "25"]).await;
    let addr = collector.local_addr();
    let json = [("content-type", "application/json")];
    let refused = post(addr, "/e", &json, numbered_beacon(0, 30)).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);

    let mut senders = Vec::new();
    for client in 0..8 {
        senders.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for round in 0..25 {
                let beacon = 1 + client * 1000 + round;
                let json = [("content-type", "application/json")];
                let answer = post(addr, "/e", &json, numbered_beacon(beacon, 10)).await;
                answers.push((beacon, answer.status.as_u16()));
            }
            answers
        }));
    }
    let mut answers = vec![(0, 503)];
    for sender in senders {
        answers.extend(sender.await.unwrap());
    }
    collector.shutdown().await;

    let stored = db
        .rows(
            "SELECT toUInt32(substring(pageview_id, 7, 6)) AS beacon, count() AS n
             FROM events GROUP BY beacon",
        )
        .await;
    let stored: std::collections::HashMap<u64, u64> = stored
        .iter()
        .map(|r| (r["beacon"].as_u64().unwrap(), r["n"].as_u64().unwrap()))
        .collect();
    for (beacon, status) in &answers {
        let rows = stored.get(&(*beacon as u64)).copied().unwrap_or(0);
        match status {
            204 => assert_eq!(rows, 10, "beacon {beacon} answered 204 stored {rows} of 10"),
            503 => assert_eq!(rows, 0, "beacon {beacon} answered 503 stored {rows} events"),
            other => panic!("beacon {beacon}: unexpected status {other}"),
        }
    }
    let accepted = answers.iter().filter(|(_, s)| *s == 204).count();
    assert!(accepted > 0, "some beacons fit");
    assert_eq!(
        stored.values().sum::<u64>(),
        10 * accepted as u64,
        "nothing but the accepted beacons' events is stored"
    );
}

#[tokio::test]
async fn client_hints_tell_windows_11_and_a_bot_token_past_the_stored_cut_counts() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let pixel = |i: usize| format!("/p.gif?site=s&url=https%3A%2F%2Fexample.com%2F{i}");
    let windows_11 = [
        ("user-agent", CHROME),
        ("sec-ch-ua-platform", "\"Windows\""),
        ("sec-ch-ua-platform-version", "\"15.0.0\""),
    ];
    // A hint that names another OS than the agent is not believed.
    let mismatched = [
        ("user-agent", CHROME),
        ("sec-ch-ua-platform", "\"macOS\""),
        ("sec-ch-ua-platform-version", "\"14.4.1\""),
    ];
    let long_bot = format!("{CHROME} {} ExampleCrawler/1.0", "x".repeat(600));
    for (i, headers) in [
        &windows_11[..],
        &[("user-agent", CHROME)][..],
        &mismatched[..],
        &[("user-agent", long_bot.as_str())][..],
    ]
    .into_iter()
    .enumerate()
    {
        assert!(
            get(addr, &pixel(i), headers)
                .await
                .visitor_cookie()
                .is_some()
        );
    }
    // The tracker's userAgentData hints come in the page view's body.
    let mut hinted: serde_json::Value = serde_json::from_str(&pageview(
        "PageView0000000000000009",
        "https://shop.example.com/9",
    ))
    .unwrap();
    hinted["platform"] = "Windows".into();
    hinted["platform_version"] = "13.0.0".into();
    let headers = [
        ("content-type", "application/json"),
        ("origin", PAGE_ORIGIN),
        ("user-agent", CHROME),
    ];
    assert_eq!(
        post(addr, "/e", &headers, hinted.to_string()).await.status,
        204
    );
    assert_eq!(
        metric(&collector, r#"footfall_hits_bot_total{kind="pageview"}"#).await,
        1,
        "the operator sees the bot share"
    );
    collector.shutdown().await;

    let rows = db
        .rows("SELECT os, os_version, browser, browser_version, is_bot, toUInt32(length(user_agent)) AS stored FROM events ORDER BY path")
        .await;
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["os"].as_str().unwrap().to_owned(),
                r["os_version"].as_str().unwrap().to_owned(),
                r["is_bot"].as_bool().unwrap(),
            )
        })
        .collect();
    let want = [
        ("Windows", "11", false),
        ("Windows", "10", false),
        ("Windows", "10", false),
        ("Windows", "10", true),
        ("Windows", "11", false),
    ]
    .map(|(os, version, bot)| (os.to_owned(), version.to_owned(), bot));
    assert_eq!(got, want);
    assert_eq!(rows[0]["browser"], "Chrome");
    assert_eq!(rows[0]["browser_version"], "124.0");
    assert_eq!(
        rows[3]["stored"], 512,
        "the stored agent is cut, its bot token was read"
    );
}
