//! Keep-alive connections whose HTTP state is released while they sit idle: clients see one
//! ordinary keep-alive connection (no `Connection: close`, pipelining works, answers in order),
//! every hit answered is stored once, and the header timeout still closes what it closed.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Serve, TestDb, eventually, metric};
use footfall_collector::server::Collector;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A keep-alive client on one raw socket, reading answers as they come.
struct Client(BufReader<TcpStream>);

/// One answer: its status, head (lower-cased) and body.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self(BufReader::new(TcpStream::connect(addr).await.unwrap()))
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.0.get_mut().write_all(bytes).await.unwrap();
    }

    async fn answer(&mut self) -> Answer {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self.0.read_line(&mut line).await.unwrap();
            assert!(n > 0, "the connection closed after {head:?}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |n| n.trim().parse().unwrap());
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await.unwrap();
        Answer { status, head, body }
    }

    /// Waits (bounded) for the collector to close the connection.
    async fn closed_by_the_collector(&mut self) -> bool {
        self.read_until_closed().await.is_some()
    }

    /// What the collector sends until it closes the connection, or `None` if it has not within
    /// 10 s.
    async fn read_until_closed(&mut self) -> Option<Vec<u8>> {
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), self.0.read_to_end(&mut rest)).await;
        closed.is_ok().then_some(rest)
    }
}

fn hit(page: &str) -> Vec<u8> {
    format!(
        "GET /p.gif?site=keep.test&url={} HTTP/1.1\r\nHost: collector.test\r\n\r\n",
        common::enc(&format!("https://keep.test/{page}"))
    )
    .into_bytes()
}

fn beacon(page: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "kind": "pageview", "site": "keep.test", "url": format!("https://keep.test/{page}"),
        "pageview_id": "PageView0000000000000001",
    })
    .to_string();
    format!(
        "POST /e HTTP/1.1\r\nHost: collector.test\r\nOrigin: https://keep.test\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn assert_kept_alive(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.head);
    assert!(
        !answer.head.contains("connection: close"),
        "keep-alive is kept: {}",
        answer.head
    );
}

async fn released(collector: &Collector) -> u64 {
    metric(collector, "footfall_connections_released_total").await
}

/// Waits (bounded) until `count` more connections were released than `before`.
async fn released_since(collector: &Collector, before: u64, count: u64) -> bool {
    let released = || async { released(collector).await - before };
    eventually(Duration::from_secs(5), || async {
        released().await >= count
    })
    .await
        && released().await == count
}

/// Each of `pages` stored exactly once, and nothing else.
async fn assert_stored_once(db: &TestDb, pages: &[&str]) {
    let stored = db
        .count("SELECT count() FROM events WHERE site = 'keep.test'")
        .await;
    let distinct = db
        .count("SELECT uniqExact(url) FROM events WHERE site = 'keep.test'")
        .await;
    assert_eq!((stored, distinct), (pages.len() as u64, pages.len() as u64));
}

async fn shut_down(collector: Collector) {
    assert_eq!(collector.shutdown().await.bytes_left, 0);
}

#[tokio::test]
async fn keep_alive_clients_get_every_answer_on_one_connection_released_or_not() {
    for release_ms in ["0", "1000"] {
        let db = TestDb::new();
        let collector = db.start(&["--idle-release-ms", release_ms]).await;
        let before = released(&collector).await;
        let mut client = Client::connect(collector.local_addr()).await;
        let pages = ["a", "b", "c", "d", "e"];
        for page in pages {
            client.send(&hit(page)).await;
            let answer = client.answer().await;
            assert_kept_alive(&answer, 200);
            assert_eq!(&answer.body[..6], b"GIF89a");
        }
        if release_ms == "0" {
            // Released after each answer: each next request came to a fresh HTTP connection.
            assert!(released_since(&collector, before, 5).await);
        }
        shut_down(collector).await;
        assert_stored_once(&db, &pages).await;
    }
}

#[tokio::test]
async fn a_pipelined_pair_in_one_write_gets_both_answers_in_order() {
    for release_ms in ["0", "1000"] {
        let db = TestDb::new();
        let collector = db.start(&["--idle-release-ms", release_ms]).await;
        let mut client = Client::connect(collector.local_addr()).await;
        client
            .send(&[hit("first"), beacon("second")].concat())
            .await;
        let first = client.answer().await;
        assert_kept_alive(&first, 200);
        assert_eq!(&first.body[..6], b"GIF89a");
        assert_kept_alive(&client.answer().await, 204);
        // And the connection serves on.
        client.send(&hit("third")).await;
        assert_kept_alive(&client.answer().await, 200);
        shut_down(collector).await;
        assert_stored_once(&db, &["first", "second", "third"]).await;
    }
}

#[tokio::test]
async fn a_request_cut_by_a_release_is_replayed_to_the_next_http_connection() {
    let db = TestDb::new();
    let collector = db.start(&["--idle-release-ms", "0"]).await;
    let before = released(&collector).await;
    let mut client = Client::connect(collector.local_addr()).await;
    let second = hit("second");
    let (start, end) = second.split_at(20);
    client
        .send(&[hit("first").as_slice(), start].concat())
        .await;
    assert_kept_alive(&client.answer().await, 200);
    // The first answer was written with the start of the second request in hyper's buffer.
    assert!(released_since(&collector, before, 1).await);
    client.send(end).await;
    assert_kept_alive(&client.answer().await, 200);
    shut_down(collector).await;
    assert_stored_once(&db, &["first", "second"]).await;
}

