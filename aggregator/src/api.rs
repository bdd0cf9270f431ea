//! The report API: `GET /v1/reports/{R}.csv`, `GET /v1/reports/{R}.json`, `GET /v1/sites` and
//! `GET /v1/reports` (the catalogue), for holders of a report token.
//!
//! [`report`] is the one way a report leaves over HTTP: it authenticates nothing itself (see
//! [`caller`]), checks the token's scope, parses the parameters as `export` does, and runs the
//! report layer, which alone anonymises, charges the privacy budget and audits the export under
//! the token's name before anything is handed out. The CSV and JSON endpoints and the dashboard
//! all call it, so they cannot disagree on a number. `401` without a valid token, `403` outside
//! the token's scope, `404` for an unknown report, `400` with `{"error": "…"}` for bad
//! parameters, `429` with `Retry-After` past the budget. Every refusal is logged and audited
//! ([`refused`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use crate::day::Day;
use crate::report::{self, Export, Report, ReportError, Request as ReportRequest};
use crate::serve::App;
use crate::token::{self, Token};
use crate::{audit, session};

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/reports", get(catalogue))
        .route("/v1/reports/{file}", get(report_file))
        .route("/v1/sites", get(sites))
}

/// A refusal: its status, a reason for the caller, and (for `429`) the seconds until the
/// budget is renewed.
#[derive(Debug)]
pub(crate) struct ApiError(pub StatusCode, pub String, pub Option<i64>);

impl ApiError {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self(status, reason.into(), None)
    }
}

/// Logs and audits a refusal of a request by `actor` (a token's name, `-` before a valid token
/// was shown). Budget refusals are audited by the report layer itself.
pub(crate) async fn refused(app: &App, actor: &str, e: ApiError) -> ApiError {
    if e.0.is_client_error() {
        tracing::warn!(
            status = e.0.as_u16(),
            actor,
            reason = e.1,
            "request refused"
        );
        if e.0 != StatusCode::TOO_MANY_REQUESTS {
            let entry = audit::Entry::refused(actor, e.0.as_u16(), &e.1);
            if let Err(err) = audit::write(&app.client, &entry).await {
                tracing::error!(error = %err, "refusal not audited");
            }
        }
    }
    e
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.0,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": self.1 }).to_string(),
        )
            .into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = self.2 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
        }
        r
    }
}

/// The query parameters of a report request.
pub(crate) type Params = HashMap<String, String>;

/// The token a request comes with: `Authorization: Bearer TOKEN`, else the dashboard's session
/// cookie. Checked against `api_tokens` every time, so a revoked token stops at once.
pub(crate) async fn caller(app: &App, headers: &HeaderMap) -> Result<Token, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let presented =
        bearer.or_else(|| session::id_from(headers).and_then(|id| app.sessions.token(&id)));
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer TOKEN (footfall-aggregator token create)",
        ));
    };
    match token::verify(&app.client, &presented).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown or revoked token",
        )),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "reports are unavailable",
            ))
        }
    }
}

/// Runs report `name` for `token` with `params` (`from`, `to`, `site`): scope, parameters,
/// then the report layer (anonymisation, budget, audit).
pub(crate) async fn report(
    app: &App,
    token: &Token,
    name: &str,
    params: &Params,
) -> Result<(ReportRequest, Export), ApiError> {
    let Some(kind) = Report::parse(name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ReportError::UnknownReport(name.into()).to_string(),
        ));
    };
    if !token.allows_report(kind) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token may not read this report",
        ));
    }
    // `current` is the last minutes: it takes no range.
    let today = Day::today().to_string();
    let range = match (params.get("from"), params.get("to"), kind) {
        (_, _, Report::Current) => (today.as_str(), today.as_str()),
        (Some(from), Some(to), _) => (from.as_str(), to.as_str()),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give from=YYYY-MM-DD and to=YYYY-MM-DD",
            ));
        }
    };
    let site = params.get("site").map(String::as_str);
    let request = ReportRequest::parse(name, range.0, range.1, site, &app.rules)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let site_scope = if kind == Report::Email {
        None
    } else {
        request.site.as_deref()
    };
    if !token.allows_range(request.from, request.to) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token reads only whole calendar months: from= a month's first day, to= a month's last day",
        ));
    }
    if !token.allows_site(site_scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this token reads only its sites: pass site= one of them (and not the email report)",
        ));
    }
    let export = match report::export(&app.client, &token.name, &request).await {
        Ok(e) => e,
        Err(ReportError::Budget(spent)) => {
            let wait = spent.resets_at - audit::now_secs();
            return Err(ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                spent.to_string(),
                Some(wait),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, report = name, "export failed");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the report could not be made",
            ));
        }
    };
    tracing::info!(
        token = token.name,
        report = name,
        rows = export.rows.len(),
        suppressed = export.suppressed,
        "report served"
    );
    Ok((request, export))
}

