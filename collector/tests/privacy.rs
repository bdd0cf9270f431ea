//! The visitor's privacy choices and the signed features, end to end against the real ClickHouse:
//! what is withheld leaves no row, what is signed is recorded, what is forged is not believed.

mod common;

use common::{Serve, TestDb, enc, get, metric, sign_customer};

fn pixel(extra: &str) -> String {
    format!(
        "/p.gif?site=s&url={}{extra}",
        enc("https://shop.example.com/a")
    )
}

/// Runs `footfall-collector ARGS` and returns its standard output.
fn collector_cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The `/o/TOKEN.gif` path `footfall-collector sign email` makes with the secret in `data_dir`.
fn sign_email(campaign: &str, recipient: &str, data_dir: &std::path::Path) -> String {
    collector_cli(&[
        "sign",
        "email",
        "--campaign",
        campaign,
        "--recipient",
        recipient,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ])
}

#[tokio::test]
async fn opted_out_dnt_gpc_and_unconsented_hits_get_the_gif_and_leave_nothing() {
    let db = TestDb::new();
    let collector = db.start(&["--consent", "required"]).await;
    let addr = collector.local_addr();
    let returning = format!("ff_id={}", footfall_store::id::Id::random());
    // (extra query, request headers, reason counted)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        ("&consent=1", &[("cookie", "ff_optout=1")], "opted_out"),
        ("&consent=1", &[("dnt", "1")], "dnt"),
        ("&consent=1", &[("sec-gpc", "1")], "gpc"),
        ("", &[("cookie", &returning)], "no_consent"),
    ];
    for (extra, headers, _) in cases {
        let answer = get(addr, &pixel(extra), headers).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["content-type"], "image/gif");
        assert_eq!(answer.body.len(), 43);
        assert!(
            answer.headers.get("set-cookie").is_none(),
            "no cookie at all for {headers:?}"
        );
    }
    // A signed customer link does not override the choice either.
    let (link, _) = sign_customer("c-1", "s", db.data_dir.path().to_str().unwrap());
    get(addr, &pixel(&format!("&consent=1&{link}")), &[("dnt", "1")]).await;
    let consented = get(addr, &pixel("&consent=1"), &[]).await;
    assert!(
        consented.visitor_cookie().is_some(),
        "consent=1 is recorded and gets the cookie"
    );

    for (_, _, reason) in cases {
        let expected = if reason == "dnt" { 2 } else { 1 };
        assert_eq!(
            metric(
                &collector,
                &format!("footfall_hits_withheld_total{{reason=\"{reason}\"}}")
            )
            .await,
            expected
        );
    }
    collector.shutdown().await;
    let rows = db
        .rows("SELECT visitor_id, toString(ip_key_id) AS key FROM events")
        .await;
    assert_eq!(rows.len(), 1, "only the consented hit is stored");
    assert_eq!(
        rows[0]["visitor_id"],
        consented.visitor_cookie().unwrap().as_str()
    );
    // The collector makes its first key at start: a test that crosses a minute boundary stores
    // that one too, unused. No withheld hit adds one.
    let keys = db.rows("SELECT toString(key_id) AS key FROM ip_keys").await;
    assert!(
        keys.iter().any(|k| k["key"] == rows[0]["key"]),
        "the key of the one stored hit is stored"
    );
    assert!(keys.len() <= 2, "no key for a withheld hit: {keys:?}");
    assert_eq!(db.count("SELECT count() FROM identities").await, 0);
}

#[tokio::test]
async fn dnt_and_gpc_can_be_switched_off() {
    let db = TestDb::new();
    let collector = db
        .start(&["--honor-dnt", "false", "--honor-gpc", "false"])
        .await;
    let answer = get(
        collector.local_addr(),
        &pixel(""),
        &[("dnt", "1"), ("sec-gpc", "1")],
    )
    .await;
    assert!(answer.visitor_cookie().is_some());
    let opted_out = get(
        collector.local_addr(),
        &pixel(""),
        &[("dnt", "1"), ("cookie", "ff_optout=1")],
    )
    .await;
    assert!(
        opted_out.headers.get("set-cookie").is_none(),
        "an explicit opt-out always counts"
    );
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 1);
}

