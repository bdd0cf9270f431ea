//! A TCP proxy in front of the test ClickHouse: a program that reaches ClickHouse through it
//! can be cut off (refused, or left hanging) while the test and other programs still reach
//! ClickHouse directly.

use std::net::SocketAddr;

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Accepts and closes at once: ClickHouse down.
    Refuse,
    /// Accepts and never answers: ClickHouse hanging.
    Freeze,
    /// Passes bytes both ways to the real ClickHouse.
    Forward,
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
                        if mode == ProxyMode::Forward {
                            if let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        } else {
                            std::future::pending::<()>().await;
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
