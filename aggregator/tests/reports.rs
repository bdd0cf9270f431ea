//! Anonymous reports end to end: generated events go straight into `events` in a throwaway
//! database on the real ClickHouse, the `footfall-aggregator` binary migrates, backfills and
//! exports, and `serve` answers over HTTP. Every expected number is worked out by hand below.

mod run;

use footfall_store::event::{Event, Kind};
use footfall_store::testing::TestDb;
use footfall_store::testing::http::get;
use http::StatusCode;
use run::{aggregator, ok, serve_api};

const DAY1: &str = "2026-03-02";
const DAY2: &str = "2026-03-03";
/// 2026-03-02T10:00:00Z in milliseconds.
const T0: i64 = 1_772_445_600_000;
const MIN: i64 = 60_000;

fn export(db: &TestDb, report: &str, from: &str, to: &str, extra: &[&str]) -> String {
    let mut args = vec!["export", "--report", report, "--from", from, "--to", to];
    args.extend_from_slice(extra);
    let csv = ok(aggregator(db, &args));
    // RFC 4180: every record ends with CRLF; compared below with plain newlines.
    assert!(csv.ends_with("\r\n"), "{csv:?}");
    assert_eq!(csv.matches('\n').count(), csv.matches("\r\n").count());
    csv.replace("\r\n", "\n")
}

/// Identifiers of the generated people: none may appear in any report.
struct Secrets(Vec<String>);

#[allow(clippy::too_many_arguments)]
fn pageview(
    ts: i64,
    visitor: &str,
    n: usize,
    path: &str,
    query: &str,
    referrer_host: &str,
    country: &str,
    device: (&str, &str, &str),
) -> Event {
    let mut e = Event::new(Kind::Pageview, ts);
    e.site = "shop".into();
    e.visitor_id = visitor.into();
    e.pageview_id = format!("{visitor}pv{n}").into();
    e.host = "shop.example".into();
    e.path = path.into();
    e.url = format!("https://shop.example{path}{query}").into();
    e.referrer_host = referrer_host.into();
    e.country = country.into();
    (e.device, e.browser, e.os) = (device.0.into(), device.1.into(), device.2.into());
    e.ip_prefix = network(visitor).into();
    e
}

/// Each generated visitor's own network, so that rows pass the network rule as real traffic
/// from many homes would.
fn network(visitor: &str) -> String {
    let n = visitor
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 65_536;
    format!("10.{}.{}.0/24", n / 256, n % 256)
}

const DESKTOP: (&str, &str, &str) = ("desktop", "Firefox", "Linux");
const PHONE: (&str, &str, &str) = ("mobile", "Safari", "iOS");

