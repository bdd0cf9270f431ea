//! The page a hit is about, and where its visitor came from.
//!
//! Parses the page URL into what reports group by (host, path without query string, UTM tags)
//! and bounds every field, so a hostile client cannot make a row arbitrarily large.
//!
//! What is stored of a URL (page and referrer) is scheme, host and path, plus only the query
//! parameters in [`KeptParams`] (the UTM tags, and what FOOTFALL_KEEP_QUERY_PARAMS adds): query
//! strings carry password-reset tokens, session ids and addresses (`?token=…`,
//! `?user=jane@example.com`), and raw events are kept for a year. The fragment goes too (OAuth
//! tokens travel in fragments), and so do user name and password. A path segment holding an
//! e-mail address becomes `(email)` ([`super::mask`]). Nothing of what is dropped is kept
//! anywhere, sealed or not: no report and no subject request needs it.
//!
//! Most URLs a tracker sends are already in the form the `url` crate would give them (lowercase
//! scheme and host, nothing to percent-encode or resolve). [`plain_url`] recognises those and
//! splits them in place, a fraction of a full parse; everything else goes through `url`, which
//! normalises as browsers do. The `url_fast_path` fuzz target checks that both agree on every
//! URL the fast path takes.

use std::borrow::Cow;
use std::ops::Range;

use compact_str::CompactString;
use url::{Position, Url};

use super::bytes;
use super::mask::{EMAIL_MASK, mask_emails};
use super::query::decode;

/// Longest URL or referrer kept, in bytes.
pub const URL_MAX: usize = 2048;
/// Longest page title kept, in bytes.
pub const TITLE_MAX: usize = 512;
/// Longest UTM value kept, in bytes.
pub const UTM_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the page URL is missing (no url parameter and no Referer header)")]
    Missing,
    #[error("the page URL is not an absolute http(s) URL")]
    NotHttp,
}

/// A page view's page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub url: CompactString,
    pub host: CompactString,
    pub path: CompactString,
    pub utm: Utm,
    /// Whether any field had to be cut to its bound.
    pub truncated: bool,
}

/// The campaign tags of a page URL (`utm_source`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utm {
    pub source: CompactString,
    pub medium: CompactString,
    pub campaign: CompactString,
    pub term: CompactString,
    pub content: CompactString,
}

/// Where the visitor came from: the referring URL and its host, both empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Referrer {
    pub url: CompactString,
    pub host: CompactString,
}

/// The UTM parameters: always kept, and read into their own columns.
const UTM_KEYS: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
];

/// The query parameters a stored URL keeps: the UTM tags, and the names given in
/// FOOTFALL_KEEP_QUERY_PARAMS (comma-separated, compared after decoding, case-sensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptParams(Vec<String>);

#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a query parameter name: names are 1 to 64 letters, digits or `_.-[]`, comma-separated"
)]
pub struct BadParamName(String);

impl std::str::FromStr for KeptParams {
    type Err = BadParamName;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut names = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let plain = name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-[]".contains(&b));
            if !plain {
                return Err(BadParamName(name.to_owned()));
            }
            names.push(name.to_owned());
        }
        Ok(Self(names))
    }
}

impl KeptParams {
    fn keeps(&self, key: &str) -> bool {
        UTM_KEYS.contains(&key) || self.0.iter().any(|k| k == key)
    }
}

impl Page {
    pub fn parse(raw: &str, kept: &KeptParams) -> Result<Self, PageError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PageError::Missing);
        }
        let url = http_url(raw).ok_or(PageError::NotHttp)?;
        let mut truncated = false;
        let mut utm = Utm::default();
        let host = CompactString::new(url.host());
        let (url, path) = stored(url, kept, Some(&mut utm), &mut truncated);
        Ok(Self {
            url,
            host,
            path,
            utm,
            truncated,
        })
    }
}

impl Referrer {
    /// A referrer that is not an http(s) URL (`android-app://...`, garbage) is kept as unknown.
    pub fn parse(raw: &str, kept: &KeptParams, truncated: &mut bool) -> Self {
        match http_url(raw.trim()) {
            Some(url) => Self {
                host: CompactString::new(url.host()),
                url: stored(url, kept, None, truncated).0,
            },
            None => Self::default(),
        }
    }
}

/// Whether `text` may hold an e-mail address, as `@` or percent-encoded: the one check the usual
/// path and query need.
fn may_hold_email(text: &str) -> bool {
    bytes::find(text, b'@').is_some() || bytes::contains(text, "%40")
}