fn set_cookies(answer: &common::Answer) -> Vec<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn optout_and_optin_change_only_by_a_post_from_their_own_page() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    // What the confirmation page's form sends: same origin.
    let own_page = [
        ("host", "collector.test"),
        ("origin", "http://collector.test"),
        ("sec-fetch-site", "same-origin"),
    ];

    let page = get(addr, "/optout", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(
        html.contains("ff_optout") && html.contains("none of this browser's visits"),
        "the page says what the button does: {html}"
    );
    assert!(
        html.contains(r#"<form method="post" action="optout">"#),
        "{html}"
    );
    assert!(set_cookies(&page).is_empty(), "a GET changes nothing");

    let out = common::request(addr, "POST", "/optout", &own_page).await;
    assert_eq!(out.status, 200);
    assert!(String::from_utf8_lossy(&out.body).contains("You have opted out"));
    let cookies = set_cookies(&out);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ff_optout=1;") && c.contains("Max-Age=157680000")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("ff_id=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );

    // The return URL is checked on the GET and carried in the form's action.
    let back = "https://shop.example.com/privacy?done=1";
    let from_shop = get(
        addr,
        &format!("/optin?return={}", enc(back)),
        &[("referer", "https://shop.example.com/privacy")],
    )
    .await;
    assert_eq!(from_shop.status, 200, "no redirect, no change on a GET");
    assert!(set_cookies(&from_shop).is_empty());
    let action = format!(r#"action="optin?return={}""#, enc(back));
    assert!(String::from_utf8_lossy(&from_shop.body).contains(&action));
    let elsewhere = get(
        addr,
        &format!("/optout?return={}", enc("https://evil.example/")),
        &[("referer", "https://shop.example.com/")],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&elsewhere.body).contains(r#"action="optout">"#),
        "a return URL of another site is not handed on"
    );
    let back_in = common::request(
        addr,
        "POST",
        &format!("/optin?return={}", enc(back)),
        &own_page,
    )
    .await;
    assert_eq!(back_in.status, 303);
    assert_eq!(back_in.headers["location"], back);
    let cookies = set_cookies(&back_in);
    assert_eq!(cookies.len(), 1);
    assert!(
        cookies[0].starts_with("ff_optout=;") && cookies[0].contains("Max-Age=0"),
        "{cookies:?}"
    );

    // Another site's form or script, or a request that says nothing about where it came from.
    let foreign: [&[(&str, &str)]; 4] = [
        &[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        &[("origin", "https://evil.example")],
        &[
            ("origin", "http://collector.test"),
            ("sec-fetch-site", "same-site"),
        ],
        &[],
    ];
    for headers in foreign {
        for path in ["/optin", "/optout"] {
            let answer = common::request(addr, "POST", path, headers).await;
            assert_eq!(answer.status, 403, "{path} {headers:?}");
            assert!(set_cookies(&answer).is_empty(), "{path} {headers:?}");
        }
    }
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="foreign_opt_change"}"#
        )
        .await,
        8
    );
    let put = common::request(addr, "PUT", "/optin", &own_page).await;
    assert_eq!(put.status, 405);
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 0);
}

