//! The routes in process, without ClickHouse: what is answered before anything is stored
//! (unknown paths and methods, the tracker's cache validation, CORS, the visitor cookie) needs
//! only an [`App`] and a queue to look into.

use std::sync::Arc;

use bytes::Bytes;
use clap::Parser as _;
use footfall_seal::SecretKey;
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, ETAG, IF_NONE_MATCH, ORIGIN, SET_COOKIE};
use http_body_util::Empty;

use super::*;
use crate::config::{Cli, Command};

fn app(extra: &[&str]) -> (App, Queue) {
    let secret = "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj";
    let mut argv = vec!["footfall-collector", "serve", "--secret", secret];
    argv.extend_from_slice(extra);
    let Some(Command::Serve(args)) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let queue = Queue::bounded(16, 1 << 20);
    let wiring = Wiring {
        queue: queue.clone(),
        status: Arc::new(SinkStatus::default()),
        sealer: Arc::new(Sealer::new(
            SecretKey::generate().public_key(),
            60_000,
            now_ms(),
        )),
        metrics: Arc::new(Metrics::new()),
        geoip: None,
        rate_limit: None,
        new_visitors: None,
    };
    (App::new(&args, secret.as_bytes(), wiring), queue)
}

fn request(
    method: Method,
    target: &str,
    headers: &[(http::HeaderName, &str)],
) -> Request<Empty<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "collector.test");
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    req.body(Empty::new()).unwrap()
}

fn visitor_of(row: &Row) -> &str {
    let owner = footfall_store::row_binary::owner(row.bytes()).expect("a whole row");
    std::str::from_utf8(owner.visitor_id).expect("an id is text")
}

fn peer() -> SocketAddr {
    "192.0.2.10:5000".parse().unwrap()
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused_with_what_is_allowed() {
    let (app, queue) = app(&[]);
    let missing = app.serve(request(Method::GET, "/nope", &[]), peer()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let post_pixel = app
        .serve(request(Method::POST, "/p.gif", &[]), peer())
        .await;
    assert_eq!(post_pixel.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post_pixel.headers()[ALLOW], "GET, HEAD");
    let get_beacon = app.serve(request(Method::GET, "/e", &[]), peer()).await;
    assert_eq!(get_beacon.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get_beacon.headers()[ALLOW], "POST, OPTIONS");
    let put_marker = app
        .serve(request(Method::PUT, "/o/x.gif", &[]), peer())
        .await;
    assert_eq!(put_marker.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(queue.pop().is_none(), "nothing recorded");
}

#[tokio::test]
async fn the_tracker_is_revalidated_by_its_etag() {
    let (app, _) = app(&[]);
    let fresh = app.serve(request(Method::GET, "/t.js", &[]), peer()).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let tag = fresh.headers()[ETAG].to_str().unwrap().to_owned();
    let again = app
        .serve(
            request(Method::GET, "/t.js", &[(IF_NONE_MATCH, &tag)]),
            peer(),
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let stale = app
        .serve(
            request(Method::GET, "/t.js", &[(IF_NONE_MATCH, "\"old\"")]),
            peer(),
        )
        .await;
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn beacon_preflights_are_allowed_only_for_listed_origins() {
    let (app, _) = app(&["--allowed-origins", "https://shop.example"]);
    let listed = app
        .serve(
            request(Method::OPTIONS, "/e", &[(ORIGIN, "https://shop.example")]),
            peer(),
        )
        .await;
    assert_eq!(listed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        listed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    let other = app
        .serve(
            request(Method::OPTIONS, "/e", &[(ORIGIN, "https://evil.example")]),
            peer(),
        )
        .await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(!other.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn a_pixel_hit_mints_a_secure_visitor_cookie_and_queues_one_event() {
    let (app, queue) = app(&[]);
    let target = "/p.gif?site=s&url=https%3A%2F%2Fshop.example%2Fa";
    let answer = app.serve(request(Method::GET, target, &[]), peer()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let cookie = answer.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let id = cookie
        .strip_prefix("ff_id=")
        .and_then(|c| c.split(';').next())
        .unwrap();
    assert!(footfall_store::id::Id::parse(id).is_some(), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "Path=/", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let row = queue.pop().expect("the hit is queued");
    assert_eq!(visitor_of(&row), id);
    assert!(queue.pop().is_none());
    let returning = app
        .serve(
            request(
                Method::GET,
                target,
                &[(http::header::COOKIE, &format!("ff_id={id}"))],
            ),
            peer(),
        )
        .await;
    assert_eq!(returning.status(), StatusCode::OK);
    assert_eq!(
        visitor_of(&queue.pop().expect("queued")),
        id,
        "the same visitor"
    );
}
