//! Custom events, goals and funnels end to end: generated page views and custom events go
//! straight into `events` on the real ClickHouse, the `footfall-aggregator` binary migrates,
//! backfills and exports. Every expected number is worked out by hand from [`generate`].

mod run;

use footfall_store::event::{Event, Kind};
use footfall_store::testing::TestDb;
use run::{aggregator, ok};

const DAY: &str = "2026-03-02";
/// 2026-03-02T10:00:00Z in milliseconds.
const T0: i64 = 1_772_445_600_000;
const MIN: i64 = 60_000;

fn export(db: &TestDb, report: &str, extra: &[&str]) -> String {
    let mut args = vec!["export", "--report", report, "--from", DAY, "--to", DAY];
    args.extend_from_slice(extra);
    ok(aggregator(db, &args)).replace("\r\n", "\n")
}

/// One visitor's event on the shop: a page view of `path`, or custom event `name` on it.
fn event(visitor: usize, ts: i64, path: &str, custom: Option<(&str, &[(&str, &str)])>) -> Event {
    let mut e = Event::new(Kind::Pageview, ts);
    e.site = "shop".into();
    e.visitor_id = format!("visitor{visitor:02}xxxxxxxxxxxxx").into();
    e.pageview_id = format!("pv{visitor:02}{ts}").into();
    e.host = "shop.example".into();
    e.path = path.into();
    e.url = format!("https://shop.example{path}").into();
    e.ip_prefix = format!("198.51.{visitor}.0/24").into();
    if let Some((name, props)) = custom {
        e.kind = Kind::Custom;
        e.event_name = name.into();
        e.props = props
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
    }
    e
}

/// Twenty visitors `0..20` see `/pricing` at `T0 + i s`. Then, a minute apart within the visit:
/// - `0..15` see a signup page (`/signup/pro` for `0..10`, `/signup/basic` for the rest);
/// - `0..12` send `Signup` with `plan` `pro` (`0..10`) or `basic` (`10`, `11`; `11` twice);
/// - `0..10` send `Purchase`; `15` sends `Purchase` before it sees `/pricing`;
/// - `16` sees `/signup/late` two hours later: another visit;
/// - `0..11` click the outbound link to `partner.example/deal`, `0..3` download a PDF;
/// - `10..20` send `=HYPERLINK(1)` with `v` = `@SUM(A1)` (formulas for a spreadsheet).
///
/// `0..11` report scroll depth on `/pricing`: `0` 30 then 60 %, `1..10` 50 %, `10` 0 (off).
///
/// Five bots send `Signup` and `Purchase`, which no report counts.
async fn generate(db: &TestDb) {
    let mut events = Vec::new();
    for i in 0..20 {
        let t = T0 + i as i64 * 1000;
        events.push(event(i, t, "/pricing", None));
        if i <= 10 {
            // Scroll depth of the pricing page view: 0 is a tracker with scroll depth off.
            let depths: &[u8] = match i {
                0 => &[30, 60],
                10 => &[0],
                _ => &[50],
            };
            for (n, depth) in depths.iter().enumerate() {
                let mut e = event(i, t + 30_000 + n as i64 * 1000, "/pricing", None);
                e.kind = Kind::Engagement;
                e.pageview_id = format!("pv{i:02}{t}").into();
                e.dwell_ms = 5_000;
                e.scroll_depth = *depth;
                events.push(e);
            }
        }
        if i < 15 {
            let path = if i < 10 {
                "/signup/pro"
            } else {
                "/signup/basic"
            };
            events.push(event(i, t + MIN, path, None));
        }
        if i < 12 {
            let plan = if i < 10 { "pro" } else { "basic" };
            let props = [("plan", plan)];
            events.push(event(
                i,
                t + 2 * MIN,
                "/signup/pro",
                Some(("Signup", &props)),
            ));
            if i == 11 {
                events.push(event(
                    i,
                    t + 2 * MIN + 1000,
                    "/signup/pro",
                    Some(("Signup", &props)),
                ));
            }
        }
        if i < 10 {
            events.push(event(i, t + 3 * MIN, "/thanks", Some(("Purchase", &[]))));
        }
        if i == 15 {
            events.push(event(i, t - MIN, "/thanks", Some(("Purchase", &[]))));
        }
        if i == 16 {
            events.push(event(i, t + 120 * MIN, "/signup/late", None));
        }
        if i < 11 {
            let link = [("url", "partner.example/deal")];
            events.push(event(
                i,
                t + 4 * MIN,
                "/pricing",
                Some(("Outbound Link: Click", &link)),
            ));
        }
        if i < 3 {
            let file = [("url", "shop.example/files/terms.pdf")];
            events.push(event(
                i,
                t + 5 * MIN,
                "/pricing",
                Some(("File Download", &file)),
            ));
        }
        if i >= 10 {
            events.push(event(
                i,
                t + 6 * MIN,
                "/pricing",
                Some(("=HYPERLINK(1)", &[("v", "@SUM(A1)")])),
            ));
        }
    }
    for b in 0..5 {
        for name in ["Signup", "Purchase"] {
            let mut e = event(90 + b, T0, "/pricing", Some((name, &[("plan", "pro")])));
            e.is_bot = true;
            events.push(e);
        }
    }
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    for e in &events {
        insert.write(e).await.unwrap();
    }
    insert.end().await.unwrap();
}

