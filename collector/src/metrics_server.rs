//! `GET /metrics` on an address of its own (FOOTFALL_METRICS_LISTEN, loopback by default).
//!
//! On the pixel's public port the counters told an outsider when one person acted (on a quiet
//! site, an email open or a DNT-withheld hit moves a counter by one), so the public port no
//! longer serves them. A second listener costs one socket and one task; the alternative, a token
//! on the public port, would put every scraper's configuration in charge of a privacy promise.
//! It answers `/metrics` and nothing else: `404` for any other path, `405` for other methods.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use http::header::{ALLOW, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::metrics::Metrics;
use crate::rate_limit::RateLimit;
use crate::response::{self, Body};
use crate::sink::Queue;

/// Where `/metrics` is served: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen(pub Option<SocketAddr>);

#[derive(Debug, thiserror::Error)]
#[error("expected an address like 127.0.0.1:9464, or `off`: {0}")]
pub struct BadMetricsListen(std::net::AddrParseError);

impl FromStr for MetricsListen {
    type Err = BadMetricsListen;

    fn from_str(text: &str) -> Result<Self, BadMetricsListen> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(MetricsListen(None));
        }
        text.parse()
            .map(|addr| MetricsListen(Some(addr)))
            .map_err(BadMetricsListen)
    }
}

impl fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// What a scrape reads: the registry, and the gauges sampled when asked.
pub(crate) struct MetricsEndpoint {
    pub metrics: Arc<Metrics>,
    pub queue: Queue,
    pub rate_limit: Option<Arc<RateLimit>>,
}

impl MetricsEndpoint {
    /// The answer to one request on the metrics address.
    pub fn answer<B>(&self, req: &Request<B>) -> Response<Body> {
        if req.uri().path() != "/metrics" {
            return response::json_error(StatusCode::NOT_FOUND, "no such endpoint");
        }
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            let mut r = response::json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        self.metrics.queue_depth.set(self.queue.depth() as i64);
        self.metrics.queue_bytes.set(self.queue.bytes() as i64);
        let clients = self.rate_limit.as_ref().map_or(0, |limit| limit.clients());
        self.metrics.rate_limit_clients.set(clients as i64);
        response::text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            self.metrics.render(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_or_off() {
        let on: MetricsListen = "127.0.0.1:9464".parse().unwrap();
        assert_eq!(on.0, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(on.to_string(), "127.0.0.1:9464");
        assert_eq!("off".parse::<MetricsListen>().unwrap(), MetricsListen(None));
        assert!("9464".parse::<MetricsListen>().is_err());
        assert!("".parse::<MetricsListen>().is_err());
    }

    #[test]
    fn only_get_metrics_is_answered() {
        let endpoint = MetricsEndpoint {
            metrics: Arc::new(Metrics::new()),
            queue: Queue::bounded(4, 1 << 20),
            rate_limit: None,
        };
        let get = |path: &str| endpoint.answer(&Request::get(path).body(()).unwrap());
        let ok = get("/metrics");
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(
            ok.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(get("/p.gif").status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/").status(), StatusCode::NOT_FOUND);
        let post = endpoint.answer(&Request::post("/metrics").body(()).unwrap());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
