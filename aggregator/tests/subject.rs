//! The data subject's rights and retention, end to end: events stored as the collector stores
//! them (IPs sealed under an epoch key of the data dir's key pair, the key in `ip_keys`), and
//! the `footfall-aggregator` binary exports, erases and expires them in the real ClickHouse.

mod run;

use std::net::IpAddr;

use footfall_seal::EpochKey;
use footfall_seal::key_file::{self, PUBLIC_FILE};
use footfall_store::event::{Event, Kind, SealedIp};
use footfall_store::id::Id;
use footfall_store::ip_key::KeyRow;
use footfall_store::testing::TestDb;
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

/// Rollup rows whose unique-visitor or unique-recipient state holds one of `ids`, hashed as
/// the table's states are under any key left in `rollup_keys`: the membership test an insider
/// would run.
async fn rollup_members(db: &TestDb, ids: &[&str]) -> u64 {
    let hash = footfall_store::rollup::member_hash(&db.server(), &db.name, "traffic_keyed_daily")
        .await
        .unwrap();
    let mut n = 0;
    for id in ids {
        let sql = format!(
            "SELECT count() FROM traffic_keyed_daily WHERE arrayReduce('uniqExactMerge',
                 [visitors, (SELECT uniqExactState({hash}((k0, k1), unhex('{id}')))
                             FROM rollup_keys)])
                 < finalizeAggregation(visitors) + (SELECT count() FROM rollup_keys)",
            id = hex(id)
        );
        n += db.count(&sql).await;
    }
    n
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

/// Stores events the way a collector does, for `db` (schema applied, a key pair in its data
/// dir, one epoch key stored).
struct Recorder {
    epoch: EpochKey,
    events: Vec<Event>,
    now_ms: i64,
}

impl Recorder {
    async fn new(db: &TestDb) -> Self {
        db.migrate().await;
        let public = key_file::write_key_pair(db.data_dir.path())
            .unwrap()
            .public_key();
        let epoch = EpochKey::generate(&public);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut keys = db.client().insert::<KeyRow>("ip_keys").await.unwrap();
        keys.write(&KeyRow {
            key_id: epoch.id(),
            created: (now_ms / 1000) as u32,
            sealed_key: epoch.sealed_key().to_vec(),
        })
        .await
        .unwrap();
        keys.end().await.unwrap();
        Self {
            epoch,
            events: Vec::new(),
            now_ms,
        }
    }

    fn event(&mut self, kind: Kind, ip: &str) -> &mut Event {
        let ip: IpAddr = ip.parse().unwrap();
        // A millisecond apart, in the order recorded.
        let mut e = Event::new(kind, self.now_ms + self.events.len() as i64);
        e.ip_key_id = self.epoch.id();
        e.ip_sealed = SealedIp(Some(self.epoch.seal_ip(ip)));
        // What the network is does not matter here, only that it is kept beside the sealed IP.
        e.ip_prefix = "192.0.2.0/24".into();
        self.events.push(e);
        self.events.last_mut().unwrap()
    }

    /// A page view on site `s` by `visitor` (a new id when `None`), linked to `customer` if
    /// not empty; returns the visitor id.
    fn page(&mut self, visitor: Option<&str>, customer: &str, path: &str, ip: &str) -> String {
        let visitor = visitor.map_or_else(|| Id::random().to_string(), str::to_owned);
        let e = self.event(Kind::Pageview, ip);
        e.site = "s".into();
        e.visitor_id = visitor.as_str().into();
        e.customer_id = customer.into();
        e.host = "shop.example.com".into();
        e.path = path.into();
        e.url = format!("https://shop.example.com{path}").into();
        // As the collector records a request without a user agent: a bot, left out of the
        // traffic rollups (email opens are in them).
        e.is_bot = true;
        visitor
    }

    /// The tracker's `footfall('signout')` in `visitor`'s browser.
    fn signout(&mut self, visitor: &str, ip: &str) {
        let e = self.event(Kind::Signout, ip);
        e.site = "s".into();
        e.visitor_id = visitor.into();
        e.path = "/logout".into();
    }

    /// Marks every event so far as a person's, not a bot's: the traffic rollups count them.
    fn human(&mut self) {
        for e in &mut self.events {
            e.is_bot = false;
        }
    }

    fn email_open(&mut self, campaign: &str, recipient: &str, ip: &str) {
        let e = self.event(Kind::EmailOpen, ip);
        e.campaign = campaign.into();
        e.recipient = recipient.into();
    }

    async fn store(self, db: &TestDb) {
        let mut insert = db.client().insert::<Event>("events").await.unwrap();
        for e in &self.events {
            insert.write(e).await.unwrap();
        }
        insert.end().await.unwrap();
    }
}

