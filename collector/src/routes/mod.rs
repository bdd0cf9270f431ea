//! Request routing: where a request becomes an event.
//!
//! [`App`] holds what every handler needs (cookie writer, trusted proxies, enrichment, sealer,
//! queue, metrics, privacy policy, signer), built by [`App::new`] from the options alone, so the
//! server and the benchmarks run the same app. A request's path is parsed once into a
//! [`Route`]. [`App::serve`] is the server's entry point; only the
//! beacon `/e` awaits anything (its body), so every other route is answered by the synchronous
//! [`App::handle`], which benchmarks call in process. Each endpoint's handler has a file of its
//! own; what they share lives here: describing the page, stamping who sent a hit (visitor id,
//! enrichment, sealed IP), linking a customer, and handing the event to the sink.
//! Handlers ask [`PrivacyPolicy::withhold`] first whether the visitor lets a hit be recorded,
//! then `App::client_ip` who the client is and `App::within_rate_limit` whether it has sent
//! enough for now.

mod beacon;
mod email;
mod health;
mod opt_out;
mod pixel;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use compact_str::CompactString;
use http::header::{ALLOW, HeaderMap, HeaderValue, USER_AGENT};
use http::{Method, Request, Response, StatusCode};

pub use self::beacon::BEACON_BODY_MAX;
use crate::config::{ConsentMode, SameSite, ServeArgs};
use crate::cors::AllowedOrigins;
use crate::enrich::Enricher;
use crate::enrich::client_hints::Hints;
use crate::enrich::geoip::GeoIp;
use crate::hit::client_ip::{TrustedProxies, network_prefix};
use crate::hit::customer::{self, Link, LinkPolicy};
use crate::hit::mask::mask_emails;
use crate::hit::page::{KeptParams, Page, PageError, Referrer, TITLE_MAX, bounded};
use crate::hit::privacy::{OptOutCookies, PrivacyPolicy};
use crate::hit::props::{self, Props};
use crate::hit::visitor::{CookiePolicy, CookieWriter, Visitor};
use crate::metrics::{Metrics, Rejection};
use crate::rate_limit::RateLimit;
use crate::response::{self, Body};
use crate::sealer::Sealer;
use crate::signing::Signer;
use crate::sink::record::Row;
use crate::sink::{Queue, SinkStatus};
use crate::tracker;
use footfall_store::event::Event;
use footfall_store::site::valid_site;

/// Longest user agent kept, in bytes.
const USER_AGENT_MAX: usize = 512;

/// Answers every endpoint. Built once by [`App::new`] from the options `serve` runs with.
pub struct App {
    cookie: CookieWriter,
    trusted_proxies: TrustedProxies,
    enricher: Enricher,
    sealer: Arc<Sealer>,
    queue: Queue,
    metrics: Arc<Metrics>,
    status: Arc<SinkStatus>,
    privacy: PrivacyPolicy,
    opt_out_cookies: OptOutCookies,
    signer: Signer,
    customer_links: LinkPolicy,
    /// Query parameters stored URLs keep.
    kept_params: KeptParams,
    /// Pages that may send beacons (any in --dev).
    allowed_origins: AllowedOrigins,
    /// Hits a second per client, if limited.
    rate_limit: Option<Arc<RateLimit>>,
    /// New visitors a day per network, if capped.
    new_visitors: Option<Arc<RateLimit>>,
}

/// What an [`App`] shares with the rest of a running collector: where its events go (the
/// sink's queue and state), the sealer whose keys the sink stores, the metrics, and the GeoIP
/// database and rate limiter that background tasks keep up to date.
pub struct Wiring {
    pub queue: Queue,
    pub status: Arc<SinkStatus>,
    pub sealer: Arc<Sealer>,
    pub metrics: Arc<Metrics>,
    pub geoip: Option<Arc<GeoIp>>,
    pub rate_limit: Option<Arc<RateLimit>>,
    pub new_visitors: Option<Arc<RateLimit>>,
}

