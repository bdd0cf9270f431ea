//! Cross-origin rules for the beacon endpoint `/e`.
//!
//! The tracker runs on the customer's pages and posts to the collector's origin with
//! credentials (so the visitor cookie applies). Browsers only allow that when the answer names
//! the page's origin exactly and allows credentials; a wildcard is not enough. Origins come
//! from FOOTFALL_ALLOWED_ORIGINS; `--dev` allows any. A beacon from a page whose origin is not
//! allowed is refused and not stored, so other sites cannot write into a site's data from
//! their visitors' browsers.

use std::str::FromStr;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, HeaderMap, HeaderValue, ORIGIN, VARY,
};

/// The origins whose pages may send beacons.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    /// Normalised `scheme://host[:port]`, lower case.
    origins: Vec<String>,
    any: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not an origin (like https://www.example.com or http://localhost:3000)")]
pub struct BadOrigin(String);

impl FromStr for AllowedOrigins {
    type Err = BadOrigin;

    /// A comma- or space-separated list of origins; empty allows none (except in --dev).
    fn from_str(list: &str) -> Result<Self, BadOrigin> {
        let origins = list
            .split([',', ' '])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| normalise(item).ok_or_else(|| BadOrigin(item.to_owned())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            origins,
            any: false,
        })
    }
}

/// `scheme://host[:port]` in lower case without a trailing slash, or `None` if `text` is not
/// an http(s) origin.
fn normalise(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let origin = url.origin();
    (bare && matches!(url.scheme(), "http" | "https") && origin.is_tuple())
        .then(|| origin.ascii_serialization())
}

/// The outcome of checking a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin` header: not a cross-origin browser request (tools, same-origin navigation).
    NoOrigin,
    /// Allowed; the value to echo in `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
    Refused,
}

impl AllowedOrigins {
    /// Any origin: for `--dev`.
    pub fn any() -> Self {
        Self {
            origins: Vec::new(),
            any: true,
        }
    }

    /// Whether no page may send beacons (outside `--dev`, a misconfiguration worth a warning).
    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    pub fn check(&self, headers: &HeaderMap) -> Verdict {
        let Some(origin) = headers.get(ORIGIN) else {
            return Verdict::NoOrigin;
        };
        let allowed = self.any
            || origin
                .to_str()
                .ok()
                .and_then(normalise)
                .is_some_and(|o| self.origins.contains(&o));
        if allowed {
            Verdict::Allowed(origin.clone())
        } else {
            Verdict::Refused
        }
    }
}

/// Whether a page at `origin` (an `Origin` header) is another site than the collector at `host`
/// (its `Host` header), so that the browser treats the collector's cookie as third-party: a
/// `SameSite=Lax` or `Strict` visitor cookie is then never sent, and every page view counts as
/// a new visitor. `localhost` against `127.0.0.1` is the usual case on a laptop. Without a
/// public-suffix list, hosts are taken as one site when equal, when one is a subdomain of the
/// other, or when they differ only in their first label (`www.example.com` and
/// `analytics.example.com`); IP addresses only when equal.
pub fn cross_site(origin: &str, host: &str) -> bool {
    let Some(page) = url::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    let collector = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let page = page.trim_matches(['[', ']']).to_owned();
    if page == collector {
        return false;
    }
    let is_ip = |h: &str| h.parse::<std::net::IpAddr>().is_ok();
    if is_ip(&page) || is_ip(&collector) {
        return true;
    }
    let parent = |h: &str| h.split_once('.').map(|(_, p)| p.to_owned());
    let nested =
        page.ends_with(&format!(".{collector}")) || collector.ends_with(&format!(".{page}"));
    let siblings = matches!((parent(&page), parent(&collector)), (Some(a), Some(b)) if a == b && a.contains('.'));
    !(nested || siblings)
}

/// Adds the headers that let the page at `origin` read an answer to a credentialed request.
pub fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(VARY, HeaderValue::from_static("Origin"));
}

/// Adds the headers of an answer to a preflight `OPTIONS` request.
pub fn allow_preflight(headers: &mut HeaderMap, origin: HeaderValue) {
    allow(headers, origin);
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_of_another_site_than_the_collector_are_told_apart() {
        assert!(cross_site("http://localhost:3000", "127.0.0.1:8080"));
        assert!(cross_site("http://127.0.0.1:3000", "localhost:8080"));
        assert!(cross_site(
            "https://shop.example",
            "analytics.other.example"
        ));
        assert!(!cross_site("http://127.0.0.1:3000", "127.0.0.1:8080"));
        assert!(!cross_site(
            "https://www.example.com",
            "analytics.example.com"
        ));
        assert!(!cross_site("https://example.com", "analytics.example.com"));
        assert!(!cross_site("http://[::1]:3000", "[::1]:8080"));
    }

    fn with_origin(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers
    }

    #[test]
    fn listed_origins_match_exactly_after_normalising() {
        let allowed: AllowedOrigins = "https://www.example.com, http://LOCALHOST:3000/"
            .parse()
            .unwrap();
        for origin in [
            "https://www.example.com",
            "https://WWW.example.com:443",
            "http://localhost:3000",
        ] {
            assert_eq!(
                allowed.check(&with_origin(origin)),
                Verdict::Allowed(HeaderValue::from_str(origin).unwrap()),
                "{origin}"
            );
        }
        for origin in [
            "https://example.com",
            "http://www.example.com",
            "https://www.example.com.evil.test",
            "null",
            "http://localhost:3001",
        ] {
            assert_eq!(
                allowed.check(&with_origin(origin)),
                Verdict::Refused,
                "{origin}"
            );
        }
        assert_eq!(allowed.check(&HeaderMap::new()), Verdict::NoOrigin);
    }

    #[test]
    fn nothing_is_allowed_by_default_and_anything_in_dev() {
        let none = AllowedOrigins::default();
        assert_eq!(
            none.check(&with_origin("https://a.example")),
            Verdict::Refused
        );
        assert!(matches!(
            AllowedOrigins::any().check(&with_origin("http://127.0.0.1:5555")),
            Verdict::Allowed(_)
        ));
    }

    #[test]
    fn only_bare_http_origins_parse() {
        for bad in [
            "example.com",
            "https://example.com/path",
            "ftp://example.com",
            "https://example.com/?q",
        ] {
            assert!(bad.parse::<AllowedOrigins>().is_err(), "{bad}");
        }
        assert!("".parse::<AllowedOrigins>().is_ok());
    }
}