/// Day 1: twelve visitors `v*` land on `/` from news.example with UTM tags (pixel only), read
/// `/pricing` a minute later and send 20 s of engagement 80 s after landing; `v0` comes back at
/// noon for one page. Three visitors `w*` (signed-in customers, a query string with an email
/// address) see `/secret` from tiny.example in France once. Twenty bots view `/bot`.
/// Day 2: ten visitors `u*` see `/` once. Email: twelve recipients open `spring-mail` (one twice),
/// two open `vip`, ten open `=SUM(A1)`.
async fn generate(db: &TestDb) -> Secrets {
    let mut events = Vec::new();
    let mut secrets = vec![
        "203.0.113".to_owned(),
        "/24".into(),
        "email=".into(),
        "leak@".into(),
    ];
    for i in 0..12 {
        let v = format!("visitorV{i:02}aaaaaaaaaaaaa");
        let t = T0 + i as i64 * 1000;
        let mut land = pageview(
            t,
            &v,
            0,
            "/",
            "?utm_source=newsletter",
            "news.example",
            "DE",
            DESKTOP,
        );
        (land.utm_source, land.utm_medium, land.utm_campaign) =
            ("newsletter".into(), "email".into(), "spring".into());
        events.push(land);
        events.push(pageview(
            t + MIN,
            &v,
            1,
            "/pricing",
            "",
            "shop.example",
            "DE",
            DESKTOP,
        ));
        let mut engaged = pageview(t + 80_000, &v, 1, "/pricing", "", "", "DE", DESKTOP);
        engaged.kind = Kind::Engagement;
        engaged.dwell_ms = 20_000;
        events.push(engaged);
        if i == 0 {
            events.push(pageview(T0 + 120 * MIN, &v, 2, "/", "", "", "DE", DESKTOP));
        }
        secrets.push(v);
    }
    for i in 0..3 {
        let w = format!("visitorW{i:02}bbbbbbbbbbbbb");
        let mut e = pageview(
            T0 + i as i64 * 1000,
            &w,
            0,
            "/secret",
            "?email=leak@example.com",
            "tiny.example",
            "FR",
            PHONE,
        );
        e.customer_id = format!("customer-secret-{i}").into();
        secrets.push(e.customer_id.to_string());
        events.push(e);
        secrets.push(w);
    }
    for i in 0..20 {
        let mut e = pageview(
            T0,
            &format!("botvisitor{i:02}cccccccccc"),
            0,
            "/bot",
            "",
            "",
            "US",
            DESKTOP,
        );
        e.is_bot = true;
        events.push(e);
    }
    for i in 0..10 {
        let u = format!("visitorU{i:02}ddddddddddddd");
        events.push(pageview(T0 + 1440 * MIN, &u, 0, "/", "", "", "DE", DESKTOP));
        secrets.push(u);
    }
    let mut open = |campaign: &str, recipient: String, n: i64| {
        let mut e = Event::new(Kind::EmailOpen, T0 + n * 1000);
        e.campaign = campaign.into();
        e.recipient = recipient.as_str().into();
        e.ip_prefix = "203.0.113.0/24".into();
        secrets.push(recipient);
        events.push(e);
    };
    for i in 0..12 {
        open("spring-mail", format!("recipient-{i}"), i);
    }
    open("spring-mail", "recipient-0".into(), 99);
    for i in 0..2 {
        open("vip", format!("vip-recipient-{i}"), i);
    }
    for i in 0..10 {
        open("=SUM(A1)", format!("formula-recipient-{i}"), i);
    }
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    for e in &events {
        insert.write(e).await.unwrap();
    }
    insert.end().await.unwrap();
    Secrets(secrets)
}

async fn prepared() -> (TestDb, Secrets) {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let secrets = generate(&db).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY2]));
    (db, secrets)
}

fn assert_anonymous(csv: &str, secrets: &Secrets) {
    for s in &secrets.0 {
        assert!(!csv.contains(s.as_str()), "{s} leaked into\n{csv}");
    }
    assert!(!csv.contains('?'), "a query string leaked into\n{csv}");
}

