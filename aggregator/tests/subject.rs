//! The data subject's rights and retention, end to end: hits go in through a real collector,
//! the `footfall-aggregator` binary exports, erases and expires them in the real ClickHouse.

#[path = "../../collector/tests/common/mod.rs"]
mod common;
mod run;

use common::{TestDb, enc, get};
use footfall_collector::hit::{customer, email};
use footfall_collector::keys;
use footfall_collector::signing::Signer;
use run::{aggregator, ok};
use serde_json::Value;

fn export(db: &TestDb, who: &str, id: &str) -> Value {
    serde_json::from_str(&ok(aggregator(db, &["subject", "export", who, id]))).unwrap()
}

/// `text` in hex: tests name ids in their own queries only this way, so that the query log
/// holds no id that a test did not avoid.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// Rollup rows whose unique-visitor or unique-recipient state holds one of `ids`.
async fn rollup_members(db: &TestDb, ids: &[&str]) -> u64 {
    let mut n = 0;
    for id in ids {
        let sql = format!(
            "SELECT count() FROM traffic_daily WHERE arrayReduce('uniqExactMerge',
                 [visitors, (SELECT uniqExactState(unhex('{}')))]) = finalizeAggregation(visitors)",
            hex(id)
        );
        n += db.count(&sql).await;
    }
    n
}