#[tokio::test]
async fn a_connection_released_while_idle_answers_its_next_hit_on_the_same_socket() {
    let db = TestDb::new();
    let collector = db.start(&["--idle-release-ms", "100"]).await;
    let before = released(&collector).await;
    let mut client = Client::connect(collector.local_addr()).await;
    // Two hits within the release delay: the timer armed after the first fires after a second,
    // finds the connection was busy meanwhile, and waits again.
    for page in ["first", "second"] {
        client.send(&hit(page)).await;
        assert_kept_alive(&client.answer().await, 200);
    }
    assert!(released_since(&collector, before, 1).await);
    assert_eq!(
        metric(&collector, "footfall_connections_parked").await,
        1,
        "the idle connection is parked without its HTTP state"
    );
    client.send(&hit("third")).await;
    assert_kept_alive(&client.answer().await, 200);
    assert_eq!(metric(&collector, "footfall_connections_open").await, 1);
    shut_down(collector).await;
    assert_stored_once(&db, &["first", "second", "third"]).await;
}

#[tokio::test]
async fn the_header_timeout_still_closes_idle_and_slow_connections_after_a_release() {
    let db = TestDb::new();
    let collector = db
        .start(&["--idle-release-ms", "0", "--header-read-timeout-ms", "300"])
        .await;
    let addr = collector.local_addr();
    let before = released(&collector).await;

    let mut idle = Client::connect(addr).await;
    idle.send(&hit("idle")).await;
    assert_kept_alive(&idle.answer().await, 200);
    assert!(idle.closed_by_the_collector().await);

    // A head begun after the release must still be finished within the timeout.
    let mut slow = Client::connect(addr).await;
    slow.send(&hit("slow")).await;
    assert_kept_alive(&slow.answer().await, 200);
    assert!(released_since(&collector, before, 2).await);
    slow.send(b"GET /p.gif?site=keep.test HTTP/1.1\r\nHost: x\r\n")
        .await;
    assert!(slow.closed_by_the_collector().await);
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(&collector, "footfall_connections_open").await == 0
        })
        .await
    );
    shut_down(collector).await;
    assert_stored_once(&db, &["idle", "slow"]).await;
}

#[tokio::test]
async fn the_header_timeout_runs_from_the_last_answer_on_a_connection_never_released() {
    let db = TestDb::new();
    let timeout = Duration::from_millis(300);
    let collector = db
        .start(&[
            "--idle-release-ms",
            "60000",
            "--header-read-timeout-ms",
            "300",
        ])
        .await;
    let addr = collector.local_addr();

    // Idle after two answers: closed the timeout after the second, not after the first.
    let mut idle = Client::connect(addr).await;
    idle.send(&hit("idle-1")).await;
    assert_kept_alive(&idle.answer().await, 200);
    idle.send(&hit("idle-2")).await;
    assert_kept_alive(&idle.answer().await, 200);
    let last = Instant::now();
    assert!(idle.closed_by_the_collector().await);
    assert!(
        last.elapsed() >= timeout,
        "closed before the timeout ran out"
    );

    // A head begun after an answer must be finished within the timeout of that answer.
    let mut slow = Client::connect(addr).await;
    slow.send(&hit("slow")).await;
    assert_kept_alive(&slow.answer().await, 200);
    let answered = Instant::now();
    slow.send(b"GET /p.gif?site=keep.test HTTP/1.1\r\nHost: x\r\n")
        .await;
    assert!(slow.closed_by_the_collector().await);
    assert!(answered.elapsed() >= timeout);

    assert_eq!(released(&collector).await, 0, "neither was released");
    assert_eq!(
        metric(&collector, "footfall_connections_timed_out_total").await,
        2
    );
    shut_down(collector).await;
    assert_stored_once(&db, &["idle-1", "idle-2", "slow"]).await;
}

/// A beacon refused before its body came in full: the rest of the body, whatever it holds, is
/// never read as a request (the connection is closed, not released in the middle of a body).
#[tokio::test]
async fn the_rest_of_a_refused_beacons_body_is_never_read_as_a_request() {
    let db = TestDb::new();
    let collector = db
        .start(&["--idle-release-ms", "0", "--header-read-timeout-ms", "1000"])
        .await;
    let mut client = Client::connect(collector.local_addr()).await;
    let smuggled = hit("smuggled");
    let head = format!(
        "POST /e HTTP/1.1\r\nHost: collector.test\r\nOrigin: https://keep.test\r\n\
         Content-Type: text/html\r\nContent-Length: {}\r\n\r\n0123456789",
        10 + smuggled.len()
    );
    client.send(head.as_bytes()).await;
    assert_eq!(client.answer().await.status, 400);
    // The collector may have closed the connection already.
    let _ = client.0.get_mut().write_all(&smuggled).await;
    let rest = client.read_until_closed().await.unwrap_or_default();
    assert!(
        rest.is_empty(),
        "the body was answered as a request: {}",
        String::from_utf8_lossy(&rest)
    );
    shut_down(collector).await;
    assert_stored_once(&db, &[]).await;
}