/// Whether `text` (a path segment or a query value, percent-encoded) holds an e-mail address.
fn holds_email(text: &str) -> bool {
    may_hold_email(text) && {
        let decoded = decode(text);
        mask_emails(&decoded) != decoded
    }
}

/// The URL and path as stored: query cut to the kept parameters (their values masked), path
/// segments holding an e-mail address masked, both bounded. Fills in `utm` on the way. A URL
/// that needs none of it (no query, or only kept parameters; no address) is kept as it came.
fn stored(
    url: HttpUrl<'_>,
    kept: &KeptParams,
    mut utm: Option<&mut Utm>,
    truncated: &mut bool,
) -> (CompactString, CompactString) {
    let pairs = || {
        bytes::split(url.query(), b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| (pair, bytes::split_once(pair, b'=').unwrap_or((pair, "")).0))
    };
    let mut as_sent = !url.may_hold_email();
    // Only the UTM values are decoded: form-decoding every pair was a quarter of the parse.
    for (pair, key) in pairs() {
        let key = decode(key);
        as_sent &= kept.keeps(&key);
        let Some(utm) = utm.as_deref_mut() else {
            continue;
        };
        let slot = match key.as_ref() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_term" => &mut utm.term,
            "utm_content" => &mut utm.content,
            _ => continue,
        };
        if slot.is_empty() {
            let value = decode(bytes::split_once(pair, b'=').map_or("", |(_, v)| v));
            *slot = bounded(&mask_emails(&value), UTM_MAX, truncated);
        }
    }
    if as_sent {
        let path = bounded(url.path(), URL_MAX, truncated);
        return (url.into_bounded(truncated), path);
    }
    let path = masked_path(url.path());
    let mut text = String::with_capacity(url.text.len());
    text.push_str(&url.text[..url.path.start]);
    text.push_str(&path);
    let mut separator = '?';
    for (pair, key) in pairs().filter(|(_, key)| kept.keeps(&decode(key))) {
        text.push(separator);
        separator = '&';
        match bytes::split_once(pair, b'=') {
            Some((_, value)) if holds_email(value) => {
                text.push_str(key);
                text.push('=');
                text.push_str(EMAIL_MASK);
            }
            _ => text.push_str(pair),
        }
    }
    (
        bounded_owned(text, URL_MAX, truncated),
        bounded(&path, URL_MAX, truncated),
    )
}

/// `path` with every segment that holds an e-mail address (also percent-encoded) replaced by
/// [`EMAIL_MASK`], which needs no encoding.
fn masked_path(path: &str) -> Cow<'_, str> {
    if !may_hold_email(path) {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if holds_email(segment) {
                EMAIL_MASK
            } else {
                segment
            }
        })
        .collect();
    Cow::Owned(segments.join("/"))
}

/// An absolute http(s) URL without its fragment, as the `url` crate serialises it, with where
/// its host, path and query are.
#[derive(Debug, PartialEq, Eq)]
pub struct HttpUrl<'a> {
    /// Borrowed from the input when [`plain_url`] could split it as it is.
    text: Cow<'a, str>,
    host: Range<usize>,
    path: Range<usize>,
    /// Empty when the URL has no query.
    query: Range<usize>,
    /// Whether the path or the query holds `@` or `%40` ([`may_hold_email`]); the fast path
    /// sees it in the pass it makes over them anyway.
    may_hold_email: bool,
}

impl HttpUrl<'_> {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn host(&self) -> &str {
        &self.text[self.host.clone()]
    }

    pub fn path(&self) -> &str {
        &self.text[self.path.clone()]
    }

    /// The query without its `?`; empty when there is none.
    pub fn query(&self) -> &str {
        &self.text[self.query.clone()]
    }

    /// Whether the path or the query may hold an e-mail address: `@`, or `%40`.
    pub fn may_hold_email(&self) -> bool {
        self.may_hold_email
    }

    /// The URL cut to [`URL_MAX`], keeping the `url` crate's buffer where there is one.
    fn into_bounded(self, truncated: &mut bool) -> CompactString {
        match self.text {
            Cow::Borrowed(text) => bounded(text, URL_MAX, truncated),
            Cow::Owned(text) => bounded_owned(text, URL_MAX, truncated),
        }
    }
}

