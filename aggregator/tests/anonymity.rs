//! Attacks on the anonymity of exports, each as a test against the real ClickHouse: averaging
//! noise away by asking again, spreadsheet injection through visitor-chosen text, and requests
//! that must be refused and audited.

mod run;

use footfall_store::event::{Event, Kind};
use footfall_store::testing::TestDb;
use footfall_store::testing::http::get;
use http::StatusCode;
use run::{aggregator, ok, serve_api};

const DAY1: &str = "2026-03-02";
/// 2026-03-02T10:00:00Z in milliseconds.
const T0: i64 = 1_772_445_600_000;

/// A page view of `path` by visitor number `n`, from network number `net`.
fn view(path: &str, n: usize, net: usize) -> Event {
    let mut e = Event::new(Kind::Pageview, T0 + n as i64 * 1000);
    e.site = "shop".into();
    e.visitor_id = format!("anonVisitor{n:011}").into();
    e.pageview_id = format!("anonVisitor{n:011}{path}").into();
    e.host = "shop.example".into();
    e.path = path.into();
    e.url = format!("https://shop.example{path}").into();
    e.ip_prefix = format!("10.{}.{}.0/24", net / 256, net % 256).into();
    e
}

async fn insert(db: &TestDb, events: &[Event]) {
    let mut insert = db.client().insert::<Event>("events").await.unwrap();
    for e in events {
        insert.write(e).await.unwrap();
    }
    insert.end().await.unwrap();
}

fn token(db: &TestDb, name: &str) -> String {
    let out = ok(aggregator(db, &["token", "create", "--name", name]));
    out.split_whitespace().last().unwrap().to_owned()
}

/// 400 identical noisy questions get one answer (the noise is fixed, so averaging removes
/// nothing), each is charged to the token's budget, and the 401st is refused with 429 and the
/// time the budget resets; the refusal is audited with the token's name.
#[tokio::test]
async fn asking_again_returns_the_same_noise_until_the_budget_refuses() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let events: Vec<Event> = (0..150).map(|i| view("/popular", i, i)).collect();
    insert(&db, &events).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    let analyst = token(&db, "analyst");
    // 400 × 1: exactly the budget.
    let server = serve_api(&db, &["--epsilon", "1", "--dp-budget", "400"]).await;
    let addr = server.local_addr();
    let target = format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}");
    let auth = format!("Bearer {analyst}");
    let mut answers = std::collections::HashSet::new();
    for _ in 0..400 {
        let a = get(addr, &target, &[("authorization", &auth)]).await;
        assert_eq!(a.status, StatusCode::OK);
        answers.insert(String::from_utf8(a.body.to_vec()).unwrap());
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer = answers.into_iter().next().unwrap();
    let row = answer
        .lines()
        .nth(1)
        .expect("a row of 150 visitors is published");
    let visitors: i64 = row.split(',').nth(2).unwrap().parse().unwrap();
    // Scale 3: beyond ±30 has probability below e^-10.
    assert!((visitors - 150).abs() < 30, "{answer}");

    let refused = get(addr, &target, &[("authorization", &auth)]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let body = String::from_utf8_lossy(&refused.body);
    assert!(body.contains("resets at 2"), "{body}");
    let wait: i64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 31 * 86_400, "{wait}");
    // Another range is another question, and just as refused.
    let other = format!("/v1/reports/pages.csv?from={DAY1}&to=2026-03-03");
    let refused = get(addr, &other, &[("authorization", &auth)]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    server.shutdown().await;

    let audit = ok(aggregator(
        &db,
        &["audit", "--actor", "analyst", "--limit", "1000"],
    ));
    let exports: Vec<&str> = audit.lines().filter(|l| l.contains("\texport\t")).collect();
    assert_eq!(exports.len(), 400);
    assert!(
        exports[0].contains("ε=1\tbudget left=0\t"),
        "{}",
        exports[0]
    );
    let refusals = ok(aggregator(&db, &["audit", "--action", "refused"]));
    assert_eq!(refusals.lines().count(), 2, "{refusals}");
    assert!(
        refusals
            .lines()
            .all(|l| l.contains("\tanalyst\trefused\t429\tpages\t"))
    );

    // The command line has a budget of its own (its OS user's) and refuses with an error.
    let cli = |budget: &str| {
        aggregator(
            &db,
            &[
                "export",
                "--report",
                "pages",
                "--from",
                DAY1,
                "--to",
                DAY1,
                "--epsilon",
                "1",
                "--dp-budget",
                budget,
            ],
        )
    };
    assert_eq!(ok(cli("1")).lines().count(), 2);
    let spent = cli("1");
    assert!(!spent.status.success());
    assert!(String::from_utf8_lossy(&spent.stderr).contains("privacy budget is spent"));
}

/// Visitor-chosen text that a spreadsheet would split on `;` or run as a formula, also behind
/// invisible characters or as a full-width look-alike, arrives quoted and defused.
#[tokio::test]
async fn hostile_paths_reach_the_csv_quoted_and_defused() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let paths = [
        "/x;=cmd|' /C calc'!A0",
        "＝HYPERLINK(\"http://evil\")",
        "\u{A0}=1+1",
        "\u{200B}@SUM(A1)",
        " -2",
        "/a,b",
    ];
    let mut events = Vec::new();
    for (p, path) in paths.iter().enumerate() {
        for i in 0..10 {
            events.push(view(path, p * 100 + i, p * 100 + i));
        }
    }
    insert(&db, &events).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    let csv = ok(aggregator(
        &db,
        &["export", "--report", "pages", "--from", DAY1, "--to", DAY1],
    ));
    for line in [
        "shop,\"/x;=cmd|' /C calc'!A0\",10,10,",
        "shop,\"'＝HYPERLINK(\"\"http://evil\"\")\",10,10,",
        "shop,\"'\u{A0}=1+1\",10,10,",
        "shop,\"'\u{200B}@SUM(A1)\",10,10,",
        "shop,\"' -2\",10,10,",
        "shop,\"/a,b\",10,10,",
    ] {
        assert!(csv.contains(line), "{line:?} not in\n{csv}");
    }
}

