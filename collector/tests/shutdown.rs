//! SIGTERM under traffic: every hit the collector answered is in ClickHouse after it exits.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TestDb, clickhouse_url, enc};
use http::Request;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Sends pixel hits on one keep-alive connection until the collector closes it; counts the hits
/// it acknowledged (answered with a visitor cookie, i.e. accepted for storage).
async fn client_loop(addr: std::net::SocketAddr, acknowledged: Arc<AtomicU64>) {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return;
    };
    tokio::spawn(conn);
    let target = format!(
        "/p.gif?site=shutdown&url={}",
        enc("https://example.com/load")
    );
    for _ in 0..1_000_000 {
        if sender.ready().await.is_err() {
            return;
        }
        let req = Request::get(&target)
            .header("host", "collector.test")
            .body(Empty::<Bytes>::new())
            .unwrap();
        match sender.send_request(req).await {
            Ok(resp) if resp.headers().contains_key("set-cookie") => {
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_traffic_loses_no_acknowledged_hit() {
    let db = TestDb::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_footfall-collector"))
        .args([
            "serve",
            "--dev",
            "--listen",
            &addr.to_string(),
            "--clickhouse-url",
            &clickhouse_url(),
        ])
        .args([
            "--clickhouse-database",
            &db.name,
            "--data-dir",
            &db.data_dir.path().display().to_string(),
        ])
        // A long flush interval and big batches: most hits are still in memory at SIGTERM.
        .args(["--flush-interval-ms", "10000", "--batch-rows", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "collector did not start");

    let acknowledged = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(client_loop(addr, acknowledged.clone())))
        .collect();
    while acknowledged.load(Ordering::SeqCst) < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    for client in clients {
        client.await.unwrap();
    }
    assert!(exit.success(), "collector exited with {exit}");

    let acknowledged = acknowledged.load(Ordering::SeqCst);
    let stored = db
        .count("SELECT count() FROM events WHERE site = 'shutdown'")
        .await;
    assert_eq!(
        stored, acknowledged,
        "every acknowledged hit is stored, and nothing else"
    );
    let distinct = db.count("SELECT uniqExact(event_id) FROM events").await;
    assert_eq!(distinct, stored, "no duplicates");
}
