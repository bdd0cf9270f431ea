//! Signed customer links: tying a visitor cookie to a customer account, unforgeably, and only on
//! the customer's own pages.
//!
//! A site's backend signs the id of a logged-in customer, the site and the time of issue
//! (`footfall-collector sign customer`, or a few lines of its own HMAC code) and adds
//! `cid=ID&cs=TOKEN` to the pixel and beacon hits of that customer's pages. [`verify`] is the one
//! check every handler runs: only a valid, fresh link, fetched as a subresource of a same-site
//! page, puts `customer_id` on an event. Anything else is ignored (the hit is still recorded,
//! just not linked) and counted by why.
//!
//! Why bound to site and time, and refused on navigations: a link signed over the id alone was a
//! bearer credential. A customer could copy it from their own page and make a victim's browser
//! open it (a link, a redirect): the victim's cookie would be tied to the attacker's account and
//! the victim's history handed out by a subject export. Now a link works for one site, for
//! minutes, and not when the browser says it is a navigation or a cross-site request
//! (`Sec-Fetch-*`); the pixel and beacon are subresources of the site's own page.
//!
//! `cs` is `ISSUED.SIGNATURE`: `ISSUED` the time of issue in Unix seconds (decimal), `SIGNATURE`
//! the first 16 bytes of HMAC-SHA256 under FOOTFALL_SECRET of
//! `footfall customer-link v2\0` `SITE` `\0` `ID` `\0` `ISSUED`, base64url without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::HeaderName;

use crate::signing::{Purpose, Signer};

/// Query parameter (and beacon field) carrying the customer id.
pub const ID_PARAM: &str = "cid";
/// Query parameter (and beacon field) carrying the time of issue and the signature.
pub const SIGNATURE_PARAM: &str = "cs";
/// Longest customer id, in bytes.
pub const ID_MAX: usize = 128;
/// How far in the future a time of issue may lie: backend and collector clocks differ a little.
const CLOCK_SKEW_SECS: i64 = 60;

const SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
const SEC_FETCH_DEST: HeaderName = HeaderName::from_static("sec-fetch-dest");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// A customer id whose link was validly signed. No `Debug`: it identifies a person.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// What a hit says about its customer.
#[derive(PartialEq, Eq)]
pub enum Link {
    /// No `cid` on the hit.
    Absent,
    Valid(CustomerId),
    /// A `cid` that does not link: ignored, counted.
    Rejected(Rejected),
}

/// Why a link was not believed; each is a label of `footfall_customer_links_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No valid signature for this id, site and time.
    Forged,
    /// Validly signed, but issued longer ago than the links' lifetime (or in the future).
    Expired,
    /// Sent by a navigation or a cross-site request, not by the site's own page.
    Refused,
}

impl Rejected {
    pub const ALL: [Rejected; 3] = [Rejected::Forged, Rejected::Expired, Rejected::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Forged => "forged",
            Rejected::Expired => "expired",
            Rejected::Refused => "refused",
        }
    }
}

/// How long links live, and the key that signs them.
#[derive(Clone)]
pub struct LinkPolicy {
    pub signer: Signer,
    /// Seconds after issue a link is still believed.
    pub max_age_secs: i64,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "a customer id is 1 to {ID_MAX} visible ASCII characters (letters, digits, punctuation; no spaces)"
)]
pub struct BadCustomerId;

