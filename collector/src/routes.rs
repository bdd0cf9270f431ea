//! Request routing and the handlers: where a request becomes an event.
//!
//! [`App`] holds what every handler needs (cookie writer, trusted proxies, enrichment, sealer,
//! queue, metrics, privacy policy, signer). Handlers parse the request with [`crate::hit`], ask
//! [`PrivacyPolicy::withhold`] whether the visitor lets it be recorded, build [`Event`]s, push
//! them to the [`Queue`] and answer. Nothing here waits on ClickHouse. [`App::serve`] is the
//! server's entry point; only the beacon `/e` awaits anything (its body), so every other route
//! is answered by the synchronous [`App::handle`], which benchmarks call in process.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, REFERER, SET_COOKIE, USER_AGENT,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::cors::{self, AllowedOrigins, Verdict};
use crate::enrich::Enricher;
use crate::event::{Event, Kind};
use crate::hit::beacon::{self, BeaconError, BeaconEvent};
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
use crate::tracker;

/// Longest user agent kept, in bytes.
const USER_AGENT_MAX: usize = 512;
/// Largest beacon body read, in bytes: 50 events of ordinary size fit many times over.
pub const BEACON_BODY_MAX: usize = 64 * 1024;
/// Longest a client may take to send a beacon body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

pub struct App {
    pub cookie: CookieWriter,
    pub trusted_proxies: TrustedProxies,
    pub enricher: Enricher,
    pub sealer: Arc<Sealer>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SinkStatus>,
    pub privacy: PrivacyPolicy,
    pub opt_out_cookies: OptOutCookies,
    pub signer: Signer,
    /// Pages that may send beacons (any in --dev).
    pub allowed_origins: AllowedOrigins,
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

/// A beacon that was not accepted: what to count, and what to tell the client.
struct Refusal {
    reason: Rejection,
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn bad(reason: Rejection, message: impl Into<String>) -> Self {
        Self {
            reason,
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl App {
    /// Answers one request as the server does: `POST /e` reads its body, `OPTIONS /e` is a CORS
    /// preflight, and everything else is [`App::handle`].
    pub async fn serve<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if req.uri().path() == "/e" {
            if req.method() == Method::POST {
                return self.beacon(req, peer).await;
            }
            if req.method() == Method::OPTIONS {
                return self.preflight(req.headers());
            }
        }
        self.handle(&req, peer)
    }

    /// Answers every request that needs no body, without waiting. Generic over the body so
    /// benchmarks can call it in process.
    pub fn handle<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path();
        let allowed = match path {
            "/p.gif" | "/t.js" | "/healthz" | "/readyz" | "/metrics" | "/optout" | "/optin" => {
                "GET, HEAD"
            }
            "/e" => "POST, OPTIONS",
            _ if path.starts_with("/o/") => "GET, HEAD",
            _ => return response::json_error(StatusCode::NOT_FOUND, "no such endpoint"),
        };
        if path == "/e" || (req.method() != Method::GET && req.method() != Method::HEAD) {
            let mut r = response::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allowed));
            return r;
        }
        match path {
            "/p.gif" => self.pixel(req, peer),
            "/t.js" => tracker::response(req.headers()),
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
        let now = now_ms();
        let mut event = Event::new(Kind::Pageview, now);
        event.pageview_id = Id::from_uuid(event.event_id).to_string();
        self.describe_page(
            &mut event,
            query.site.as_deref(),
            raw_url,
            query.referrer.as_deref().unwrap_or_default(),
            query.title.as_deref().unwrap_or_default(),
        )?;
        self.stamp(&mut event, req.headers(), peer, visitor, now);
        self.link_customer(
            &mut event,
            query.customer_id.as_deref(),
            query.customer_signature.as_deref(),
        );
        Ok(event)
    }