async fn prepared() -> TestDb {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    generate(&db).await;
    ok(aggregator(&db, &["backfill", "--from", DAY, "--to", DAY]));
    db
}

#[tokio::test]
async fn events_properties_outbound_and_downloads_hold_exact_numbers() {
    let db = prepared().await;
    assert_eq!(
        export(&db, "events", &[]),
        "site,event,events,visitors,conversion_rate\n\
         shop,Signup,13,12,0.6000\n\
         shop,\"Outbound Link: Click\",11,11,0.5500\n\
         shop,Purchase,11,11,0.5500\n\
         shop,'=HYPERLINK(1),10,10,0.5000\n",
        "3 downloaders are fewer than K = 10; bots are left out"
    );
    assert_eq!(
        export(&db, "properties", &[]),
        "site,event,property,value,events,visitors\n\
         shop,\"Outbound Link: Click\",url,partner.example/deal,11,11\n\
         shop,'=HYPERLINK(1),v,'@SUM(A1),10,10\n\
         shop,Signup,plan,pro,10,10\n"
    );
    assert_eq!(
        export(&db, "outbound", &[]),
        "site,url,clicks,visitors\nshop,partner.example/deal,11,11\n"
    );
    assert_eq!(
        export(&db, "downloads", &["--min-visitors", "3"]),
        "site,url,downloads,visitors\nshop,shop.example/files/terms.pdf,3,3\n"
    );
    assert_eq!(
        export(&db, "downloads", &[]),
        "site,url,downloads,visitors\n"
    );
    // The closed month reads the monthly rollup and agrees.
    for r in ["events", "properties"] {
        let mut args = vec![
            "export",
            "--report",
            r,
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
        ];
        args.extend(["--site", "shop"]);
        assert_eq!(
            ok(aggregator(&db, &args)).replace("\r\n", "\n"),
            export(&db, r, &["--site", "shop"]),
            "{r}"
        );
    }
    let noisy = export(&db, "events", &["--epsilon", "1"]);
    assert!(
        noisy.starts_with("site,event,visitors,visitor_days\n"),
        "{noisy}"
    );
}

