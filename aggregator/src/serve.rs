//! `serve`: the reports over HTTP, for dashboards and partners.
//!
//! `GET /v1/reports/{R}.csv?from=YYYY-MM-DD&to=YYYY-MM-DD[&site=S]` with
//! `Authorization: Bearer TOKEN` answers the same CSV as `export` (same K, same noise as
//! configured for the server). `401` without a valid token, `403` for a report or site outside
//! the token's scope, `404` for an unknown report, `400` with a reason for bad parameters. Every
//! answered export is audited under the token's name. `GET /healthz` answers `ok`.
//!
//! On start it applies the schema, then keeps `sessions_daily` fresh for today and yesterday.
//! It never loads the IP private key.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clickhouse::Client;
use footfall_store::migrations;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::ServeArgs;
use crate::day::Day;
use crate::report::{self, Report, ReportError, Request as ReportRequest, Rules};
use crate::{audit, rollup, token};

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

struct App {
    client: Client,
    rules: Rules,
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
    )
    .await?;
    let rules = args.privacy.rules()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| ServeError::Listen(args.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Listen(args.listen, e))?;
    let app = Arc::new(App {
        client: ch.client(),
        rules,
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(accept(listener, app.clone(), stopped.clone()))];
    if args.refresh_secs > 0 {
        tasks.push(tokio::spawn(refresh_loop(
            app.client.clone(),
            Duration::from_secs(args.refresh_secs),
            stopped,
        )));
    }
    tracing::info!(%addr, "serving reports");
    Ok(Server { addr, stop, tasks })
}

async fn accept(listener: TcpListener, app: Arc<App>, mut stopped: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(route(&app, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

/// Recomputes the session rollups of yesterday and today, now and every `every`.
async fn refresh_loop(client: Client, every: Duration, mut stopped: watch::Receiver<bool>) {
    loop {
        let today = Day::today();
        let (from, to) = (today.plus(-1), today);
        match rollup::refresh(&client, from, to).await {
            Ok(rows) => tracing::info!(rows, %from, %to, "session rollups refreshed"),
            Err(e) => tracing::warn!(error = %e, "session rollups not refreshed"),
        }
        // The month before is final once its last day left the refresh window.
        let month = today.month_start().plus(-1).month_start();
        // An unreadable answer counts as not done: computing the month again is harmless.
        let done = rollup::month_ready(&client, month).await.unwrap_or(false);
        if rollup::month_closed(month) && !done {
            match rollup::close_month(&client, month).await {
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

type Answer = Response<Full<Bytes>>;

/// Why a request was refused, kept on the answer for the audit.
#[derive(Clone)]
struct Refusal(String);

fn error(status: StatusCode, message: &str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::json!({ "error": message }).to_string(),
    )));
    *r.status_mut() = status;
    r.extensions_mut().insert(Refusal(message.to_owned()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// Answers one request; every refusal is logged and audited with who asked (the token's name,
/// `-` before a valid token was shown). Budget refusals are audited by the report itself.
async fn route(app: &App, req: Request<Incoming>) -> Answer {
    let mut actor = "-".to_owned();
    let answer = answer(app, req, &mut actor).await;
    let status = answer.status();
    if let Some(Refusal(reason)) = answer.extensions().get::<Refusal>()
        && status.is_client_error()
    {
        tracing::warn!(status = status.as_u16(), actor, reason, "request refused");
        if status != StatusCode::TOO_MANY_REQUESTS {
            let entry = audit::Entry::refused(&actor, status.as_u16(), reason);
            if let Err(e) = audit::write(&app.client, &entry).await {
                tracing::error!(error = %e, "refusal not audited");
            }
        }
    }
    answer
}

async fn answer(app: &App, req: Request<Incoming>, actor: &mut String) -> Answer {
    let path = req.uri().path();
    if path == "/healthz" {
        return Response::new(Full::new(Bytes::from_static(b"ok\n")));
    }
    let Some(name) = path
        .strip_prefix("/v1/reports/")
        .and_then(|p| p.strip_suffix(".csv"))
    else {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    };
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(presented) = presented else {
        return error(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer TOKEN (footfall-aggregator token create)",
        );
    };
    let token = match token::verify(&app.client, presented).await {
        Ok(Some(t)) => {
            actor.clone_from(&t.name);
            t
        }
        Ok(None) => return error(StatusCode::UNAUTHORIZED, "unknown or revoked token"),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "reports are unavailable");
        }
    };
    let Some(report) = Report::parse(name) else {
        return error(
            StatusCode::NOT_FOUND,
            &ReportError::UnknownReport(name.into()).to_string(),
        );
    };
    if !token.allows_report(report) {
        return error(StatusCode::FORBIDDEN, "this token may not read this report");
    }
    let mut params = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        params.insert(k.into_owned(), v.into_owned());
    }
    let (Some(from), Some(to)) = (params.get("from"), params.get("to")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give from=YYYY-MM-DD and to=YYYY-MM-DD",
        );
    };
    let site = params.get("site").map(String::as_str);
    let request = match ReportRequest::parse(name, from, to, site, &app.rules) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let site_scope = if report == Report::Email {
        None
    } else {
        request.site.as_deref()
    };
    if !token.allows_range(request.from, request.to) {
        return error(
            StatusCode::FORBIDDEN,
            "this token reads only whole calendar months: from= a month's first day, to= a month's last day",
        );
    }
    if !token.allows_site(site_scope) {
        return error(
            StatusCode::FORBIDDEN,
            "this token reads only its sites: pass site= one of them (and not the email report)",
        );
    }
    let export = match report::export(&app.client, &token.name, &request).await {
        Ok(e) => e,
        Err(ReportError::Budget(spent)) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, &spent.to_string());
            let wait = (spent.resets_at - audit::now_secs()).max(1);
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
            return r;
        }
        Err(e) => {
            tracing::error!(error = %e, report = name, "export failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the report could not be made",
            );
        }
    };
    tracing::info!(
        token = token.name,
        report = name,
        rows = export.rows,
        suppressed = export.suppressed,
        "report served"
    );
    let mut r = Response::new(Full::new(Bytes::from(export.csv)));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}