#[tokio::test]
async fn reports_hold_exact_numbers_suppress_small_rows_and_no_identifier() {
    let (db, secrets) = prepared().await;
    let report =
        |r: &'static str, extra: &'static [&'static str]| export(&db, r, DAY1, DAY1, extra);

    let daily = export(&db, "daily", DAY1, DAY2, &[]);
    assert_eq!(
        daily,
        "site,date,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,2026-03-02,28,15,16,0.2500,60.0\n\
         shop,2026-03-03,10,10,10,1.0000,0.0\n"
    );
    // K = 11: the second day (10 visitors) goes, with no total that would give it back.
    assert_eq!(
        export(&db, "daily", DAY1, DAY2, &["--min-visitors", "11"]),
        "site,date,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,2026-03-02,28,15,16,0.2500,60.0\n"
    );
    let pages = report("pages", &[]);
    assert_eq!(
        pages,
        "site,path,pageviews,visitors,entries,bounce_rate,avg_time_on_page_s\n\
         shop,/,13,12,13,0.0769,60.0\n\
         shop,/pricing,12,12,0,,20.0\n"
    );
    // With K = 3 the three visitors of /secret make a row; its query string is never there.
    assert!(report("pages", &["--min-visitors", "3"]).contains("shop,/secret,3,3,3,1.0000,\n"));
    // The one visit without a referrer is v0's return at noon: one person's visit, so its
    // count, bounce rate and duration are left empty, though the row stands for twelve.
    assert_eq!(
        report("referrers", &[]),
        "site,referrer,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,(none),13,12,,,\n\
         shop,news.example,12,12,12,0.0000,80.0\n"
    );
    assert_eq!(
        report("countries", &[]),
        "site,country,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,DE,25,12,13,0.0769,73.8\n"
    );
    assert_eq!(
        report("devices", &[]),
        "site,dimension,value,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,browser,Firefox,25,12,13,0.0769,73.8\n\
         shop,device,desktop,25,12,13,0.0769,73.8\n\
         shop,os,Linux,25,12,13,0.0769,73.8\n"
    );
    assert_eq!(
        report("campaigns", &[]),
        "site,utm_source,utm_medium,utm_campaign,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,(none),(none),(none),16,15,,,\n\
         shop,newsletter,email,spring,12,12,12,0.0000,80.0\n"
    );
    // Unique recipients count as the row's people; a formula-like name is defused.
    let email = report("email", &[]);
    assert_eq!(
        email,
        "campaign,opens,unique_opens\nspring-mail,13,12\n'=SUM(A1),10,10\n"
    );
    // A whole closed month reads the monthly rollup (backfill computed it) and agrees.
    for r in ["pages", "devices", "email"] {
        assert_eq!(
            export(&db, r, "2026-03-01", "2026-03-31", &[]),
            export(&db, r, DAY1, DAY2, &[]),
            "{r}"
        );
    }
    for csv in [&daily, &pages, &email] {
        assert_anonymous(csv, &secrets);
    }
    for r in [
        "pages",
        "referrers",
        "countries",
        "devices",
        "campaigns",
        "email",
    ] {
        let csv = export(&db, r, DAY1, DAY2, &["--min-visitors", "2"]);
        assert_anonymous(&csv, &secrets);
        assert!(!csv.contains("/bot"), "bots are excluded");
    }

    // Every export above is in the audit, as from the command line.
    let audit = ok(aggregator(&db, &["audit", "--limit", "1000"]));
    assert_eq!(audit.lines().count(), 21, "{audit}");
    assert!(audit.lines().all(|l| l.contains("\tcli:")));
    assert!(audit.contains(
        "\texport\t200\tdaily\t2026-03-02..2026-03-03\t(all sites)\tK=11\tε=-\tbudget left=-\t1 rows"
    ));
}

#[tokio::test]
async fn page_views_reach_the_rollup_as_they_are_inserted() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    // Applying the schema again changes nothing.
    assert!(ok(aggregator(&db, &["migrate"])).contains("applied now: []"));
    generate(&db).await;
    // No backfill: the materialized views alone carry counts; visits await the refresh.
    assert_eq!(
        export(&db, "daily", DAY1, DAY1, &["--site", "shop"]),
        "site,date,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,2026-03-02,28,15,0,,\n"
    );
    assert!(
        export(&db, "daily", DAY1, DAY1, &["--site", "other"])
            .lines()
            .count()
            == 1
    );
}

/// What `daily` holds for the generated traffic once every rollup is filled.
const FULL_DAILY: &str = "site,date,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
                          shop,2026-03-02,28,15,16,0.2500,60.0\n\
                          shop,2026-03-03,10,10,10,1.0000,0.0\n";

#[tokio::test]
async fn hits_stored_by_an_older_collector_are_in_the_first_export_after_migrate() {
    let db = TestDb::new();
    // An older collector made only its own tables (no rollups) and stored the hits.
    db.as_left_by_the_old_code(&[("collector", 1), ("collector", 3), ("collector", 4)])
        .await;
    // `generate` writes today's row type, whose version columns came after that collector.
    for column in ["browser_version", "os_version"] {
        db.client()
            .query(&format!(
                "ALTER TABLE events ADD COLUMN {column} LowCardinality(String) DEFAULT ''"
            ))
            .execute()
            .await
            .unwrap();
    }
    generate(&db).await;
    let said = ok(aggregator(&db, &["migrate"]));
    assert!(said.contains("applied now: [3, 4"), "{said}");
    // No backfill: migrate filled the rollups for the events it found.
    assert_eq!(
        export(&db, "daily", DAY1, DAY2, &["--site", "shop"]),
        FULL_DAILY
    );
    // Hits after it go through the views, once.
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    let late = pageview(T0 + 5 * MIN, "late-visitor", 1, "/", "", "", "DE", DESKTOP);
    insert.write(&late).await.unwrap();
    insert.end().await.unwrap();
    ok(aggregator(&db, &["migrate"]));
    let daily = export(&db, "daily", DAY1, DAY1, &["--site", "shop"]);
    assert!(daily.contains("shop,2026-03-02,29,16,"), "{daily}");
}

