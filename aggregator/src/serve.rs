//! `serve`: the dashboard and the reports over HTTP, for people and partners.
//!
//! The routes are an axum [`Router`]: the report API ([`crate::api`]: CSV and JSON, `/v1/sites`)
//! and the dashboard ([`crate::dashboard`]), which reads the same API functions, so every number
//! it shows went through the same anonymisation, scope check and audit as a CSV export.
//! tower-http adds per-request timeouts, a request body limit, compression and request tracing;
//! [`crate::conn`] bounds connections and request heads. `GET /healthz` answers `ok`.
//!
//! On start it applies the schema, then keeps `sessions_daily` fresh for today and yesterday.
//! It never loads the IP private key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use clickhouse::Client;
use footfall_store::cluster::Layout;
use footfall_store::{migrations, rollup_keys};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::cli::ServeArgs;
use crate::day::Day;
use crate::report::{ReportError, Rules};
use crate::session::Sessions;
use crate::{api, conn, dashboard, rollup};

/// Longest a request may take to be answered (a report over 400 days of rollups takes well under
/// a second; see BENCHMARKS.md).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body: only the sign-in form has one.
const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("could not listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error(
        "{0}. Is ClickHouse running and reachable at FOOTFALL_CLICKHOUSE_URL? (on a laptop: scripts/clickhouse start)"
    )]
    Schema(#[from] footfall_store::migrations::SchemaError),
    #[error(transparent)]
    Privacy(#[from] ReportError),
}

/// What every handler shares.
pub(crate) struct App {
    pub client: Client,
    /// How every row is anonymised (K, noise, budget).
    pub rules: Rules,
    /// `--dev`: thresholds relaxed so that one's own test visits show; the dashboard says so.
    pub dev: bool,
    pub sessions: Sessions,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Applies the schema, binds and serves in the background.
pub async fn start(args: ServeArgs) -> Result<Server, ServeError> {
    let ch = &args.clickhouse;
    migrations::migrate(
        &ch.server_client(),
        &ch.clickhouse_database,
        args.retention.retention_days,
        &ch.layout(),
    )
    .await?;
    let mut rules = args.privacy.rules()?;
    if args.dev {
        // Below the floor `Rules::new` keeps operators at: one's own test visit shows.
        rules.min_visitors = 1;
        rules.min_networks = 1;
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| ServeError::Listen(args.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Listen(args.listen, e))?;
    let app = Arc::new(App {
        client: ch.client(),
        rules,
        dev: args.dev,
        sessions: Sessions::default(),
    });
    if args.dev {
        tracing::warn!(
            "--dev: rows are shown from a single visitor; never run the aggregator with --dev on real data"
        );
    }
    let (stop, stopped) = watch::channel(false);
    let limits = conn::Limits {
        max_connections: args.max_connections,
        max_header_bytes: args.max_header_bytes,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
    };
    let mut tasks = vec![tokio::spawn(conn::serve(
        listener,
        router(app.clone()),
        limits,
        stopped.clone(),
    ))];
    if args.refresh_secs > 0 {
        tasks.push(tokio::spawn(refresh_loop(
            app.client.clone(),
            Keys {
                layout: ch.layout(),
                database: ch.clickhouse_database.clone(),
                retention_days: args.retention.retention_days,
            },
            Duration::from_secs(args.refresh_secs),
            stopped,
        )));
    }
    tracing::info!(%addr, "serving the dashboard and reports");
    Ok(Server { addr, stop, tasks })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api::routes())
        .merge(dashboard::routes())
        .with_state(app)
        .layer(CompressionLayer::new())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
}

/// Where the rollups' hash keys live and how long they are kept.
struct Keys {
    layout: Layout,
    database: String,
    retention_days: u32,
}

/// Recomputes the session rollups of yesterday and today, now and every `every`; keeps the
/// rollups' hash keys topped up ahead and destroys those whose month has passed retention, so
/// that neither waits for the next `migrate` or `retention`.
async fn refresh_loop(
    client: Client,
    keys: Keys,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let layout = &keys.layout;
        if let Err(e) =
            rollup_keys::ensure(&client, &keys.database, keys.retention_days, layout).await
        {
            tracing::warn!(error = %e, "rollup keys not topped up");
        }
        match rollup_keys::destroy_expired(&client, keys.retention_days, layout).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "rollup keys past retention destroyed"),
            Err(e) => tracing::warn!(error = %e, "expired rollup keys not destroyed"),
        }
        let today = Day::today();
        let (from, to) = (today.plus(-1), today);
        match rollup::refresh(&client, layout, from, to).await {
            Ok(rows) => tracing::debug!(rows, %from, %to, "session rollups refreshed"),
            Err(e) => tracing::warn!(error = %e, "session rollups not refreshed"),
        }
        // The month before is final once its last day left the refresh window.
        let month = today.month_start().plus(-1).month_start();
        // An unreadable answer counts as not done: computing the month again is harmless.
        let done = rollup::month_ready(&client, month).await.unwrap_or(false);
        if rollup::month_closed(month) && !done {
            match rollup::close_month(&client, layout, month).await {
                Ok(rows) => tracing::info!(rows, %month, "month rollup computed"),
                Err(e) => tracing::warn!(error = %e, "month rollup not computed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}