    /// Fills in what a hit is about: site, page, referrer, title, campaign tags. Pixel and
    /// beacon hits share it, so both check and bound the same way.
    fn describe_page(
        &self,
        event: &mut Event,
        site: Option<&str>,
        raw_url: &str,
        raw_referrer: &str,
        raw_title: &str,
    ) -> Result<(), Rejection> {
        let site = site.ok_or(Rejection::MissingSite)?;
        if !valid_site(site) {
            return Err(Rejection::BadSite);
        }
        let page = Page::parse(raw_url).map_err(|e| match e {
            PageError::Missing => Rejection::MissingUrl,
            PageError::NotHttp => Rejection::BadUrl,
        })?;
        let mut truncated = page.truncated;
        let referrer = Referrer::parse(raw_referrer, &mut truncated);
        event.title = bounded(raw_title, TITLE_MAX, &mut truncated);
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
        Ok(())
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

    /// Fills in who sent a hit: visitor id, then [`App::stamp_client`].
    fn stamp(
        &self,
        event: &mut Event,
        headers: &HeaderMap,
        peer: SocketAddr,
        visitor: &Visitor,
        now: i64,
    ) {
        event.visitor_id = visitor.id.to_string();
        self.stamp_client(event, headers, peer, now);
    }

    /// Fills in the user agent, what the client IP and user agent tell (worked out before the
    /// IP is sealed), the sealed IP and its network; returns the IP.
    fn stamp_client(
        &self,
        event: &mut Event,
        headers: &HeaderMap,
        peer: SocketAddr,
        now: i64,
    ) -> IpAddr {
        let ip = self.trusted_proxies.client_ip(peer.ip(), headers);
        let ua = headers
            .get(USER_AGENT)
            // Checked as UTF-8 first: the lossy conversion walks a valid string far more slowly.
            .map(|v| match std::str::from_utf8(v.as_bytes()) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(v.as_bytes()),
            });
        let mut truncated = false;
        event.user_agent = bounded(
            ua.as_deref().unwrap_or_default(),
            USER_AGENT_MAX,
            &mut truncated,
        );
        if truncated {
            self.metrics.truncated("user_agent");
        }
        self.enricher.apply(event, ip);
        let (key_id, sealed) = self.sealer.seal(ip, now);
        event.ip_key_id = key_id;
        event.ip_sealed.0 = Some(sealed);
        event.ip_prefix = network_prefix(ip);
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
        let ip = self.stamp_client(&mut event, req.headers(), peer, now);
        event.via_proxy = email::is_image_proxy(&event.user_agent, ip);
        event.campaign = open.campaign;
        event.recipient = open.recipient;
        if let Err(reason) = self.accept(event) {
            self.metrics.rejected(reason);
        }
        answer
    }

    /// `POST /e`: events from the tracker, with the pixel's `consent`, `cid` and `cs` in the
    /// query string. `204` when every event was queued or the visitor lets nothing be recorded,
    /// `400` with the reason when any is bad (then none is stored), `403` for a page of a
    /// foreign origin.
    async fn beacon<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin = match self.allowed_origins.check(req.headers()) {
            Verdict::Allowed(origin) => Some(origin),
            Verdict::NoOrigin => None,
            Verdict::Refused => {
                self.metrics.rejected(Rejection::OriginNotAllowed);
                return response::json_error(
                    StatusCode::FORBIDDEN,
                    "this page's origin may not send events here",
                );
            }
        };
        let (parts, body) = req.into_parts();
        let query = PixelQuery::parse(parts.uri.query().unwrap_or_default());
        let consent = Consent::Signal(query.consent.as_deref());
        let mut answer = if let Some(reason) = self.privacy.withhold(&parts.headers, consent) {
            // Nothing of it is read or kept, and no cookie set; the page sees a normal answer.
            self.metrics.withheld(reason);
            response::empty(StatusCode::NO_CONTENT)
        } else {
            match self.accept_beacon(&parts.headers, &query, body, peer).await {
                Ok(answer) => answer,
                Err(refusal) => {
                    self.metrics.rejected(refusal.reason);
                    tracing::debug!(reason = %refusal.reason, message = %refusal.message, "beacon not stored");
                    response::json_error(refusal.status, &refusal.message)
                }
            }
        };
        if let Some(origin) = origin {
            cors::allow(answer.headers_mut(), origin);
        }
        answer
    }

