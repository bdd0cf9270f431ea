//! Request routing: where a request becomes an event.
//!
//! [`App`] holds what every handler needs (cookie writer, trusted proxies, enrichment, sealer,
//! queue, metrics, privacy policy, signer). [`App::serve`] is the server's entry point; only the
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
use crate::cors::AllowedOrigins;
use crate::enrich::Enricher;
use crate::hit::client_ip::{TrustedProxies, network_prefix};
use crate::hit::customer::{self, Link, LinkPolicy};
use crate::hit::mask::mask_emails;
use crate::hit::page::{KeptParams, Page, PageError, Referrer, TITLE_MAX, bounded};
use crate::hit::privacy::{OptOutCookies, PrivacyPolicy};
use crate::hit::props::{self, Props};
use crate::hit::visitor::{CookieWriter, Visitor};
use crate::metrics::{Metrics, Rejection};
use crate::rate_limit::RateLimit;
use crate::response::{self, Body};
use crate::sealer::Sealer;
use crate::signing::Signer;
use crate::sink::{Queue, SinkStatus};
use crate::tracker;
use footfall_store::event::Event;
use footfall_store::site::valid_site;

/// Longest user agent kept, in bytes.
const USER_AGENT_MAX: usize = 512;

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
    pub customer_links: LinkPolicy,
    /// Query parameters stored URLs keep.
    pub kept_params: KeptParams,
    /// Pages that may send beacons (any in --dev).
    pub allowed_origins: AllowedOrigins,
    /// Hits a second per client, if limited.
    pub rate_limit: Option<Arc<RateLimit>>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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

    /// Hands a well-formed event to the sink, unless the sink cannot keep it. Events are boxed
    /// from the start: moving a 700-byte row through the handlers was a visible cost.
    fn accept(&self, event: Box<Event>) -> Result<(), Rejection> {
        if !self.status.accepting() {
            return Err(Rejection::SpoolFull);
        }
        let kind = event.kind;
        self.queue.push(event).map_err(|_| Rejection::Overloaded)?;
        self.metrics.accepted(kind);
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

    /// Fills in who sent a hit: visitor id, then [`App::stamp_client`].
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