#[tokio::test]
async fn signed_email_opens_are_recorded_forged_ones_are_not() {
    let db = TestDb::new();
    let collector = db.start(&["--trusted-proxies", "127.0.0.0/8"]).await;
    let addr = collector.local_addr();
    let path = sign_email("autumn", "sub-42", db.data_dir.path());
    assert!(path.starts_with("/o/") && path.ends_with(".gif"), "{path}");

    let reader = get(
        addr,
        &path,
        &[
            ("user-agent", "Thunderbird/128.0"),
            ("x-forwarded-for", "198.51.100.9"),
        ],
    )
    .await;
    assert_eq!((reader.status.as_u16(), reader.body.len()), (200, 43));
    assert!(
        reader.headers.get("set-cookie").is_none(),
        "email opens never set a cookie"
    );
    let gmail =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    get(
        addr,
        &path,
        &[("user-agent", gmail), ("x-forwarded-for", "66.249.84.1")],
    )
    .await;
    let withheld = get(addr, &path, &[("dnt", "1")]).await;
    assert_eq!(
        (withheld.status.as_u16(), withheld.body.len()),
        (200, 43),
        "a reader's DNT is honoured too"
    );

    let token = path.trim_start_matches("/o/").trim_end_matches(".gif");
    // One character of the middle changed (a middle character carries whole bits of the token;
    // replacing the last with `A` was no change when it was `A` already).
    let mid = token.len() / 2;
    let other = if &token[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!("/o/{}{other}{}.gif", &token[..mid], &token[mid + 1..]);
    assert_ne!(tampered, path);
    let foreign = {
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            other.path().join("secret.key"),
            "another secret that is long enough to use",
        )
        .unwrap();
        sign_email("autumn", "sub-42", other.path())
    };
    for forged in [
        tampered.as_str(),
        foreign.as_str(),
        "/o/.gif",
        "/o/garbage.gif",
        "/o/x",
    ] {
        let answer = get(addr, forged, &[]).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body.len()),
            (200, 43),
            "{forged}"
        );
    }
    assert_eq!(
        metric(
            &collector,
            "footfall_hits_rejected_total{reason=\"bad_email_token\"}"
        )
        .await,
        5
    );
    assert_eq!(
        metric(
            &collector,
            "footfall_hits_accepted_total{kind=\"email_open\"}"
        )
        .await,
        2
    );
    assert_eq!(
        metric(&collector, "footfall_hits_withheld_total{reason=\"dnt\"}").await,
        1
    );
    collector.shutdown().await;

    let rows = db
        .rows(
            "SELECT kind, site, visitor_id, campaign, recipient, via_proxy, user_agent, ip_prefix, ip_key_id,
                    hex(ip_sealed) AS sealed FROM events ORDER BY via_proxy",
        )
        .await;
    assert_eq!(rows.len(), 2, "forged tokens are not recorded");
    for row in &rows {
        assert_eq!(row["kind"], "email_open");
        assert_eq!(row["site"], "");
        assert_eq!(row["visitor_id"], "");
        assert_eq!(row["campaign"], "autumn");
        assert_eq!(row["recipient"], "sub-42");
    }
    assert_eq!(rows[0]["via_proxy"], false);
    assert_eq!(rows[0]["user_agent"], "Thunderbird/128.0");
    assert_eq!(rows[0]["ip_prefix"], "198.51.100.0/24");
    assert_eq!(rows[1]["via_proxy"], true, "Gmail's image proxy is flagged");
    let ip = db
        .unseal(&rows[0]["ip_key_id"], rows[0]["sealed"].as_str().unwrap())
        .await;
    assert_eq!(ip.to_string(), "198.51.100.9");
}

/// How a browser fetches the pixel as an image of a page on the same site.
const AS_IMAGE: [(&str, &str); 3] = [
    ("sec-fetch-mode", "no-cors"),
    ("sec-fetch-dest", "image"),
    ("sec-fetch-site", "same-site"),
];

#[tokio::test]
async fn signed_customer_links_are_stored_and_linked_forged_ones_are_ignored() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let data_dir = db.data_dir.path().to_str().unwrap();
    let (link, said) = sign_customer("cust-7", "s", data_dir);
    assert!(link.starts_with("cid=cust-7&cs="), "{link}");
    assert!(
        said.contains("expires") && said.contains("GMT") && said.contains("15 minutes"),
        "{said}"
    );

    let visitor = get(addr, &pixel(&format!("&{link}")), &AS_IMAGE)
        .await
        .visitor_cookie()
        .unwrap();
    let cookie = format!("ff_id={visitor}");
    get(addr, &pixel(&format!("&{link}")), &[("cookie", &cookie)]).await;
    let forged_link = link.replace("cust-7", "cust-8");
    let stranger = get(addr, &pixel(&format!("&{forged_link}")), &[]).await;
    assert!(
        stranger.visitor_cookie().is_some(),
        "a forged link does not stop the hit"
    );
    get(addr, &pixel("&cid=cust-8"), &[]).await;
    let other_site = pixel(&format!("&{link}")).replace("site=s&", "site=other&");
    get(addr, &other_site, &[]).await;
    assert_eq!(
        metric(
            &collector,
            r#"footfall_customer_links_rejected_total{reason="forged"}"#
        )
        .await,
        3
    );
    collector.shutdown().await;

    assert_eq!(
        db.count("SELECT count() FROM events").await,
        5,
        "forged links are recorded unlinked"
    );
    assert_eq!(
        db.count("SELECT count() FROM events WHERE customer_id != 'cust-7' AND customer_id != ''")
            .await,
        0
    );
    let linked = db
        .rows("SELECT visitor_id FROM events WHERE customer_id = 'cust-7'")
        .await;
    assert_eq!(linked.len(), 2);
    let identities = db
        .rows(
            "SELECT customer_id, visitor_id, min(first_seen) <= max(last_seen) AS ordered
             FROM identities GROUP BY customer_id, visitor_id",
        )
        .await;
    assert_eq!(identities.len(), 1, "{identities:?}");
    assert_eq!(identities[0]["customer_id"], "cust-7");
    assert_eq!(identities[0]["visitor_id"], visitor.as_str());
    assert_eq!(identities[0]["ordered"], 1);
}

