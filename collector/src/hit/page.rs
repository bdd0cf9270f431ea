//! The page a hit is about, and where its visitor came from.
//!
//! Parses the page URL into what reports group by (host, path without query string, UTM tags)
//! and bounds every field, so a hostile client cannot make a row arbitrarily large. The stored
//! URL drops the fragment: it never reaches the server in a normal request, and when a script
//! sends it, it can hold secrets (OAuth tokens travel in fragments).

use compact_str::CompactString;
use url::Url;

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

impl Page {
    pub fn parse(raw: &str) -> Result<Self, PageError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PageError::Missing);
        }
        let mut url = http_url(raw).ok_or(PageError::NotHttp)?;
        url.set_fragment(None);
        let mut truncated = false;
        let mut utm = Utm::default();
        // Only the UTM values are decoded: form-decoding every pair was a quarter of the parse.
        for (key, value) in url
            .query()
            .unwrap_or_default()
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        {
            let slot = match decode(key).as_ref() {
                "utm_source" => &mut utm.source,
                "utm_medium" => &mut utm.medium,
                "utm_campaign" => &mut utm.campaign,
                "utm_term" => &mut utm.term,
                "utm_content" => &mut utm.content,
                _ => continue,
            };
            if slot.is_empty() {
                *slot = bounded(&decode(value), UTM_MAX, &mut truncated);
            }
        }
        let host = CompactString::new(url.host_str().unwrap_or_default());
        let path = bounded(url.path(), URL_MAX, &mut truncated);
        Ok(Self {
            url: bounded_owned(url.into(), URL_MAX, &mut truncated),
            host,
            path,
            utm,
            truncated,
        })
    }
}

impl Referrer {
    /// A referrer that is not an http(s) URL (`android-app://...`, garbage) is kept as unknown.
    pub fn parse(raw: &str, truncated: &mut bool) -> Self {
        match http_url(raw.trim()) {
            Some(mut url) => {
                url.set_fragment(None);
                Self {
                    host: CompactString::new(url.host_str().unwrap_or_default()),
                    url: bounded_owned(url.into(), URL_MAX, truncated),
                }
            }
            None => Self::default(),
        }
    }
}

fn http_url(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
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
        )
        .unwrap();
        assert_eq!(page.host, "shop.example.com");
        assert_eq!(page.path, "/a/b");
        assert_eq!(
            page.url,
            "https://shop.example.com/a/b?utm_source=news&utm_medium=email&utm_campaign=spring%20sale&x=1"
        );
        assert_eq!(page.utm.source, "news");
        assert_eq!(page.utm.medium, "email");
        assert_eq!(page.utm.campaign, "spring sale");
        assert_eq!(page.utm.term, "");
        assert!(!page.truncated);
    }

    #[test]
    fn non_http_or_missing_urls_are_rejected() {
        assert_eq!(Page::parse(""), Err(PageError::Missing));
        assert_eq!(Page::parse("   "), Err(PageError::Missing));
        assert_eq!(Page::parse("/relative/path"), Err(PageError::NotHttp));
        assert_eq!(Page::parse("javascript:alert(1)"), Err(PageError::NotHttp));
        assert_eq!(Page::parse("file:///etc/passwd"), Err(PageError::NotHttp));
        assert_eq!(Page::parse("http://"), Err(PageError::NotHttp));
    }

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let long = format!("https://example.com/{}", "é".repeat(3000));
        let page = Page::parse(&long).unwrap();
        assert!(page.truncated);
        assert!(page.url.len() <= URL_MAX && page.path.len() <= URL_MAX);
        let utm = format!("https://example.com/?utm_source={}", "x".repeat(1000));
        let page = Page::parse(&utm).unwrap();
        assert_eq!(page.utm.source.len(), UTM_MAX);
        assert!(page.truncated);
        let mut cut = false;
        assert_eq!(bounded("aé", 2, &mut cut), "a");
        assert!(cut);
    }

    #[test]
    fn referrer_keeps_only_http_urls() {
        let mut cut = false;
        let r = Referrer::parse("https://www.google.com/search?q=x#top", &mut cut);
        assert_eq!(r.host, "www.google.com");
        assert_eq!(r.url, "https://www.google.com/search?q=x");
        assert_eq!(
            Referrer::parse("android-app://com.example", &mut cut),
            Referrer::default()
        );
        assert_eq!(Referrer::parse("", &mut cut), Referrer::default());
        assert!(!cut);
    }
}