fn signer(db: &TestDb) -> Signer {
    Signer::new(&keys::load_secret(db.data_dir.path(), None, false).unwrap())
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// One customer on two browsers, an unrelated visitor, and two email opens.
struct People {
    laptop: String,
    phone: String,
    stranger: String,
}

async fn record_people(db: &TestDb) -> People {
    let collector = db.start(&["--trusted-proxies", "127.0.0.0/8"]).await;
    let addr = collector.local_addr();
    let signer = signer(db);
    let link = customer::sign("cust-1", "s", common::now_secs(), &signer).unwrap();
    let page = |path: &str, extra: &str| {
        format!(
            "/p.gif?site=s&url={}{extra}",
            enc(&format!("https://shop.example.com{path}"))
        )
    };

    let laptop = get(addr, &page("/", ""), &[("x-forwarded-for", "203.0.113.5")])
        .await
        .visitor_cookie()
        .unwrap();
    let cookie = format!("ff_id={laptop}");
    let linked = format!("&{link}");
    get(
        addr,
        &page("/account", &linked),
        &[("cookie", &cookie), ("x-forwarded-for", "203.0.113.5")],
    )
    .await;
    let phone = get(
        addr,
        &page("/account", &linked),
        &[("x-forwarded-for", "2001:db8::6")],
    )
    .await
    .visitor_cookie()
    .unwrap();
    let stranger = get(addr, &page("/", ""), &[("x-forwarded-for", "192.0.2.1")])
        .await
        .visitor_cookie()
        .unwrap();
    let to_customer = email::marker_path(&email::token("autumn", "cust-1", &signer).unwrap());
    get(addr, &to_customer, &[("x-forwarded-for", "198.51.100.44")]).await;
    let to_other = email::marker_path(&email::token("autumn", "cust-2", &signer).unwrap());
    get(addr, &to_other, &[("x-forwarded-for", "198.51.100.45")]).await;
    let report = collector.shutdown().await;
    assert_eq!(report.rows_written, 6);
    People {
        laptop,
        phone,
        stranger,
    }
}

#[tokio::test]
async fn a_customer_export_holds_every_record_with_ips_unsealed_and_erasure_leaves_nothing() {
    let db = TestDb::new();
    // The audit, which records every subject request, is the aggregator's.
    ok(aggregator(&db, &["migrate"]));
    let p = record_people(&db).await;

    let all = export(&db, "--customer", "cust-1");
    assert_eq!(all["subject"]["customer_id"], "cust-1");
    let mut both = vec![p.laptop.clone(), p.phone.clone()];
    both.sort();
    assert_eq!(all["visitor_ids"].as_array().unwrap().len(), 2);
    assert_eq!(strings(&all["identities"], "visitor_id"), both);
    let events = &all["events"];
    assert_eq!(
        events.as_array().unwrap().len(),
        3,
        "both browsers, before and after login: {events}"
    );
    let ips = strings(events, "ip");
    assert_eq!(ips, ["2001:db8::6", "203.0.113.5", "203.0.113.5"]);
    for e in events.as_array().unwrap() {
        assert!(
            e.get("ip_sealed").is_none() && e.get("ip_key_id").is_none(),
            "only the clear IP: {e}"
        );
        assert!(
            e["ts"].as_str().unwrap().ends_with('Z'),
            "ISO 8601 UTC times: {e}"
        );
        assert!(
            e["ip_prefix"].as_str().is_some_and(|p| !p.is_empty()),
            "{e}"
        );
    }
    let opens = all["email_opens"].as_array().unwrap();
    assert_eq!(opens.len(), 1);
    assert_eq!(
        (opens[0]["recipient"].as_str(), opens[0]["ip"].as_str()),
        (Some("cust-1"), Some("198.51.100.44"))
    );

    let laptop = export(&db, "--visitor", &p.laptop);
    assert_eq!(laptop["events"].as_array().unwrap().len(), 2);
    assert_eq!(strings(&laptop["identities"], "customer_id"), ["cust-1"]);
    assert!(laptop["email_opens"].as_array().unwrap().is_empty());

    let ids = [p.laptop.as_str(), p.phone.as_str(), "cust-1"];
    // The unique-visitor states of the rollups hold the person's visitors before...
    assert!(rollup_members(&db, &ids).await > 0);
    let said = ok(aggregator(
        &db,
        &["subject", "erase", "--customer", "cust-1"],
    ));
    assert!(said.contains("erased 4 events"), "{said}");
    assert!(said.contains("recomputed the rollups of 1 days"), "{said}");
    // ...and not after, without a manual backfill.
    assert_eq!(rollup_members(&db, &ids).await, 0);
    // No statement ClickHouse kept the text of names them: the ids went in an INSERT's body.
    assert!(
        db.count("SELECT count() FROM system.mutations WHERE database = currentDatabase() AND table = 'events'")
            .await
            > 0
    );
    db.client()
        .query("SYSTEM FLUSH LOGS")
        .execute()
        .await
        .unwrap();
    assert!(
        db.count("SELECT count() FROM system.query_log WHERE current_database = currentDatabase()")
            .await
            > 0,
        "the query log is on (scripts/clickhouse turns it on)"
    );
    for id in ids {
        let id = hex(id);
        let mutations = format!(
            "SELECT count() FROM system.mutations WHERE position(command, unhex('{id}')) > 0"
        );
        assert_eq!(db.count(&mutations).await, 0, "an id in system.mutations");
        let queries = format!(
            "SELECT count() FROM system.query_log WHERE current_database = currentDatabase()
             AND position(query, unhex('{id}')) > 0"
        );
        assert_eq!(db.count(&queries).await, 0, "an id in system.query_log");
    }
    let after = export(&db, "--customer", "cust-1");
    for part in ["visitor_ids", "identities", "events", "email_opens"] {
        assert!(
            after[part].as_array().unwrap().is_empty(),
            "{part} after erasure: {after}"
        );
    }
    assert!(
        export(&db, "--visitor", &p.phone)["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for table in ["events", "identities"] {
        for needle in ["cust-1", p.laptop.as_str(), p.phone.as_str()] {
            let sql = format!(
                "SELECT countIf(position(toString(tuple(*)), '{needle}') > 0) FROM {table}"
            );
            assert_eq!(db.count(&sql).await, 0, "{needle} left in {table}");
        }
    }
    let kept = db
        .rows("SELECT visitor_id, recipient FROM events ORDER BY visitor_id")
        .await;
    assert_eq!(kept.len(), 2, "other people's records stay: {kept:?}");
    assert_eq!(kept[0]["recipient"], "cust-2");
    assert_eq!(kept[1]["visitor_id"], p.stranger.as_str());

    // Every subject request is audited with the OS user who ran it, and never names the subject.
    let audit = ok(aggregator(&db, &["audit"]));
    assert_eq!(
        audit.matches("\tsubject_export\t200\t").count(),
        4,
        "{audit}"
    );
    assert_eq!(
        audit.matches("\tsubject_erase\t200\t").count(),
        1,
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .all(|l| l.split('\t').nth(1).unwrap().starts_with("cli:"))
    );
    assert!(audit.contains("\tsubject_erase\t200\t-\t-\t(all sites)\tK=0\tε=-\tbudget left=-\t6 rows\t2 visitor ids"), "{audit}");
    for needle in ["cust-1", p.laptop.as_str(), p.phone.as_str()] {
        assert!(!audit.contains(needle));
    }
}

#[tokio::test]
async fn erasing_a_visitor_removes_only_that_browser() {
    let db = TestDb::new();
    // The audit, which records every subject request, is the aggregator's.
    ok(aggregator(&db, &["migrate"]));
    let p = record_people(&db).await;
    let said = ok(aggregator(
        &db,
        &["subject", "erase", "--visitor", &p.phone],
    ));
    assert!(
        said.contains("erased 1 events and 1 identity rows"),
        "{said}"
    );
    assert!(
        export(&db, "--visitor", &p.phone)["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let customer = export(&db, "--customer", "cust-1");
    assert_eq!(
        strings(&customer["identities"], "visitor_id"),
        [p.laptop.as_str()]
    );
    assert_eq!(customer["events"].as_array().unwrap().len(), 2);
    assert_eq!(db.count("SELECT count() FROM events").await, 5);
}

#[tokio::test]
async fn on_a_shared_computer_one_customer_never_gets_or_erases_anothers_records() {
    let db = TestDb::new();
    // The audit, which records every subject request, is the aggregator's.
    ok(aggregator(&db, &["migrate"]));
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let signer = signer(&db);
    let url = enc("https://shop.example.com/account");
    let as_customer = |id: &str| {
        format!(
            "/p.gif?site=s&url={url}&{}",
            customer::sign(id, "s", common::now_secs(), &signer).unwrap()
        )
    };
    let shared = get(addr, &as_customer("alice"), &[])
        .await
        .visitor_cookie()
        .unwrap();
    let cookie = format!("ff_id={shared}");
    get(addr, &as_customer("bob"), &[("cookie", &cookie)]).await;
    get(
        addr,
        &format!("/p.gif?site=s&url={url}"),
        &[("cookie", &cookie)],
    )
    .await;
    collector.shutdown().await;

    let alice = export(&db, "--customer", "alice");
    assert_eq!(
        alice["events"].as_array().unwrap().len(),
        2,
        "her own and the browser's unlinked one: {alice}"
    );
    assert_eq!(strings(&alice["events"], "customer_id"), ["", "alice"]);
    assert_eq!(strings(&alice["identities"], "customer_id"), ["alice"]);
    assert_eq!(
        export(&db, "--visitor", &shared)["events"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the browser's records"
    );

    ok(aggregator(
        &db,
        &["subject", "erase", "--customer", "alice"],
    ));
    let bob = export(&db, "--customer", "bob");
    assert_eq!(
        strings(&bob["events"], "customer_id"),
        ["bob"],
        "bob's records stay: {bob}"
    );
    assert_eq!(strings(&bob["identities"], "visitor_id"), [shared.as_str()]);
}

#[tokio::test]
async fn subject_commands_say_what_is_wrong() {
    let db = TestDb::new();
    // The audit, which records every subject request, is the aggregator's.
    ok(aggregator(&db, &["migrate"]));
    let bad = aggregator(
        &db,
        &["subject", "erase", "--visitor", "'; DROP TABLE events; --"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ff_id cookie"));
    // No collector has run: no key in the data dir. Export needs it; erasure does not.
    let server = db.client().with_database("default");
    footfall_collector::schema::migrate(&server, &db.name, 395)
        .await
        .unwrap();
    let no_key = aggregator(&db, &["subject", "export", "--customer", "c"]);
    assert!(!no_key.status.success());
    let err = String::from_utf8_lossy(&no_key.stderr);
    assert!(
        err.contains("--ip-private-key") && err.contains("keygen"),
        "{err}"
    );
    let said = ok(aggregator(&db, &["subject", "erase", "--customer", "c"]));
    assert!(said.contains("erased 0 events"), "{said}");
}

#[tokio::test]
async fn keygen_writes_a_pair_the_collector_can_use_and_never_overwrites_it() {
    let db = TestDb::new();
    // The audit, which records every subject request, is the aggregator's.
    ok(aggregator(&db, &["migrate"]));
    let said = ok(aggregator(&db, &["keygen"]));
    let public = said.lines().last().unwrap();
    let written = std::fs::read_to_string(db.data_dir.path().join(keys::IP_PUBLIC_FILE)).unwrap();
    assert_eq!(written.trim(), public);
    assert!(keys::load_ip_private_key(db.data_dir.path(), None).is_ok());
    let again = aggregator(&db, &["keygen"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[tokio::test]
async fn retention_deletes_what_is_older_than_the_period_at_once() {
    let db = TestDb::new();
    // The audit, which records every subject request, is the aggregator's.
    ok(aggregator(&db, &["migrate"]));
    let collector = db.start(&[]).await;
    get(
        collector.local_addr(),
        &format!("/p.gif?site=s&url={}", enc("https://example.com/")),
        &[],
    )
    .await;
    collector.shutdown().await;
    // Keep TTL merges from racing the command: what goes must go because of `retention`.
    for table in ["events", "identities", "ip_keys"] {
        db.client()
            .query(&format!("SYSTEM STOP TTL MERGES {table}"))
            .execute()
            .await
            .unwrap();
    }
    let insert = "INSERT INTO events (event_id, ts, site, kind, visitor_id, customer_id, ip_key_id, ip_sealed)
                  VALUES (generateUUIDv4(), now() - INTERVAL 400 DAY, 's', 'pageview', 'old-visitor', 'old-customer', 7, 'x')";
    db.client().query(insert).execute().await.unwrap();
    db.client()
        .query(
            "INSERT INTO ip_keys (key_id, created, sealed_key) VALUES
             (7, now() - INTERVAL 397 DAY, 'old'), (8, now() - INTERVAL 395 DAY - INTERVAL 12 HOUR, 'kept a day longer')",
        )
        .execute()
        .await
        .unwrap();
    assert_eq!(db.count("SELECT count() FROM events").await, 2);
    assert_eq!(
        db.count("SELECT count() FROM identities WHERE customer_id = 'old-customer'")
            .await,
        1
    );

    let said = ok(aggregator(&db, &["retention", "--retention-days", "395"]));
    assert!(
        said.contains("events: deleted 1 rows older than 395 days"),
        "{said}"
    );
    assert!(
        said.contains("ip_keys: deleted 1 rows older than 396 days"),
        "{said}"
    );
    assert_eq!(
        db.count("SELECT count() FROM events WHERE visitor_id = 'old-visitor'")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count() FROM events").await,
        1,
        "the recent hit stays"
    );
    assert_eq!(db.count("SELECT count() FROM identities").await, 0);
    assert_eq!(
        db.count("SELECT count() FROM ip_keys WHERE key_id = 7")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count() FROM ip_keys WHERE key_id = 8")
            .await,
        1,
        "keys outlive their events by a day"
    );
    assert_eq!(
        db.count("SELECT count() FROM ip_keys").await,
        2,
        "the recent hit's key and key 8"
    );
}
