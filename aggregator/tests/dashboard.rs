//! The dashboard in a real headless Chromium, and the JSON API, against `serve` on a free port
//! and a throwaway database on the real ClickHouse. Every number the dashboard shows is checked
//! against the CSV that `footfall-aggregator export` writes for the same range. Screenshots go
//! to `target/screenshots/`.

mod run;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use footfall_aggregator::day::Day;
use footfall_store::event::{Event, Kind};
use footfall_store::testing::TestDb;
use footfall_store::testing::browser::Browser;
use footfall_store::testing::http::get;
use http::StatusCode;
use run::{aggregator, ok, serve_api};
use serde_json::Value;

const MIN: i64 = 60_000;

fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/screenshots")
        .join(format!("{name}.png"))
}

fn midnight(day: Day) -> i64 {
    day.since_epoch() * 86_400_000
}

fn pageview(site: &str, ts: i64, visitor: &str, n: usize, path: &str, referrer: &str) -> Event {
    let mut e = Event::new(Kind::Pageview, ts);
    e.site = site.into();
    e.visitor_id = visitor.into();
    e.pageview_id = format!("{visitor}pv{n}").into();
    e.host = format!("{site}.example").into();
    e.path = path.into();
    e.url = format!("https://{site}.example{path}").into();
    e.referrer_host = referrer.into();
    e.country = "DE".into();
    (e.device, e.browser, e.os) = ("desktop".into(), "Firefox".into(), "Linux".into());
    // A network of its own per visitor (`visitorV05…`: group letter, number), as real visitors
    // have: rows need K networks.
    let group = visitor.as_bytes()[7];
    let number: u8 = visitor[8..10].parse().unwrap();
    e.ip_prefix = format!("203.{group}.{number}.0/24").into();
    e
}

/// Yesterday on `shop`: twelve visitors land on `/` from news.example (with UTM tags) at 10:00,
/// read `/pricing` a minute later and send 20 s of engagement; three visitors see `/secret` (a
/// row too small to show). The day before: ten visitors see `/`. Yesterday on `other`: twelve
/// visitors see `/other-home`.
async fn generate(db: &TestDb) -> Day {
    ok(aggregator(db, &["migrate"]));
    let yesterday = Day::today().plus(-1);
    let t0 = midnight(yesterday) + 600 * MIN;
    let mut events = Vec::new();
    for i in 0..12 {
        let v = format!("visitorV{i:02}aaaaaaaaaaaaa");
        let t = t0 + i as i64 * 1000;
        let mut land = pageview("shop", t, &v, 0, "/", "news.example");
        (land.utm_source, land.utm_medium, land.utm_campaign) =
            ("newsletter".into(), "email".into(), "spring".into());
        events.push(land);
        events.push(pageview("shop", t + MIN, &v, 1, "/pricing", "shop.example"));
        let mut engaged = pageview("shop", t + 80_000, &v, 1, "/pricing", "");
        engaged.kind = Kind::Engagement;
        engaged.dwell_ms = 20_000;
        events.push(engaged);
        events.push(pageview(
            "other",
            t,
            &format!("visitorO{i:02}ooooooooooooo"),
            0,
            "/other-home",
            "",
        ));
    }
    for i in 0..3 {
        let w = format!("visitorW{i:02}bbbbbbbbbbbbb");
        events.push(pageview(
            "shop",
            t0 + i * 1000,
            &w,
            0,
            "/secret",
            "tiny.example",
        ));
    }
    for i in 0..10 {
        let u = format!("visitorU{i:02}ddddddddddddd");
        events.push(pageview("shop", t0 - 1440 * MIN, &u, 0, "/", ""));
    }
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    for e in &events {
        insert.write(e).await.unwrap();
    }
    insert.end().await.unwrap();
    let from = yesterday.plus(-1).to_string();
    let to = Day::today().to_string();
    ok(aggregator(db, &["backfill", "--from", &from, "--to", &to]));
    yesterday
}

fn token(db: &TestDb, args: &[&str]) -> String {
    let mut argv = vec!["token", "create"];
    argv.extend_from_slice(args);
    let out = ok(aggregator(db, &argv));
    out.lines().last().unwrap().trim().to_owned()
}

