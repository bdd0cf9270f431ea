//! The running collector: HTTP/1.1 server, writer task, and an orderly shutdown.
//!
//! [`start`] applies the schema, binds the listener, spawns the writer and the accept loop, and
//! returns a [`Collector`] handle. [`Collector::shutdown`] (the binary calls it on SIGTERM or
//! SIGINT) stops accepting, lets every in-flight request finish, and only then tells the writer
//! to drain the queue, so every hit that was answered is written before the process exits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConsentMode, SameSite, ServeArgs};
use crate::hit::privacy::{OptOutCookies, PrivacyPolicy};
use crate::hit::visitor::{CookiePolicy, CookieWriter};
use crate::keys::{self, KeyError};
use crate::metrics::Metrics;
use crate::routes::{App, now_ms};
use crate::schema::{self, SchemaError};
use crate::sealer::Sealer;
use crate::signing::Signer;
use crate::sink::Queue;
use crate::sink::writer::{Writer, WriterConfig, WriterHealth, WriterReport};

/// How long one IP-sealing data key lives.
const KEY_EPOCH_MS: i64 = 60_000;
/// Longest a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest shutdown waits for in-flight requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(
        "{0}. Is ClickHouse running and reachable at FOOTFALL_CLICKHOUSE_URL? (on a laptop: scripts/clickhouse start)"
    )]
    Schema(#[from] SchemaError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running collector.
pub struct Collector {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<WriterReport>,
    metrics: Arc<Metrics>,
}

impl Collector {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops accepting, answers what is in flight, writes every accepted hit, and reports.
    pub async fn shutdown(self) -> WriterReport {
        let _ = self.stop.send(true);
        self.task.await.expect("the server task does not panic")
    }
}

/// Starts a collector as configured by `args`.
pub async fn start(args: ServeArgs) -> Result<Collector, StartError> {
    let keys = keys::load(&args.data_dir, args.secret.as_deref(), args.ip_public_key.as_deref(), args.dev)?;
    let ch = &args.clickhouse;
    schema::migrate(&ch.server_client(), &ch.clickhouse_database, ch.retention_days).await?;
    let listener =
        TcpListener::bind(args.listen).await.map_err(|source| StartError::Bind { addr: args.listen, source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: args.listen, source })?;

    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(WriterHealth::default());
    health.set(true);
    let sealer = Arc::new(Sealer::new(keys.ip_public_key, KEY_EPOCH_MS, now_ms()));
    let (queue, rx) = Queue::bounded(args.queue_capacity as usize);
    let (writer_stop, writer_stop_rx) = watch::channel(false);
    let writer = Writer {
        client: ch.client(),
        sealer: sealer.clone(),
        metrics: metrics.clone(),
        health: health.clone(),
        config: WriterConfig {
            batch_rows: args.batch_rows as usize,
            flush_interval: args.flush_interval(),
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
        },
    };
    let writer = tokio::spawn(writer.run(rx, writer_stop_rx));

    let cookie_policy = CookiePolicy {
        max_age_days: args.cookie_max_age_days,
        same_site: match args.cookie_same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::None => cookie::SameSite::None,
        },
        domain: args.cookie_domain.clone(),
        secure: !args.dev,
    };
    let app = Arc::new(App {
        cookie: CookieWriter::new(&cookie_policy),
        opt_out_cookies: OptOutCookies::new(&cookie_policy),
        privacy: PrivacyPolicy {
            honor_dnt: args.honor_dnt,
            honor_gpc: args.honor_gpc,
            consent_required: args.consent == ConsentMode::Required,
        },
        signer: Signer::new(&keys.secret),
        trusted_proxies: args.trusted_proxies.clone(),
        sealer,
        queue,
        metrics: metrics.clone(),
        health,
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        serve(listener, app, stop_rx).await;
        let _ = writer_stop.send(true);
        writer.await.expect("the writer task does not panic")
    });
    Ok(Collector { addr, stop, task, metrics })
}

/// Accepts connections until `stop`, then waits for in-flight requests.
async fn serve(listener: TcpListener, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |req| {
                    let response = app.handle(&req, peer);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("in-flight requests did not finish in time"),
    }
}
