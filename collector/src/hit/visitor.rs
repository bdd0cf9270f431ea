//! The visitor cookie `ff_id`: reading a returning visitor's id and writing `Set-Cookie`.
//!
//! An id from the client is only believed if it is one this collector could have minted
//! ([`Id::parse`]); anything else is replaced by a fresh id and never stored. Every answer
//! re-sends the cookie, which refreshes its expiry.

use cookie::{Cookie, SameSite};
use http::HeaderValue;
use http::header::{COOKIE, HeaderMap};

use footfall_store::id::{ID_LEN, Id};

pub const COOKIE_NAME: &str = "ff_id";

/// The visitor's id for this hit, and whether it came back from the browser.
#[derive(Debug, Clone, Copy)]
pub struct Visitor {
    pub id: Id,
    pub returning: bool,
    /// A new visitor past its network's daily cap ([`crate::routes`]): not counted, no cookie.
    pub capped: bool,
}

impl Visitor {
    /// The id the browser sent in `ff_id`, if well formed; otherwise a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match returning_id(headers) {
            Some(id) => Self {
                id,
                returning: true,
                capped: false,
            },
            None => Self {
                id: Id::random(),
                returning: false,
                capped: false,
            },
        }
    }
}

fn returning_id(headers: &HeaderMap) -> Option<Id> {
    let (_, value) = request_cookies(headers).find(|(name, _)| *name == COOKIE_NAME.as_bytes())?;
    Id::parse(std::str::from_utf8(value).ok()?)
}

/// Every `name=value` pair a request carries, across all its `Cookie` headers, trimmed; pairs
/// without `=` are skipped. A plain scan: the cookie crate builds a full cookie for every pair
/// (attributes, percent decoding), which cost more than all the rest of the visitor lookup.
pub fn request_cookies(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
        })
}

/// How the cookie is written, fixed at start.
#[derive(Debug, Clone)]
pub struct CookiePolicy {
    pub max_age_days: u32,
    pub same_site: SameSite,
    pub domain: Option<String>,
    pub secure: bool,
}

/// Writes `Set-Cookie: ff_id=...` without formatting per hit: the header is rendered once by the
/// `cookie` crate with a placeholder id, and each hit copies it and writes its id in place.
#[derive(Debug, Clone)]
pub struct CookieWriter {
    template: Vec<u8>,
    value_at: usize,
}

impl CookiePolicy {
    /// `Set-Cookie` for `name=value` with this policy's attributes, living `max_age_days` (0
    /// expires it now).
    pub fn render(&self, name: &str, value: &str, max_age_days: u32) -> String {
        let mut cookie = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .max_age(cookie::time::Duration::days(i64::from(max_age_days)))
            .same_site(self.same_site)
            .secure(self.secure)
            .build();
        if let Some(domain) = &self.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.to_string()
    }
}

impl CookieWriter {
    pub fn new(policy: &CookiePolicy) -> Self {
        let placeholder = "0".repeat(ID_LEN);
        let template = policy
            .render(COOKIE_NAME, &placeholder, policy.max_age_days)
            .into_bytes();
        let value_at = COOKIE_NAME.len() + 1;
        debug_assert_eq!(
            &template[value_at..value_at + ID_LEN],
            placeholder.as_bytes()
        );
        Self { template, value_at }
    }

    pub fn header(&self, id: &Id) -> HeaderValue {
        let mut bytes = self.template.clone();
        bytes[self.value_at..self.value_at + ID_LEN].copy_from_slice(id.as_bytes());
        HeaderValue::from_maybe_shared(bytes::Bytes::from(bytes))
            .expect("the rendered cookie and a base62 id are valid header bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for c in cookies {
            map.append(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        map
    }

    fn policy() -> CookiePolicy {
        CookiePolicy {
            max_age_days: 395,
            same_site: SameSite::Lax,
            domain: None,
            secure: true,
        }
    }

    #[test]
    fn returning_visitor_keeps_a_well_formed_id() {
        let id = Id::random();
        let v = Visitor::from_headers(&headers(&[&format!("a=1; ff_id={id}; b=2")]));
        assert!(v.returning);
        assert_eq!(v.id, id);
        let v = Visitor::from_headers(&headers(&["a=1", &format!("ff_id={id}")]));
        assert_eq!(v.id, id, "found in a second Cookie header too");
    }

    #[test]
    fn forged_or_missing_ids_are_replaced() {
        for cookie in [
            "",
            "ff_id=",
            "ff_id=admin",
            "ff_id=0000000000000000000000",
            "other=x",
            "ff_id",
        ] {
            let v = Visitor::from_headers(&headers(&[cookie]));
            assert!(!v.returning, "{cookie:?} must not be believed");
            assert_ne!(v.id.as_str(), "0000000000000000000000");
        }
        assert!(!Visitor::from_headers(&HeaderMap::new()).returning);
    }

    #[test]
    fn set_cookie_has_the_contract_attributes() {
        let id = Id::random();
        let value = CookieWriter::new(&policy()).header(&id);
        let text = value.to_str().unwrap();
        let parsed = Cookie::parse(text).unwrap();
        assert_eq!(parsed.name(), "ff_id");
        assert_eq!(parsed.value(), id.as_str());
        assert_eq!(parsed.path(), Some("/"));
        assert_eq!(parsed.http_only(), Some(true));
        assert_eq!(parsed.secure(), Some(true));
        assert_eq!(parsed.same_site(), Some(SameSite::Lax));
        assert_eq!(parsed.max_age(), Some(cookie::time::Duration::days(395)));
        assert_eq!(parsed.domain(), None);
    }

    #[test]
    fn set_cookie_follows_the_policy() {
        let dev = CookiePolicy {
            max_age_days: 30,
            same_site: SameSite::None,
            domain: Some("example.com".into()),
            secure: false,
        };
        let value = CookieWriter::new(&dev).header(&Id::random());
        let parsed = Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
        assert_eq!(parsed.secure(), None);
        assert_eq!(parsed.same_site(), Some(SameSite::None));
        assert_eq!(parsed.domain(), Some("example.com"));
        assert_eq!(parsed.max_age(), Some(cookie::time::Duration::days(30)));
    }
}
