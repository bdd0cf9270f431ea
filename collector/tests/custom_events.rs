//! Custom events end to end: the beacon's `custom` kind and the pixel's `event=`, with hostile
//! names and properties, against the real ClickHouse.

mod common;

use common::{Serve, TestDb, enc, get, metric, post};
use serde_json::{Value, json};

const PV: &str = "PageView0000000000000001";
const PAGE: &str = "https://shop.example.com/pricing?coupon=SECRET";

fn custom(name: &str, props: Value) -> Value {
    json!({
        "kind": "custom", "site": "shop.example.com", "url": PAGE, "pageview_id": PV,
        "event": name, "props": props,
    })
}

async fn beacon(addr: std::net::SocketAddr, body: &Value) -> common::Answer {
    post(
        addr,
        "/e",
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn hostile_properties_are_bounded_cut_and_counted_never_stored_raw() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();

    let mut many = serde_json::Map::new();
    for i in 0..40 {
        many.insert(format!("k{i:02}"), json!(format!("v{i}")));
    }
    let hostile = json!({
        "huge": "x".repeat(20_000),
        "binary": "a\u{0}\u{1}\u{7f}\u{1b}[2Jb",
        "email": "Jane.Doe+news@Example.COM",
        "cmd": "=cmd|' /C calc'!A0",
        "link": "https://partner.example/deal?user=jane@example.com#top",
        "k".repeat(65): "too long a key",
        "seats": 3,
        "trial": false,
    });
    let answer = beacon(
        addr,
        &json!([
            custom("Many", Value::Object(many)),
            custom("Hostile", hostile)
        ]),
    )
    .await;
    assert_eq!(answer.status, 204, "{:?}", answer.body);
    let cut = metric(
        &collector,
        r#"footfall_fields_truncated_total{field="props"}"#,
    )
    .await;
    assert_eq!(
        cut,
        10 + 1 + 1,
        "10 props past 30, one long key, one huge value"
    );
    collector.shutdown().await;

    let rows = db
        .rows("SELECT event_name, props, path FROM events WHERE kind = 'custom' ORDER BY event_name DESC")
        .await;
    assert_eq!(rows.len(), 2);
    let many = rows[0]["props"].as_object().unwrap();
    assert_eq!(rows[0]["event_name"], "Many");
    assert_eq!(many.len(), 30);
    assert_eq!(many["k29"], "v29", "the first 30, in the order sent");
    assert!(!many.contains_key("k30"));
    assert_eq!(rows[0]["path"], "/pricing");

    let props = rows[1]["props"].as_object().unwrap();
    assert_eq!(rows[1]["event_name"], "Hostile");
    assert_eq!(props["huge"].as_str().unwrap().len(), 256);
    assert_eq!(props["binary"], "a[2Jb");
    assert_eq!(props["email"], "(email)");
    assert_eq!(
        props["cmd"], "=cmd|' /C calc'!A0",
        "reports defuse formulas, see the aggregator"
    );
    assert_eq!(props["link"], "partner.example/deal", "host and path only");
    assert_eq!(props["seats"], "3");
    assert_eq!(props["trial"], "false");
    assert_eq!(props.len(), 7, "the long key is left out");
}

#[tokio::test]
async fn bad_event_names_are_refused_with_a_reason_and_the_batch_is_not_stored() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    for (name, expected) in [
        ("", "`event` must be 1 to 120 bytes"),
        ("a\nb", "`event` must be 1 to 120 bytes"),
        (&"x".repeat(121), "`event` must be 1 to 120 bytes"),
    ] {
        let answer = beacon(
            addr,
            &json!([custom("Fine", json!({})), custom(name, json!({}))]),
        )
        .await;
        assert_eq!(answer.status, 400);
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(body["error"].as_str().unwrap().contains(expected), "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("event 1:"),
            "{body}"
        );
    }
    let answer = beacon(addr, &custom("Fine", json!({"nested": {"a": 1}}))).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="bad_event"}"#
        )
        .await,
        3
    );
    collector.shutdown().await;
    assert_eq!(db.count("SELECT count() FROM events").await, 0);
}

#[tokio::test]
async fn the_pixel_records_a_custom_event_with_event_and_p_parameters() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let page = enc("https://news.example.com/issue/42");
    let hit = format!(
        "/p.gif?site=news.example.com&url={page}&event=Newsletter+Open&p.issue=42&p.reader={}&p.=x",
        enc("sam@example.org")
    );
    let answer = get(addr, &hit, &[]).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.visitor_cookie().is_some(),
        "a stored hit sets the cookie"
    );
    // A bad name: still the GIF, nothing stored, counted.
    let bad = get(
        addr,
        &format!("/p.gif?site=news.example.com&url={page}&event=%0A"),
        &[],
    )
    .await;
    assert_eq!(bad.headers["content-type"], "image/gif");
    assert!(bad.visitor_cookie().is_none());
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_rejected_total{reason="bad_event"}"#
        )
        .await,
        1
    );
    collector.shutdown().await;

    let rows = db
        .rows("SELECT kind, event_name, props, path, pageview_id != '' AS has_view FROM events")
        .await;
    assert_eq!(
        rows,
        [json!({
            "kind": "custom", "event_name": "Newsletter Open",
            "props": {"issue": "42", "reader": "(email)"}, "path": "/issue/42", "has_view": 1,
        })]
    );
}

/// `event=signout` on the pixel is the sign-out signal of a page without JavaScript: a
/// `signout` row of the visitor's browser, never a custom event (its properties are not read).
#[tokio::test]
async fn the_pixel_takes_event_signout_as_the_sign_out_signal() {
    let db = TestDb::new();
    let collector = db.start(&[]).await;
    let addr = collector.local_addr();
    let page = enc("https://shop.example.com/logged-out");
    let cookie = format!("ff_id={}", footfall_store::id::Id::random());
    let hit = format!("/p.gif?site=shop&url={page}&event=signout&p.who=me");
    let answer = get(addr, &hit, &[("cookie", &cookie)]).await;
    assert_eq!(answer.headers["content-type"], "image/gif");
    assert!(answer.visitor_cookie().is_some());
    assert_eq!(
        metric(
            &collector,
            r#"footfall_hits_accepted_total{kind="signout"}"#
        )
        .await,
        1
    );
    collector.shutdown().await;
    let rows = db
        .rows("SELECT kind, event_name, length(props) AS props, path, visitor_id FROM events")
        .await;
    assert_eq!(
        rows,
        [json!({
            "kind": "signout", "event_name": "", "props": 0, "path": "/logged-out",
            "visitor_id": &cookie["ff_id=".len()..],
        })]
    );
}