/// The attack on a bearer link: a customer copies the link from their own page and makes a
/// victim's browser open it as a navigation (a link, a redirect) or from another site, with the
/// victim's cookie. And a link kept past its lifetime.
#[tokio::test]
async fn a_replayed_or_expired_customer_link_links_nobody() {
    let db = TestDb::new();
    let collector = db.start(&["--customer-link-minutes", "5"]).await;
    let addr = collector.local_addr();
    let secret = footfall_collector::keys::load_secret(db.data_dir.path(), None, true).unwrap();
    let signer = footfall_collector::signing::Signer::new(&secret);
    let sign = |issued| footfall_collector::hit::customer::sign("attacker", "s", issued, &signer);
    let victim = format!("ff_id={}", footfall_store::id::Id::random());
    let fresh = sign(common::now_secs()).unwrap();
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 5] = [
        (
            fresh.clone(),
            vec![
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("sec-fetch-site", "cross-site"),
            ],
            "refused",
        ),
        (
            fresh.clone(),
            vec![
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                ("sec-fetch-site", "same-site"),
            ],
            "refused",
        ),
        (
            fresh.clone(),
            vec![
                ("sec-fetch-mode", "no-cors"),
                ("sec-fetch-dest", "image"),
                ("sec-fetch-site", "cross-site"),
            ],
            "refused",
        ),
        (
            sign(common::now_secs() - 5 * 60 - 30).unwrap(),
            AS_IMAGE.to_vec(),
            "expired",
        ),
        (
            sign(common::now_secs() + 3600).unwrap(),
            AS_IMAGE.to_vec(),
            "expired",
        ),
    ];
    for (link, mut headers, _) in cases.clone() {
        headers.push(("cookie", &victim));
        let answer = get(addr, &pixel(&format!("&{link}")), &headers).await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.visitor_cookie().is_some(),
            "the victim's hit is still recorded"
        );
    }
    for reason in ["refused", "expired"] {
        let expected = cases.iter().filter(|c| c.2 == reason).count() as u64;
        let name = format!("footfall_customer_links_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(&collector, &name).await, expected, "{reason}");
    }
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 5);
    assert_eq!(
        db.count("SELECT count() FROM events WHERE customer_id != ''")
            .await,
        0,
        "nothing linked to the attacker"
    );
    assert_eq!(db.count("SELECT count() FROM identities").await, 0);
}

#[tokio::test]
async fn sign_without_a_secret_says_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args([
            "sign",
            "customer",
            "--id",
            "c",
            "--site",
            "s",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ])
        .env_remove("FOOTFALL_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--secret") && err.contains("FOOTFALL_SECRET"),
        "{err}"
    );
}

