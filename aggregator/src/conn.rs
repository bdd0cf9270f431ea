//! Connections of the dashboard and report API: how many at once, how large and how slow a
//! request head may be, and a graceful stop.
//!
//! Requests are axum's; connections are served here with hyper's HTTP/1 builder because
//! `axum::serve` sets no timer (so no header-read timeout: a client that never finishes its
//! request head holds a connection forever) and no limit on the head's size or on the number of
//! connections. Past `max_connections`, new connections wait in the listen backlog until one
//! ends; a head larger than `max_header_bytes` is answered `431`.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// The bounds on connections (flags of `serve`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
}

/// Accepts and serves connections until `stopped` changes, then lets those in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let slots = std::sync::Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // hyper's smallest read buffer is 8 KiB; the head must fit in it.
    let max_buf = limits.max_header_bytes.max(8192);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(max_buf)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    graceful.shutdown().await;
}