/// `raw` as an absolute http(s) URL with a host, fragment, user name and password dropped;
/// `None` for anything else.
pub fn http_url(raw: &str) -> Option<HttpUrl<'_>> {
    if let Some(plain) = plain_url(raw) {
        return Some(plain);
    }
    let mut url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_fragment(None);
    // A user name or password in a page URL is a credential, never something to keep.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let at = |position| url[..position].len();
    let host = at(Position::BeforeHost)..at(Position::AfterHost);
    let path = at(Position::BeforePath)..at(Position::AfterPath);
    let query = match url.query() {
        Some(_) => at(Position::BeforeQuery)..at(Position::AfterQuery),
        None => 0..0,
    };
    let text: String = url.into();
    let may_hold_email =
        may_hold_email(&text[path.clone()]) || may_hold_email(&text[query.clone()]);
    Some(HttpUrl {
        text: Cow::Owned(text),
        host,
        path,
        query,
        may_hold_email,
    })
}

/// `raw` split in place if it is already what the `url` crate would make of it: `http://` or
/// `https://`, a host of lowercase letters, digits, `-` and `.` (no port, no user, no `xn--`
/// label, not ending in a number, which `url` would read as an IPv4 address), a path and query
/// of printable ASCII that `url` neither percent-encodes nor resolves (no `.` segments, `%`
/// only before two hex digits). Conservative on purpose: whatever it refuses, `url` parses.
pub fn plain_url(raw: &str) -> Option<HttpUrl<'_>> {
    let start = if raw.starts_with("https://") {
        "https://".len()
    } else if raw.starts_with("http://") {
        "http://".len()
    } else {
        return None;
    };
    let text = bytes::split_once(raw, b'#').map_or(raw, |(before, _)| before);
    let path_start = start + bytes::find(&text[start..], b'/')?;
    let host = &text[start..path_start];
    let query_at = bytes::find(&text[path_start..], b'?').map(|i| path_start + i);
    let path_end = query_at.unwrap_or(text.len());
    let path = &text[path_start..path_end];
    let query = query_at.map_or("", |q| &text[q + 1..]);
    if !plain_host(host) {
        return None;
    }
    let path_seen = plain_part(path)?;
    if path_seen.dot_segment {
        return None;
    }
    let query_seen = plain_part(query)?;
    Some(HttpUrl {
        text: Cow::Borrowed(text),
        host: start..path_start,
        path: path_start..path_end,
        query: query_at.map_or(0..0, |q| q + 1..text.len()),
        may_hold_email: path_seen.at_sign || query_seen.at_sign,
    })
}

fn plain_host(host: &str) -> bool {
    let b = host.as_bytes();
    if !(1..=253).contains(&b.len()) || b[0] == b'.' || b[b.len() - 1] == b'.' {
        return false;
    }
    // One pass: the characters, no empty label, no `xn--`, where the last label starts.
    let mut last_label = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'0'..=b'9' => {}
            b'-' if i < 3 || &b[i - 3..i] != b"xn-" => {}
            b'.' if b[i - 1] != b'.' => last_label = i + 1,
            _ => return false,
        }
    }
    !b[last_label].is_ascii_digit()
}

/// What [`plain_part`] saw in a path or query that the checks after it need: each was a
/// search of its own over the same bytes (`memmem`, about 100 instructions a call, six calls a
/// hit).
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// `@` or `%40`: [`may_hold_email`].
    at_sign: bool,
    /// `/.` or `%2e` (either case), which `url` resolves in a path.
    dot_segment: bool,
}

/// How [`plain_part`] takes each byte. A table lookup a byte, where a `matches!` over the 18
/// characters took about 12 instructions a byte.
const REFUSED: u8 = 0;
const PLAIN: u8 = 1;
/// Plain, and noted in [`Seen`]: `@` and `.`.
const NOTED: u8 = 2;
const PERCENT: u8 = 3;

static PART_BYTES: [u8; 256] = {
    let mut table = [REFUSED; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = match c {
            b'@' | b'.' => NOTED,
            b'%' => PERCENT,
            b'-' | b'_' | b'~' | b'!' | b'$' | b'&' | b'(' | b')' | b'*' | b'+' | b',' | b';'
            | b'=' | b':' | b'/' | b'?' => PLAIN,
            _ if c.is_ascii_alphanumeric() => PLAIN,
            _ => REFUSED,
        };
        b += 1;
    }
    table
};