/// The endpoints, told apart once per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Pixel,
    Tracker,
    Beacon,
    EmailOpen,
    OptOut,
    OptIn,
    Health,
    Ready,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "/p.gif" => Route::Pixel,
            "/t.js" => Route::Tracker,
            "/e" => Route::Beacon,
            "/optout" => Route::OptOut,
            "/optin" => Route::OptIn,
            "/healthz" => Route::Health,
            "/readyz" => Route::Ready,
            _ if path.starts_with("/o/") => Route::EmailOpen,
            _ => return None,
        })
    }

    /// The `Allow` header of the route.
    fn allowed(self) -> &'static str {
        match self {
            Route::Beacon => "POST, OPTIONS",
            // The confirmation page's button posts the choice.
            Route::OptOut | Route::OptIn => "GET, HEAD, POST",
            _ => "GET, HEAD",
        }
    }

    /// Whether [`App::handle`] answers `method` on the route (the beacon's are served by
    /// [`App::serve`], which reads the body).
    fn takes(self, method: &Method) -> bool {
        match *method {
            Method::GET | Method::HEAD => self != Route::Beacon,
            Method::POST => matches!(self, Route::OptOut | Route::OptIn),
            _ => false,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl App {
    /// The app `serve` runs with `args`, signing with `secret`, recording into `wiring`.
    pub fn new(args: &ServeArgs, secret: &[u8], wiring: Wiring) -> Self {
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
        Self {
            cookie: CookieWriter::new(&cookie_policy),
            opt_out_cookies: OptOutCookies::new(&cookie_policy),
            privacy: PrivacyPolicy {
                honor_dnt: args.honor_dnt,
                honor_gpc: args.honor_gpc,
                consent_required: args.consent == ConsentMode::Required,
            },
            signer: Signer::new(secret),
            customer_links: LinkPolicy {
                signer: Signer::new(secret),
                max_age_secs: args.links.max_age_secs(),
            },
            kept_params: args.keep_query_params.clone(),
            trusted_proxies: args.trusted_proxies.clone(),
            enricher: Enricher::new(wiring.geoip),
            sealer: wiring.sealer,
            queue: wiring.queue,
            metrics: wiring.metrics,
            status: wiring.status,
            allowed_origins: if args.dev {
                AllowedOrigins::any()
            } else {
                args.allowed_origins.clone()
            },
            rate_limit: wiring.rate_limit,
            new_visitors: wiring.new_visitors,
        }
    }

    /// Answers one request as the server does: `POST /e` reads its body, `OPTIONS /e` is a CORS
    /// preflight, and everything else is [`App::handle`].
    pub async fn serve<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.answer_now(&req, peer) {
            Some(answer) => answer,
            None => self.beacon(req, peer).await,
        }
    }

    /// The answer to every request but a beacon (`POST /e`), which waits for its body: `None`
    /// for that one.
    pub fn answer_now<B>(&self, req: &Request<B>, peer: SocketAddr) -> Option<Response<Body>> {
        let route = Route::parse(req.uri().path());
        if route == Some(Route::Beacon) {
            if req.method() == Method::POST {
                return None;
            }
            if req.method() == Method::OPTIONS {
                return Some(self.preflight(req.headers()));
            }
        }
        Some(self.answer(route, req, peer))
    }

    /// Answers every request that needs no body, without waiting. Generic over the body so
    /// benchmarks can call it in process.
    pub fn handle<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        self.answer(Route::parse(req.uri().path()), req, peer)
    }

    fn answer<B>(
        &self,
        route: Option<Route>,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let Some(route) = route else {
            return response::json_error(StatusCode::NOT_FOUND, "no such endpoint");
        };
        if !route.takes(req.method()) {
            let mut r = response::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(route.allowed()));
            return r;
        }
        match route {
            Route::Pixel => self.pixel(req, peer),
            Route::Tracker => tracker::response(req.headers()),
            Route::Health => response::text(StatusCode::OK, "text/plain", "ok\n"),
            Route::Ready => self.readiness(),
            Route::OptOut => self.opt(req, true),
            Route::OptIn => self.opt(req, false),
            Route::EmailOpen => self.email_open(req, peer),
            Route::Beacon => unreachable!("answered above"),
        }
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
        let page = Page::parse(raw_url, &self.kept_params).map_err(|e| match e {
            PageError::Missing => Rejection::MissingUrl,
            PageError::NotHttp => Rejection::BadUrl,
        })?;
        let mut truncated = page.truncated;
        let referrer = Referrer::parse(raw_referrer, &self.kept_params, &mut truncated);
        event.title = bounded(&mask_emails(raw_title), TITLE_MAX, &mut truncated);
        if truncated {
            self.metrics.truncated("page");
        }
        event.site = CompactString::new(site);
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

    /// Makes `event` the custom event `name` with `raw_props`, bounded (see [`crate::hit::props`]);
    /// properties cut or left out are counted, a bad name refuses the event.
    fn describe_custom<K: AsRef<str>, V: AsRef<str>>(
        &self,
        event: &mut Event,
        name: &str,
        raw_props: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), Rejection> {
        event.kind = footfall_store::event::Kind::Custom;
        event.event_name = props::event_name(name).map_err(|_| Rejection::BadEvent)?;
        let bounded = Props::bound(raw_props);
        for _ in 0..bounded.cut {
            self.metrics.truncated("props");
        }
        event.props = bounded.pairs;
        Ok(())
    }

    /// Hands a well-formed event to the sink, as its spool record, unless the sink cannot keep
    /// it. Events are boxed from the start: moving a 700-byte row through the handlers was a
    /// visible cost.
    fn accept(&self, event: Box<Event>) -> Result<(), Rejection> {
        if let Some(refused) = self.status.refusal() {
            return Err(refused);
        }
        self.queue
            .push(Row::of(&event))
            .map_err(|_| Rejection::Overloaded)?;
        self.metrics.accepted(event.kind, event.is_bot);
        Ok(())
    }

    /// Hands all of a beacon's events to the sink, or none: a refused beacon stores nothing.
    #[allow(clippy::vec_box)]
    fn accept_all(&self, events: Vec<Box<Event>>) -> Result<(), Rejection> {
        if let Some(refused) = self.status.refusal() {
            return Err(refused);
        }
        let rows = events.iter().map(|event| Row::of(event)).collect();
        self.queue
            .push_all(rows)
            .map_err(|_| Rejection::Overloaded)?;
        for event in &events {
            self.metrics.accepted(event.kind, event.is_bot);
        }
        Ok(())
    }

    /// The client's address: behind trusted proxies, the visitor's.
    fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        self.trusted_proxies.client_ip(peer.ip(), headers)
    }

    /// Whether `ip` may have `hits` more hits recorded now, if there is a rate limit.
    fn within_rate_limit(&self, ip: IpAddr, hits: NonZeroU32) -> Result<(), Rejection> {
        match &self.rate_limit {
            Some(limit) if !limit.allows(ip, hits) => Err(Rejection::RateLimited),
            _ => Ok(()),
        }
    }

    /// Marks a new visitor from a network past its daily cap of new visitors: its hits are
    /// stored as not counted, and it gets no cookie (with one, its next hits would count).
    fn admit(&self, visitor: &mut Visitor, ip: IpAddr) {
        if let Some(cap) = &self.new_visitors
            && !visitor.returning
            && !cap.allows(ip, NonZeroU32::MIN)
        {
            visitor.capped = true;
            self.metrics.new_visitors_capped.inc();
        }
    }

    /// Fills in who sent a hit: visitor id (a capped new visitor's hits are not counted, as
    /// bots' are not), then [`App::stamp_client`].
    fn stamp(
        &self,
        event: &mut Event,
        headers: &HeaderMap,
        ip: IpAddr,
        visitor: &Visitor,
        now: i64,
    ) {
        event.visitor_id = CompactString::new(visitor.id.as_str());
        self.stamp_client(event, headers, ip, now);
        event.is_bot |= visitor.capped;
    }

    /// Fills in the user agent, what the client IP and user agent tell (worked out before the
    /// IP is sealed), the sealed IP and its network.
    fn stamp_client(&self, event: &mut Event, headers: &HeaderMap, ip: IpAddr, now: i64) {
        let ua = headers
            .get(USER_AGENT)
            // Checked as UTF-8 first: the lossy conversion walks a valid string far more slowly.
            .map(|v| match std::str::from_utf8(v.as_bytes()) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(v.as_bytes()),
            });
        let ua = ua.as_deref().unwrap_or_default();
        let mut truncated = false;
        event.user_agent = bounded(ua, USER_AGENT_MAX, &mut truncated);
        if truncated {
            self.metrics.truncated("user_agent");
        }
        self.enricher
            .apply(event, ip, ua, Hints::from_headers(headers));
        let (key_id, sealed) = self.sealer.seal(ip, now);
        event.ip_key_id = key_id;
        event.ip_sealed.0 = Some(sealed);
        event.ip_prefix = network_prefix(ip);
    }

    /// Puts the customer id of a valid link (`cid`, `cs`) for the event's site on `event`, if
    /// the request came from the site's own page; a forged, expired or refused link is counted
    /// and left out, and the hit is recorded unlinked.
    pub fn link_customer(
        &self,
        event: &mut Event,
        headers: &HeaderMap,
        id: Option<&str>,
        token: Option<&str>,
    ) {
        let own_page = customer::fetched_by_own_page(headers);
        let now = event.ts.div_euclid(1000);
        match customer::verify(id, token, &event.site, now, own_page, &self.customer_links) {
            Link::Valid(customer) => event.customer_id = customer.into_string().into(),
            Link::Rejected(reason) => self.metrics.customer_link_rejected(reason),
            Link::Absent => {}
        }
    }
}

#[cfg(test)]
mod tests;
