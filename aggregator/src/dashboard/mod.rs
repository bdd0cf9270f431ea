//! The dashboard at `/`: sign in with a report token, then one page per site and range, made on
//! the server from the report API's own functions ([`crate::api::report`]), so every number is
//! the CSV's, anonymised, scoped and audited exactly like it.
//!
//! No JavaScript: the page is HTML with an SVG chart ([`chart`]) and plain tables, the range is
//! a form and links, every table links to its CSV. Styles are one stylesheet embedded in the
//! binary ([`assets`]). Pages are sent with a strict Content-Security-Policy, and sign-in and
//! sign-out are same-origin `POST`s only.

mod assets;
mod chart;
mod page;
mod range;

use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::{self, ApiError, Params};
use crate::day::Day;
use crate::report::{self, Export, Report};
use crate::serve::App;
use crate::session;
use crate::token::{self, Token};

pub(crate) use range::Range;

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/assets/{name}", get(assets::serve))
}

/// A report as the page shows it: the table, or why it is missing.
pub(crate) enum Loaded {
    Table(Export),
    /// Out of this token's scope: not shown at all.
    Forbidden,
    Failed(String),
}

impl Loaded {
    pub fn table(&self) -> Option<&Export> {
        match self {
            Loaded::Table(t) => Some(t),
            _ => None,
        }
    }
}

/// Everything one view of the dashboard shows.
pub(crate) struct View {
    pub token: Token,
    pub sites: Vec<String>,
    pub site: Option<String>,
    pub range: Range,
    pub compare: bool,
    pub dev: bool,
    pub min_visitors: u32,
    pub min_networks: u32,
    pub epsilon: Option<f64>,
    /// Every report of the view, in the catalogue's order.
    pub reports: Vec<(Report, Loaded)>,
    /// The `sites` report of the period before, when comparing.
    pub previous: Option<Loaded>,
}

impl View {
    pub fn get(&self, r: Report) -> Option<&Loaded> {
        self.reports.iter().find(|(k, _)| *k == r).map(|(_, l)| l)
    }
}

/// Reports the dashboard does not show as a table of their own, or cannot run without more
/// parameters than a site and a range.
fn shown(r: Report, one_day: bool, site_scoped: bool) -> bool {
    match r {
        Report::Hourly => one_day,
        Report::Daily => !one_day,
        Report::Email => !site_scoped,
        _ => true,
    }
}

async fn dashboard(
    State(app): State<Arc<App>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let token = match api::caller(&app, &headers).await {
        Ok(t) => t,
        Err(ApiError(StatusCode::UNAUTHORIZED, ..)) => {
            return html(StatusCode::OK, page::login(app.dev, None));
        }
        Err(ApiError(status, reason, _)) => return html(status, page::problem(&reason)),
    };
    let today = Day::today();
    let range = match Range::from_params(&params, today) {
        Ok(r) => r,
        Err(reason) => return html(StatusCode::BAD_REQUEST, page::problem(&reason)),
    };
    let sites = if token.sites.is_empty() {
        match report::site_names(&app.client).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "sites not listed");
                return html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    page::problem("The reports are unavailable right now."),
                );
            }
        }
    } else {
        token.sites.clone()
    };
    let site = params
        .get("site")
        .filter(|s| sites.contains(s))
        .or(sites.first())
        .cloned();
    let compare = params.get("compare").is_some_and(|v| v == "1");
    let mut reports = Vec::new();
    let mut previous = None;
    if let Some(site) = &site {
        let base: Params = [
            ("from".to_owned(), range.from.to_string()),
            ("to".to_owned(), range.to.to_string()),
            ("site".to_owned(), site.clone()),
        ]
        .into();
        let one_day = range.days() == 1;
        let mut tasks = tokio::task::JoinSet::new();
        for (i, r) in Report::ALL
            .into_iter()
            .filter(|r| token.allows_report(*r) && shown(*r, one_day, !token.sites.is_empty()))
            .enumerate()
        {
            let (app, token, params) = (app.clone(), token.clone(), base.clone());
            tasks.spawn(async move { (i, r, load(&app, &token, r, &params).await) });
        }
        if compare {
            let before = range.previous();
            let mut params = base.clone();
            params.insert("from".into(), before.from.to_string());
            params.insert("to".into(), before.to.to_string());
            let (app, token) = (app.clone(), token.clone());
            tasks.spawn(async move {
                (
                    usize::MAX,
                    Report::Sites,
                    load(&app, &token, Report::Sites, &params).await,
                )
            });
        }
        let mut loaded = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((usize::MAX, _, l)) => previous = Some(l),
                Ok((i, r, l)) => loaded.push((i, r, l)),
                Err(e) => tracing::error!(error = %e, "a report task failed"),
            }
        }
        loaded.sort_by_key(|(i, _, _)| *i);
        reports = loaded.into_iter().map(|(_, r, l)| (r, l)).collect();
    }
    let view = View {
        token,
        sites,
        site,
        range,
        compare,
        dev: app.dev,
        min_visitors: app.rules.min_visitors,
        min_networks: app.rules.min_networks,
        epsilon: app.rules.noise.as_ref().map(|n| n.epsilon().as_f64()),
        reports,
        previous,
    };
    html(StatusCode::OK, page::dashboard(&view))
}