/// `Some` if `part` (a path or a query) holds only characters the `url` crate leaves as they
/// are, `%` only as an escape; with what it saw on the way.
fn plain_part(part: &str) -> Option<Seen> {
    let b = part.as_bytes();
    let mut seen = Seen::default();
    let mut i = 0;
    while i < b.len() {
        match PART_BYTES[usize::from(b[i])] {
            PLAIN => {}
            NOTED if b[i] == b'@' => seen.at_sign = true,
            NOTED => seen.dot_segment |= i > 0 && b[i - 1] == b'/',
            PERCENT => {
                let (&high, &low) = (b.get(i + 1)?, b.get(i + 2)?);
                if !high.is_ascii_hexdigit() || !low.is_ascii_hexdigit() {
                    return None;
                }
                seen.at_sign |= high == b'4' && low == b'0';
                seen.dot_segment |= high == b'2' && low.eq_ignore_ascii_case(&b'e');
                // Both digits are plain: nothing to look at there.
                i += 2;
            }
            _ => return None,
        }
        i += 1;
    }
    Some(seen)
}

/// `text` cut to at most `max` bytes on a character boundary; sets `truncated` if it was cut.
pub fn bounded(text: &str, max: usize, truncated: &mut bool) -> CompactString {
    CompactString::new(&text[..cut_point(text, max, truncated)])
}

/// [`bounded`] for text already owned, whose buffer is kept rather than copied.
fn bounded_owned(mut text: String, max: usize, truncated: &mut bool) -> CompactString {
    let end = cut_point(&text, max, truncated);
    text.truncate(end);
    CompactString::from(text)
}