/// Every refused request is audited with who made it: no token, a wrong token, a token out of
/// scope, bad parameters.
#[tokio::test]
async fn refused_requests_are_audited_with_their_actor() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let scoped = {
        let out = ok(aggregator(
            &db,
            &[
                "token",
                "create",
                "--name",
                "partner",
                "--reports",
                "pages",
                "--sites",
                "shop",
            ],
        ));
        out.split_whitespace().last().unwrap().to_owned()
    };
    let server = serve_api(&db, &[]).await;
    let addr = server.local_addr();
    let auth = format!("Bearer {scoped}");
    let pages = format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}&site=shop");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, StatusCode);
    let cases: [Case; 4] = [
        (&pages, vec![], StatusCode::UNAUTHORIZED),
        (
            &pages,
            vec![("authorization", "Bearer fft_0")],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/v1/reports/daily.csv?from=2026-03-02&to=2026-03-02&site=shop",
            vec![("authorization", &auth)],
            StatusCode::FORBIDDEN,
        ),
        (
            "/v1/reports/pages.csv?from=2026-03-40&to=2026-03-02&site=shop",
            vec![("authorization", &auth)],
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (target, headers, status) in &cases {
        assert_eq!(get(addr, target, headers).await.status, *status, "{target}");
    }
    server.shutdown().await;
    let audit = ok(aggregator(&db, &["audit", "--action", "refused"]));
    let mut lines: Vec<&str> = audit.lines().collect();
    lines.reverse();
    assert_eq!(lines.len(), 4, "{audit}");
    assert!(lines[0].contains("\t-\trefused\t401\t"), "{}", lines[0]);
    assert!(
        lines[1].contains("\t-\trefused\t401\t") && lines[1].ends_with("unknown or revoked token")
    );
    assert!(
        lines[2].contains("\tpartner\trefused\t403\t"),
        "{}",
        lines[2]
    );
    assert!(lines[3].contains("\tpartner\trefused\t400\t") && lines[3].contains("is not a date"));
    assert!(ok(aggregator(&db, &["audit", "--actor", "nobody"])).is_empty());
}

fn pages(db: &TestDb, extra: &[&str]) -> String {
    let mut args = vec!["export", "--report", "pages", "--from", DAY1, "--to", DAY1];
    args.extend_from_slice(extra);
    ok(aggregator(db, &args))
}

/// One real person on a rare page, and visitors made up on one machine (each request without a
/// cookie mints a new id): 9 of them, or 100, never unlock the row, because they all come from
/// one network. Ten people from ten networks do.
#[tokio::test]
async fn fake_visitors_from_one_network_do_not_unlock_a_row() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let bob = "/users/bob@example.com/settings";
    let mut events = vec![view(bob, 0, 7)];
    events.extend((1..=9).map(|i| view(bob, i, 9999)));
    events.extend((0..10).map(|i| view("/popular", 100 + i, 100 + i)));
    insert(&db, &events).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    let csv = pages(&db, &[]);
    assert!(csv.contains("shop,/popular,10,10,"), "{csv}");
    assert!(
        !csv.contains("bob"),
        "9 fake visitors unlocked the row:\n{csv}"
    );
    // What holds the row back is the network rule: without it the ten ids would pass.
    assert!(
        pages(&db, &["--min-networks", "2"])
            .contains("shop,/users/bob@example.com/settings,10,10,")
    );

    let more: Vec<Event> = (10..=100).map(|i| view(bob, i, 9999)).collect();
    insert(&db, &more).await;
    let csv = pages(&db, &[]);
    assert!(
        !csv.contains("bob"),
        "100 fake visitors unlocked the row:\n{csv}"
    );
    // Under noise too: the networks are thresholded (with noise) as well.
    assert!(!pages(&db, &["--epsilon", "1"]).contains("bob"));
}