/// One customer on two browsers (on the laptop, a page before signing in and one after), an
/// unrelated visitor, and two email opens.
struct People {
    laptop: String,
    phone: String,
    stranger: String,
}

async fn record_people(db: &TestDb) -> People {
    let mut r = Recorder::new(db).await;
    let laptop = r.page(None, "", "/", "203.0.113.5");
    r.page(Some(&laptop), "cust-1", "/account", "203.0.113.5");
    r.page(Some(&laptop), "", "/cart", "203.0.113.5");
    let phone = r.page(None, "cust-1", "/account", "2001:db8::6");
    let stranger = r.page(None, "", "/", "192.0.2.1");
    r.email_open("autumn", "cust-1", "198.51.100.44");
    r.email_open("autumn", "cust-2", "198.51.100.45");
    r.store(db).await;
    People {
        laptop,
        phone,
        stranger,
    }
}

#[tokio::test]
async fn a_customer_export_holds_every_record_with_ips_unsealed_and_erasure_leaves_nothing() {
    let db = TestDb::new();
    let p = record_people(&db).await;

    let all = export(&db, "--customer", "cust-1");
    assert_eq!(all["subject"]["customer_id"], "cust-1");
    let mut both = vec![p.laptop.clone(), p.phone.clone()];
    both.sort();
    assert_eq!(all["visitor_ids"].as_array().unwrap().len(), 2);
    assert_eq!(strings(&all["identities"], "visitor_id"), both);
    let events = &all["events"];
    assert_eq!(
        strings(events, "path"),
        ["/account", "/account", "/cart"],
        "both browsers from the link on; not the laptop's page before it: {events}"
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
    assert_eq!(laptop["events"].as_array().unwrap().len(), 3);
    assert_eq!(strings(&laptop["identities"], "customer_id"), ["cust-1"]);
    assert!(laptop["email_opens"].as_array().unwrap().is_empty());

    // The laptop keeps its page from before the link: its id stays in events and rollups.
    let ids = [p.phone.as_str(), "cust-1"];
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
    assert_eq!(
        strings(&export(&db, "--visitor", &p.laptop)["events"], "path"),
        ["/"]
    );
    for table in ["events", "identities"] {
        for needle in ["cust-1", p.phone.as_str()] {
            let sql = format!(
                "SELECT countIf(position(toString(tuple(*)), '{needle}') > 0) FROM {table}"
            );
            assert_eq!(db.count(&sql).await, 0, "{needle} left in {table}");
        }
    }
    let kept = db
        .rows("SELECT visitor_id, recipient FROM events ORDER BY ts")
        .await;
    assert_eq!(kept.len(), 3, "other people's records stay: {kept:?}");
    assert_eq!(kept[0]["visitor_id"], p.laptop.as_str());
    assert_eq!(kept[1]["visitor_id"], p.stranger.as_str());
    assert_eq!(kept[2]["recipient"], "cust-2");

    // Every subject request is audited with the OS user who ran it, and never names the subject.
    let audit = ok(aggregator(&db, &["audit"]));
    assert_eq!(
        audit.matches("\tsubject_export\t200\t").count(),
        5,
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
    assert_eq!(db.count("SELECT count() FROM events").await, 6);
}

/// One browser, two customers, in turn: each one's export holds their own linked events and the
/// unlinked ones from their link until the other's link or a sign-out; the browser's pages
/// before any link and after a sign-out are nobody's. Erasing one leaves the other's records,
/// and passes its own check although the browser's id stays in the rollups (the other's).
#[tokio::test]
async fn on_a_shared_computer_one_customer_never_gets_or_erases_anothers_records() {
    let db = TestDb::new();
    let mut r = Recorder::new(&db).await;
    let ip = "203.0.113.5";
    let shared = r.page(None, "", "/before-anyone", ip);
    r.page(Some(&shared), "alice", "/alice/account", ip);
    r.page(Some(&shared), "", "/alice/cart", ip);
    r.signout(&shared, ip);
    r.page(Some(&shared), "", "/after-alice-left", ip);
    r.page(Some(&shared), "bob", "/bob/account", ip);
    r.page(Some(&shared), "", "/bob/cart", ip);
    r.page(Some(&shared), "alice", "/alice/again", ip);
    r.page(Some(&shared), "", "/alice/checkout", ip);
    r.human();
    r.store(&db).await;

    let paths = |who: &str, id: &str| strings(&export(&db, who, id)["events"], "path");
    let alice = [
        "/alice/account",
        "/alice/again",
        "/alice/cart",
        "/alice/checkout",
    ];
    let bob = ["/bob/account", "/bob/cart"];
    assert_eq!(paths("--customer", "alice"), alice);
    assert_eq!(paths("--customer", "bob"), bob);
    let browser = paths("--visitor", &shared);
    assert_eq!(browser.len(), 9, "the browser's records: {browser:?}");
    for nobodys in ["/before-anyone", "/after-alice-left", "/logout"] {
        assert!(browser.iter().any(|p| p == nobodys));
    }

    let said = ok(aggregator(
        &db,
        &["subject", "erase", "--customer", "alice"],
    ));
    assert!(said.contains("erased 4 events"), "{said}");
    assert!(paths("--customer", "alice").is_empty());
    assert_eq!(paths("--customer", "bob"), bob, "bob's records stay");
    let bob_export = export(&db, "--customer", "bob");
    assert_eq!(
        strings(&bob_export["identities"], "visitor_id"),
        [shared.as_str()]
    );
    assert_eq!(
        paths("--visitor", &shared),
        [
            "/after-alice-left",
            "/before-anyone",
            "/bob/account",
            "/bob/cart",
            "/logout"
        ]
    );
    // The rollups were computed again without alice's pages, and still count the browser.
    assert_eq!(
        db.count("SELECT toUInt64(sum(hits)) FROM traffic_keyed_daily WHERE dimension = 'page' AND k1 LIKE '/alice/%'")
            .await,
        0
    );
    assert!(rollup_members(&db, &[shared.as_str()]).await > 0);
}

#[tokio::test]
async fn subject_commands_say_what_is_wrong() {
    let db = TestDb::new();
    // The audit, which records every subject request, must exist.
    db.migrate().await;
    let bad = aggregator(
        &db,
        &["subject", "erase", "--visitor", "'; DROP TABLE events; --"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ff_id cookie"));
    // No collector has run: no key in the data dir. Export needs it; erasure does not.
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

/// A private key of another pair opens none of the stored IPs: the export fails and says with
/// which key, instead of printing every IP as `null`. Keys gone with the retention period are
/// not the key's fault.
#[tokio::test]
async fn a_wrong_private_key_fails_the_export_and_says_so() {
    let db = TestDb::new();
    record_people(&db).await;
    let other = tempfile::tempdir().unwrap();
    let other_public = key_file::write_key_pair(other.path()).unwrap().public_key();
    let wrong = other.path().join(key_file::PRIVATE_FILE);
    let wrong = wrong.to_str().unwrap();

    let refused = aggregator(
        &db,
        &[
            "subject",
            "export",
            "--customer",
            "cust-1",
            "--ip-private-key",
            wrong,
        ],
    );
    assert!(
        !refused.status.success(),
        "a wrong key must fail the export"
    );
    assert!(refused.stdout.is_empty(), "no partial export is printed");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("does not open the stored IPs"), "{err}");
    assert!(err.contains(wrong), "names the key file: {err}");
    assert!(
        err.contains(&other_public.to_text()),
        "shows its public key: {err}"
    );
    assert!(
        err.contains("FOOTFALL_IP_PUBLIC_KEY"),
        "says what to do: {err}"
    );
    let audit = ok(aggregator(&db, &["audit"]));
    assert!(!audit.contains("\tsubject_export\t200\t"), "{audit}");

    // The right key (the data dir's) opens every IP.
    let right = export(&db, "--customer", "cust-1");
    let events = right["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["ip"].is_string()), "{right}");

    // Nobody stored (no events): nothing to open, any key will do.
    let nobody = ok(aggregator(
        &db,
        &[
            "subject",
            "export",
            "--customer",
            "nobody",
            "--ip-private-key",
            wrong,
        ],
    ));
    assert!(nobody.contains("\"events\": []"), "{nobody}");

    // Once the epoch keys are gone (retention, which keeps them a day past their events), the
    // IPs are null and a wrong key is no longer told apart: nothing is left to open.
    db.client()
        .query("ALTER TABLE ip_keys DELETE WHERE 1 SETTINGS mutations_sync = 2")
        .execute()
        .await
        .unwrap();
    let expired: Value = serde_json::from_str(&ok(aggregator(
        &db,
        &[
            "subject",
            "export",
            "--customer",
            "cust-1",
            "--ip-private-key",
            wrong,
        ],
    )))
    .unwrap();
    let events = expired["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["ip"].is_null()), "{expired}");
}

#[tokio::test]
async fn keygen_writes_a_pair_the_collector_can_use_and_never_overwrites_it() {
    let db = TestDb::new();
    let said = ok(aggregator(&db, &["keygen"]));
    let public = said.lines().last().unwrap();
    let written = std::fs::read_to_string(db.data_dir.path().join(PUBLIC_FILE)).unwrap();
    assert_eq!(written.trim(), public);
    assert!(key_file::load_private_key(db.data_dir.path(), None).is_ok());
    let again = aggregator(&db, &["keygen"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[tokio::test]
async fn retention_deletes_what_is_older_than_the_period_at_once() {
    let db = TestDb::new();
    let mut r = Recorder::new(&db).await;
    r.page(None, "", "/", "203.0.113.5");
    r.store(&db).await;
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