fn valid_id(id: &str) -> bool {
    (1..=ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// What is signed (after the purpose label): site, id and time of issue, `\0`-separated (neither
/// a site nor an id can hold `\0`).
fn message(site: &str, id: &str, issued: &str) -> Vec<u8> {
    [
        site.as_bytes(),
        b"\0",
        id.as_bytes(),
        b"\0",
        issued.as_bytes(),
    ]
    .concat()
}

/// The query parameters (`cid=...&cs=...`, URL-encoded) that link a hit on `site` to customer
/// `id`, issued at `issued` (Unix seconds).
pub fn sign(id: &str, site: &str, issued: i64, signer: &Signer) -> Result<String, BadCustomerId> {
    if !valid_id(id) {
        return Err(BadCustomerId);
    }
    let issued = issued.to_string();
    let signature =
        URL_SAFE_NO_PAD.encode(signer.tag(Purpose::CustomerLink, &message(site, id, &issued)));
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair(ID_PARAM, id)
        .append_pair(SIGNATURE_PARAM, &format!("{issued}.{signature}"))
        .finish())
}

/// Whether the browser says this request is a subresource fetch of a same-site page, or says
/// nothing (older browsers and non-browser clients do not send `Sec-Fetch-*`; the short lifetime
/// bounds what a replay by them can do).
pub fn fetched_by_own_page(headers: &HeaderMap) -> bool {
    let is = |name: HeaderName, values: &[&str]| {
        headers.get(name).is_some_and(|v| {
            values
                .iter()
                .any(|x| v.as_bytes().eq_ignore_ascii_case(x.as_bytes()))
        })
    };
    !(is(SEC_FETCH_MODE, &["navigate", "nested-navigate"])
        || is(SEC_FETCH_DEST, &["document", "iframe", "frame"])
        || is(SEC_FETCH_SITE, &["cross-site", "none"]))
}

/// Checks a hit's `cid` and `cs` (already URL-decoded) for a hit on `site` at `now` (Unix
/// seconds); `own_page` is [`fetched_by_own_page`] of the request.
pub fn verify(
    id: Option<&str>,
    token: Option<&str>,
    site: &str,
    now: i64,
    own_page: bool,
    policy: &LinkPolicy,
) -> Link {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return Link::Absent;
    };
    if !own_page {
        return Link::Rejected(Rejected::Refused);
    }
    let Some((issued_text, signature)) = token.and_then(|t| t.split_once('.')) else {
        return Link::Rejected(Rejected::Forged);
    };
    let signed = valid_id(id)
        && !issued_text.is_empty()
        && issued_text.len() <= 12
        && issued_text.bytes().all(|b| b.is_ascii_digit())
        && URL_SAFE_NO_PAD.decode(signature).ok().is_some_and(|t| {
            let signed = message(site, id, issued_text);
            policy.signer.verify(Purpose::CustomerLink, &signed, &t)
        });
    if !signed {
        return Link::Rejected(Rejected::Forged);
    }
    let issued: i64 = issued_text.parse().expect("at most 12 digits");
    if issued > now + CLOCK_SKEW_SECS || now - issued > policy.max_age_secs {
        return Link::Rejected(Rejected::Expired);
    }
    Link::Valid(CustomerId(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const NOW: i64 = 1_780_000_000;

    fn policy() -> LinkPolicy {
        LinkPolicy {
            signer: Signer::new(b"0123456789abcdef0123456789abcdef"),
            max_age_secs: 600,
        }
    }

    fn params(query: &str) -> (Option<String>, Option<String>) {
        let mut id = None;
        let mut sig = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                ID_PARAM => id = Some(v.into_owned()),
                SIGNATURE_PARAM => sig = Some(v.into_owned()),
                _ => {}
            }
        }
        (id, sig)
    }

    fn check(query: &str, site: &str, now: i64) -> Link {
        let (id, sig) = params(query);
        verify(id.as_deref(), sig.as_deref(), site, now, true, &policy())
    }

    #[test]
    fn a_signed_link_verifies_and_round_trips_through_the_query_string() {
        let query = sign("alice@example.com", "shop", NOW, &policy().signer).unwrap();
        assert!(
            query.starts_with(&format!("cid=alice%40example.com&cs={NOW}.")),
            "{query}"
        );
        match check(&query, "shop", NOW + 5) {
            Link::Valid(c) => assert_eq!(c.as_str(), "alice@example.com"),
            _ => panic!("a signed link must verify"),
        }
    }

    #[test]
    fn a_link_is_bound_to_its_site_and_lives_minutes() {
        let query = sign("c-1", "shop", NOW, &policy().signer).unwrap();
        assert!(check(&query, "other-shop", NOW) == Link::Rejected(Rejected::Forged));
        assert!(matches!(check(&query, "shop", NOW + 600), Link::Valid(_)));
        assert!(check(&query, "shop", NOW + 601) == Link::Rejected(Rejected::Expired));
        assert!(matches!(check(&query, "shop", NOW - 60), Link::Valid(_)));
        assert!(
            check(&query, "shop", NOW - 61) == Link::Rejected(Rejected::Expired),
            "issued in the future"
        );
        let moved = query.replace(&NOW.to_string(), &(NOW + 100).to_string());
        assert!(
            check(&moved, "shop", NOW + 100) == Link::Rejected(Rejected::Forged),
            "the time of issue is signed"
        );
    }

    #[test]
    fn forged_tampered_or_foreign_links_are_not_accepted() {
        let (_, sig) = params(&sign("c-1", "s", NOW, &policy().signer).unwrap());
        let sig = sig.unwrap();
        let other = Signer::new(b"another secret, also 32 characters!");
        let (_, foreign) = params(&sign("c-1", "s", NOW, &other).unwrap());
        let bare = sig.split_once('.').unwrap().1.to_owned();
        let cases: [(Option<&str>, Option<&str>); 8] = [
            (Some("c-2"), Some(&sig)),
            (Some("c-1"), None),
            (Some("c-1"), Some("")),
            (Some("c-1"), Some("not base64!")),
            (Some("c-1"), Some(&sig[..20])),
            (Some("c-1"), foreign.as_deref()),
            (Some("c-1"), Some(&bare)),
            (Some("c-1"), Some(&format!("-1.{bare}"))),
        ];
        for (id, s) in cases {
            assert!(
                verify(id, s, "s", NOW, true, &policy()) == Link::Rejected(Rejected::Forged),
                "{id:?} {s:?}"
            );
        }
        assert!(verify(None, Some(&sig), "s", NOW, true, &policy()) == Link::Absent);
        assert!(verify(Some(""), None, "s", NOW, true, &policy()) == Link::Absent);
        assert!(
            verify(Some("c-1"), Some(&sig), "s", NOW, false, &policy())
                == Link::Rejected(Rejected::Refused)
        );
    }

    #[test]
    fn navigations_and_cross_site_requests_are_not_the_sites_own_page() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        let image = [
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "image"),
            ("sec-fetch-site", "same-site"),
        ];
        assert!(fetched_by_own_page(&headers(&image)));
        assert!(fetched_by_own_page(&headers(&[])), "no Sec-Fetch headers");
        let beacon = [
            ("sec-fetch-mode", "no-cors"),
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert!(fetched_by_own_page(&headers(&beacon)));
        for refused in [
            [("sec-fetch-mode", "navigate")],
            [("sec-fetch-dest", "document")],
            [("sec-fetch-dest", "iframe")],
            [("sec-fetch-site", "cross-site")],
            [("sec-fetch-site", "none")],
        ] {
            assert!(!fetched_by_own_page(&headers(&refused)), "{refused:?}");
        }
    }

    #[test]
    fn customer_ids_are_bounded() {
        let signer = policy().signer;
        assert!(sign("", "s", NOW, &signer).is_err());
        assert!(sign("has space", "s", NOW, &signer).is_err());
        assert!(sign(&"x".repeat(ID_MAX + 1), "s", NOW, &signer).is_err());
        assert!(sign(&"x".repeat(ID_MAX), "s", NOW, &signer).is_ok());
    }
}
