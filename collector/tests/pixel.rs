//! The pixel end to end: hits in, rows out of the real ClickHouse.

mod common;

use common::{Serve, TestDb, enc, get, metric};

const PAGE: &str = "https://shop.example.com/shoes/red?utm_source=newsletter&utm_medium=email&utm_campaign=autumn&color=red#reviews";

#[tokio::test]
async fn a_pixel_hit_becomes_one_row_with_every_column() {
    let db = TestDb::new();
    let collector = db.start(&["--trusted-proxies", "127.0.0.0/8"]).await;
    let target = format!(
        "/p.gif?site=shop.example.com&url={}&ref={}&title=Red%20shoes",
        enc(PAGE),
        enc("https://www.google.com/search?q=shoes")
    );
    let answer = get(
        collector.local_addr(),
        &target,
        &[
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Test/1.0"),
            ("x-forwarded-for", "203.0.113.77"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "image/gif");
    assert_eq!(answer.headers["cache-control"], "no-store, max-age=0");
    assert_eq!(answer.body.len(), 43);
    let visitor = answer
        .visitor_cookie()
        .expect("a new visitor gets a cookie");
    let set_cookie = answer.headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "Path=/", "Max-Age=34128000", "SameSite=Lax"] {
        assert!(
            set_cookie.contains(attribute),
            "{set_cookie} lacks {attribute}"
        );
    }
    assert!(!set_cookie.contains("Secure"), "--dev drops Secure");

    let report = collector.shutdown().await;
    assert_eq!(report.rows_written, 1);
    let rows = db
        .rows("SELECT site, kind, visitor_id, length(pageview_id) AS pv_len, customer_id, url, host, path, title, referrer, referrer_host,
                      utm_source, utm_medium, utm_campaign, dwell_ms, ip_prefix, user_agent, ip_key_id, hex(ip_sealed) AS sealed,
                      toUnixTimestamp64Milli(ts) AS ms, toString(event_id) AS id
               FROM events")
        .await;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["site"], "shop.example.com");
    assert_eq!(row["kind"], "pageview");
    assert_eq!(row["visitor_id"], visitor.as_str());
    assert_eq!(row["pv_len"], 22);
    assert_eq!(row["customer_id"], "");
    assert_eq!(
        row["url"],
        "https://shop.example.com/shoes/red?utm_source=newsletter&utm_medium=email&utm_campaign=autumn",
        "parameters other than UTM are dropped"
    );
    assert_eq!(row["host"], "shop.example.com");
    assert_eq!(row["path"], "/shoes/red");
    assert_eq!(row["title"], "Red shoes");
    assert_eq!(row["referrer"], "https://www.google.com/search");
    assert_eq!(row["referrer_host"], "www.google.com");
    assert_eq!(row["utm_source"], "newsletter");
    assert_eq!(row["utm_medium"], "email");
    assert_eq!(row["utm_campaign"], "autumn");
    assert_eq!(row["ip_prefix"], "203.0.113.0/24");
    assert_eq!(
        row["user_agent"],
        "Mozilla/5.0 (X11; Linux x86_64) Test/1.0"
    );
    let ms = row["ms"].as_i64().unwrap();
    let now = footfall_collector::routes::now_ms();
    assert!(
        (now - 60_000..=now).contains(&ms),
        "ts {ms} is not the time of the hit ({now})"
    );

    // The sealed IP opens with the private key that --dev left in the data dir, via the stored key.
    let ip = db
        .unseal(&row["ip_key_id"], row["sealed"].as_str().unwrap())
        .await;
    assert_eq!(ip.to_string(), "203.0.113.77");
}

#[tokio::test]
async fn no_table_holds_the_client_ip_in_clear() {
    let db = TestDb::new();
    let collector = db.start(&["--trusted-proxies", "127.0.0.1"]).await;
    let target = format!("/p.gif?site=s&url={}", enc("https://example.com/"));
    for ip in ["198.51.100.23", "2001:db8:abcd:12::77"] {
        let answer = get(collector.local_addr(), &target, &[("x-forwarded-for", ip)]).await;
        assert!(answer.visitor_cookie().is_some());
    }
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 2);
    for table in ["events", "ip_keys", "schema_migrations"] {
        for needle in [
            "198.51.100.23",
            "2001:db8:abcd:12::77",
            "2001:db8:abcd:12:0:0:0:77",
        ] {
            let hits = db
                .count(&format!(
                    "SELECT countIf(position(toString(tuple(*)), '{needle}') > 0) FROM {table}"
                ))
                .await;
            assert_eq!(hits, 0, "{needle} in clear in {table}");
        }
        // Nor in binary: the four bytes of the IPv4 address.
        let raw = db
            .count(&format!(
                "SELECT countIf(position(toString(tuple(*)), unhex('C6336417')) > 0) FROM {table}"
            ))
            .await;
        assert_eq!(raw, 0, "raw IPv4 bytes in {table}");
    }
    let prefixes = db
        .rows("SELECT ip_prefix FROM events ORDER BY ip_prefix")
        .await;
    assert_eq!(prefixes[0]["ip_prefix"], "198.51.100.0/24");
    assert_eq!(prefixes[1]["ip_prefix"], "2001:db8:abcd::/48");
}

