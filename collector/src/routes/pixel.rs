//! `GET /p.gif`: the tracking pixel, for pages without the script and for no-JS visitors; with
//! `event=NAME` (and `p.KEY=VALUE` properties) a custom event on the page instead of a view;
//! `event=signout` is the sign-out signal (kind `signout`), as the tracker's `footfall('signout')`.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use compact_str::CompactString;
use http::header::{HeaderValue, REFERER, SET_COOKIE};
use http::{Method, Request, Response};

use super::{App, now_ms};
use crate::hit::privacy::Consent;
use crate::hit::query::PixelQuery;
use crate::hit::visitor::Visitor;
use crate::metrics::Rejection;
use crate::response::{self, Body};
use footfall_store::event::{Event, Kind};
use footfall_store::id::Id;

impl App {
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
        let mut visitor = Visitor::from_headers(req.headers());
        match self.pageview(req, &query, peer, &mut visitor) {
            Ok(event) => match self.accept(event) {
                Ok(()) if !visitor.capped => {
                    answer
                        .headers_mut()
                        .insert(SET_COOKIE, self.cookie.header(&visitor.id));
                }
                Ok(()) => {}
                Err(reason) => self.metrics.rejected(reason),
            },
            Err(reason) => {
                self.metrics.rejected(reason);
                tracing::debug!(%reason, "pixel hit not stored");
            }
        }
        answer
    }

    pub(super) fn pageview<B>(
        &self,
        req: &Request<B>,
        query: &PixelQuery<'_>,
        peer: SocketAddr,
        visitor: &mut Visitor,
    ) -> Result<Box<Event>, Rejection> {
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
        let ip = self.client_ip(req.headers(), peer);
        self.within_rate_limit(ip, NonZeroU32::MIN)?;
        self.admit(visitor, ip);
        let now = now_ms();
        let mut event = Box::new(Event::new(Kind::Pageview, now));
        event.pageview_id = CompactString::new(Id::from_uuid(event.event_id).as_str());
        self.describe_page(
            &mut event,
            query.site.as_deref(),
            raw_url,
            query.referrer.as_deref().unwrap_or_default(),
            query.title.as_deref().unwrap_or_default(),
        )?;
        match query.event.as_deref() {
            // A sign-out page without JavaScript says what `footfall('signout')` says.
            Some("signout") => event.kind = Kind::Signout,
            Some(name) => {
                self.describe_custom(&mut event, name, query.props.iter().map(|(k, v)| (k, v)))?
            }
            None => {}
        }
        self.stamp(&mut event, req.headers(), ip, visitor, now);
        self.link_customer(
            &mut event,
            req.headers(),
            query.customer_id.as_deref(),
            query.customer_signature.as_deref(),
        );
        Ok(event)
    }
}