#[tokio::test]
async fn retention_ttls_cover_every_table_with_personal_data() {
    let db = TestDb::new();
    let collector = db.start(&["--retention-days", "395"]).await;
    collector.shutdown().await;
    // Applying again is harmless (statements are idempotent, as after an interrupted migration)
    // and brings every TTL in line with a changed retention period.
    let server = db.client().with_database("default");
    for statement in footfall_store::schema::MIGRATIONS
        .iter()
        .flat_map(|m| m.statements)
    {
        let statement = footfall_store::rollup::with_member_hash(&server, &db.name, statement)
            .await
            .unwrap();
        server
            .query(&statement.replace("{db}", &db.name))
            .execute()
            .await
            .unwrap();
    }
    footfall_store::migrations::migrate(&server, &db.name, 30, &Default::default())
        .await
        .unwrap();
    for (table, ttl) in [
        ("events", "TTL toDateTime(ts) + toIntervalDay(30)"),
        (
            "identities",
            "TTL toDateTime(last_seen) + toIntervalDay(30)",
        ),
        ("ip_keys", "TTL created + toIntervalDay(31)"),
    ] {
        let create = db.rows(&format!("SELECT create_table_query AS q FROM system.tables WHERE database = currentDatabase() AND name = '{table}'")).await;
        let create = create[0]["q"].as_str().unwrap();
        assert!(create.contains(ttl), "{table}: {create}");
    }
}

#[tokio::test]
async fn the_rate_limit_spares_email_opens_by_image_proxies() {
    let db = TestDb::new();
    let collector = db
        .start(&[
            "--trusted-proxies",
            "127.0.0.0/8",
            "--rate-limit-per-minute",
            "1",
            "--rate-limit-burst",
            "1",
        ])
        .await;
    let addr = collector.local_addr();
    let path = sign_email("winter", "sub-7", db.data_dir.path());
    let gmail =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    for _ in 0..3 {
        let reader = [
            ("user-agent", "Thunderbird/128.0"),
            ("x-forwarded-for", "198.51.100.9"),
        ];
        assert_eq!(get(addr, &path, &reader).await.status, 200);
        let proxy = [("user-agent", gmail), ("x-forwarded-for", "66.249.84.1")];
        assert_eq!(get(addr, &path, &proxy).await.status, 200);
    }
    assert_eq!(
        metric(
            &collector,
            "footfall_hits_rejected_total{reason=\"rate_limited\"}"
        )
        .await,
        2,
        "the reader's client is limited"
    );
    collector.shutdown().await;
    let rows = db
        .rows("SELECT via_proxy FROM events WHERE kind = 'email_open' ORDER BY via_proxy")
        .await;
    let via_proxy: Vec<bool> = rows
        .iter()
        .map(|r| r["via_proxy"].as_bool().unwrap())
        .collect();
    assert_eq!(
        via_proxy,
        [false, true, true, true],
        "every proxy fetch is kept"
    );
}

/// The fenced block of README.md whose opening line is "```LANG" and which holds `marker`,
/// without its indentation.
fn readme_block(lang: &str, marker: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let mut lines = readme.lines();
    loop {
        let line = lines.next().expect("the README holds the snippet");
        if line.trim() != format!("```{lang}") {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| l.trim() != "```")
            .map(|l| l.get(indent..).unwrap_or_default())
            .collect();
        let block = block.join("\n");
        if block.contains(marker) {
            return block;
        }
    }
}

#[tokio::test]
async fn the_readmes_python_and_shell_snippets_sign_links_the_collector_believes() {
    let secret = "a backend's copy of FOOTFALL_SECRET, long and random enough";
    let signer = footfall_collector::signing::Signer::new(secret.as_bytes());
    let policy = footfall_collector::hit::customer::LinkPolicy {
        signer,
        max_age_secs: 900,
    };
    let python = format!(
        "{}\nprint(footfall_link({secret:?}, 'shop.example.com', 'c-42'))",
        readme_block("python", "def footfall_link")
    );
    let shell = readme_block("sh", "footfall customer-link v2");
    let runs = [
        std::process::Command::new("python3")
            .args(["-c", &python])
            .output()
            .unwrap(),
        std::process::Command::new("bash")
            .args(["-c", &shell])
            .env("FOOTFALL_SECRET", secret)
            .env("SITE", "shop.example.com")
            .env("CUSTOMER_ID", "c-42")
            .output()
            .unwrap(),
    ];
    for out in runs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let link = String::from_utf8(out.stdout).unwrap();
        let params: std::collections::HashMap<_, _> =
            form_urlencoded::parse(link.trim().as_bytes()).collect();
        let verdict = footfall_collector::hit::customer::verify(
            params.get("cid").map(|v| v.as_ref()),
            params.get("cs").map(|v| v.as_ref()),
            "shop.example.com",
            common::now_secs(),
            true,
            &policy,
        );
        assert!(
            matches!(verdict, footfall_collector::hit::customer::Link::Valid(ref c) if c.as_str() == "c-42"),
            "{link}"
        );
    }
}