#[tokio::test]
async fn hits_stored_before_the_aggregator_ever_ran_are_in_its_first_export() {
    let db = TestDb::new();
    // The collector applies the whole schema, rollups included, before it stores a hit.
    db.migrate().await;
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    let now = run::now_ms();
    for i in 0..12 {
        let mut e = pageview(
            now - 60_000,
            &format!("today-{i}"),
            1,
            "/",
            "",
            "",
            "DE",
            DESKTOP,
        );
        e.ip_prefix = format!("198.51.{i}.0/24").into();
        insert.write(&e).await.unwrap();
    }
    insert.end().await.unwrap();
    ok(aggregator(&db, &["migrate"]));
    let today = {
        let rows = db.rows("SELECT toString(today()) AS d").await;
        rows[0]["d"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        export(&db, "daily", &today, &today, &["--site", "shop"]),
        format!(
            "site,date,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
             shop,{today},12,12,12,1.0000,0.0\n"
        )
    );
}

#[tokio::test]
async fn noise_withholds_rows_too_small_for_it_and_fixes_what_it_shows() {
    let (db, secrets) = prepared().await;
    let noisy = || export(&db, "daily", DAY1, DAY2, &["--epsilon", "1"]);
    // 15 and 10 visitors are below K plus the noise's margin: neither day is shown, whatever
    // the noise, so that presence does not tell the exact count.
    let a = noisy();
    assert_eq!(a, "site,date,visitors,visitor_days\n");
    assert_eq!(a, noisy());
    let month = export(
        &db,
        "pages",
        "2026-03-01",
        "2026-03-31",
        &["--epsilon", "1"],
    );
    assert_eq!(month, "site,path,visitors,visitor_days\n");
    assert_anonymous(&a, &secrets);
    let err = aggregator(
        &db,
        &[
            "export",
            "--report",
            "daily",
            "--from",
            DAY1,
            "--to",
            DAY2,
            "--epsilon",
            "0",
        ],
    );
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("epsilon must be a multiple of 0.001"));
    assert!(
        db.data_dir.path().join("dp-noise.key").exists(),
        "the noise key is made on first use"
    );
}