async fn load(app: &App, token: &Token, r: Report, params: &Params) -> Loaded {
    match api::report(app, token, r.name(), params).await {
        Ok((_, table)) => Loaded::Table(table),
        Err(e @ ApiError(StatusCode::FORBIDDEN, ..)) => {
            api::refused(app, &token.name, e).await;
            Loaded::Forbidden
        }
        Err(ApiError(_, reason, _)) => Loaded::Failed(reason),
    }
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

/// `POST /login`: a valid token opens a session; anything else shows the form again.
async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !same_origin(&headers) {
        return html(
            StatusCode::FORBIDDEN,
            page::problem("Sign in from this dashboard's own page."),
        );
    }
    let presented = form.token.trim();
    match token::verify(&app.client, presented).await {
        Ok(Some(t)) => {
            let id = app.sessions.open(presented);
            tracing::info!(token = t.name, "signed in to the dashboard");
            let mut r = Redirect::to("/").into_response();
            set_cookie(&mut r, &session::set_cookie(Some(&id), https(&headers)));
            r
        }
        Ok(None) => html(
            StatusCode::UNAUTHORIZED,
            page::login(app.dev, Some("That token is not valid, or it was revoked.")),
        ),
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            html(
                StatusCode::SERVICE_UNAVAILABLE,
                page::login(
                    app.dev,
                    Some("Sign-in is unavailable right now; try again shortly."),
                ),
            )
        }
    }
}

/// `POST /logout`: ends the session here and in the browser.
async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return html(
            StatusCode::FORBIDDEN,
            page::problem("Sign out from this dashboard's own page."),
        );
    }
    if let Some(id) = session::id_from(&headers) {
        app.sessions.close(&id);
    }
    let mut r = Redirect::to("/").into_response();
    set_cookie(&mut r, &session::set_cookie(None, https(&headers)));
    r
}

fn set_cookie(r: &mut Response, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Reached over HTTPS through the TLS proxy: the session cookie is then `Secure`.
fn https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A form post from this dashboard's own pages: `Origin` (when the browser sends it) names the
/// host the request was sent to, and `Sec-Fetch-Site` (when sent) is not cross-site.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let authority = origin.split_once("://").map_or("", |(_, a)| a);
            host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
        }
    };
    let fetch_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|v| matches!(v.as_bytes(), b"same-origin" | b"none"));
    origin_ok && fetch_ok
}

fn html(status: StatusCode, body: maud::Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // `same-origin`, not `no-referrer`: with the latter, browsers send `Origin: null` on the
            // sign-in post, which [`same_origin`] then refuses.
            (header::REFERRER_POLICY, "same-origin"),
        ],
        body.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_posts_are_taken() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[("host", "127.0.0.1:8090")])));
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:8090"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8090"),
            ("sec-fetch-site", "cross-site")
        ])));
    }
}