/// A row of ten visitors where only three stayed long enough to be timed: its average time on
/// page would stand for three people, so it is left empty, like the visit columns of a row
/// whose visits came from fewer than K visitors.
#[tokio::test]
async fn an_average_from_fewer_than_k_visitors_is_left_empty() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let mut events = Vec::new();
    for i in 0..10 {
        events.push(view("/article", i, i));
        if i < 3 {
            let mut next = view("/next", i, i);
            next.ts += 123_456;
            events.push(next);
        }
    }
    insert(&db, &events).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    let csv = pages(&db, &[]);
    // Ten entries from ten visitors: entries and bounce rate stand for ten; the time on page
    // (the gap to /next) for three.
    assert!(csv.contains("shop,/article,10,10,10,0.7000,\r\n"), "{csv}");
    assert!(
        pages(&db, &["--min-visitors", "3", "--min-networks", "3"])
            .contains("shop,/article,10,10,10,0.7000,123.5\r\n")
    );
}

/// The JSON API and the dashboard are the same exports: fake visitors from one network unlock
/// no row there either, and an average from fewer than K visitors is `null` in the JSON and `—`
/// on the dashboard, while the row's counts show.
#[tokio::test]
async fn the_json_api_and_the_dashboard_keep_the_same_rules() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let bob = "/users/bob@example.com/settings";
    let mut events = vec![view(bob, 0, 7)];
    events.extend((1..=30).map(|i| view(bob, i, 9999)));
    for i in 0..10 {
        events.push(view("/article", 100 + i, 100 + i));
        if i < 3 {
            let mut next = view("/next", 100 + i, 100 + i);
            next.ts += 123_456;
            events.push(next);
        }
    }
    insert(&db, &events).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    let server = serve_api(&db, &[]).await;
    let addr = server.local_addr();
    let secret = token(&db, "reader");
    let auth = format!("Bearer {secret}");
    let json = get(
        addr,
        &format!("/v1/reports/pages.json?from={DAY1}&to={DAY1}&site=shop"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(json.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(json["min_networks"], 10, "{json}");
    assert_eq!(json["withheld"], true, "{json}");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only /article stands for K visitors from K networks: {json}"
    );
    let article = &rows[0];
    assert_eq!(article["path"], "/article");
    assert_eq!(article["visitors"], 10);
    assert_eq!(article["entries"], 10);
    assert!(
        article["avg_time_on_page_s"].is_null(),
        "three timed visitors: {json}"
    );

    // The dashboard, signed in with the same token.
    let login = footfall_store::testing::http::post(
        addr,
        "/login",
        &[
            ("host", &addr.to_string()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &format!("http://{addr}")),
        ],
        format!("token={secret}"),
    )
    .await;
    let cookie = login
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("ff_session="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("signed in: {:?}", login.status))
        .to_owned();
    let page = get(
        addr,
        &format!("/?site=shop&from={DAY1}&to={DAY1}"),
        &[("cookie", &format!("ff_session={cookie}"))],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let page = String::from_utf8_lossy(&page.body);
    assert!(page.contains("/article"), "{page}");
    assert!(
        !page.contains("bob"),
        "a fake-unlocked row on the dashboard"
    );
    server.shutdown().await;
}

/// The reports that read raw events (`hourly`, `funnel`) or merge rollup rows of their own
/// (`goals`) count networks too: ten ids made up on one machine, each walking /a then /b,
/// unlock none of them; ten visitors from ten networks do.
#[tokio::test]
async fn fake_visitors_unlock_no_hour_goal_or_funnel_step() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let walk = |n: usize, net: usize| {
        let mut b = view("/b", n, net);
        b.ts += 60_000;
        [view("/a", n, net), b]
    };
    let fakes: Vec<Event> = (0..10).flat_map(|i| walk(i, 9999)).collect();
    insert(&db, &fakes).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    ok(aggregator(
        &db,
        &[
            "goal", "add", "--site", "shop", "--name", "B", "--page", "/b",
        ],
    ));
    let report = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "export", "--report", name, "--from", DAY1, "--to", DAY1, "--site", "shop",
        ];
        args.extend_from_slice(extra);
        ok(aggregator(&db, &args)).replace("\r\n", "\n")
    };
    let steps = ["--steps", "/a,/b"];
    let header_only = |csv: &str| csv.lines().count() == 1;
    assert!(
        header_only(&report("hourly", &[])),
        "{}",
        report("hourly", &[])
    );
    assert!(
        header_only(&report("goals", &[])),
        "{}",
        report("goals", &[])
    );
    assert!(
        header_only(&report("funnel", &steps)),
        "{}",
        report("funnel", &steps)
    );

    let real: Vec<Event> = (100..110).flat_map(|i| walk(i, i)).collect();
    insert(&db, &real).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    assert!(report("hourly", &[]).contains("shop,2026-03-02T10:00Z,40,20,"));
    assert!(report("goals", &[]).contains("shop,B,/b,20,20,"));
    assert!(report("funnel", &steps).contains("shop,1,/a,20,"));
}

