//! The visitor's privacy choices, read from a hit: opt-out cookie, `DNT`, `Sec-GPC`, consent.
//!
//! [`PrivacyPolicy::withhold`] is the one decision every handler makes before it records
//! anything: when it names a reason, the hit is answered as usual (the GIF, the `204`) but
//! nothing is stored, no cookie is set and no customer link is made; only the count of withheld
//! hits per reason grows (`footfall_hits_withheld_total`). This module also writes the opt-out
//! cookies and decides where `/optout` and `/optin` may send the browser back to.

use http::HeaderMap;
use http::header::{DNT, HOST, HeaderName, ORIGIN, REFERER};
use url::Url;

use crate::hit::visitor::{COOKIE_NAME, CookiePolicy, request_cookies};

/// The opt-out cookie; its presence (value `1`) withholds every hit of that browser.
pub const OPTOUT_COOKIE: &str = "ff_optout";
/// Global Privacy Control. Header names are constants: looking one up by text parses it first.
const SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
/// Days the opt-out cookie lives (browsers that cap cookie lifetimes, at 400 days, cap it).
pub const OPTOUT_MAX_AGE_DAYS: u32 = 5 * 365;
/// Query parameter (and beacon field) by which a page says its visitor consented: `consent=1`.
pub const CONSENT_PARAM: &str = "consent";
/// Query parameter of `/optout` and `/optin` naming the page to go back to.
pub const RETURN_PARAM: &str = "return";

/// Which signals are honoured, fixed at start (FOOTFALL_HONOR_DNT, FOOTFALL_HONOR_GPC,
/// FOOTFALL_CONSENT).
#[derive(Debug, Clone, Copy)]
pub struct PrivacyPolicy {
    pub honor_dnt: bool,
    pub honor_gpc: bool,
    pub consent_required: bool,
}

/// Why a hit is not recorded. Each has a label value on `footfall_hits_withheld_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    OptedOut,
    DoNotTrack,
    GlobalPrivacyControl,
    NoConsent,
}

impl Withheld {
    pub const ALL: [Withheld; 4] = [
        Withheld::OptedOut,
        Withheld::DoNotTrack,
        Withheld::GlobalPrivacyControl,
        Withheld::NoConsent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Withheld::OptedOut => "opted_out",
            Withheld::DoNotTrack => "dnt",
            Withheld::GlobalPrivacyControl => "gpc",
            Withheld::NoConsent => "no_consent",
        }
    }
}

/// What a hit says about consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent<'a> {
    /// The value of the `consent` parameter, if any (only `1` means yes).
    Signal(Option<&'a str>),
    /// Not a page hit (an email open): page consent does not apply.
    NotApplicable,
}

impl PrivacyPolicy {
    /// The reason to record nothing of this hit, if there is one.
    pub fn withhold(&self, headers: &HeaderMap, consent: Consent<'_>) -> Option<Withheld> {
        let header_is_1 = |name: HeaderName| {
            headers
                .get(name)
                .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
        };
        if request_cookies(headers)
            .any(|(name, value)| name == OPTOUT_COOKIE.as_bytes() && value == b"1")
        {
            Some(Withheld::OptedOut)
        } else if self.honor_dnt && header_is_1(DNT) {
            Some(Withheld::DoNotTrack)
        } else if self.honor_gpc && header_is_1(SEC_GPC) {
            Some(Withheld::GlobalPrivacyControl)
        } else if self.consent_required && !consent.allows_recording() {
            Some(Withheld::NoConsent)
        } else {
            None
        }
    }
}

impl Consent<'_> {
    fn allows_recording(self) -> bool {
        matches!(self, Consent::Signal(Some("1")) | Consent::NotApplicable)
    }
}

/// The `Set-Cookie` values of `/optout` (set `ff_optout`, expire `ff_id`) and `/optin` (expire
/// `ff_optout`), rendered once with the visitor cookie's attributes.
#[derive(Debug, Clone)]
pub struct OptOutCookies {
    pub opt_out: [String; 2],
    pub opt_in: String,
}

