//! A TCP proxy in front of the test ClickHouse: a program that reaches ClickHouse through it
//! can be cut off (refused, or left hanging) or slowed down while the test and other programs
//! still reach ClickHouse directly.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Accepts and closes at once: ClickHouse down.
    Refuse,
    /// Accepts and never answers: ClickHouse hanging.
    Freeze,
    /// Passes bytes both ways to the real ClickHouse.
    Forward,
    /// Passes bytes both ways, but holds every read of ClickHouse's answers this long before
    /// passing it on: a ClickHouse that does its work and answers late.
    Slow(Duration),
}

/// A TCP proxy in front of the test ClickHouse that can be told to refuse, freeze or forward.
/// Changing the mode ends every connection it holds, as a restart would.
pub struct Proxy {
    addr: SocketAddr,
    mode: tokio::sync::watch::Sender<ProxyMode>,
}

impl Proxy {
    pub async fn start(target_url: &str, mode: ProxyMode) -> Self {
        let target: SocketAddr = target_url
            .trim_start_matches("http://")
            .parse()
            .expect("http://IP:PORT");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(mode);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                let mode = *rx.borrow_and_update();
                if mode == ProxyMode::Refuse {
                    continue;
                }
                tokio::spawn(async move {
                    let relay = async {
                        match mode {
                            ProxyMode::Forward => {
                                if let Ok(mut upstream) =
                                    tokio::net::TcpStream::connect(target).await
                                {
                                    let _ =
                                        tokio::io::copy_bidirectional(&mut client, &mut upstream)
                                            .await;
                                }
                            }
                            ProxyMode::Slow(delay) => {
                                if let Ok(upstream) = tokio::net::TcpStream::connect(target).await {
                                    relay_slowly(client, upstream, delay).await;
                                }
                            }
                            ProxyMode::Refuse | ProxyMode::Freeze => {
                                std::future::pending::<()>().await
                            }
                        }
                    };
                    tokio::select! {
                        _ = relay => {}
                        _ = rx.changed() => {}
                    }
                });
            }
        });
        Self { addr, mode: tx }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }
}

/// Copies `client`'s bytes to `upstream` as they come, and `upstream`'s back each `delay` after
/// it read them; ends when either side closes.
async fn relay_slowly(
    client: tokio::net::TcpStream,
    upstream: tokio::net::TcpStream,
    delay: Duration,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut upstream_write);
    let answers = async {
        let mut buf = vec![0; 64 * 1024];
        loop {
            match upstream_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}
