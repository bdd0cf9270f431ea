//! Hostile and broken input: each gets the right status, nothing crashes, nothing bad is stored,
//! and slow clients cannot starve others.

mod common;

use std::time::Duration;

use common::{Serve, TestDb, get, metric, post, spawn_collector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` as raw bytes and returns the status line of the answer ("" if none).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A request head; `headers` may end open (without CRLF) for raw bytes to follow.
fn request(target: &str, headers: &str) -> Vec<u8> {
    let head =
        format!("GET {target} HTTP/1.1\r\nHost: collector.test\r\nConnection: close\r\n{headers}");
    let end = if headers.is_empty() || headers.ends_with("\r\n") {
        "\r\n"
    } else {
        ""
    };
    format!("{head}{end}").into_bytes()
}

#[tokio::test]
async fn hostile_requests_get_a_clear_status_and_store_nothing_bad() {
    let db = TestDb::new();
    let collector = db
        .start(&[
            "--trusted-proxies",
            "127.0.0.1",
            "--max-header-bytes",
            "8192",
        ])
        .await;
    let addr = collector.local_addr();
    let page = "url=https%3A%2F%2Fexample.com%2Fok";
    let huge = "x".repeat(20_000);
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_forwarded: String =
        format!("X-Forwarded-For: {}\r\n", vec!["10.0.0.1"; 600].join(", "));
    let absurd_cookie = format!(
        "Cookie: ff_id={}; {}\r\n",
        "A".repeat(4000),
        "a=b; ".repeat(200)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "NUL byte in the request line",
            b"GET /p.gif?site=s\0 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "not HTTP at all",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "invalid UTF-8 in a header",
            [
                &request(&format!("/p.gif?site=s&{page}"), "User-Agent: ")[..],
                b"\xff\xfe\r\n\r\n",
            ]
            .concat(),
            "200",
        ),
        (
            "URL over the head limit",
            request(&format!("/p.gif?site=s&url={huge}"), ""),
            "431",
        ),
        (
            "header over the head limit",
            request("/p.gif?site=s", &format!("X-Big: {huge}\r\n")),
            "431",
        ),
        (
            "too many headers",
            request("/p.gif?site=s", &many_headers),
            "431",
        ),
        (
            "wrong method on the pixel",
            b"DELETE /p.gif HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            "405",
        ),
        ("unknown path", request("/wp-admin.php", ""), "404"),
        (
            "NUL in the site, percent-encoded",
            request(&format!("/p.gif?site=s%00&{page}"), ""),
            "200",
        ),
        (
            "invalid UTF-8 in the query",
            request(&format!("/p.gif?site=%FF%FE&{page}"), ""),
            "200",
        ),
        (
            "absurd cookies",
            request(&format!("/p.gif?site=s&{page}"), &absurd_cookie),
            "200",
        ),
        (
            "bogus X-Forwarded-For",
            request(
                &format!("/p.gif?site=s&{page}"),
                "X-Forwarded-For: 999.1.1.1, [garbage, ::::\r\n",
            ),
            "200",
        ),
        (
            "bogus Forwarded",
            request(
                &format!("/p.gif?site=s&{page}"),
                "Forwarded: for=\"[2001:db8::1\";;;==, for\r\n",
            ),
            "200",
        ),
        (
            "a long proxy chain",
            request(&format!("/p.gif?site=s&{page}"), &many_forwarded),
            "200",
        ),
    ];
    for (what, bytes, status) in &cases {
        let line = raw(addr, bytes).await;
        assert!(
            line.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: got {line:?}, want {status}"
        );
    }
    assert_eq!(get(addr, "/healthz", &[]).await.status, 200, "still up");
    collector.shutdown().await;

    // Stored: the five well-formed pixel hits (UA garbage, absurd cookie, bogus proxy headers).
    let rows = db
        .rows("SELECT site, path, visitor_id, ip_prefix, user_agent FROM events")
        .await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    for row in &rows {
        assert_eq!(row["site"], "s");
        assert_eq!(row["path"], "/ok");
        assert_eq!(
            row["visitor_id"].as_str().unwrap().len(),
            22,
            "an absurd cookie is replaced"
        );
        assert!(!row["user_agent"].as_str().unwrap().contains('\0'));
    }
    let prefixes: Vec<_> = rows
        .iter()
        .map(|r| r["ip_prefix"].as_str().unwrap())
        .collect();
    assert!(
        prefixes
            .iter()
            .all(|p| *p == "127.0.0.0/24" || *p == "10.0.0.0/24"),
        "{prefixes:?}"
    );
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_does_not_starve_normal_clients_and_memory_stays_bounded() {
    let db = TestDb::new();
    let (child, addr) = spawn_collector(
        &db,
        &[
            "--header-read-timeout-ms",
            "1000",
            "--max-connections",
            "2000",
        ],
    )
    .await;
    let target = format!("/p.gif?site=s&url={}", common::enc("https://example.com/"));
    get(addr, &target, &[]).await;
    let rss_before = rss_kib(child.id());

    // 500 clients that send a request head one byte at a time, slower than the timeout allows.
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /p.gif?site=s HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let drip = tokio::spawn(async move {
        let mut closed = 0;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            closed = 0;
            for stream in &mut slow {
                if stream.write_all(b"a").await.is_err() {
                    closed += 1;
                    continue;
                }
                let mut buf = [0u8; 64];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_micros(1), stream.read(&mut buf)).await
                {
                    closed += 1;
                }
            }
            if closed == slow.len() {
                break;
            }
        }
        closed
    });

    for _ in 0..50 {
        assert_eq!(
            get(addr, &target, &[]).await.status,
            200,
            "normal clients are served meanwhile"
        );
    }
    let rss_during = rss_kib(child.id());
    assert_eq!(
        drip.await.unwrap(),
        500,
        "every slow connection is closed by the header timeout"
    );
    assert!(
        rss_during < rss_before + 32 * 1024,
        "memory grew from {rss_before} KiB to {rss_during} KiB"
    );
    assert_eq!(common::signal_and_wait(child, "TERM").await.code(), Some(0));
    assert_eq!(db.count("SELECT count() FROM events").await, 51);
}

#[tokio::test]
async fn the_rate_limit_stores_a_clients_burst_and_answers_the_rest() {
    let db = TestDb::new();
    // One hit a minute after a burst of 3: nothing is replenished while the test runs.
    let collector = db
        .start(&[
            "--trusted-proxies",
            "127.0.0.1",
            "--rate-limit-per-minute",
            "1",
            "--rate-limit-burst",
            "3",
        ])
        .await;
    let addr = collector.local_addr();
    let target = format!(
        "/p.gif?site=limited&url={}",
        common::enc("https://example.com/")
    );
    let pixel_from = |client: &'static str| {
        let target = target.clone();
        async move { get(addr, &target, &[("x-forwarded-for", client)]).await }
    };
    let beacon_from = |client: &'static str, events: usize| async move {
        let one = r#"{"kind":"pageview","site":"limited","url":"https://example.com/b","pageview_id":"pv0123456789abcdef"}"#;
        let body = format!("[{}]", vec![one; events].join(","));
        let headers = [
            ("x-forwarded-for", client),
            ("content-type", "application/json"),
        ];
        post(addr, "/e", &headers, body).await
    };

    let mut stored = 0;
    for _ in 0..8 {
        let answer = pixel_from("203.0.113.5").await;
        assert_eq!(answer.status, 200, "the pixel always answers its GIF");
        assert_eq!(answer.body.as_ref(), footfall_collector::response::GIF);
        stored += usize::from(answer.visitor_cookie().is_some());
    }
    assert_eq!(
        stored, 3,
        "the burst is stored (and gets its cookie), the rest is not"
    );
    let refused = beacon_from("203.0.113.5", 1).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(String::from_utf8_lossy(&refused.body).contains("too many hits"));

    // Another client has its own allowance, and every event of a beacon counts.
    assert_eq!(beacon_from("203.0.113.6", 2).await.status, 204);
    assert_eq!(
        beacon_from("203.0.113.6", 2).await.status,
        429,
        "one hit left, two asked"
    );
    assert!(pixel_from("203.0.113.6").await.visitor_cookie().is_some());
    assert!(pixel_from("203.0.113.6").await.visitor_cookie().is_none());

    // IPv6 clients are counted by /64: rotating the interface id does not help.
    for host in ["1", "2", "3", "4"] {
        let client = format!("2001:db8:5:6::{host}");
        let answer = get(addr, &target, &[("x-forwarded-for", client.as_str())]).await;
        assert_eq!(answer.visitor_cookie().is_some(), host != "4", "{client}");
    }

    assert_eq!(
        metric(
            &collector,
            "footfall_hits_rejected_total{reason=\"rate_limited\"}"
        )
        .await,
        (5 + 1) + (1 + 1) + 1
    );
    assert_eq!(metric(&collector, "footfall_rate_limit_clients").await, 3);
    collector.shutdown().await;
    assert_eq!(
        db.count("SELECT count() FROM events WHERE site = 'limited'")
            .await,
        3 + (2 + 1) + 3
    );
}

/// Fake visitors from one network cannot inflate the counts: past its daily cap of new visitors
/// a network's cookie-less hits are stored as not counted (like bots') and get no cookie, so
/// they cannot come back as returning visitors either; another network and the visitors
/// admitted before the cap are counted as ever.
#[tokio::test]
async fn new_visitors_past_their_networks_daily_cap_are_not_counted() {
    const BROWSER: (&str, &str) = (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    );
    let db = TestDb::new();
    let collector = db
        .start(&[
            "--trusted-proxies",
            "127.0.0.1",
            "--max-new-visitors-per-network",
            "5",
        ])
        .await;
    let addr = collector.local_addr();
    let target = format!(
        "/p.gif?site=capped&url={}",
        common::enc("https://example.com/")
    );
    let mut cookies = Vec::new();
    // One /24, a different host each time: the cap is the network's, not the address's.
    for host in 1..=8 {
        let client = format!("203.0.113.{host}");
        let answer = get(addr, &target, &[("x-forwarded-for", &client), BROWSER]).await;
        assert_eq!(answer.body.as_ref(), footfall_collector::response::GIF);
        cookies.push(answer.visitor_cookie());
    }
    let given = cookies.iter().filter(|c| c.is_some()).count();
    assert_eq!(given, 5, "a cookie for the first five new visitors only");
    let returning = format!("ff_id={}", cookies[0].as_ref().unwrap());
    let again = get(
        addr,
        &target,
        &[
            ("x-forwarded-for", "203.0.113.1"),
            ("cookie", &returning),
            BROWSER,
        ],
    )
    .await;
    assert!(
        again.visitor_cookie().is_some(),
        "a returning visitor is counted"
    );
    let other = get(
        addr,
        &target,
        &[("x-forwarded-for", "198.51.100.7"), BROWSER],
    )
    .await;
    assert!(
        other.visitor_cookie().is_some(),
        "another network has its own cap"
    );
    let capped = collector.metrics().render();
    assert!(
        capped.contains("footfall_new_visitors_capped_total 3"),
        "{capped}"
    );
    collector.shutdown().await;
    let counted = "SELECT count() FROM events WHERE site = 'capped' AND NOT is_bot";
    let not_counted = "SELECT count() FROM events WHERE site = 'capped' AND is_bot";
    assert_eq!(
        db.count(counted).await,
        7,
        "5 new, 1 returning, 1 from elsewhere"
    );
    assert_eq!(
        db.count(not_counted).await,
        3,
        "stored, left out of reports"
    );
}