impl OptOutCookies {
    pub fn new(policy: &CookiePolicy) -> Self {
        Self {
            opt_out: [
                policy.render(OPTOUT_COOKIE, "1", OPTOUT_MAX_AGE_DAYS),
                policy.render(COOKIE_NAME, "", 0),
            ],
            opt_in: policy.render(OPTOUT_COOKIE, "", 0),
        }
    }
}

/// Whether a request that changes the visitor's choice (`POST /optout`, `POST /optin`) was sent
/// by a page of the collector's own origin, i.e. its confirmation page: `Sec-Fetch-Site:
/// same-origin`, or, from browsers that do not send it, an `Origin` whose host and port are the
/// request's `Host`. Anything else (another site's form or script, a request without either
/// header) changes nothing, so no page can opt a visitor in or out behind their back.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        return site.as_bytes() == b"same-origin";
    }
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin = headers
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|o| Url::parse(o).ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = match (origin.host_str(), origin.port()) {
                (Some(h), Some(port)) => format!("{h}:{port}"),
                (Some(h), None) => h.to_owned(),
                (None, _) => return false,
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    }
}

/// Where `/optout` or `/optin` may redirect to: the `return` URL, only if it is an absolute
/// http(s) URL on the same origin (scheme, host, port) as the page that sent the browser here,
/// as its `Referer` (else `Origin`) header says. Anything else gets the plain confirmation page,
/// so the endpoints can never send a visitor to a site they did not come from.
pub fn safe_return(return_to: Option<&str>, headers: &HeaderMap) -> Option<Url> {
    let target = Url::parse(return_to?).ok()?;
    let from = headers
        .get(REFERER)
        .or_else(|| headers.get(ORIGIN))?
        .to_str()
        .ok()?;
    let from = Url::parse(from).ok()?;
    let web = matches!(target.scheme(), "http" | "https") && target.host().is_some();
    (web && target.origin() == from.origin()).then_some(target)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const ALL_ON: PrivacyPolicy = PrivacyPolicy {
        honor_dnt: true,
        honor_gpc: true,
        consent_required: false,
    };
    const NO_SIGNAL: Consent<'static> = Consent::Signal(None);

    #[test]
    fn signals_withhold_hits_when_honoured() {
        assert_eq!(ALL_ON.withhold(&headers(&[]), NO_SIGNAL), None);
        assert_eq!(
            ALL_ON.withhold(&headers(&[("cookie", "a=b; ff_optout=1")]), NO_SIGNAL),
            Some(Withheld::OptedOut)
        );
        assert_eq!(
            ALL_ON.withhold(&headers(&[("dnt", "1")]), NO_SIGNAL),
            Some(Withheld::DoNotTrack)
        );
        assert_eq!(
            ALL_ON.withhold(&headers(&[("sec-gpc", "1")]), NO_SIGNAL),
            Some(Withheld::GlobalPrivacyControl)
        );
        assert_eq!(
            ALL_ON.withhold(&headers(&[("dnt", "0"), ("sec-gpc", "0")]), NO_SIGNAL),
            None
        );
        assert_eq!(
            ALL_ON.withhold(&headers(&[("cookie", "ff_optout=0")]), NO_SIGNAL),
            None
        );
        let off = PrivacyPolicy {
            honor_dnt: false,
            honor_gpc: false,
            consent_required: false,
        };
        assert_eq!(
            off.withhold(&headers(&[("dnt", "1"), ("sec-gpc", "1")]), NO_SIGNAL),
            None
        );
        assert_eq!(
            off.withhold(
                &headers(&[("dnt", "1"), ("cookie", "ff_optout=1")]),
                NO_SIGNAL
            ),
            Some(Withheld::OptedOut),
            "an explicit opt-out always counts"
        );
    }

    #[test]
    fn consent_mode_needs_consent_1_on_page_hits() {
        let required = PrivacyPolicy {
            consent_required: true,
            ..ALL_ON
        };
        let none = headers(&[]);
        assert_eq!(
            required.withhold(&none, NO_SIGNAL),
            Some(Withheld::NoConsent)
        );
        assert_eq!(
            required.withhold(&none, Consent::Signal(Some("0"))),
            Some(Withheld::NoConsent)
        );
        assert_eq!(required.withhold(&none, Consent::Signal(Some("1"))), None);
        assert_eq!(required.withhold(&none, Consent::NotApplicable), None);
        assert_eq!(
            required.withhold(&headers(&[("dnt", "1")]), Consent::Signal(Some("1"))),
            Some(Withheld::DoNotTrack)
        );
        assert_eq!(
            ALL_ON.withhold(&none, NO_SIGNAL),
            None,
            "consent is not asked for by default"
        );
    }

    #[test]
    fn opt_out_cookies_set_and_expire_with_the_policy_attributes() {
        let policy = CookiePolicy {
            max_age_days: 395,
            same_site: cookie::SameSite::Lax,
            domain: Some("example.com".into()),
            secure: true,
        };
        let c = OptOutCookies::new(&policy);
        assert!(
            c.opt_out[0].starts_with("ff_optout=1;") && c.opt_out[0].contains("Max-Age=157680000"),
            "{}",
            c.opt_out[0]
        );
        assert!(
            c.opt_out[1].starts_with("ff_id=;") && c.opt_out[1].contains("Max-Age=0"),
            "{}",
            c.opt_out[1]
        );
        assert!(
            c.opt_in.starts_with("ff_optout=;") && c.opt_in.contains("Max-Age=0"),
            "{}",
            c.opt_in
        );
        for value in c.opt_out.iter().chain([&c.opt_in]) {
            assert!(
                value.contains("Domain=example.com")
                    && value.contains("Path=/")
                    && value.contains("Secure"),
                "{value}"
            );
        }
    }

    #[test]
    fn only_the_collectors_own_page_may_change_the_choice() {
        let host = ("host", "collector.example.com");
        assert!(same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
        for foreign in ["same-site", "cross-site", "none"] {
            assert!(
                !same_origin(&headers(&[host, ("sec-fetch-site", foreign)])),
                "{foreign}"
            );
        }
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://collector.example.com")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        for origin in [
            "https://evil.example",
            "null",
            "https://collector.example.com:8443",
        ] {
            assert!(
                !same_origin(&headers(&[host, ("origin", origin)])),
                "{origin}"
            );
        }
        assert!(!same_origin(&headers(&[host])), "neither header");
        assert!(
            !same_origin(&headers(&[
                host,
                ("origin", "https://collector.example.com"),
                ("sec-fetch-site", "cross-site")
            ])),
            "Sec-Fetch-Site wins"
        );
    }

    #[test]
    fn return_urls_must_be_on_the_referring_origin() {
        let from_shop = headers(&[("referer", "https://shop.example.com/privacy?x=1")]);
        let ok = safe_return(Some("https://shop.example.com/privacy#done"), &from_shop);
        assert_eq!(
            ok.unwrap().as_str(),
            "https://shop.example.com/privacy#done"
        );
        for bad in [
            "https://evil.example/",
            "http://shop.example.com/privacy",
            "https://shop.example.com:8443/",
            "https://shop.example.com.evil.example/",
            "//evil.example/",
            "/relative",
            "javascript:alert(1)",
            "",
        ] {
            assert!(safe_return(Some(bad), &from_shop).is_none(), "{bad}");
        }
        assert!(
            safe_return(Some("https://shop.example.com/"), &headers(&[])).is_none(),
            "no referrer: no redirect"
        );
        let by_origin = headers(&[("origin", "https://shop.example.com")]);
        assert!(safe_return(Some("https://shop.example.com/p"), &by_origin).is_some());
        assert!(safe_return(None, &from_shop).is_none());
    }
}