/// Rollup rows whose unique-visitor state holds `visitor`, hashed as the table's states are
/// under any key that is left.
async fn members(db: &TestDb, visitor: &str) -> u64 {
    let hash = footfall_store::rollup::member_hash(&db.server(), &db.name, "traffic_keyed_daily")
        .await
        .unwrap();
    let hex: String = visitor.bytes().map(|b| format!("{b:02x}")).collect();
    db.count(&format!(
        "SELECT count() FROM traffic_keyed_daily WHERE arrayReduce('uniqExactMerge',
             [visitors, (SELECT uniqExactState({hash}((k0, k1), unhex('{hex}')))
                         FROM rollup_keys)])
             < finalizeAggregation(visitors) + (SELECT count() FROM rollup_keys)"
    ))
    .await
}

/// The rollups outlive the events, but not the keys of their hashes: once a month is past the
/// retention period its key is destroyed, and no membership test on its states succeeds for
/// anyone, while its counts stay readable.
#[tokio::test]
async fn after_retention_no_membership_test_succeeds() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let now = run::now_ms();
    let old = now - 100 * 86_400_000;
    let mut events: Vec<Event> = (0..10)
        .map(|i| {
            let mut e = view("/health/condition-x", i, i);
            e.ts = old + i as i64;
            e
        })
        .collect();
    let mut recent = view("/checkout", 50, 50);
    recent.ts = now;
    events.push(recent);
    insert(&db, &events).await;
    let expired = events[0].visitor_id.to_string();
    assert!(
        members(&db, &expired).await > 0,
        "the test can see a member"
    );
    assert!(members(&db, &events[10].visitor_id).await > 0);

    ok(aggregator(&db, &["retention", "--retention-days", "60"]));
    assert_eq!(
        members(&db, &expired).await,
        0,
        "an expired visitor still matches"
    );
    assert!(
        members(&db, &events[10].visitor_id).await > 0,
        "this month's key stays"
    );
    let day = footfall_aggregator::day::Day::from_epoch(old / 86_400_000).to_string();
    let csv = ok(aggregator(
        &db,
        &["export", "--report", "pages", "--from", &day, "--to", &day],
    ));
    assert!(csv.contains("shop,/health/condition-x,10,10,"), "{csv}");
}