    async fn accept_beacon<B>(
        &self,
        headers: &HeaderMap,
        query: &PixelQuery<'_>,
        body: B,
        peer: SocketAddr,
    ) -> Result<Response<Body>, Refusal>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let essence = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next());
        if !essence.is_some_and(|e| {
            ["application/json", "text/plain"]
                .iter()
                .any(|t| e.trim().eq_ignore_ascii_case(t))
        }) {
            return Err(Refusal::bad(
                Rejection::BadBeacon,
                "Content-Type must be application/json or text/plain",
            ));
        }
        let too_large = || {
            Refusal::bad(
                Rejection::BadBeacon,
                format!("the body is larger than {BEACON_BODY_MAX} bytes"),
            )
        };
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > BEACON_BODY_MAX as u64) {
            return Err(too_large());
        }
        let bytes = match tokio::time::timeout(
            BODY_READ_TIMEOUT,
            Limited::new(body, BEACON_BODY_MAX).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.is::<LengthLimitError>() => return Err(too_large()),
            Ok(Err(_)) => {
                return Err(Refusal::bad(
                    Rejection::BadBeacon,
                    "the body could not be read",
                ));
            }
            Err(_) => {
                return Err(Refusal {
                    reason: Rejection::BadBeacon,
                    status: StatusCode::REQUEST_TIMEOUT,
                    message: "the body took too long to arrive".into(),
                });
            }
        };
        let parsed = beacon::parse(&bytes).map_err(|error| {
            let reason = match error {
                BeaconError::EngagedTooLong { .. } => Rejection::DwellOutOfRange,
                _ => Rejection::BadBeacon,
            };
            Refusal::bad(reason, error.to_string())
        })?;

        let visitor = Visitor::from_headers(headers);
        let now = now_ms();
        let mut events = Vec::with_capacity(parsed.len());
        for (index, incoming) in parsed.into_iter().enumerate() {
            let mut event = self.beacon_event(incoming, now).map_err(|reason| {
                Refusal::bad(reason, format!("event {index}: {}", explain(reason)))
            })?;
            self.stamp(&mut event, headers, peer, &visitor, now);
            self.link_customer(
                &mut event,
                query.customer_id.as_deref(),
                query.customer_signature.as_deref(),
            );
            events.push(event);
        }
        for event in events {
            self.accept(event).map_err(|reason| Refusal {
                reason,
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the collector cannot keep events right now; try again later".into(),
            })?;
        }
        let mut answer = response::empty(StatusCode::NO_CONTENT);
        answer
            .headers_mut()
            .insert(SET_COOKIE, self.cookie.header(&visitor.id));
        Ok(answer)
    }

    /// The row of one beacon event, without who sent it (see [`App::stamp`]).
    fn beacon_event(&self, incoming: BeaconEvent, now: i64) -> Result<Event, Rejection> {
        let site = incoming.site().to_owned();
        let (mut event, url, referrer, title) = match incoming {
            BeaconEvent::Pageview {
                url,
                pageview_id,
                referrer,
                title,
                ..
            } => {
                let mut event = Event::new(Kind::Pageview, now);
                event.pageview_id = pageview_id;
                (event, url, referrer, title)
            }
            BeaconEvent::Engagement {
                url,
                pageview_id,
                engaged_ms,
                ..
            } => {
                let mut event = Event::new(Kind::Engagement, now);
                event.pageview_id = pageview_id;
                event.dwell_ms = engaged_ms;
                (event, url, String::new(), String::new())
            }
        };
        self.describe_page(&mut event, Some(&site), &url, &referrer, &title)?;
        Ok(event)
    }

    /// `OPTIONS /e`: the browser asks whether the page may post here with credentials.
    fn preflight(&self, headers: &HeaderMap) -> Response<Body> {
        let mut answer = response::empty(StatusCode::NO_CONTENT);
        match self.allowed_origins.check(headers) {
            Verdict::Allowed(origin) => cors::allow_preflight(answer.headers_mut(), origin),
            Verdict::NoOrigin => {
                answer
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            }
            Verdict::Refused => {
                return response::json_error(
                    StatusCode::FORBIDDEN,
                    "this page's origin may not send events here",
                );
            }
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

/// What a beacon client is told about a page field the pixel would have dropped.
fn explain(reason: Rejection) -> &'static str {
    match reason {
        Rejection::MissingSite => "`site` is missing",
        Rejection::BadSite => "`site` must be 1 to 128 letters, digits, '.', '-', '_' or ':'",
        Rejection::MissingUrl => "`url` is missing",
        Rejection::BadUrl => "`url` is not an absolute http(s) URL",
        _ => "the event was refused",
    }
}
