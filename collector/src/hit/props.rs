//! Custom events: the event name and its properties, checked and bounded.
//!
//! A site chooses names and properties, but a visitor's browser sends them, so they are
//! untrusted text that ends up in report cells. The name must be plain (it is a report key, and
//! a bad one is an error the client is told about); properties are bounded rather than refused,
//! so that one oversized value does not cost the event: at most [`MAX_PROPS`] properties, keys
//! of at most [`KEY_MAX`] bytes (longer keys and further properties are left out), values cut
//! to [`VALUE_MAX`] bytes. What is cut is reported in [`Props::cut`] for the metrics.
//!
//! Values are treated like URLs, because that is what they most often are (the link of an
//! outbound click or a download): an absolute http(s) URL is kept as host and path, a
//! relative one loses its query string and fragment, and e-mail addresses are masked wherever
//! they appear. Control characters are dropped (they break CSV viewers and logs).

use compact_str::CompactString;

use super::mask::mask_emails;
use super::page::{bounded, http_url};

/// Most properties kept per event.
pub const MAX_PROPS: usize = 30;
/// Longest property key kept, in bytes.
pub const KEY_MAX: usize = 64;
/// Longest property value kept, in bytes.
pub const VALUE_MAX: usize = 256;
/// Longest event name, in bytes.
pub const NAME_MAX: usize = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the event name is empty")]
    Empty,
    #[error("the event name is longer than {NAME_MAX} bytes")]
    TooLong,
    #[error("the event name holds control characters")]
    Control,
}

/// A custom event's name, trimmed: 1 to [`NAME_MAX`] bytes without control characters.
pub fn event_name(raw: &str) -> Result<CompactString, NameError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    Ok(CompactString::new(name))
}

/// Properties as stored: unique keys in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    pub pairs: Vec<(CompactString, CompactString)>,
    /// Properties left out or values cut to their bound.
    pub cut: usize,
}

impl Props {
    /// Bounds `raw` (pairs in the order sent; the first of a repeated key wins).
    pub fn bound<'a, K, V>(raw: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        let mut props = Props::default();
        for (key, value) in raw {
            let key = clean(key.as_ref());
            let key = key.trim();
            if key.is_empty() || props.pairs.iter().any(|(k, _)| k == key) {
                continue;
            }
            if key.len() > KEY_MAX || props.pairs.len() == MAX_PROPS {
                props.cut += 1;
                continue;
            }
            let mut truncated = false;
            let value = bounded(&value_like_url(value.as_ref()), VALUE_MAX, &mut truncated);
            props.cut += usize::from(truncated);
            props.pairs.push((CompactString::new(key), value));
        }
        props
    }
}

/// `value` as stored: see the module documentation.
fn value_like_url(value: &str) -> String {
    let value = clean(value.trim());
    let value = match http_url(&value) {
        Some(url) => format!("{}{}", url.host(), url.path()),
        None if value.starts_with('/') => value.split(['?', '#']).next().unwrap_or("").to_owned(),
        None => value,
    };
    mask_emails(&value).into_owned()
}

/// `text` without control characters.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(pairs: &[(&str, &str)]) -> Props {
        Props::bound(pairs.iter().copied())
    }

    #[test]
    fn names_are_plain_and_bounded() {
        assert_eq!(event_name(" Signup ").unwrap(), "Signup");
        assert_eq!(
            event_name("Outbound Link: Click").unwrap(),
            "Outbound Link: Click"
        );
        assert_eq!(event_name(" "), Err(NameError::Empty));
        assert_eq!(event_name(&"x".repeat(121)), Err(NameError::TooLong));
        assert_eq!(event_name("a\u{0}b"), Err(NameError::Control));
        assert_eq!(event_name("a\nb"), Err(NameError::Control));
    }

    #[test]
    fn at_most_30_props_of_bounded_keys_and_values() {
        let many: Vec<(String, String)> = (0..40)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .collect();
        let props = Props::bound(many);
        assert_eq!(props.pairs.len(), MAX_PROPS);
        assert_eq!(props.pairs[29], ("k29".into(), "v29".into()));
        assert_eq!(props.cut, 10);

        let long_key = "k".repeat(KEY_MAX + 1);
        let huge = "é".repeat(1000);
        let props = bound(&[(&long_key, "x"), ("plan", &huge), ("plan", "second")]);
        assert_eq!(
            props.pairs.len(),
            1,
            "a long key is left out, a repeat ignored"
        );
        assert_eq!(props.pairs[0].0, "plan");
        assert_eq!(
            props.pairs[0].1.len(),
            VALUE_MAX,
            "cut on a character boundary"
        );
        assert_eq!(props.cut, 2);
    }

    #[test]
    fn values_are_treated_like_urls() {
        let props = bound(&[
            ("url", "https://Other.example/files/a.pdf?token=secret#x"),
            ("path", "/signup/done?email=a@b.example"),
            ("who", "write to jane.doe+x@mail.example.com today"),
            ("two", "a@b.example,c@d.example"),
            ("plain", "pro plan @ 10% off?"),
            ("formula", "=cmd|' /C calc'!A0"),
            ("binary", "a\u{0}\u{1b}[31mb\u{7f}"),
        ]);
        let value = |k: &str| {
            props
                .pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(value("url"), Some("other.example/files/a.pdf"));
        assert_eq!(value("path"), Some("/signup/done"));
        assert_eq!(value("who"), Some("write to (email) today"));
        assert_eq!(value("two"), Some("(email),(email)"));
        assert_eq!(value("plain"), Some("pro plan @ 10% off?"));
        assert_eq!(
            value("formula"),
            Some("=cmd|' /C calc'!A0"),
            "stored as sent; reports defuse it"
        );
        assert_eq!(value("binary"), Some("a[31mb"));
        assert_eq!(props.cut, 0);
    }
}