#[tokio::test]
async fn a_returning_visitor_keeps_the_id_and_a_forged_one_is_replaced() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let target = format!("/p.gif?site=s&url={}", enc("https://example.com/a"));
    let first = get(addr, &target, &[]).await.visitor_cookie().unwrap();
    let cookie = format!("theme=dark; ff_id={first}");
    let again = get(addr, &target, &[("cookie", &cookie)]).await;
    assert_eq!(
        again.visitor_cookie().as_deref(),
        Some(first.as_str()),
        "same id, expiry refreshed"
    );
    let forged = get(addr, &target, &[("cookie", "ff_id=AAAAAAAAAAAAAAAAAAAAAA")])
        .await
        .visitor_cookie()
        .unwrap();
    assert_ne!(forged, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_ne!(forged, first);
    collector.shutdown().await;
    let rows = db
        .rows("SELECT visitor_id, count() AS n FROM events GROUP BY visitor_id ORDER BY n DESC")
        .await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["visitor_id"], first.as_str());
    assert_eq!(rows[0]["n"], 2);
    assert_eq!(rows[1]["visitor_id"], forged.as_str());
    assert_eq!(
        db.count("SELECT count() FROM events WHERE visitor_id = 'AAAAAAAAAAAAAAAAAAAAAA'")
            .await,
        0
    );
}

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let spoof = [("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=7.7.7.7")];
    let target = format!("/p.gif?site=s&url={}", enc("https://example.com/"));

    let untrusting = TestDb::new();
    let collector = untrusting.start(&[]).await;
    get(collector.local_addr(), &target, &spoof).await;
    collector.shutdown().await;
    let rows = untrusting.rows("SELECT ip_prefix FROM events").await;
    assert_eq!(
        rows[0]["ip_prefix"], "127.0.0.0/24",
        "an untrusted peer cannot claim another address"
    );

    let trusting = TestDb::new();
    let collector = trusting.start(&["--trusted-proxies", "127.0.0.0/8"]).await;
    get(collector.local_addr(), &target, &spoof).await;
    get(
        collector.local_addr(),
        &target,
        &[("x-forwarded-for", "5.5.5.5, 203.0.113.9, 127.0.0.2")],
    )
    .await;
    collector.shutdown().await;
    let rows = trusting
        .rows("SELECT ip_prefix FROM events ORDER BY ip_prefix")
        .await;
    let prefixes: Vec<_> = rows
        .iter()
        .map(|r| r["ip_prefix"].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        ["203.0.113.0/24", "7.7.7.0/24"],
        "Forwarded wins over X-Forwarded-For; rightmost untrusted hop"
    );
}

#[tokio::test]
async fn bad_input_gets_the_gif_is_counted_and_is_not_stored() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let long = format!("https://example.com/{}", "x".repeat(5000));
    let cases = [
        ("/p.gif".to_owned(), "missing_site"),
        (
            "/p.gif?site=%3Cscript%3E&url=https://example.com/".to_owned(),
            "bad_site",
        ),
        ("/p.gif?site=s".to_owned(), "missing_url"),
        (
            "/p.gif?site=s&url=javascript:alert(1)".to_owned(),
            "bad_url",
        ),
        ("/p.gif?site=s&url=%FF%FE%00".to_owned(), "bad_url"),
    ];
    for (target, _) in &cases {
        let answer = get(addr, target, &[]).await;
        assert_eq!(answer.status, 200, "{target}");
        assert_eq!(answer.headers["content-type"], "image/gif");
        assert_eq!(answer.body.len(), 43);
        assert!(
            answer.visitor_cookie().is_none(),
            "no cookie for a hit that was not stored"
        );
    }
    // A long URL is accepted, cut to its bound, and counted.
    let answer = get(addr, &format!("/p.gif?site=s&url={}", enc(&long)), &[]).await;
    assert!(answer.visitor_cookie().is_some());
    // The Referer header stands in for a missing url parameter.
    get(
        addr,
        "/p.gif?site=s",
        &[("referer", "https://example.com/from-referer")],
    )
    .await;
    // HEAD answers like GET and records nothing.
    let head = common::request(
        addr,
        "HEAD",
        &format!("/p.gif?site=s&url={}", enc("https://example.com/head")),
        &[],
    )
    .await;
    assert_eq!(head.status, 200);

    for reason in ["missing_site", "bad_site", "missing_url"] {
        let name = format!("footfall_hits_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&collector, &name).await, 1, "{reason}");
    }
    assert_eq!(
        metric(
            &collector,
            "footfall_hits_rejected_total{reason=\"bad_url\"}"
        )
        .await,
        2
    );
    assert_eq!(
        metric(
            &collector,
            "footfall_fields_truncated_total{field=\"page\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &collector,
            "footfall_hits_accepted_total{kind=\"pageview\"}"
        )
        .await,
        2
    );
    collector.shutdown().await;
    let rows = db
        .rows("SELECT path, length(url) AS len FROM events ORDER BY path")
        .await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["path"], "/from-referer");
    assert_eq!(rows[1]["len"], 2048);
}

#[tokio::test]
async fn hits_are_written_within_the_flush_interval_without_a_shutdown() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let target = format!("/p.gif?site=s&url={}", enc("https://example.com/"));
    for _ in 0..3 {
        get(collector.local_addr(), &target, &[]).await;
    }
    assert_eq!(db.wait_for_count("SELECT count() FROM events", 3).await, 3);
    // The rows are visible before ClickHouse has answered the insert (its materialized views
    // run in between), and the writer counts them once it has.
    let mut written = 0;
    for _ in 0..100 {
        written = metric(&collector, "footfall_rows_written_total").await;
        if written >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(written, 3);
    collector.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_unknown_routes_through_the_server() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200);
    let ready = get(addr, "/readyz", &[]).await;
    assert_eq!(
        (ready.status.as_u16(), &ready.body[..]),
        (200, &b"ready\n"[..])
    );
    // Unknown routes and methods are the routes' unit tests (no ClickHouse needed); here only
    // that the server answers them as JSON.
    let missing = get(addr, "/nope", &[]).await;
    assert_eq!(missing.status, 404);
    let body: serde_json::Value = serde_json::from_slice(&missing.body).unwrap();
    assert!(body["error"].is_string());
    collector.shutdown().await;
}
