//! Request routing and the handlers: where a request becomes an event.
//!
//! [`App`] holds what every handler needs (cookie writer, trusted proxies, sealer, queue,
//! metrics, privacy policy, signer). Handlers are plain functions of the request: they parse it
//! with [`crate::hit`], ask [`PrivacyPolicy::withhold`] whether the visitor lets it be recorded,
//! build an [`Event`], push it to the [`Queue`] and answer. Nothing here waits on ClickHouse.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{ALLOW, HeaderValue, REFERER, SET_COOKIE, USER_AGENT};
use http::{Method, Request, Response, StatusCode};

use crate::event::{Event, Kind};
use crate::hit::client_ip::{TrustedProxies, network_prefix};
use crate::hit::customer::{self, Link};
use crate::hit::email;
use crate::hit::page::{Page, PageError, Referrer, TITLE_MAX, bounded};
use crate::hit::privacy::{Consent, OptOutCookies, PrivacyPolicy, RETURN_PARAM, safe_return};
use crate::hit::query::{PixelQuery, valid_site};
use crate::hit::visitor::{CookieWriter, Visitor};
use crate::id::Id;
use crate::metrics::{Metrics, Rejection};
use crate::response::{self, Body};
use crate::sealer::Sealer;
use crate::signing::Signer;
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
    pub privacy: PrivacyPolicy,
    pub opt_out_cookies: OptOutCookies,
    pub signer: Signer,
}

const OPTED_OUT_PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Opted out</title>\
<p>You have opted out. This browser's visits are no longer recorded, and its visitor cookie has been removed.</p>\
<p>The choice is kept in a cookie named ff_optout; if you clear your cookies, opt out again.</p></html>\n";
const OPTED_IN_PAGE: &str = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Opted in</title>\
<p>You have opted in again. This browser's visits are recorded as the site's privacy policy describes.</p></html>\n";

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
            "/p.gif" | "/healthz" | "/readyz" | "/metrics" | "/optout" | "/optin" => "GET, HEAD",
            _ if path.starts_with("/o/") => "GET, HEAD",
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
            "/optout" => self.opt(req, true),
            "/optin" => self.opt(req, false),
            _ if path.starts_with("/o/") => self.email_open(req, peer),
            _ => self.metrics_text(),
        }
    }

    /// `GET /p.gif`: always the GIF; the hit is stored only if it is well formed and the visitor
    /// lets it be recorded (no opt-out, DNT, GPC; consent if required). `HEAD` (link checkers,
    /// crawlers) answers the same headers and records nothing.
    pub fn pixel<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        if req.method() == Method::HEAD {
            return response::gif();
        }
        let mut answer = response::gif();
        let query = PixelQuery::parse(req.uri().query().unwrap_or_default());
        if let Some(reason) = self
            .privacy
            .withhold(req.headers(), Consent::Signal(query.consent.as_deref()))
        {
            self.metrics.withheld(reason);
            return answer;
        }
        let visitor = Visitor::from_headers(req.headers());
        match self.pageview(req, &query, peer, &visitor) {
            Ok(event) => match self.accept(event) {
                Ok(()) => {
                    answer
                        .headers_mut()
                        .insert(SET_COOKIE, self.cookie.header(&visitor.id));
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
        query: &PixelQuery<'_>,
        peer: SocketAddr,
        visitor: &Visitor,
    ) -> Result<Event, Rejection> {
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
        self.link_customer(
            &mut event,
            query.customer_id.as_deref(),
            query.customer_signature.as_deref(),
        );
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
        event.visitor_id = visitor.id.to_string();
        self.stamp_client(event, req, peer, now);
    }

    /// Fills in the sealed client IP, its network and the user agent; returns the IP.
    fn stamp_client<B>(
        &self,
        event: &mut Event,
        req: &Request<B>,
        peer: SocketAddr,
        now: i64,
    ) -> IpAddr {
        let ip = self.trusted_proxies.client_ip(peer.ip(), req.headers());
        let (key_id, sealed) = self.sealer.seal(ip, now);
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
        ip
    }

    /// Puts the customer id of a validly signed link (`cid`, `cs`) on `event`; a forged link is
    /// counted and left out, and the hit is recorded unlinked.
    pub fn link_customer(&self, event: &mut Event, id: Option<&str>, signature: Option<&str>) {
        match customer::verify(id, signature, &self.signer) {
            Link::Valid(customer) => event.customer_id = customer.into_string(),
            Link::Forged => self.metrics.customer_link_rejected(),
            Link::Absent => {}
        }
    }

    /// `GET /o/{token}.gif`: the email-open marker. Always the GIF, never a cookie; the open is
    /// recorded only for a token this collector's secret signed, and unless the reader opted
    /// out (or sends DNT / GPC). Opens by mail providers' image proxies are flagged `via_proxy`.
    fn email_open<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        let answer = response::gif();
        if req.method() == Method::HEAD {
            return answer;
        }
        let token = req
            .uri()
            .path()
            .strip_prefix("/o/")
            .and_then(|rest| rest.strip_suffix(".gif"));
        let Some(open) = token.and_then(|token| email::open(token, &self.signer)) else {
            self.metrics.rejected(Rejection::BadEmailToken);
            tracing::debug!("email marker with an invalid token not stored");
            return answer;
        };
        if let Some(reason) = self.privacy.withhold(req.headers(), Consent::NotApplicable) {
            self.metrics.withheld(reason);
            return answer;
        }
        let now = now_ms();
        let mut event = Event::new(Kind::EmailOpen, now);
        let ip = self.stamp_client(&mut event, req, peer, now);
        event.via_proxy = email::is_image_proxy(&event.user_agent, ip);
        event.campaign = open.campaign;
        event.recipient = open.recipient;
        if let Err(reason) = self.accept(event) {
            self.metrics.rejected(reason);
        }
        answer
    }

    /// `GET /optout` (`out`) and `GET /optin`: set or clear `ff_optout` (opting out also expires
    /// `ff_id`), then a confirmation page, or a redirect to `return` when it is on the site the
    /// visitor came from ([`safe_return`]).
    fn opt<B>(&self, req: &Request<B>, out: bool) -> Response<Body> {
        let query = req.uri().query().unwrap_or_default();
        let return_to = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == RETURN_PARAM)
            .map(|(_, v)| v);
        let mut answer = match safe_return(return_to.as_deref(), req.headers()) {
            Some(url) => response::redirect(url.as_str()),
            None => response::html(if out { OPTED_OUT_PAGE } else { OPTED_IN_PAGE }),
        };
        let cookies = if out {
            &self.opt_out_cookies.opt_out[..]
        } else {
            std::slice::from_ref(&self.opt_out_cookies.opt_in)
        };
        for cookie in cookies {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                answer.headers_mut().append(SET_COOKIE, value);
            }
        }
        answer
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