#[tokio::test]
async fn goals_count_conversions_from_the_rollup_and_can_be_listed_and_removed() {
    let db = prepared().await;
    let goal = |args: &[&str]| {
        let mut argv = vec!["goal", "add", "--site", "shop"];
        argv.extend_from_slice(args);
        ok(aggregator(&db, &argv))
    };
    goal(&["--name", "Signup page", "--page", "/signup/*"]);
    goal(&[
        "--name",
        "Pro signup",
        "--event",
        "Signup",
        "--property",
        "plan=pro",
    ]);
    goal(&["--name", "Purchase", "--event", "Purchase"]);
    goal(&["--name", "Docs", "--page", "/docs/**"]);
    goal(&["--name", "Gone", "--event", "Gone"]);
    ok(aggregator(
        &db,
        &["goal", "remove", "--site", "shop", "--name", "Gone"],
    ));
    assert_eq!(
        ok(aggregator(&db, &["goal", "list", "--site", "shop"])),
        "shop\tDocs\t/docs/**\nshop\tPro signup\tevent:Signup plan=pro\n\
         shop\tPurchase\tevent:Purchase\nshop\tSignup page\t/signup/*\n"
    );
    // /signup/late counts (a goal is not a funnel); the events' own paths are not page views.
    assert_eq!(
        export(&db, "goals", &[]),
        "site,goal,definition,conversions,visitors,conversion_rate\n\
         shop,\"Pro signup\",\"event:Signup plan=pro\",10,10,0.5000\n\
         shop,Purchase,event:Purchase,11,11,0.5500\n\
         shop,\"Signup page\",/signup/*,16,16,0.8000\n",
        "Docs converts nobody, fewer than K"
    );
    for bad in [
        &["--name", "x"][..],
        &["--name", "x", "--page", "signup"],
        &["--name", "x", "--page", "/a", "--event", "E"],
        &["--name", "x", "--page", "/a", "--property", "a=b"],
    ] {
        let mut argv = vec!["goal", "add", "--site", "shop"];
        argv.extend_from_slice(bad);
        assert!(!aggregator(&db, &argv).status.success(), "{bad:?}");
    }
}

#[tokio::test]
async fn a_funnel_counts_ordered_steps_within_a_visit_and_is_kept_per_site() {
    let db = prepared().await;
    let steps = "/pricing,/signup/*,event:Purchase";
    let expected = "site,step,definition,visitors,drop_off,drop_off_rate\n\
                    shop,1,/pricing,20,0,0.0000\n\
                    shop,2,/signup/*,15,5,0.2500\n\
                    shop,3,event:Purchase,10,5,0.3333\n";
    // 16's signup page is in a later visit, 15's purchase came before the pricing page.
    assert_eq!(
        export(&db, "funnel", &["--site", "shop", "--steps", steps]),
        expected
    );
    assert_eq!(
        export(&db, "funnel", &["--site", "shop"]),
        expected,
        "kept for the site"
    );
    assert_eq!(
        export(&db, "funnel", &["--site", "shop", "--min-visitors", "16"]),
        "site,step,definition,visitors,drop_off,drop_off_rate\nshop,1,/pricing,20,0,0.0000\n"
    );
    let args = ["export", "--report", "funnel", "--from", DAY, "--to", DAY];
    let no_site = aggregator(&db, &args);
    assert!(String::from_utf8_lossy(&no_site.stderr).contains("give --site"));
    let mut other = args.to_vec();
    other.extend(["--site", "blog"]);
    let none = aggregator(&db, &other);
    assert!(String::from_utf8_lossy(&none.stderr).contains("has no funnel yet"));
    other.extend(["--steps", "/pricing"]);
    assert!(
        !aggregator(&db, &other).status.success(),
        "one step is no funnel"
    );
}

#[tokio::test]
async fn exit_pages_and_average_scroll_depth_come_from_the_visit_rollup() {
    let db = prepared().await;
    // Visits end on /pricing for 15..20 (and 16's first visit), on a signup page for 0..15.
    // The five exits from /pricing stand for five visitors, fewer than K: left empty.
    assert_eq!(
        export(&db, "exits", &[]),
        "site,path,pageviews,visitors,exits,exit_rate\n\
         shop,/pricing,20,20,,\n\
         shop,/signup/pro,10,10,10,1.0000\n",
        "/signup/basic (5) and /signup/late (1) stand for fewer than K"
    );
    let k5 = export(
        &db,
        "exits",
        &["--min-visitors", "5", "--min-networks", "5"],
    );
    assert!(k5.contains("shop,/pricing,20,20,5,0.2500\n"), "{k5}");
    // Each page view counts its largest depth; depth 0 (switched off) is not a depth.
    assert_eq!(
        export(&db, "scroll", &[]),
        "site,path,pageviews,visitors,avg_scroll_depth\n\
         shop,/pricing,20,20,51.0\n\
         shop,/signup/pro,10,10,\n"
    );
    // The closed month reads the monthly rollup and agrees.
    for r in ["exits", "scroll"] {
        let args = [
            "export",
            "--report",
            r,
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
        ];
        assert_eq!(
            ok(aggregator(&db, &args)).replace("\r\n", "\n"),
            export(&db, r, &[]),
            "{r}"
        );
    }
}
