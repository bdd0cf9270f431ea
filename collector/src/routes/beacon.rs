//! `POST /e` and its CORS preflight: events from the tracker script.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use compact_str::CompactString;
use http::header::{
    ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, SET_COOKIE,
};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::{App, now_ms};
use crate::cors::{self, Verdict};
use crate::enrich::Enricher;
use crate::enrich::client_hints::Hints;
use crate::enrich::user_agent::Device;
use crate::hit::beacon::{self, BeaconError, BeaconEvent};
use crate::hit::privacy::Consent;
use crate::hit::query::PixelQuery;
use crate::hit::visitor::Visitor;
use crate::metrics::Rejection;
use crate::response::{self, Body};
use footfall_store::event::{Event, Kind};

/// Largest beacon body read, in bytes: 50 events of ordinary size fit many times over.
pub const BEACON_BODY_MAX: usize = 64 * 1024;
/// Longest a client may take to send a beacon body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Warns once per process when a page sends beacons from another site than the collector's
/// (like a page on `localhost` and the collector on `127.0.0.1`): the browser then keeps no
/// visitor cookie, and every page view counts as a new visitor.
fn warn_if_cross_site(origin: &HeaderValue, headers: &HeaderMap) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(http::header::HOST).map(|h| h.to_str()),
    ) else {
        return;
    };
    if crate::cors::cross_site(origin, host)
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            page = origin,
            collector = host,
            "a page of another site sends beacons: the browser keeps no visitor cookie for it \
             (SameSite), so every page view counts as a new visitor. Serve the page and the \
             collector from the same site (on a laptop: both on 127.0.0.1, or both on localhost)"
        );
    }
}

impl App {
    /// `POST /e`: events from the tracker, with the pixel's `consent`, `cid` and `cs` in the
    /// query string. `204` when every event was queued or the visitor lets nothing be recorded,
    /// `503` when they cannot all be kept (then none is),
    /// `400` with the reason when any is bad (then none is stored), `403` for a page of a
    /// foreign origin, `429` when the client is past the rate limit (every event counts).
    pub async fn beacon<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin = match self.allowed_origins.check(req.headers()) {
            Verdict::Allowed(origin) => {
                warn_if_cross_site(&origin, req.headers());
                Some(origin)
            }
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
                    let mut answer = response::json_error(refusal.status, &refusal.message);
                    if refusal.status == StatusCode::TOO_MANY_REQUESTS {
                        answer
                            .headers_mut()
                            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    }
                    answer
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

        // Every event counts against the rate limit: a beacon carries up to 50.
        let ip = self.client_ip(headers, peer);
        let hits = NonZeroU32::new(parsed.len() as u32).unwrap_or(NonZeroU32::MIN);
        self.within_rate_limit(ip, hits).map_err(|reason| Refusal {
            reason,
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "too many hits from this address; try again later".into(),
        })?;
        let mut visitor = Visitor::from_headers(headers);
        self.admit(&mut visitor, ip);
        let now = now_ms();
        let mut events = Vec::with_capacity(parsed.len());
        for (index, incoming) in parsed.into_iter().enumerate() {
            let bot = incoming.bot();
            let (platform, platform_version) = incoming.hints();
            let mut event = self.beacon_event(incoming, now).map_err(|reason| {
                Refusal::bad(reason, format!("event {index}: {}", explain(reason)))
            })?;
            self.stamp(&mut event, headers, ip, &visitor, now);
            // The tracker saw automation (navigator.webdriver) that the user agent may hide.
            if bot {
                event.is_bot = true;
                event.device = CompactString::const_new(Device::Bot.as_str());
            }
            Enricher::apply_hints(
                &mut event,
                Hints {
                    platform: &platform,
                    platform_version: &platform_version,
                },
            );
            self.link_customer(
                &mut event,
                headers,
                query.customer_id.as_deref(),
                query.customer_signature.as_deref(),
            );
            events.push(event);
        }
        self.accept_all(events).map_err(|reason| Refusal {
            reason,
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the collector cannot keep events right now; try again later".into(),
        })?;
        let mut answer = response::empty(StatusCode::NO_CONTENT);
        if !visitor.capped {
            answer
                .headers_mut()
                .insert(SET_COOKIE, self.cookie.header(&visitor.id));
        }
        Ok(answer)
    }

    /// The row of one beacon event, without who sent it (see [`App::stamp`]).
    fn beacon_event(&self, incoming: BeaconEvent, now: i64) -> Result<Box<Event>, Rejection> {
        let site = incoming.site().to_owned();
        let (mut event, url, referrer, title, custom) = match incoming {
            BeaconEvent::Pageview {
                url,
                pageview_id,
                referrer,
                title,
                ..
            } => {
                let mut event = Box::new(Event::new(Kind::Pageview, now));
                event.pageview_id = pageview_id.into();
                (event, url, referrer, title, None)
            }
            BeaconEvent::Engagement {
                url,
                pageview_id,
                engaged_ms,
                scroll_depth,
                ..
            } => {
                let mut event = Box::new(Event::new(Kind::Engagement, now));
                event.pageview_id = pageview_id.into();
                event.dwell_ms = engaged_ms;
                event.scroll_depth = scroll_depth;
                (event, url, String::new(), String::new(), None)
            }
            BeaconEvent::Custom {
                url,
                pageview_id,
                event: name,
                props,
                ..
            } => {
                let mut event = Box::new(Event::new(Kind::Custom, now));
                event.pageview_id = pageview_id.into();
                (
                    event,
                    url,
                    String::new(),
                    String::new(),
                    Some((name, props)),
                )
            }
            BeaconEvent::Signout {
                url, pageview_id, ..
            } => {
                let mut event = Box::new(Event::new(Kind::Signout, now));
                event.pageview_id = pageview_id.into();
                (event, url, String::new(), String::new(), None)
            }
        };
        self.describe_page(&mut event, Some(&site), &url, &referrer, &title)?;
        if let Some((name, props)) = custom {
            self.describe_custom(&mut event, &name, props.0)?;
        }
        Ok(event)
    }

    /// `OPTIONS /e`: the browser asks whether the page may post here with credentials.
    pub(super) fn preflight(&self, headers: &HeaderMap) -> Response<Body> {
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
}

/// What a beacon client is told about a page field the pixel would have dropped.
fn explain(reason: Rejection) -> &'static str {
    match reason {
        Rejection::MissingSite => "`site` is missing",
        Rejection::BadSite => "`site` must be 1 to 128 letters, digits, '.', '-', '_' or ':'",
        Rejection::MissingUrl => "`url` is missing",
        Rejection::BadUrl => "`url` is not an absolute http(s) URL",
        Rejection::BadEvent => "`event` must be 1 to 120 bytes without control characters",
        _ => "the event was refused",
    }
}