/// `serve` does what `retention` does to the keys without being asked: a month past retention
/// loses its key (and with it every membership test) while the dashboard runs, and a key taken
/// away ahead is made again.
#[tokio::test]
async fn serve_destroys_expired_keys_and_tops_up_the_next_ones() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let now = run::now_ms();
    let mut old = view("/health/condition-y", 1, 1);
    old.ts = now - 100 * 86_400_000;
    insert(&db, std::slice::from_ref(&old)).await;
    assert!(members(&db, &old.visitor_id).await > 0);
    let last = "(SELECT max(month) FROM rollup_keys)";
    let newest = db
        .count(&format!("SELECT toUInt64(toRelativeMonthNum({last}))"))
        .await;

    let server = serve_api(&db, &["--retention-days", "60", "--refresh-secs", "1"]).await;
    // Taken away after `serve`'s own migration made the keys: only its loop brings it back.
    db.client()
        .query(&format!(
            "ALTER TABLE rollup_keys DELETE WHERE month = {last} SETTINGS mutations_sync = 2"
        ))
        .execute()
        .await
        .unwrap();
    let done = async {
        loop {
            let topped_up = db
                .count(&format!("SELECT toUInt64(toRelativeMonthNum({last}))"))
                .await
                == newest;
            if topped_up && members(&db, &old.visitor_id).await == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), done)
        .await
        .expect("within a few refreshes");
    server.shutdown().await;
}

/// Under noise, whether a row appears does not give its exact count away: rows of K and K+1
/// visitors appear equally (never, in twenty runs with twenty tokens' noise, each would with
/// probability at most δ), and a row far above the threshold always does.
#[tokio::test]
async fn under_noise_a_row_of_k_and_one_of_k_plus_one_look_alike() {
    let db = TestDb::new();
    ok(aggregator(&db, &["migrate"]));
    let mut events = Vec::new();
    for (path, n, first) in [("/k", 10, 0), ("/k-plus-one", 11, 100), ("/big", 200, 1000)] {
        events.extend((first..first + n).map(|i| view(path, i, i)));
    }
    insert(&db, &events).await;
    ok(aggregator(&db, &["backfill", "--from", DAY1, "--to", DAY1]));
    let server = serve_api(&db, &["--epsilon", "1"]).await;
    let addr = server.local_addr();
    let target = format!("/v1/reports/pages.csv?from={DAY1}&to={DAY1}");
    let mut answers = std::collections::HashSet::new();
    for run in 0..20 {
        let auth = format!("Bearer {}", token(&db, &format!("run{run}")));
        let a = get(addr, &target, &[("authorization", &auth)]).await;
        assert_eq!(a.status, StatusCode::OK);
        let csv = String::from_utf8(a.body.to_vec()).unwrap();
        assert!(!csv.contains("/k"), "{csv}");
        assert!(csv.contains("shop,/big,"), "{csv}");
        answers.insert(csv);
    }
    assert!(answers.len() > 1, "each token's noise is its own");
    server.shutdown().await;
}
