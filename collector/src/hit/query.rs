//! The pixel's query string: `site`, `url`, `ref`, `title`, the privacy-related `consent`,
//! `cid`, `cs` (see [`super::privacy`] and [`super::customer`]), and for a custom event
//! `event` with its properties `p.KEY=VALUE` (see [`super::props`]).
//!
//! Decoding is lossy on purpose: invalid UTF-8 becomes U+FFFD rather than failing, because a
//! pixel must never break a page. What matters (site, URL) is validated afterwards.
//!
//! The parser is our own, with `application/x-www-form-urlencoded` rules (`+` is a space, `%XX`
//! a byte, the first `=` splits): it decodes only the values it keeps, and a value with
//! nothing to decode is borrowed. Decoding every pair byte by byte, as `form_urlencoded` does,
//! was the largest single cost of the pixel path.

use std::borrow::Cow;

use super::bytes;
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
    pub event: Option<Cow<'a, str>>,
    /// `p.KEY=VALUE` pairs in the order given, keys without their `p.`.
    pub props: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> PixelQuery<'a> {
    /// The first occurrence of each parameter wins; unknown parameters are ignored.
    pub fn parse(query: &'a str) -> Self {
        let mut q = Self::default();
        for pair in bytes::split(query, b'&').filter(|p| !p.is_empty()) {
            let (key, value) = bytes::split_once(pair, b'=').unwrap_or((pair, ""));
            let key = decode(key);
            let slot = match key.as_ref() {
                "site" => &mut q.site,
                "url" => &mut q.url,
                "ref" => &mut q.referrer,
                "title" => &mut q.title,
                CONSENT_PARAM => &mut q.consent,
                customer::ID_PARAM => &mut q.customer_id,
                customer::SIGNATURE_PARAM => &mut q.customer_signature,
                "event" => &mut q.event,
                name if name.starts_with("p.") => {
                    let prop = match key {
                        Cow::Borrowed(k) => Cow::Borrowed(&k[2..]),
                        Cow::Owned(k) => Cow::Owned(k[2..].to_owned()),
                    };
                    q.props.push((prop, decode(value)));
                    continue;
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(decode(value));
            }
        }
        q
    }
}

/// Form-decodes `text`, borrowing it when there is nothing to decode.
pub(crate) fn decode(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    // Not `memchr2`: values are a few bytes, shorter than a vector search pays for (it cost 200
    // instructions a call more).
    let Some(first) = bytes.iter().position(|&b| b == b'%' || b == b'+') else {
        return Cow::Borrowed(text);
    };
    // In place, in a copy: a decoded byte never takes more room than its escape, so the write
    // index stays at or behind the read index, and a store by index costs less than a push
    // (`decode` 2,307 → 2,142 instructions a request, `benches/instructions.sh`); the bytes before
    // the first escape are already where they belong.
    let mut out = bytes.to_vec();
    let (mut read, mut write) = (first, first);
    while let Some(&b) = out.get(read) {
        out[write] = match b {
            b'+' => b' ',
            b'%' => {
                let (high, low) = (hex_at(&out, read + 1), hex_at(&out, read + 2));
                if high | low < NOT_HEX {
                    read += 2;
                    (high << 4) | low
                } else {
                    b'%'
                }
            }
            _ => b,
        };
        read += 1;
        write += 1;
    }
    out.truncate(write);
    Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// What [`HEX_DIGITS`] gives a byte that is no hex digit: a bit no digit's value has.
const NOT_HEX: u8 = 0x10;

/// Each byte's value as a hex digit, or [`NOT_HEX`]: one lookup where three range checks took
/// some 80 instructions a request more (`decode` 2,493 → 2,414, `benches/instructions.sh`).
static HEX_DIGITS: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            d @ b'0'..=b'9' => d - b'0',
            d @ b'a'..=b'f' => d - b'a' + 10,
            d @ b'A'..=b'F' => d - b'A' + 10,
            _ => NOT_HEX,
        };
        b += 1;
    }
    table
};

/// The value of the hex digit at `at`, or [`NOT_HEX`] (also past the end).
fn hex_at(bytes: &[u8], at: usize) -> u8 {
    bytes
        .get(at)
        .map_or(NOT_HEX, |&b| HEX_DIGITS[usize::from(b)])
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
    fn a_custom_event_and_its_properties() {
        let q = PixelQuery::parse(
            "site=s&event=Newsletter+Open&p.issue=42&p%2Ecamp=spring&p.=x&event=B",
        );
        assert_eq!(q.event.as_deref(), Some("Newsletter Open"));
        let props: Vec<(&str, &str)> = q
            .props
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(props, [("issue", "42"), ("camp", "spring"), ("", "x")]);
        assert!(PixelQuery::parse("site=s").props.is_empty());
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
    fn decoding_follows_the_form_rules() {
        let q = PixelQuery::parse("si%74e=a+b%2Bc&url=100%&ref=%zz%4&title=caf%C3%A9");
        assert_eq!(q.site.as_deref(), Some("a b+c"), "encoded key, + and %2B");
        assert_eq!(q.url.as_deref(), Some("100%"), "a lone % stays");
        assert_eq!(q.referrer.as_deref(), Some("%zz%4"), "bad escapes stay");
        assert_eq!(q.title.as_deref(), Some("café"));
        assert!(matches!(
            PixelQuery::parse("site=plain.example").site,
            Some(Cow::Borrowed(_))
        ));
        let q = PixelQuery::parse("url=a=b&site");
        assert_eq!(q.url.as_deref(), Some("a=b"), "the first = splits");
        assert_eq!(q.site.as_deref(), Some(""));
    }
}
