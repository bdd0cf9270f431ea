//! `GET /o/{token}.gif`: the email-open marker.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use http::header::USER_AGENT;
use http::{Method, Request, Response};

use super::{App, now_ms};
use crate::hit::email;
use crate::hit::privacy::Consent;
use crate::metrics::Rejection;
use crate::response::{self, Body};
use footfall_store::event::{Event, Kind};

impl App {
    /// `GET /o/{token}.gif`: the email-open marker. Always the GIF, never a cookie; the open is
    /// recorded only for a token this collector's secret signed, and unless the reader opted
    /// out (or sends DNT / GPC). Opens by mail providers' image proxies are flagged `via_proxy`.
    pub(super) fn email_open<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
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
        let ip = self.client_ip(req.headers(), peer);
        let user_agent = req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let via_proxy = email::is_image_proxy(user_agent, ip);
        // A provider's image proxy fetches for many readers from few addresses: not limited.
        if !via_proxy && let Err(reason) = self.within_rate_limit(ip, NonZeroU32::MIN) {
            self.metrics.rejected(reason);
            return answer;
        }
        let now = now_ms();
        let mut event = Box::new(Event::new(Kind::EmailOpen, now));
        self.stamp_client(&mut event, req.headers(), ip, now);
        event.via_proxy = via_proxy;
        event.campaign = open.campaign.into();
        event.recipient = open.recipient.into();
        if let Err(reason) = self.accept(event) {
            self.metrics.rejected(reason);
        }
        answer
    }
}
