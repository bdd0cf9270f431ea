//! The running collector: HTTP/1.1 server, sink (spool and inserter), and an orderly shutdown.
//!
//! [`start`] binds the public listener and the metrics listener ([`crate::metrics_server`]),
//! starts the sink (which applies the schema as soon as ClickHouse
//! answers: a collector started during an outage still takes hits) and the accept loop, and
//! returns a [`Collector`] handle. [`Collector::shutdown`] (the binary calls it on SIGTERM or
//! SIGINT) stops accepting, lets every in-flight request finish, and only then shuts the sink
//! down, so every hit that was answered is spooled and, ClickHouse willing, inserted before the
//! process exits.

use std::future::{Future, Ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::ServeArgs;
use crate::enrich::geoip::{GeoIp, GeoIpError};
use crate::enrich::user_agent;
use crate::keys::{self, KeyError};
use crate::metrics::{ConnectionMetrics, Metrics};
use crate::metrics_server::MetricsEndpoint;
use crate::rate_limit::RateLimit;
use crate::response::Body;
use crate::routes::{App, Wiring, now_ms};
use crate::sealer::Sealer;
use crate::sink::disk::DiskFaults;
use crate::sink::inserter::{ApplySchema, InserterReport};
use crate::sink::quarantine::QUARANTINE_DIR;
use crate::sink::{Queue, Sink, SinkConfig, SinkStatus};
use footfall_store::migrations;

mod activity;
mod connection;

/// A request's answer: ready at once, or a beacon's, once its body is read.
type Answer = Either<Ready<Response<Body>>, Pin<Box<dyn Future<Output = Response<Body>> + Send>>>;

/// How long one IP-sealing data key lives.
const KEY_EPOCH_MS: i64 = 60_000;
/// How often the GeoIP database file is checked for a new edition.
const GEOIP_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Longest shutdown waits for in-flight requests before closing their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Most scrapers connected to the metrics address at once.
const METRICS_MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    GeoIp(#[from] GeoIpError),
    #[error("could not open the spool in {dir}: {source}")]
    Spool {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<InserterReport>,
    metrics: Arc<Metrics>,
}

impl Collector {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address `/metrics` is served on, unless `--metrics-listen off`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops accepting, answers what is in flight, spools and inserts every accepted hit, and
    /// reports.
    pub async fn shutdown(self) -> InserterReport {
        let _ = self.stop.send(true);
        self.task.await.expect("the server task does not panic")
    }
}

/// Starts a collector as configured by `args`. It listens and spools at once; the schema is
/// applied by the sink as soon as ClickHouse answers, before the first insert.
pub async fn start(args: ServeArgs) -> Result<Collector, StartError> {
    start_with_faults(args, Arc::default()).await
}

/// [`start`], with `faults` injected into the spool's files (for tests of a failing disk).
pub async fn start_with_faults(
    args: ServeArgs,
    faults: Arc<DiskFaults>,
) -> Result<Collector, StartError> {
    let keys = keys::load(
        &args.data_dir,
        args.secret.as_deref(),
        args.ip_public_key.as_deref(),
        args.dev,
    )?;
    let geoip = args
        .geoip_db
        .as_deref()
        .map(GeoIp::open)
        .transpose()?
        .map(Arc::new);
    let ch = &args.clickhouse;
    let (listener, addr) = bind(args.listen).await?;
    let metrics_listener = match args.metrics_listen.0 {
        Some(at) => Some(bind(at).await?),
        None => None,
    };

    // On a thread of its own, which ends with it: the runtime's threads serve meanwhile, and the
    // first hits wait for it only if they come within its 150 ms or so.
    std::thread::spawn(user_agent::prepare);
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(SinkStatus::default());
    let sealer = Arc::new(Sealer::new(keys.ip_public_key, KEY_EPOCH_MS, now_ms()));
    let queue = Queue::bounded(args.queue_capacity as usize, args.queue_max_bytes);
    let spool_dir = args.data_dir.join("spool");
    let apply_schema = {
        let (client, database) = (ch.server_client(), ch.clickhouse_database.clone());
        let layout = ch.layout();
        let retention_days = args.retention.retention_days;
        let apply: ApplySchema = Box::new(move || {
            let (client, database, layout) = (client.clone(), database.clone(), layout.clone());
            Box::pin(async move {
                migrations::migrate(&client, &database, retention_days, &layout)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        });
        apply
    };
    let sink = Sink::start(
        SinkConfig {
            dir: spool_dir.clone(),
            quarantine_dir: args.data_dir.join(QUARANTINE_DIR),
            batch_rows: args.batch_rows as usize,
            flush_interval: args.flush_interval(),
            insert_timeout: Duration::from_millis(args.insert_timeout_ms),
            insert_nice: args.insert_nice,
            fsync_interval: Duration::from_millis(args.spool_fsync_ms),
            max_bytes: args.spool_max_bytes,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            faults,
        },
        queue.clone(),
        ch.client(),
        apply_schema,
        sealer.clone(),
        metrics.clone(),
        status.clone(),
    )
    .map_err(|source| StartError::Spool {
        dir: spool_dir,
        source,
    })?;

    let rate_limit = args
        .rate_limit_per_minute
        .map(|rate| Arc::new(RateLimit::new(rate, args.rate_limit_burst.unwrap_or(rate))));
    let per_network = args
        .max_new_visitors_per_network
        .unwrap_or(if args.dev { 0 } else { 1000 });
    let new_visitors = std::num::NonZeroU32::new(per_network)
        .map(|per_day| Arc::new(RateLimit::new_visitors(per_day)));
    if !args.dev && args.allowed_origins.is_empty() {
        tracing::warn!(
            "FOOTFALL_ALLOWED_ORIGINS is empty: every tracker-script beacon (POST /e) from a page is \
             refused with 403, so only pixel hits are recorded. List your sites' origins, like \
             FOOTFALL_ALLOWED_ORIGINS=https://www.example.com,https://shop.example.com"
        );
    }
    let scrape = Arc::new(MetricsEndpoint {
        metrics: metrics.clone(),
        queue: queue.clone(),
        rate_limit: rate_limit.clone(),
    });
    let app = Arc::new(App::new(
        &args,
        &keys.secret,
        Wiring {
            queue,
            status,
            sealer,
            metrics: metrics.clone(),
            geoip: geoip.clone(),
            rate_limit: rate_limit.clone(),
            new_visitors: new_visitors.clone(),
        },
    ));
    let limits = Limits {
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        max_header_bytes: args.max_header_bytes as usize,
        max_connections: args.max_connections as usize,
        idle_release: Duration::from_millis(args.idle_release_ms),
    };
    let metrics_limits = Limits {
        max_connections: METRICS_MAX_CONNECTIONS,
        ..limits
    };
    let (stop, stop_rx) = watch::channel(false);
    if let Some(geoip) = geoip {
        tokio::spawn(geoip.watch(GEOIP_CHECK_INTERVAL, metrics.clone(), stop_rx.clone()));
    }
    for limit in rate_limit.into_iter().chain(new_visitors) {
        tokio::spawn(limit.prune_regularly(stop_rx.clone()));
    }
    let metrics_addr = metrics_listener.as_ref().map(|(_, at)| *at);
    let scrapes = metrics_listener.map(|(listener, _)| {
        let handler = move |req: Request<Incoming>, _peer| {
            let scrape = scrape.clone();
            async move { scrape.answer(&req) }
        };
        let uncounted = ConnectionMetrics::default();
        tokio::spawn(serve(
            listener,
            handler,
            metrics_limits,
            uncounted,
            stop_rx.clone(),
        ))
    });
    // Only a beacon waits (for its body); every other request is answered here, so the future
    // hyper keeps per request is the answer itself. The beacon's state (2.3 KiB) is boxed:
    // inline it made every request's future that large, copied twice per pixel hit.
    let handler = move |req: Request<Incoming>, peer| -> Answer {
        match app.answer_now(&req, peer) {
            Some(answer) => Either::Left(std::future::ready(answer)),
            None => {
                let app = app.clone();
                Either::Right(Box::pin(async move { app.beacon(req, peer).await }))
            }
        }
    };
    let connections = metrics.connections.clone();
    let task = tokio::spawn(async move {
        serve(listener, handler, limits, connections, stop_rx).await;
        if let Some(scrapes) = scrapes {
            let _ = scrapes.await;
        }
        sink.shutdown().await
    });
    Ok(Collector {
        addr,
        metrics_addr,
        stop,
        task,
        metrics,
    })
}

/// A listener on `at`, and the address it got (`at` may ask for port 0).
async fn bind(at: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let bound = |source| StartError::Bind { addr: at, source };
    let listener = TcpListener::bind(at).await.map_err(bound)?;
    let addr = listener.local_addr().map_err(bound)?;
    Ok((listener, addr))
}

/// The connection-level limits against slow, idle, oversized and too many clients.
#[derive(Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    max_header_bytes: usize,
    max_connections: usize,
    idle_release: Duration,
}

/// Accepts connections until `stop`, answering each request with `handler`, then waits for
/// in-flight requests. hyper itself answers `431` to a head over `max_header_bytes` or with
/// over 100 headers and `400` to one it cannot parse; [`connection`] closes a connection whose
/// head takes longer than `header_read_timeout` or that stays silent that long, and frees the
/// buffers of one idle for `idle_release`.
async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    limits: Limits,
    metrics: ConnectionMetrics,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        // [`connection`] keeps the header timeout with one timer per connection, not per request.
        .header_read_timeout(None::<Duration>)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let settings = Arc::new(connection::Settings {
        http,
        header_read_timeout: limits.header_read_timeout,
        idle_release: limits.idle_release,
        metrics,
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // At the connection limit, stop accepting: new clients wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stop.changed() => break,
        };
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
                let (handler, settings, stop) = (handler.clone(), settings.clone(), stop.clone());
                tokio::spawn(async move {
                    settings.metrics.open.inc();
                    connection::serve(stream, peer, handler, settings.clone(), stop).await;
                    settings.metrics.open.dec();
                    drop(slot);
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    // Every connection holds a slot until it closes: all of them back means all are closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("in-flight requests did not finish in time"),
    }
}
