//! The tracker in a real browser: headless Chromium (`footfall_store::testing::browser`) loads
//! pages served here on 127.0.0.1 that embed the snippet, and the rows it causes are read back
//! from the real ClickHouse.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Serve, TestDb};
use footfall_store::testing::browser::{Browser, NORMAL_CHROME};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const SITE: &str = "browser.test";

/// Serves the test site on 127.0.0.1: every path under `/page/` embeds the snippet pointing
/// at `collector`; `/away` does not.
async fn serve_site(collector: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let site_addr = addr;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service_fn(
                move |req: http::Request<hyper::body::Incoming>| async move {
                    let html = page_html(req.uri().path(), collector, site_addr);
                    let mut response = http::Response::new(Full::new(Bytes::from(html)));
                    response
                        .headers_mut()
                        .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
                    Ok::<_, Infallible>(response)
                },
            );
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// The test site's page at `path`. Pages under `/page/` embed the snippet; some of them are
/// made for the custom-event tests:
/// - `/page/events`: the queue stub and a call made before the script loads, a tagged button,
///   a tagged form, a download link and an outbound link (to `localhost`, another host);
/// - `/page/quiet`: the same, with every automatic feature switched off on the script tag;
/// - `/page/long`: a page five screens long;
/// - `/page/missing`: an error page with the 404 marker.
///
/// And two pages that attack a visitor's opt-out when opened from another site (`localhost`):
/// `/foreign/form` posts a form to `/optin` at once, `/foreign/redirect` sends the browser to it.
fn page_html(path: &str, collector: SocketAddr, site: SocketAddr) -> String {
    let back = format!("http://localhost:{}/away", site.port());
    match path {
        "/foreign/form" => {
            return format!(
                r#"<!doctype html><html><body><form id="f" method="post" action="http://{collector}/optin?return={back}"></form>
                <script>document.getElementById('f').submit()</script></body></html>"#
            );
        }
        "/foreign/redirect" => {
            return format!(
                r#"<!doctype html><html><body><script>location.href = 'http://{collector}/optin?return={back}'</script></body></html>"#
            );
        }
        _ => {}
    }
    if !path.starts_with("/page/") {
        return "<!doctype html><html><head><title>Away</title></head><body><p>Away</p></body></html>".into();
    }
    let switches = if path == "/page/quiet" {
        r#" data-outbound="off" data-downloads="off" data-404="off" data-scroll="off""#
    } else {
        ""
    };
    let mut head = format!(
        r#"<script defer src="http://{collector}/t.js" data-site="{SITE}"{switches}></script>"#
    );
    let mut body = String::from("<p>Hello</p>");
    match path {
        "/page/events" | "/page/quiet" => {
            head.insert_str(
                0,
                "<script>window.footfall = window.footfall || function() { (footfall.q = footfall.q || []).push(arguments) };
                 footfall('Early', {props: {when: 'before load'}});</script>",
            );
            let port = site.port();
            body.push_str(&format!(
                r#"<button id="cta" data-footfall-event="Cta" data-footfall-prop-position="top">Try</button>
                <a id="download" href="/files/report.pdf?token=secret">Report</a>
                <a id="outbound" href="http://localhost:{port}/away?ref=x">Partner</a>
                <form id="contact" data-footfall-event="Contact" data-footfall-prop-form="footer" action="/away" method="get">
                  <input name="email" value="jane@example.com"><button id="send" type="submit">Send</button>
                </form>"#
            ));
        }
        "/page/long" => body.push_str(r#"<div style="height: 5000px">Long</div>"#),
        "/page/missing" => head.push_str(r#"<meta name="footfall-404">"#),
        _ => {}
    }
    format!(
        "<!doctype html><html><head><title>Test page</title>{head}</head><body>{body}</body></html>"
    )
}

/// Engaged milliseconds reported for the page view of `path`: the largest report, since each
/// report is the total so far.
async fn engaged_ms(db: &TestDb, path: &str) -> u64 {
    let sql = format!(
        "SELECT max(dwell_ms) AS ms FROM events WHERE kind = 'engagement' AND pageview_id IN
           (SELECT pageview_id FROM events WHERE kind = 'pageview' AND path = '{path}')"
    );
    db.count(&sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_view_and_its_engaged_time_are_stored_with_the_cookie_visitor() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    let before_load = Instant::now();
    browser
        .visit(&format!("http://{site}/page/one?utm_source=test"))
        .await;
    let loaded = Instant::now();
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'pageview'", 1)
            .await,
        1
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leaving = Instant::now();
    browser.visit(&format!("http://{site}/away")).await;
    let left = Instant::now();
    assert!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'engagement'", 1)
            .await
            >= 1
    );

    let visitor = browser
        .cookie("ff_id")
        .await
        .expect("the collector's cookie is set");
    browser.quit().await;
    collector.shutdown().await;
    let rows = db.rows("SELECT kind, site, visitor_id, pageview_id, path, utm_source, title, browser, is_bot FROM events ORDER BY kind DESC, ts").await;
    let view = &rows[0];
    assert_eq!(
        (
            view["kind"].as_str(),
            view["site"].as_str(),
            view["path"].as_str()
        ),
        (Some("pageview"), Some(SITE), Some("/page/one"))
    );
    assert_eq!(view["utm_source"], "test");
    assert_eq!(view["title"], "Test page");
    assert_eq!(
        view["is_bot"], true,
        "headless Chromium is flagged as a bot"
    );
    assert_eq!(view["browser"], "Chrome");
    for row in &rows {
        assert_eq!(
            row["visitor_id"],
            visitor.as_str(),
            "every event carries the cookie's visitor id"
        );
        assert_eq!(
            row["pageview_id"], view["pageview_id"],
            "the engagement belongs to the page view"
        );
    }
    let engaged = engaged_ms(&db, "/page/one").await;
    let at_least = leaving.duration_since(loaded).as_millis() as u64;
    let at_most = left.duration_since(before_load).as_millis() as u64;
    assert!(
        (at_least.saturating_sub(250)..=at_most + 250).contains(&engaged),
        "engaged {engaged} ms, expected {at_least}..={at_most}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_page_app_navigation_is_a_page_view() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    browser.visit(&format!("http://{site}/page/app")).await;
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'pageview'", 1)
            .await,
        1
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    browser
        .run("history.pushState({}, '', '/page/app/settings')")
        .await;
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'pageview'", 2)
            .await,
        2
    );
    // A change of the fragment alone is not a new page.
    browser
        .run("history.replaceState({}, '', '/page/app/settings#tab2')")
        .await;
    browser.visit(&format!("http://{site}/away")).await;
    assert!(
        db.wait_for_count(
            "SELECT uniqExact(pageview_id) FROM events WHERE kind = 'engagement'",
            2
        )
        .await
            >= 2
    );
    browser.quit().await;
    collector.shutdown().await;

    let views = db
        .rows("SELECT path, referrer, pageview_id FROM events WHERE kind = 'pageview' ORDER BY ts")
        .await;
    let paths: Vec<_> = views.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/page/app", "/page/app/settings"]);
    assert_eq!(
        views[1]["referrer"],
        format!("http://{site}/page/app"),
        "the app's previous page is the referrer"
    );
    assert_ne!(views[0]["pageview_id"], views[1]["pageview_id"]);
    assert!(
        engaged_ms(&db, "/page/app").await >= 1000,
        "the first route's engaged time is reported on the route change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_in_a_hidden_tab_is_not_counted() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    let before_load = Instant::now();
    browser.visit(&format!("http://{site}/page/tabbed")).await;
    let page = browser.window().await;
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'pageview'", 1)
            .await,
        1
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let other = browser.new_tab().await;
    browser.switch_to(&other).await;
    // Going to the background reports the engaged time so far.
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'engagement'", 1)
            .await,
        1
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    browser.switch_to(&page).await;
    browser.run("return document.visibilityState").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    browser.visit(&format!("http://{site}/away")).await;
    let left = Instant::now();
    assert!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'engagement'", 2)
            .await
            >= 2
    );
    browser.quit().await;
    collector.shutdown().await;

    let engaged = engaged_ms(&db, "/page/tabbed").await;
    let total = left.duration_since(before_load).as_millis() as u64;
    assert!(total >= 7_000);
    assert!(
        (2_500..=total - 3_500).contains(&engaged),
        "engaged {engaged} ms of {total} ms, 4 s of them hidden"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_and_a_customer_link_given_by_the_page_apply_to_its_beacons() {
    let db = TestDb::new();
    let collector = db.start(&["--consent", "required"]).await;
    let secret = footfall_collector::keys::load_secret(db.data_dir.path(), None, true).unwrap();
    let signer = footfall_collector::signing::Signer::new(&secret);
    let link = footfall_collector::hit::customer::sign("cust-9", SITE, common::now_secs(), &signer)
        .unwrap();
    let params: std::collections::HashMap<_, _> = form_urlencoded::parse(link.as_bytes()).collect();
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    // Before the visitor consents, the page view is withheld.
    browser.visit(&format!("http://{site}/page/shop")).await;
    let withheld = r#"footfall_hits_withheld_total{reason="no_consent"}"#;
    for _ in 0..100 {
        if common::metric(&collector, withheld).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The consent banner and the login set the script's attributes; the next route is recorded.
    browser
        .run(&format!(
            "var s = document.querySelector('script[data-site]');
             s.dataset.consent = '1'; s.dataset.cid = '{}'; s.dataset.cs = '{}';
             history.pushState({{}}, '', '/page/shop/cart')",
            params["cid"], params["cs"]
        ))
        .await;
    assert_eq!(
        db.wait_for_count("SELECT count() FROM events WHERE kind = 'pageview'", 1)
            .await,
        1
    );
    assert_eq!(common::metric(&collector, withheld).await, 1);
    browser.quit().await;
    collector.shutdown().await;

    let views = db
        .rows("SELECT path, customer_id FROM events WHERE kind = 'pageview'")
        .await;
    assert_eq!(views.len(), 1);
    assert_eq!(
        (views[0]["path"].as_str(), views[0]["customer_id"].as_str()),
        (Some("/page/shop/cart"), Some("cust-9"))
    );
}

/// Custom events of `site`'s visitors as (event name, props, path), in time order.
async fn custom_events(db: &TestDb) -> Vec<(String, Value, String)> {
    db.rows("SELECT event_name, props, path FROM events WHERE kind = 'custom' ORDER BY ts")
        .await
        .into_iter()
        .map(|r| {
            (
                r["event_name"].as_str().unwrap().to_owned(),
                r["props"].clone(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_events_queued_called_and_tagged_are_stored_with_their_properties() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    browser.visit(&format!("http://{site}/page/events")).await;
    let custom = "SELECT count() FROM events WHERE kind = 'custom'";
    assert_eq!(db.wait_for_count(custom, 1).await, 1, "the queued call");
    browser
        .run("footfall('Signup', {props: {plan: 'pro', seats: 3}})")
        .await;
    browser.click("#cta").await;
    assert_eq!(db.wait_for_count(custom, 3).await, 3);
    // Submitting the form navigates away; its event still arrives.
    browser.click("#send").await;
    assert_eq!(db.wait_for_count(custom, 4).await, 4);
    browser.quit().await;
    collector.shutdown().await;

    let events = custom_events(&db).await;
    let expected = [
        ("Early", json!({"when": "before load"})),
        ("Signup", json!({"plan": "pro", "seats": "3"})),
        ("Cta", json!({"position": "top"})),
        ("Contact", json!({"form": "footer"})),
    ];
    for ((name, props, path), (want_name, want_props)) in events.iter().zip(expected) {
        assert_eq!(
            (name.as_str(), props, path.as_str()),
            (want_name, &want_props, "/page/events")
        );
    }
    assert_eq!(
        db.count(
            "SELECT uniqExact(pageview_id) FROM events
             WHERE pageview_id IN (SELECT pageview_id FROM events WHERE kind = 'pageview')"
        )
        .await,
        1,
        "every custom event belongs to the page view"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_links_and_downloads_are_stored_as_host_and_path_unless_switched_off() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;
    let named = |name: &str| {
        format!("SELECT count() FROM events WHERE kind = 'custom' AND event_name = '{name}'")
    };

    browser.visit(&format!("http://{site}/page/events")).await;
    browser.click("#download").await;
    assert_eq!(db.wait_for_count(&named("File Download"), 1).await, 1);
    browser.visit(&format!("http://{site}/page/events")).await;
    browser.click("#outbound").await;
    assert_eq!(
        db.wait_for_count(&named("Outbound Link: Click"), 1).await,
        1
    );

    // With the features off, the same clicks send nothing (the page's own call still counts).
    browser.visit(&format!("http://{site}/page/quiet")).await;
    browser.click("#download").await;
    browser.visit(&format!("http://{site}/page/quiet")).await;
    browser.click("#outbound").await;
    browser.visit(&format!("http://{site}/page/quiet")).await;
    assert_eq!(db.wait_for_count(&named("Early"), 5).await, 5);
    browser.visit(&format!("http://{site}/away")).await;
    let engagements = "SELECT count() FROM events WHERE kind = 'engagement'";
    db.wait_for_count(engagements, 5).await;
    browser.quit().await;
    collector.shutdown().await;

    let clicks = db
        .rows(
            "SELECT event_name, props FROM events
             WHERE kind = 'custom' AND event_name != 'Early' ORDER BY ts",
        )
        .await;
    assert_eq!(
        clicks,
        [
            json!({"event_name": "File Download", "props": {"url": "127.0.0.1/files/report.pdf"}}),
            json!({"event_name": "Outbound Link: Click", "props": {"url": "localhost/away"}}),
        ],
        "no query string, and nothing from the quiet page"
    );
    assert_eq!(
        db.count(
            "SELECT max(scroll_depth) FROM events WHERE kind = 'engagement' AND path = '/page/quiet'"
        )
        .await,
        0,
        "scroll depth switched off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_depth_is_the_largest_share_seen_and_a_404_page_is_an_event() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    browser.visit(&format!("http://{site}/page/long")).await;
    let views = "SELECT count() FROM events WHERE kind = 'pageview'";
    assert_eq!(db.wait_for_count(views, 1).await, 1);
    let seen = browser
        .run_async(
            "addEventListener('scroll', function() {
               var e = document.documentElement;
               done(Math.round((scrollY + innerHeight) / e.scrollHeight * 100));
             }, {once: true});
             scrollTo(0, document.documentElement.scrollHeight / 2);",
        )
        .await
        .as_u64()
        .unwrap();
    assert!((40..=80).contains(&seen), "{seen} % seen");
    // Back at the top: the largest share seen stays.
    browser
        .run_async(
            "addEventListener('scroll', function() { done() }, {once: true}); scrollTo(0, 0);",
        )
        .await;
    browser.visit(&format!("http://{site}/page/missing")).await;
    let not_found = "SELECT count() FROM events WHERE kind = 'custom' AND event_name = '404'";
    assert_eq!(db.wait_for_count(not_found, 1).await, 1);
    browser.visit(&format!("http://{site}/away")).await;
    let engaged = "SELECT uniqExact(pageview_id) FROM events WHERE kind = 'engagement'";
    assert_eq!(db.wait_for_count(engaged, 2).await, 2);
    browser.quit().await;
    collector.shutdown().await;

    let depth = |path: &str| {
        format!(
            "SELECT max(scroll_depth) FROM events WHERE kind = 'engagement' AND path = '{path}'"
        )
    };
    assert_eq!(db.count(&depth("/page/long")).await, seen);
    assert_eq!(
        db.count(&depth("/page/missing")).await,
        100,
        "a short page is all seen"
    );
    let events = custom_events(&db).await;
    assert_eq!(
        events,
        [(
            "404".to_owned(),
            json!({"path": "/page/missing"}),
            "/page/missing".to_owned()
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_driven_by_automation_is_stored_as_a_bot_even_with_a_normal_user_agent() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let site = serve_site(collector.local_addr()).await;

    // navigator.webdriver is true in a WebDriver session: the tracker flags every event.
    let driven = Browser::start_with(&[NORMAL_CHROME], None).await;
    driven.visit(&format!("http://{site}/page/driven")).await;
    assert_eq!(driven.run("return navigator.webdriver").await, true);
    let views = "SELECT count() FROM events WHERE kind = 'pageview'";
    assert_eq!(db.wait_for_count(views, 1).await, 1);
    driven.quit().await;
    // The same browser hiding automation looks like a person, and is stored as one.
    let hidden = Browser::start_with(
        &[
            NORMAL_CHROME,
            "--disable-blink-features=AutomationControlled",
        ],
        None,
    )
    .await;
    hidden.visit(&format!("http://{site}/page/hidden")).await;
    assert_eq!(hidden.run("return navigator.webdriver").await, false);
    assert_eq!(db.wait_for_count(views, 2).await, 2);
    hidden.quit().await;
    collector.shutdown().await;

    let rows = db
        .rows("SELECT path, browser, is_bot FROM events WHERE kind = 'pageview' ORDER BY ts")
        .await;
    assert_eq!(
        rows,
        [
            json!({"path": "/page/driven", "browser": "Chrome", "is_bot": true}),
            json!({"path": "/page/hidden", "browser": "Chrome", "is_bot": false}),
        ]
    );
}

/// Polls the current page's cookie `name` until it is `expected` (navigations finish in the
/// background).
async fn wait_for_cookie(browser: &Browser, name: &str, expected: Option<&str>) -> Option<String> {
    for _ in 0..100 {
        let value = browser.cookie(name).await;
        if value.as_deref() == expected {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.cookie(name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_page_cannot_undo_an_opt_out() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let site = serve_site(addr).await;
    let browser = Browser::start().await;

    // The visitor opts out on the collector's own page, by its button.
    browser.visit(&format!("http://{addr}/optout")).await;
    assert_eq!(
        browser.cookie("ff_optout").await,
        None,
        "showing the page changes nothing"
    );
    browser.click("button").await;
    assert_eq!(
        wait_for_cookie(&browser, "ff_optout", Some("1"))
            .await
            .as_deref(),
        Some("1")
    );

    // Another site posts the opt-in form at once, then sends the browser to /optin.
    browser
        .visit(&format!("http://localhost:{}/foreign/form", site.port()))
        .await;
    let refused = r#"footfall_hits_rejected_total{reason="foreign_opt_change"}"#;
    for _ in 0..100 {
        if common::metric(&collector, refused).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        common::metric(&collector, refused).await,
        1,
        "the cross-site POST is refused"
    );
    browser
        .visit(&format!(
            "http://localhost:{}/foreign/redirect",
            site.port()
        ))
        .await;
    for _ in 0..100 {
        let url = browser.run("return location.href").await;
        if url.as_str().is_some_and(|u| u.contains("/optin")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        browser.cookie("ff_optout").await.as_deref(),
        Some("1"),
        "the GET only shows the page"
    );

    // Still opted out: a page view of the site is withheld.
    browser.visit(&format!("http://{site}/page/after")).await;
    let withheld = r#"footfall_hits_withheld_total{reason="opted_out"}"#;
    for _ in 0..100 {
        if common::metric(&collector, withheld).await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(common::metric(&collector, withheld).await, 1);
    browser.quit().await;
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 0);
}

/// The `collector` service's environment in `docker-compose.yml`, after the image's own `ENV`
/// (Dockerfile), with `${NAME}`, `${NAME:-default}` and `${NAME:?message}` filled from
/// `operator` as `docker compose` does. A small reader for the two files as they are written
/// (no Docker on the test machine, and no YAML crate for one block of `KEY: value` lines).
fn compose_environment(operator: &[(&str, &str)]) -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dockerfile = std::fs::read_to_string(format!("{root}/Dockerfile")).unwrap();
    let mut env: Vec<(String, String)> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("ENV "))
        .flat_map(|line| line.split_whitespace())
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let compose = std::fs::read_to_string(format!("{root}/docker-compose.yml")).unwrap();
    let mut lines = compose.lines().skip_while(|l| *l != "  collector:").skip(1);
    lines
        .by_ref()
        .take_while(|l| l.starts_with("    "))
        .find(|l| l.trim() == "environment:")
        .expect("the collector service has an environment");
    for line in lines.take_while(|l| l.starts_with("      ") || l.trim().is_empty()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(": ").expect("KEY: value");
        let value = value.trim().trim_matches('"');
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), interpolate(value, operator)));
    }
    env
}

/// `${NAME}`, `${NAME:-default}` and `${NAME:?message}` in `value`, from `vars`.
fn interpolate(value: &str, vars: &[(&str, &str)]) -> String {
    let Some(start) = value.find("${") else {
        return value.to_owned();
    };
    let end = start + value[start..].find('}').expect("closed");
    let inner = &value[start + 2..end];
    let (name, rule) = match inner.find(':') {
        Some(at) => (&inner[..at], &inner[at..]),
        None => (inner, ""),
    };
    let set = vars
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty());
    let filled = match (set, rule.get(..2)) {
        (Some(v), _) => v.to_owned(),
        (None, Some(":-")) => rule[2..].to_owned(),
        (None, Some(":?")) => panic!("compose refuses to start without {name}: {}", &rule[2..]),
        (None, _) => String::new(),
    };
    format!(
        "{}{filled}{}",
        &value[..start],
        interpolate(&value[end + 1..], vars)
    )
}

/// The compose deployment records script hits: the collector, run with exactly the environment
/// `docker-compose.yml` and the image give it (only what the container's network and volumes
/// provide is replaced: addresses, the database, the key files' paths), stores the page view a
/// real Chromium's tracker sends from an origin the operator listed, and refuses the same page
/// served from another origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_deployment_records_script_hits_from_the_allowed_origins() {
    let db = TestDb::new();
    let collector = common::free_addr();
    let site = serve_site(collector).await;
    let allowed = format!("http://127.0.0.1:{}", site.port());
    let mut env = compose_environment(&[
        ("FOOTFALL_CLICKHOUSE_PASSWORD", "set-in-the-env-file"),
        ("FOOTFALL_ALLOWED_ORIGINS", &allowed),
    ]);
    let keys = tempfile::tempdir().unwrap();
    let public = keys.path().join("ip-seal.pub");
    let pair = footfall_seal::SecretKey::generate();
    std::fs::write(&public, pair.public_key().to_text()).unwrap();
    std::fs::write(
        db.data_dir.path().join("secret.key"),
        "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj",
    )
    .unwrap();
    let data_dir = db.data_dir.path().display().to_string();
    let public = public.display().to_string();
    for (key, value) in &mut env {
        let replaced = match key.as_str() {
            "FOOTFALL_LISTEN" => collector.to_string(),
            k if k.ends_with("_LISTEN") => common::free_addr().to_string(),
            "FOOTFALL_CLICKHOUSE_URL" => db.url.clone(),
            "FOOTFALL_CLICKHOUSE_DATABASE" => db.name.clone(),
            "FOOTFALL_CLICKHOUSE_USER" => "default".into(),
            "FOOTFALL_CLICKHOUSE_PASSWORD" => String::new(),
            "FOOTFALL_IP_PUBLIC_KEY" => public.clone(),
            "FOOTFALL_DATA_DIR" => data_dir.clone(),
            _ => continue,
        };
        *value = replaced;
    }
    assert!(
        env.iter()
            .any(|(k, v)| k == "FOOTFALL_ALLOWED_ORIGINS" && *v == allowed),
        "compose passes the operator's origins on: {env:?}"
    );
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for_listener(collector).await;
    common::wait_for_schema(collector).await;

    let browser = Browser::start().await;
    browser
        .visit(&format!("http://localhost:{}/page/elsewhere", site.port()))
        .await;
    browser.visit(&format!("{allowed}/page/compose")).await;
    let stored = |path: &'static str| {
        let db = &db;
        async move {
            db.count(&format!(
                "SELECT count() FROM events WHERE kind = 'pageview' AND path = '{path}'"
            ))
            .await
        }
    };
    assert!(
        common::eventually(Duration::from_secs(30), || async {
            stored("/page/compose").await == 1
        })
        .await,
        "the script's page view is stored"
    );
    browser.quit().await;
    common::signal_and_wait(child, "TERM").await;
    assert_eq!(
        stored("/page/elsewhere").await,
        0,
        "a page of an origin not listed sends nothing that is kept"
    );
}

/// `footfall('signout')` tells the collector the customer left this browser: a `signout` row of
/// the browser's visitor id, and the page's link is gone, so later page views are unlinked
/// (and, by the subject rule, nobody's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_sends_a_signout_and_unlinks_later_page_views() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let secret = footfall_collector::keys::load_secret(db.data_dir.path(), None, true).unwrap();
    let signer = footfall_collector::signing::Signer::new(&secret);
    let link = footfall_collector::hit::customer::sign("cust-9", SITE, common::now_secs(), &signer)
        .unwrap();
    let params: std::collections::HashMap<_, _> = form_urlencoded::parse(link.as_bytes()).collect();
    let site = serve_site(collector.local_addr()).await;
    let browser = Browser::start().await;

    browser.visit(&format!("http://{site}/page/shop")).await;
    // Stored, so answered: the browser has its visitor cookie before the next beacon.
    db.wait_for_count("SELECT count() FROM events WHERE kind = 'pageview'", 1)
        .await;
    browser
        .run(&format!(
            "var s = document.querySelector('script[data-site]');
             s.dataset.cid = '{}'; s.dataset.cs = '{}';
             history.pushState({{}}, '', '/page/account')",
            params["cid"], params["cs"]
        ))
        .await;
    db.wait_for_count(
        "SELECT count() FROM events WHERE kind = 'pageview' AND customer_id = 'cust-9'",
        1,
    )
    .await;
    browser.run("footfall('signout')").await;
    db.wait_for_count("SELECT count() FROM events WHERE kind = 'signout'", 1)
        .await;
    browser.run("history.pushState({}, '', '/page/bye')").await;
    db.wait_for_count(
        "SELECT count() FROM events WHERE kind = 'pageview' AND path = '/page/bye'",
        1,
    )
    .await;
    let link_left = browser
        .run("var s = document.querySelector('script[data-site]'); return [s.dataset.cid || '', s.dataset.cs || ''].join('')")
        .await;
    assert_eq!(link_left, json!(""), "the page's link is gone");
    browser.quit().await;
    collector.shutdown().await;

    let rows = db
        .rows(
            "SELECT kind, path, customer_id, visitor_id FROM events
             WHERE kind IN ('pageview', 'signout') ORDER BY ts",
        )
        .await;
    let seen: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["path"].as_str().unwrap(),
                r["customer_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("pageview", "/page/shop", ""),
            ("pageview", "/page/account", "cust-9"),
            ("signout", "/page/account", ""),
            ("pageview", "/page/bye", ""),
        ]
    );
    let visitor = rows[0]["visitor_id"].as_str().unwrap();
    assert!(!visitor.is_empty());
    assert!(rows.iter().all(|r| r["visitor_id"] == visitor), "{rows:?}");
}