/// The CSV `export` writes, as rows of cells (header first).
fn csv(db: &TestDb, report: &str, from: Day, to: Day, site: &str) -> Vec<Vec<String>> {
    let (from, to) = (from.to_string(), to.to_string());
    let text = ok(aggregator(
        db,
        &[
            "export", "--report", report, "--from", &from, "--to", &to, "--site", site,
        ],
    ));
    parse_csv(&text)
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            l.trim_end_matches('\r')
                .split(',')
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// `columns` of the CSV's rows keyed by their first key column after `site`.
fn by_key(rows: &[Vec<String>], columns: &[&str]) -> BTreeMap<String, Vec<String>> {
    let header = &rows[0];
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| header.iter().position(|h| h == c).unwrap())
        .collect();
    rows[1..]
        .iter()
        .map(|r| (r[1].clone(), idx.iter().map(|i| r[*i].clone()).collect()))
        .collect()
}

/// The rows of the dashboard table in card `card`: its key, then every `data-value`.
async fn shown(browser: &Browser, card: &str) -> BTreeMap<String, Vec<String>> {
    let rows = browser
        .run(&format!(
            "return [...document.querySelectorAll('#{card} tbody tr')].map(tr =>
               [tr.querySelector('th').textContent,
                ...[...tr.querySelectorAll('td')].map(td => td.dataset.value)]);"
        ))
        .await;
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}

