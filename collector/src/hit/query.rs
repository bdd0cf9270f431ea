//! The pixel's query string: `site`, `url`, `ref`, `title`, and the privacy-related `consent`,
//! `cid`, `cs` (see [`super::privacy`] and [`super::customer`]).
//!
//! Decoding is lossy on purpose: invalid UTF-8 becomes U+FFFD rather than failing, because a
//! pixel must never break a page. What matters (site, URL) is validated afterwards.

use std::borrow::Cow;

use super::customer;
use super::privacy::CONSENT_PARAM;

/// The parameters of one `/p.gif` request, borrowed from the query string where possible.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PixelQuery<'a> {
    pub site: Option<Cow<'a, str>>,
    pub url: Option<Cow<'a, str>>,
    pub referrer: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub consent: Option<Cow<'a, str>>,
    pub customer_id: Option<Cow<'a, str>>,
    pub customer_signature: Option<Cow<'a, str>>,
}

impl<'a> PixelQuery<'a> {
    /// The first occurrence of each parameter wins; unknown parameters are ignored.
    pub fn parse(query: &'a str) -> Self {
        let mut q = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "site" => &mut q.site,
                "url" => &mut q.url,
                "ref" => &mut q.referrer,
                "title" => &mut q.title,
                CONSENT_PARAM => &mut q.consent,
                customer::ID_PARAM => &mut q.customer_id,
                customer::SIGNATURE_PARAM => &mut q.customer_signature,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        q
    }
}

/// A site name: 1 to 128 characters of letters, digits and `.`, `-`, `_`, `:`. Sites are
/// usually domain names; the bound keeps junk out of the `site` column that every report reads.
pub fn valid_site(site: &str) -> bool {
    (1..=128).contains(&site.len())
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decodes_known_parameters() {
        let q = PixelQuery::parse(
            "site=example.com&url=https%3A%2F%2Fexample.com%2Fa%3Fb%3D1&ref=https://r.example/&title=Hello+World&x=y",
        );
        assert_eq!(q.site.as_deref(), Some("example.com"));
        assert_eq!(q.url.as_deref(), Some("https://example.com/a?b=1"));
        assert_eq!(q.referrer.as_deref(), Some("https://r.example/"));
        assert_eq!(q.title.as_deref(), Some("Hello World"));
        let q = PixelQuery::parse("site=s&consent=1&cid=c%2B1&cs=abc");
        assert_eq!(
            (
                q.consent.as_deref(),
                q.customer_id.as_deref(),
                q.customer_signature.as_deref()
            ),
            (Some("1"), Some("c+1"), Some("abc"))
        );
    }

    #[test]
    fn first_value_wins_and_garbage_does_not_fail() {
        let q = PixelQuery::parse("site=a&site=b&title=%FF%00&&=&url");
        assert_eq!(q.site.as_deref(), Some("a"));
        assert_eq!(q.title.as_deref(), Some("\u{FFFD}\0"));
        assert_eq!(q.url.as_deref(), Some(""));
        assert_eq!(PixelQuery::parse(""), PixelQuery::default());
    }

    #[test]
    fn site_names_are_bounded_and_plain() {
        assert!(valid_site("example.com"));
        assert!(valid_site("shop_1:8080"));
        assert!(!valid_site(""));
        assert!(!valid_site("a b"));
        assert!(!valid_site("<script>"));
        assert!(!valid_site(&"a".repeat(129)));
    }
}