#[tokio::test]
async fn the_api_needs_a_token_within_scope_and_audits_every_export() {
    let (db, _) = prepared().await;
    let token = |args: &[&str]| {
        let out = ok(aggregator(&db, args));
        out.lines()
            .last()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    let all = token(&["token", "create", "--name", "dashboard"]);
    let scoped = token(&[
        "token",
        "create",
        "--name",
        "agency",
        "--reports",
        "pages",
        "--sites",
        "shop",
    ]);
    assert!(
        !aggregator(&db, &["token", "create", "--name", "agency"])
            .status
            .success()
    );
    let list = ok(aggregator(&db, &["token", "list"]));
    assert!(list.contains("agency\treports: pages\tsites: shop"));
    assert!(
        !list.contains(&all) && !list.contains(&scoped),
        "tokens are not kept"
    );

    let server = serve_api(&db, &["--refresh-secs", "0"]).await;
    let addr = server.local_addr();
    let bearer = |t: &str| format!("Bearer {t}");
    let pages = format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}&site=shop");

    assert_eq!(
        get(addr, &pages, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = get(addr, &pages, &[("authorization", "Bearer fft_00")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let answer = get(addr, &pages, &[("authorization", &bearer(&scoped))]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        String::from_utf8_lossy(&answer.body).replace("\r\n", "\n"),
        export(&db, "pages", DAY1, DAY1, &["--site", "shop"])
    );

    let forbidden = [
        format!("/v1/reports/daily.csv?from={DAY1}&to={DAY1}&site=shop"),
        format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}&site=other"),
        format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}"),
    ];
    for target in &forbidden {
        let a = get(addr, target, &[("authorization", &bearer(&scoped))]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{target}");
    }
    let bad = [
        (
            format!("/v1/reports/pages.csv?from=2026-02-30&to={DAY1}"),
            "is not a date",
        ),
        (
            format!("/v1/reports/pages.csv?from={DAY2}&to={DAY1}"),
            "ends before it starts",
        ),
        (
            "/v1/reports/pages.csv?to=2026-01-01".to_owned(),
            "give from=",
        ),
        (
            format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}&site=a%27b"),
            "not a site",
        ),
    ];
    for (target, reason) in &bad {
        let a = get(addr, target, &[("authorization", &bearer(&all))]).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{target}");
        assert!(
            String::from_utf8_lossy(&a.body).contains(reason),
            "{target}"
        );
    }
    let unknown = get(
        addr,
        "/v1/reports/people.csv?from=2026-01-01&to=2026-01-01",
        &[("authorization", &bearer(&all))],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let email = get(
        addr,
        &format!("/v1/reports/email.csv?from={DAY1}&to={DAY1}"),
        &[("authorization", &bearer(&all))],
    )
    .await;
    assert_eq!(email.status, StatusCode::OK);

    let audit = ok(aggregator(&db, &["audit", "--action", "export"]));
    let api: Vec<&str> = audit.lines().filter(|l| !l.contains("\tcli:")).collect();
    assert_eq!(api.len(), 2, "{audit}");
    assert!(api.iter().any(|l| l.contains(
        "\tagency\texport\t200\tpages\t2026-03-02..2026-03-02\tshop\tK=10\tε=-\tbudget left=-\t2 rows"
    )));
    assert!(
        api.iter()
            .any(|l| l.contains("\tdashboard\texport\t200\temail\t"))
    );
    // Every refusal above is audited too: 2 without a valid token, 3 out of scope, 4 bad
    // parameters, 1 unknown report.
    let refused = ok(aggregator(&db, &["audit", "--action", "refused"]));
    assert_eq!(refused.lines().count(), 10, "{refused}");
    assert_eq!(refused.matches("\tagency\trefused\t403\t").count(), 3);
    assert_eq!(refused.matches("\tdashboard\trefused\t400\t").count(), 4);

    ok(aggregator(&db, &["token", "revoke", "--name", "agency"]));
    let revoked = get(addr, &pages, &[("authorization", &bearer(&scoped))]).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert!(!ok(aggregator(&db, &["token", "list"])).contains("agency"));
    server.shutdown().await;
}

#[tokio::test]
async fn serve_keeps_todays_visits_fresh() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let now = run::now_ms();
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    for n in 0..2 {
        let path = ["/", "/next"][n];
        let e = pageview(
            now - 60_000 + n as i64 * 1000,
            "visitorT00eeeeeeeeeeeee",
            n,
            path,
            "",
            "",
            "DE",
            DESKTOP,
        );
        insert.write(&e).await.unwrap();
    }
    insert.end().await.unwrap();
    let server = serve_api(&db, &["--refresh-secs", "1"]).await;
    let visits = db
        .wait_for_count(
            "SELECT sum(visits) FROM sessions_daily WHERE dimension = 'all' AND day >= today() - 1",
            1,
        )
        .await;
    assert_eq!(visits, 1);
    server.shutdown().await;
}

/// A visit across midnight is one visit, on the day it started; engagement beacons report the
/// total so far, so the largest one counts.
#[tokio::test]
async fn a_visit_across_midnight_counts_once_and_engagement_is_cumulative() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let late = T0 + 3710 * MIN; // 2026-03-04T23:50Z
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    for i in 0..2 {
        let x = format!("visitorX{i:02}fffffffffffff");
        let first = pageview(late, &x, 0, "/late", "", "", "DE", DESKTOP);
        let second = pageview(late + 20 * MIN, &x, 1, "/late2", "", "", "DE", DESKTOP);
        insert.write(&first).await.unwrap();
        insert.write(&second).await.unwrap();
        for (n, dwell) in [(1, 5000), (2, 9000)] {
            let mut e = pageview(
                late + (20 + n) * MIN,
                &x,
                1,
                "/late2",
                "",
                "",
                "DE",
                DESKTOP,
            );
            e.kind = Kind::Engagement;
            e.dwell_ms = dwell;
            insert.write(&e).await.unwrap();
        }
    }
    insert.end().await.unwrap();
    ok(aggregator(
        &db,
        &["backfill", "--from", "2026-03-04", "--to", "2026-03-05"],
    ));
    let k2 = &["--min-visitors", "2"];
    assert_eq!(
        export(&db, "daily", "2026-03-04", "2026-03-05", k2),
        "site,date,pageviews,visitors,visits,bounce_rate,avg_visit_duration_s\n\
         shop,2026-03-04,2,2,2,0.0000,1320.0\n\
         shop,2026-03-05,2,2,0,,\n"
    );
    assert_eq!(
        export(&db, "pages", "2026-03-04", "2026-03-05", k2),
        "site,path,pageviews,visitors,entries,bounce_rate,avg_time_on_page_s\n\
         shop,/late,2,2,2,0.0000,1200.0\n\
         shop,/late2,2,2,0,,9.0\n"
    );
}