#[tokio::test]
async fn no_stored_column_holds_a_dropped_parameter_or_an_address_from_a_path() {
    let db = TestDb::new();
    let collector = db.start(&["--keep-query-params", "q"]).await;
    let addr = collector.local_addr();
    let page = "https://shop.example.com/users/jane.doe@example.com/reset?token=SECRET123&q=shoes&sid=sess-xyz#access_token=FRAGSECRET";
    let referrer = "https://mail.example/inbox/alice%40example.org?user=alice@example.org";
    let pixel = format!(
        "/p.gif?site=s&url={}&ref={}&title={}",
        enc(page),
        enc(referrer),
        enc("Reset for jane.doe@example.com")
    );
    assert!(get(addr, &pixel, &[]).await.visitor_cookie().is_some());
    let custom = format!(
        "/p.gif?site=s&url={}&event=Signup&p.who=jane.doe%40example.com",
        enc(page)
    );
    assert!(get(addr, &custom, &[]).await.visitor_cookie().is_some());
    let beacon = serde_json::json!({
        "kind": "pageview", "site": "s", "url": page, "referrer": referrer,
        "title": "Inbox – alice@example.org", "pageview_id": "PageView0000000000000001",
    });
    let answer = common::post(
        addr,
        "/e",
        &[("content-type", "text/plain")],
        beacon.to_string(),
    )
    .await;
    assert_eq!(answer.status, 204);
    collector.shutdown().await;

    assert_eq!(db.count("SELECT count() FROM events").await, 3);
    let tables = db
        .rows("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View%'")
        .await;
    assert!(tables.len() >= 3, "{tables:?}");
    for table in &tables {
        let table = table["name"].as_str().unwrap();
        for needle in ["SECRET123", "sess-xyz", "FRAGSECRET", "jane.doe", "alice"] {
            let hits = db
                .count(&format!(
                    "SELECT countIf(positionCaseInsensitive(toString(tuple(*)), '{needle}') > 0) FROM {table}"
                ))
                .await;
            assert_eq!(hits, 0, "{needle} stored in {table}");
        }
    }
    let rows = db
        .rows("SELECT url, path, referrer, title FROM events WHERE kind = 'pageview' LIMIT 1")
        .await;
    assert_eq!(
        rows[0]["url"], "https://shop.example.com/users/(email)/reset?q=shoes",
        "the allowed parameter stays"
    );
    assert_eq!(rows[0]["path"], "/users/(email)/reset");
    assert_eq!(rows[0]["referrer"], "https://mail.example/inbox/(email)");
}

/// On a quiet site a counter that moves by one tells an outsider when one person acted (opened a
/// mail, withheld a hit): the public port does not serve `/metrics`, the metrics address does.
#[tokio::test]
async fn metrics_answer_on_their_own_address_only() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let public = collector.local_addr();
    let private = collector.metrics_addr().expect("metrics are served");
    assert_ne!(public, private);
    assert_eq!(get(public, &pixel(""), &[]).await.status, 200);
    db.wait_for_count("SELECT count() FROM events", 1).await;

    for path in ["/metrics", "/metrics/", "/metrics?x=1"] {
        let answer = get(public, path, &[]).await;
        assert_eq!(answer.status, 404, "{path} on the public port");
        assert!(!String::from_utf8_lossy(&answer.body).contains("footfall_"));
    }
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_accepted_total{kind="pageview"}"#
        )
        .await,
        1
    );
    for path in ["/p.gif?site=s", "/readyz", "/"] {
        assert_eq!(get(private, path, &[]).await.status, 404, "{path}");
    }
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 1);

    let quiet = db.start(&["--metrics-listen", "off"]).await;
    assert_eq!(quiet.metrics_addr(), None);
    assert_eq!(get(quiet.local_addr(), "/metrics", &[]).await.status, 404);
    quiet.shutdown().await;

    // An address that cannot be had fails the start, rather than running without metrics.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let refused = footfall_collector::server::start(db.serve_args(&["--metrics-listen", &at]))
        .await
        .err()
        .expect("the metrics address is taken");
    assert!(refused.to_string().contains(&at), "{refused}");
}
