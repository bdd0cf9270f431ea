//! `scripts/clickhouse` never takes a server it did not start for its own: `start` refuses one
//! answering on the port (unless `--reuse`), and `stop` leaves it alone and says so.

use std::process::{Command, Output};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn script(args: &[&str]) -> Output {
    Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/clickhouse"
    ))
    .args(args)
    .output()
    .unwrap()
}

#[tokio::test]
async fn a_server_the_script_did_not_start_is_neither_reused_nor_stopped() {
    // Something else that answers `/ping` like ClickHouse does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nOk.\n",
                    )
                    .await;
            });
        }
    });
    let port = port.as_str();
    let run = |args: Vec<&'static str>| {
        let port = port.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<&str> = args;
            all.extend(["--port", &port]);
            script(&all)
        })
    };
    let start = run(vec!["start"]).await.unwrap();
    assert!(!start.status.success(), "start must refuse it");
    assert!(String::from_utf8_lossy(&start.stderr).contains("--reuse"));
    let reuse = run(vec!["start", "--reuse"]).await.unwrap();
    assert!(reuse.status.success());
    let stop = run(vec!["stop"]).await.unwrap();
    assert!(
        !stop.status.success(),
        "stop cannot stop what it did not start"
    );
    assert!(String::from_utf8_lossy(&stop.stderr).contains("left alone"));
}
