//! Request routing and the handlers: where a request becomes an event.
//!
//! [`App`] holds what every handler needs (cookie writer, trusted proxies, sealer, queue,
//! metrics). Handlers are plain functions of the request: they parse it with [`crate::hit`],
//! build an [`Event`], push it to the [`Queue`] and answer. Nothing here waits on ClickHouse.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{ALLOW, HeaderValue, REFERER, SET_COOKIE, USER_AGENT};
use http::{Method, Request, Response, StatusCode};

use crate::event::{Event, Kind};
use crate::hit::client_ip::{TrustedProxies, network_prefix};
use crate::hit::page::{Page, PageError, Referrer, TITLE_MAX, bounded};
use crate::hit::query::{PixelQuery, valid_site};
use crate::hit::visitor::{CookieWriter, Visitor};
use crate::id::Id;
use crate::metrics::{Metrics, Rejection};
use crate::response::{self, Body};
use crate::sealer::Sealer;
use crate::sink::{Queue, SinkStatus};

/// Longest user agent kept, in bytes.
const USER_AGENT_MAX: usize = 512;

pub struct App {
    pub cookie: CookieWriter,
    pub trusted_proxies: TrustedProxies,
    pub sealer: Arc<Sealer>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SinkStatus>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl App {
    /// Answers one request. Generic over the body so benchmarks can call it in process.
    pub fn handle<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path();
        let allowed = match path {
            "/p.gif" | "/healthz" | "/readyz" | "/metrics" => "GET, HEAD",
            _ => return response::json_error(StatusCode::NOT_FOUND, "no such endpoint"),
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = response::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allowed));
            return r;
        }
        match path {
            "/p.gif" => self.pixel(req, peer),
            "/healthz" => response::text(StatusCode::OK, "text/plain", "ok\n"),
            "/readyz" => self.readiness(),
            _ => self.metrics_text(),
        }
    }

    /// `GET /p.gif`: always the GIF; the hit is stored only if it is well formed. `HEAD` (link
    /// checkers, crawlers) answers the same headers and records nothing.
    pub fn pixel<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        if req.method() == Method::HEAD {
            return response::gif();
        }
        let visitor = Visitor::from_headers(req.headers());
        let mut answer = response::gif();
        match self.pageview(req, peer, &visitor) {
            Ok(event) => match self.accept(event) {
                Ok(()) => {
                    let cookie = self.cookie.header(&visitor.id);
                    answer.headers_mut().insert(SET_COOKIE, cookie);
                }
                Err(reason) => self.metrics.rejected(reason),
            },
            Err(reason) => {
                self.metrics.rejected(reason);
                tracing::debug!(%reason, "pixel hit not stored");
            }
        }
        answer
    }

    fn pageview<B>(
        &self,
        req: &Request<B>,
        peer: SocketAddr,
        visitor: &Visitor,
    ) -> Result<Event, Rejection> {
        let query = PixelQuery::parse(req.uri().query().unwrap_or_default());
        let site = query.site.as_deref().ok_or(Rejection::MissingSite)?;
        if !valid_site(site) {
            return Err(Rejection::BadSite);
        }
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let raw_url = query
            .url
            .as_deref()
            .filter(|u| !u.is_empty())
            .or_else(|| header(REFERER))
            .unwrap_or_default();
        let page = Page::parse(raw_url).map_err(|e| match e {
            PageError::Missing => Rejection::MissingUrl,
            PageError::NotHttp => Rejection::BadUrl,
        })?;

        let now = now_ms();
        let mut event = Event::new(Kind::Pageview, now);
        event.pageview_id = Id::from_uuid(event.event_id).to_string();
        self.stamp(&mut event, req, peer, visitor, now);
        let mut truncated = page.truncated;
        let referrer = Referrer::parse(
            query.referrer.as_deref().unwrap_or_default(),
            &mut truncated,
        );
        event.title = bounded(
            query.title.as_deref().unwrap_or_default(),
            TITLE_MAX,
            &mut truncated,
        );
        if truncated {
            self.metrics.truncated("page");
        }
        event.site = site.to_owned();
        event.url = page.url;
        event.host = page.host;
        event.path = page.path;
        event.utm_source = page.utm.source;
        event.utm_medium = page.utm.medium;
        event.utm_campaign = page.utm.campaign;
        event.utm_term = page.utm.term;
        event.utm_content = page.utm.content;
        event.referrer = referrer.url;
        event.referrer_host = referrer.host;
        Ok(event)
    }

    /// Hands a well-formed event to the sink, unless the sink cannot keep it.
    fn accept(&self, event: Event) -> Result<(), Rejection> {
        if !self.status.accepting() {
            return Err(Rejection::SpoolFull);
        }
        let kind = event.kind;
        self.queue.push(event).map_err(|_| Rejection::Overloaded)?;
        self.metrics.accepted(kind);
        Ok(())
    }

    /// Fills in who sent a hit: visitor id, sealed IP and its network, user agent.
    fn stamp<B>(
        &self,
        event: &mut Event,
        req: &Request<B>,
        peer: SocketAddr,
        visitor: &Visitor,
        now: i64,
    ) {
        let ip = self.trusted_proxies.client_ip(peer.ip(), req.headers());
        let (key_id, sealed) = self.sealer.seal(ip, now);
        event.visitor_id = visitor.id.to_string();
        event.ip_key_id = key_id;
        event.ip_sealed.0 = Some(sealed);
        event.ip_prefix = network_prefix(ip);
        let ua = req
            .headers()
            .get(USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        let mut truncated = false;
        event.user_agent = bounded(
            ua.as_deref().unwrap_or_default(),
            USER_AGENT_MAX,
            &mut truncated,
        );
        if truncated {
            self.metrics.truncated("user_agent");
        }
    }

    /// `GET /readyz`: 200 while hits are accepted and kept, 503 with the reason otherwise. An
    /// unreachable ClickHouse alone does not fail it: the spool keeps the hits meanwhile.
    fn readiness(&self) -> Response<Body> {
        if !self.status.accepting() {
            return response::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "spool full: ClickHouse unreachable for long\n",
            );
        }
        if self.queue.depth() >= self.queue.capacity() {
            return response::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "queue full\n",
            );
        }
        response::text(StatusCode::OK, "text/plain", "ready\n")
    }

    fn metrics_text(&self) -> Response<Body> {
        self.metrics.queue_depth.set(self.queue.depth() as i64);
        response::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            self.metrics.render(),
        )
    }
}