async fn page_text(browser: &Browser) -> String {
    browser
        .run("return document.body.innerText")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sign_in(browser: &Browser, addr: std::net::SocketAddr, token: &str) {
    browser.visit(&format!("http://{addr}/")).await;
    browser.type_into("#token", token).await;
    browser.click("form[action='/login'] button").await;
    browser
        .wait_for("return document.querySelector('.signout')")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_csv_numbers_changes_range_downloads_and_signs_out() {
    let db = TestDb::new();
    let yesterday = generate(&db).await;
    let today = Day::today();
    let all = token(&db, &["--name", "marketing"]);
    let server = serve_api(&db, &[]).await;
    let addr = server.local_addr();
    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start_with(&["--window-size=1280,2200"], Some(downloads.path())).await;

    browser.visit(&format!("http://{addr}/")).await;
    assert!(
        browser
            .find("input[name=token][type=password]")
            .await
            .is_some()
    );
    browser
        .screenshot(&screenshot_path("dashboard-sign-in"))
        .await;
    browser.type_into("#token", "fft_wrong").await;
    browser.click("form[action='/login'] button").await;
    browser
        .wait_for("return document.body.innerText.includes('not valid')")
        .await;

    sign_in(&browser, addr, &all).await;
    let cookies = browser.session("GET", "cookie", None).await;
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "ff_session")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");
    assert!(session["expiry"].as_u64().is_some(), "the session expires");
    assert!(
        !session["value"].as_str().unwrap().contains(&all[4..]),
        "the cookie does not carry the token"
    );

    // The first site by name is shown first; the picker changes it.
    assert!(page_text(&browser).await.contains("/other-home"));
    browser.click("#site option[value=shop]").await;
    browser.click(".site-picker button").await;
    browser
        .wait_for("return document.querySelector('h1').textContent == 'shop'")
        .await;
    // The default range: the last 30 days, a daily chart.
    let (from, to) = (today.plus(-29), today);
    let size = browser
        .run("const r = document.querySelector('svg.chart').getBoundingClientRect(); return [r.width, r.height];")
        .await;
    assert!(
        size[0].as_f64().unwrap() > 100.0 && size[1].as_f64().unwrap() > 50.0,
        "{size}"
    );
    assert!(
        browser.find("svg.chart path.line.visitors").await.is_some(),
        "the chart draws visitors"
    );
    let pages = csv(&db, "pages", from, to, "shop");
    assert_eq!(
        shown(&browser, "pages").await,
        by_key(&pages, &["visitors", "pageviews", "avg_time_on_page_s"])
    );
    let mut entries = by_key(&pages, &["entries", "bounce_rate"]);
    entries.retain(|_, v| v[0] != "0");
    assert_eq!(shown(&browser, "pages-entries").await, entries);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        shown(&browser, "referrers").await,
        by_key(
            &csv(&db, "referrers", from, to, "shop"),
            &[
                "visitors",
                "pageviews",
                "bounce_rate",
                "avg_visit_duration_s"
            ]
        )
    );
    let totals = csv(&db, "sites", from, to, "shop");
    let visitors = browser
        .run("return document.querySelector('[data-metric=visitors] .value').dataset.value")
        .await;
    let col = totals[0].iter().position(|c| c == "visitors").unwrap();
    assert_eq!(visitors, totals[1][col].as_str(), "{totals:?}");
    assert_eq!(totals[1][col], "25");
    let text = page_text(&browser).await;
    assert!(
        !text.contains("/secret"),
        "a row of 3 visitors stays hidden"
    );
    assert!(!text.contains("tiny.example"));
    assert!(text.contains("Rows that stand for fewer than 10 visitors are not shown."));
    assert!(
        !text.contains("Development mode"),
        "no dev banner outside --dev"
    );
    browser
        .screenshot(&screenshot_path("dashboard-30-days"))
        .await;

    // Another range: yesterday, by the hour, compared with the day before.
    browser.click(".ranges a[href*='range=yesterday']").await;
    browser
        .wait_for("return document.querySelector('#traffic-title').textContent.includes('hour')")
        .await;
    let pages = csv(&db, "pages", yesterday, yesterday, "shop");
    assert_eq!(
        shown(&browser, "pages").await,
        by_key(&pages, &["visitors", "pageviews", "avg_time_on_page_s"])
    );
    let hourly = by_key(
        &csv(&db, "hourly", yesterday, yesterday, "shop"),
        &["visitors"],
    );
    assert_eq!(hourly[&format!("{yesterday}T10:00Z")], ["15"]);
    browser.click("input[name=compare]").await;
    browser.click(".custom button").await;
    browser
        .wait_for("return document.querySelector('.delta')")
        .await;
    let delta = browser
        .run("return document.querySelector('[data-metric=visitors] .delta').textContent")
        .await;
    // 15 visitors yesterday against 10 the day before.
    assert!(delta.as_str().unwrap().contains("+50 %"), "{delta}");
    browser
        .screenshot(&screenshot_path("dashboard-yesterday-compared"))
        .await;

    // The CSV of a table, downloaded by the browser, is the export's.
    browser.click("#pages a.csv").await;
    let file = downloads
        .path()
        .join(format!("footfall-pages-shop-{yesterday}-{yesterday}.csv"));
    for _ in 0..100 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let downloaded = std::fs::read_to_string(&file).expect("the CSV was downloaded");
    assert_eq!(parse_csv(&downloaded), pages);

    browser.resize(390, 1800).await;
    browser
        .screenshot(&screenshot_path("dashboard-phone"))
        .await;
    let overflow = browser
        .run("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(overflow, true, "nothing is wider than a phone's screen");
    browser.resize(1280, 2200).await;

    // Sign out: the session is gone, in the browser and on the server.
    let stale = session["value"].as_str().unwrap().to_owned();
    browser.click(".signout button").await;
    browser
        .wait_for("return document.querySelector('#token')")
        .await;
    let after = get(
        addr,
        &format!("/v1/reports/pages.json?from={yesterday}&to={yesterday}&site=shop"),
        &[("cookie", &format!("ff_session={stale}"))],
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    // Every view was audited under the token's name.
    let audit = ok(aggregator(&db, &["audit", "--limit", "1000"]));
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\tmarketing\texport\t200\tpages\t")),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\tmarketing\texport\t200\thourly\t")),
        "{audit}"
    );
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_one_site_sees_neither_another_site_nor_other_reports() {
    let db = TestDb::new();
    let yesterday = generate(&db).await;
    let scoped = token(
        &db,
        &[
            "--name",
            "agency",
            "--sites",
            "shop",
            "--reports",
            "sites,daily,hourly,pages",
        ],
    );
    let server = serve_api(&db, &[]).await;
    let addr = server.local_addr();
    let browser = Browser::start_with(&["--window-size=1280,1600"], None).await;
    sign_in(&browser, addr, &scoped).await;
    browser
        .visit(&format!("http://{addr}/?site=other&range=7d"))
        .await;
    let text = page_text(&browser).await;
    assert!(
        text.contains("shop") && !text.contains("other-home"),
        "{text}"
    );
    assert!(
        browser.find("#site").await.is_none(),
        "one site: no site picker"
    );
    for hidden in ["#referrers", "#countries", "#email", "#devices-device"] {
        assert!(
            browser.find(hidden).await.is_none(),
            "{hidden} is out of scope"
        );
    }
    assert!(browser.find("#pages").await.is_some());
    browser
        .screenshot(&screenshot_path("dashboard-scoped"))
        .await;

    let cookie = browser.run("return document.cookie").await;
    assert_eq!(cookie, "", "the session cookie is HttpOnly");
    let q = format!("from={yesterday}&to={yesterday}");
    let bearer = format!("Bearer {scoped}");
    let auth = [("authorization", bearer.as_str())];
    for (target, status) in [
        (
            format!("/v1/reports/pages.json?{q}&site=other"),
            StatusCode::FORBIDDEN,
        ),
        (format!("/v1/reports/pages.json?{q}"), StatusCode::FORBIDDEN),
        (
            format!("/v1/reports/referrers.json?{q}&site=shop"),
            StatusCode::FORBIDDEN,
        ),
        (format!("/v1/reports/email.json?{q}"), StatusCode::FORBIDDEN),
        (
            format!("/v1/reports/pages.json?{q}&site=shop"),
            StatusCode::OK,
        ),
    ] {
        assert_eq!(get(addr, &target, &auth).await.status, status, "{target}");
    }
    let sites: Value =
        serde_json::from_slice(&get(addr, &format!("/v1/sites?{q}"), &auth).await.body).unwrap();
    let names: Vec<&str> = sites["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["site"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop"]);
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test]
async fn json_reports_are_the_csv_numbers_with_caching_headers_and_an_audit() {
    let db = TestDb::new();
    let yesterday = generate(&db).await;
    let all = token(&db, &["--name", "api"]);
    let server = serve_api(&db, &[]).await;
    let addr = server.local_addr();
    let bearer = format!("Bearer {all}");
    let auth = [("authorization", bearer.as_str())];
    let q = format!("from={yesterday}&to={yesterday}&site=shop");

    let answer = get(addr, &format!("/v1/reports/pages.json?{q}"), &auth).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.headers["cache-control"], "private, max-age=60");
    assert_eq!(answer.headers["vary"], "Authorization, Cookie");
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["report"], "pages");
    assert_eq!(json["withheld"], true, "/secret was withheld");
    assert_eq!(json["min_visitors"], 10);
    let csv = csv(&db, "pages", yesterday, yesterday, "shop");
    assert_eq!(json["columns"], serde_json::json!(csv[0]));
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), csv.len() - 1);
    for (row, line) in rows.iter().zip(&csv[1..]) {
        for (col, cell) in csv[0].iter().zip(line) {
            let v = &row[col.as_str()];
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Number(n) if col == "bounce_rate" => format!("{:.4}", n.as_f64().unwrap()),
                Value::Number(n) if col.ends_with("_s") => format!("{:.1}", n.as_f64().unwrap()),
                other => other.to_string(),
            };
            assert_eq!(&text, cell, "{col} of {row}");
        }
    }
    assert!(!String::from_utf8_lossy(&answer.body).contains("secret"));

    // A current copy is not sent again.
    let etag = answer.headers["etag"].to_str().unwrap().to_owned();
    let again = get(
        addr,
        &format!("/v1/reports/pages.json?{q}"),
        &[("authorization", &bearer), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());

    let old = get(
        addr,
        "/v1/reports/daily.json?from=2026-01-01&to=2026-01-31&site=shop",
        &auth,
    )
    .await;
    assert_eq!(old.headers["cache-control"], "private, max-age=3600");
    let current = get(addr, "/v1/reports/current.json?site=shop", &auth).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.headers["cache-control"], "private, no-cache");

    let sites: Value = serde_json::from_slice(
        &get(
            addr,
            &format!("/v1/sites?from={yesterday}&to={yesterday}"),
            &auth,
        )
        .await
        .body,
    )
    .unwrap();
    let names: Vec<&str> = sites["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["site"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other", "shop"]);
    assert_eq!(sites["rows"][1]["visitors"], 15);

    let catalogue: Value =
        serde_json::from_slice(&get(addr, "/v1/reports", &auth).await.body).unwrap();
    let listed: Vec<&str> = catalogue["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"pages") && listed.contains(&"hourly"),
        "{listed:?}"
    );

    for (target, status) in [
        (
            "/v1/reports/pages.json?from=2026-01-01&to=2026-01-01".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/reports/pages.xml?from=2026-01-01&to=2026-01-01".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/sites?from=2026-01-01".to_owned(),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        assert_eq!(get(addr, &target, &[]).await.status, status, "{target}");
    }
    let bad = get(
        addr,
        "/v1/reports/hourly.json?from=2026-01-01&to=2026-01-31",
        &auth,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&bad.body).contains("at most 7 days"));

    let audit = ok(aggregator(&db, &["audit", "--limit", "1000"]));
    let api: Vec<&str> = audit.lines().filter(|l| l.contains("\tapi\t")).collect();
    assert!(
        audit.contains("\t-\trefused\t401\t"),
        "refusals are audited: {audit}"
    );
    assert!(
        api.iter().any(|l| l.contains(&format!(
            "\tapi\texport\t200\tpages\t{yesterday}..{yesterday}\tshop\tK=10"
        ))),
        "{audit}"
    );
    assert!(
        api.iter()
            .any(|l| l.contains("\tapi\texport\t200\tsites\t")),
        "{audit}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_http_layer_bounds_heads_and_compresses() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let server = serve_api(&db, &["--max-header-bytes", "8192"]).await;
    let addr = server.local_addr();
    let big = "x".repeat(20_000);
    let answer = get(addr, "/healthz", &[("x-big", &big)]).await;
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let css = get(addr, "/assets/style.css", &[("accept-encoding", "gzip")]).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers["content-encoding"], "gzip");
    let etag = css.headers["etag"].to_str().unwrap().to_owned();
    let again = get(addr, "/assets/style.css", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let login = get(addr, "/", &[]).await;
    assert_eq!(login.status, StatusCode::OK);
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn past_the_privacy_budget_the_json_api_answers_429_with_retry_after() {
    let db = TestDb::new();
    let yesterday = generate(&db).await;
    let all = token(&db, &["--name", "noisy"]);
    let key = db.data_dir.path().join("dp-noise.key");
    let key = key.to_str().unwrap();
    let server = serve_api(
        &db,
        &["--epsilon", "1", "--dp-budget", "1", "--dp-key", key],
    )
    .await;
    let addr = server.local_addr();
    let bearer = format!("Bearer {all}");
    let target = format!("/v1/reports/sites.json?from={yesterday}&to={yesterday}&site=shop");
    let first = get(addr, &target, &[("authorization", &bearer)]).await;
    assert_eq!(first.status, StatusCode::OK);
    let json: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(json["epsilon"], 1.0);
    assert_eq!(
        json["columns"],
        serde_json::json!(["site", "visitors", "visitor_days"])
    );
    let second = get(addr, &target, &[("authorization", &bearer)]).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 31 * 86_400, "{wait}");
    assert!(String::from_utf8_lossy(&second.body).contains("error"));
    server.shutdown().await;
}

#[tokio::test]
async fn dev_mode_shows_a_single_visitor_under_a_banner() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let today = Day::today();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    let visit = pageview(
        "laptop",
        now - MIN,
        "visitorL00lllllllllllll",
        0,
        "/hello",
        "",
    );
    insert.write(&visit).await.unwrap();
    insert.end().await.unwrap();
    let all = token(&db, &["--name", "me"]);
    let bearer = format!("Bearer {all}");
    let q = format!("from={today}&to={today}&site=laptop");
    for (extra, rows, banner) in [(&[][..], 0, false), (&["--dev"][..], 1, true)] {
        let server = serve_api(&db, extra).await;
        let addr = server.local_addr();
        let auth = [("authorization", bearer.as_str())];
        let pages = get(addr, &format!("/v1/reports/pages.json?{q}"), &auth).await;
        let json: Value = serde_json::from_slice(&pages.body).unwrap();
        assert_eq!(json["rows"].as_array().unwrap().len(), rows, "{json}");
        let login = get(addr, "/", &[]).await;
        let page = String::from_utf8_lossy(&login.body).into_owned();
        assert_eq!(page.contains("Development mode"), banner, "{extra:?}");
        server.shutdown().await;
    }
}