fn cut_point(text: &str, max: usize, truncated: &mut bool) -> usize {
    if text.len() <= max {
        return text.len();
    }
    *truncated = true;
    text.floor_char_boundary(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_splits_host_path_and_utm() {
        let page = Page::parse(
            "https://Shop.Example.com/a/b?utm_source=news&utm_medium=email&utm_campaign=spring%20sale&x=1#frag",
            &KeptParams::default(),
        )
        .unwrap();
        assert_eq!(page.host, "shop.example.com");
        assert_eq!(page.path, "/a/b");
        assert_eq!(
            page.url,
            "https://shop.example.com/a/b?utm_source=news&utm_medium=email&utm_campaign=spring%20sale"
        );
        assert_eq!(page.utm.source, "news");
        assert_eq!(page.utm.medium, "email");
        assert_eq!(page.utm.campaign, "spring sale");
        assert_eq!(page.utm.term, "");
        assert!(!page.truncated);
    }

    #[test]
    fn non_http_or_missing_urls_are_rejected() {
        assert_eq!(Page::parse("", &none()), Err(PageError::Missing));
        assert_eq!(Page::parse("   ", &none()), Err(PageError::Missing));
        assert_eq!(
            Page::parse("/relative/path", &none()),
            Err(PageError::NotHttp)
        );
        assert_eq!(
            Page::parse("javascript:alert(1)", &none()),
            Err(PageError::NotHttp)
        );
        assert_eq!(
            Page::parse("file:///etc/passwd", &none()),
            Err(PageError::NotHttp)
        );
        assert_eq!(Page::parse("http://", &none()), Err(PageError::NotHttp));
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let long = format!("https://example.com/{}", "é".repeat(3000));
        let page = Page::parse(&long, &none()).unwrap();
        assert!(page.truncated);
        assert!(page.url.len() <= URL_MAX && page.path.len() <= URL_MAX);
        let utm = format!("https://example.com/?utm_source={}", "x".repeat(1000));
        let page = Page::parse(&utm, &none()).unwrap();
        assert_eq!(page.utm.source.len(), UTM_MAX);
        assert!(page.truncated);
        let mut cut = false;
        assert_eq!(bounded("aé", 2, &mut cut), "a");
        assert!(cut);
    }

    #[test]
    fn plain_urls_are_split_in_place_and_agree_with_the_url_crate() {
        let cases: &[(&str, bool)] = &[
            (
                "https://shop.example.com/shoes/red?utm_source=news&x=1#top",
                true,
            ),
            ("http://example.com/", true),
            ("https://a-b.example/p%20q/(x)?q=%C3%A9&r=a/b?c", true),
            ("https://example.com", false),
            ("https://Example.COM/a", false),
            ("https://example.com:443/a", false),
            ("https://user@example.com/a", false),
            ("https://example.com/a/../b", false),
            ("https://example.com/a/%2e%2E/b", false),
            ("https://example.com/a b", false),
            ("https://example.com/a\\b", false),
            ("https://example.com/it's", false),
            ("https://example.com/?q=it's", false),
            ("https://example.com/%zz", false),
            ("https://127.1/", false),
            ("https://xn--bcher-kva.example/", false),
            ("https://shop.xn--bcher-kva.example/", false),
            ("https://x-n--a.example/", true),
            ("https://a.example/x.y/.well-known", false),
            ("https://a.example/a%2Eb", false),
            ("https://a.example/p?a=/./b", true),
            ("https://a.example/jane@example.com?q=1", true),
            ("https://a.example/p?to=jane%40example.com", true),
            ("https://a.example/p?to=jane%4", false),
            ("https://a.example/p?to=%41%30", true),
            ("https://bücher.example/", false),
            ("HTTPS://example.com/", false),
        ];
        for &(raw, plain) in cases {
            assert_eq!(plain_url(raw).is_some(), plain, "{raw}");
            let mut expected = Url::parse(raw).unwrap();
            expected.set_fragment(None);
            expected.set_username("").unwrap();
            let url = http_url(raw).unwrap();
            assert_eq!(url.as_str(), expected.as_str(), "{raw}");
            assert_eq!(Some(url.host()), expected.host_str(), "{raw}");
            assert_eq!(url.path(), expected.path(), "{raw}");
            assert_eq!(url.query(), expected.query().unwrap_or_default(), "{raw}");
            let email = |part: &str| part.contains('@') || part.contains("%40");
            assert_eq!(
                url.may_hold_email(),
                email(url.path()) || email(url.query()),
                "{raw}"
            );
        }
    }

    #[test]
    fn referrer_keeps_only_http_urls() {
        let mut cut = false;
        let r = Referrer::parse("https://www.google.com/search?q=x#top", &none(), &mut cut);
        assert_eq!(r.host, "www.google.com");
        assert_eq!(r.url, "https://www.google.com/search");
        assert_eq!(
            Referrer::parse("android-app://com.example", &none(), &mut cut),
            Referrer::default()
        );
        assert_eq!(Referrer::parse("", &none(), &mut cut), Referrer::default());
        assert!(!cut);
    }

    fn none() -> KeptParams {
        KeptParams::default()
    }

    #[test]
    fn query_strings_keep_only_the_allowed_parameters() {
        let page = |raw: &str, kept: &KeptParams| Page::parse(raw, kept).unwrap();
        let reset = page("https://shop.example/reset?token=SECRET123", &none());
        assert_eq!(
            (reset.url.as_str(), reset.path.as_str()),
            ("https://shop.example/reset", "/reset")
        );
        let mixed = page(
            "https://shop.example/p?sid=abc&utm_source=news&q=shoes&utm_medium=mail&page=2#x",
            &"q, page".parse().unwrap(),
        );
        assert_eq!(
            mixed.url,
            "https://shop.example/p?utm_source=news&q=shoes&utm_medium=mail&page=2"
        );
        assert_eq!(mixed.utm.source, "news");
        let encoded_key = page("https://shop.example/p?%71=1&q%3D=2", &"q".parse().unwrap());
        assert_eq!(
            encoded_key.url, "https://shop.example/p?%71=1",
            "keys compare decoded"
        );
        let bare = page("https://shop.example/p?&&=&", &none());
        assert_eq!(bare.url, "https://shop.example/p");
        let credentials = page("https://jane:pw@shop.example/p", &none());
        assert_eq!(credentials.url, "https://shop.example/p");
        assert!("q,bad name".parse::<KeptParams>().is_err());
        assert_eq!("".parse::<KeptParams>().unwrap(), none());
    }

    #[test]
    fn e_mail_addresses_are_masked_in_path_and_kept_values() {
        let kept: KeptParams = "ref".parse().unwrap();
        for (raw, url, path) in [
            (
                "https://shop.example/users/jane@example.com/orders",
                "https://shop.example/users/(email)/orders",
                "/users/(email)/orders",
            ),
            (
                "https://shop.example/u/jane%40example.com?ref=bob%40example.org&x=1",
                "https://shop.example/u/(email)?ref=(email)",
                "/u/(email)",
            ),
            (
                "https://shop.example/@jane/posts?utm_source=jane@example.com",
                "https://shop.example/@jane/posts?utm_source=(email)",
                "/@jane/posts",
            ),
        ] {
            let page = Page::parse(raw, &kept).unwrap();
            assert_eq!(
                (page.url.as_str(), page.path.as_str()),
                (url, path),
                "{raw}"
            );
        }
        let page = Page::parse("https://shop.example/?utm_source=jane@example.com", &kept).unwrap();
        assert_eq!(page.utm.source, "(email)");
        let mut cut = false;
        let r = Referrer::parse(
            "https://mail.example/inbox?user=alice@example.com",
            &none(),
            &mut cut,
        );
        assert_eq!(r.url, "https://mail.example/inbox");
    }
}