/// An answer, or the refusal, logged and audited under `actor` as far as it was known.
async fn answered(app: &App, actor: &str, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => r,
        Err(e) => refused(app, actor, e).await.into_response(),
    }
}

/// `GET /v1/reports/{R}.csv` and `.json`.
async fn report_file(
    State(app): State<Arc<App>>,
    Path(file): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let mut actor = "-".to_owned();
    let result = report_answer(&app, &mut actor, &file, &params, &headers).await;
    answered(&app, &actor, result).await
}

async fn report_answer(
    app: &App,
    actor: &mut String,
    file: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (name, json) = match (file.strip_suffix(".csv"), file.strip_suffix(".json")) {
        (Some(name), _) => (name, false),
        (_, Some(name)) => (name, true),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "reports are REPORT.csv or REPORT.json",
            ));
        }
    };
    let token = caller(app, headers).await?;
    actor.clone_from(&token.name);
    let (request, table) = report(app, &token, name, params).await?;
    let (body, content_type) = if json {
        (
            table.json(&request).to_string().into_bytes(),
            "application/json",
        )
    } else {
        (table.csv(), "text/csv; charset=utf-8")
    };
    let mut answer = cached(headers, body, content_type, freshness(&request));
    if !json {
        let site = request
            .site
            .as_deref()
            .unwrap_or("all-sites")
            .replace(':', "_");
        let disposition = format!(
            "attachment; filename=\"footfall-{}-{site}-{}-{}.csv\"",
            request.report.name(),
            request.from,
            request.to
        );
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            answer.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(answer)
}

/// `GET /v1/sites`: the `sites` report (each site's totals over the range), for every site the
/// token may read.
async fn sites(
    State(app): State<Arc<App>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let mut actor = "-".to_owned();
    let result = sites_answer(&app, &mut actor, params, &headers).await;
    answered(&app, &actor, result).await
}

async fn sites_answer(
    app: &App,
    actor: &mut String,
    params: Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let token = caller(app, headers).await?;
    actor.clone_from(&token.name);
    let name = Report::Sites.name();
    let (request, table) = if token.sites.is_empty() {
        let mut all = params.clone();
        all.remove("site");
        report(app, &token, name, &all).await?
    } else {
        // A site-scoped token reads its sites one by one: the all-sites report would tell it
        // whether rows of other sites were withheld.
        let mut merged: Option<(ReportRequest, Export)> = None;
        for site in &token.sites {
            let mut one = params.clone();
            one.insert("site".into(), site.clone());
            let (req, table) = report(app, &token, name, &one).await?;
            match &mut merged {
                None => merged = Some((req, table)),
                Some((_, m)) => {
                    m.rows.extend(table.rows);
                    m.suppressed += table.suppressed;
                }
            }
        }
        let (mut req, table) = merged
            .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "this token reads no site"))?;
        req.site = None;
        (req, table)
    };
    let body = table.json(&request).to_string().into_bytes();
    Ok(cached(
        headers,
        body,
        "application/json",
        freshness(&request),
    ))
}

/// `GET /v1/reports`: the reports this token may read.
async fn catalogue(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let token = match caller(&app, &headers).await {
        Ok(t) => t,
        Err(e) => return refused(&app, "-", e).await.into_response(),
    };
    let reports: Vec<serde_json::Value> = Report::ALL
        .into_iter()
        .filter(|r| token.allows_report(*r))
        .map(|r| serde_json::json!({ "name": r.name(), "title": r.title() }))
        .collect();
    let body = serde_json::json!({ "reports": reports, "sites": token.sites }).to_string();
    cached(
        &headers,
        body.into_bytes(),
        "application/json",
        "private, no-cache",
    )
}

/// A strong `ETag` for `body`: a quoted prefix of its SHA-256.
pub(crate) fn strong_etag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// Whether the request's `If-None-Match` names `etag`: the caller holds this body already.
pub(crate) fn holds(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// How long a browser may keep an answer: ranges that ended before yesterday change only with a
/// backfill; today's and yesterday's numbers grow, and `current` is now.
fn freshness(req: &ReportRequest) -> &'static str {
    if req.report == Report::Current {
        "private, no-cache"
    } else if req.to < Day::today().plus(-1) {
        "private, max-age=3600"
    } else {
        "private, max-age=60"
    }
}

/// An answer with `Cache-Control`, a strong `ETag` of its body, and `Vary` on what identifies
/// the caller; `304` when the caller holds this body already. The export is audited either way:
/// it was made.
fn cached(
    request: &HeaderMap,
    body: Vec<u8>,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let etag = strong_etag(&body);
    let current = holds(request, &etag);
    let headers = [
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        (
            header::VARY,
            HeaderValue::from_static("Authorization, Cookie"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex digits are a valid header"),
        ),
    ];
    if current {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut r = (headers, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
