//! The body of `POST /e`: events from the tracker script, as JSON.
//!
//! One event or an array of them. Parsing is strict (unknown fields and kinds are errors with
//! a message saying which) and bounded: the body size is capped by the handler, the number of
//! events and every free-text field here. Page fields are checked later the way the pixel's are
//! ([`crate::hit::page`]), so a page view means the same whichever way it arrived; custom
//! events' names and properties are bounded by [`crate::hit::props`].
//!
//! Every event may carry `"bot": true`: the tracker says so when the browser is driven by
//! automation (`navigator.webdriver`), and the row is stored flagged as a bot.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

/// Most events in one body.
pub const MAX_EVENTS: usize = 50;
/// Longest engaged time believed for one page view: a day. More is a broken or forged client.
pub const MAX_ENGAGED_MS: u32 = 24 * 60 * 60 * 1000;
/// Longest free-text field accepted, in bytes (URLs are cut to their own bound afterwards).
const FIELD_MAX: usize = 8192;
/// Page-view ids are made by the tracker: 16 to 64 characters of `[0-9A-Za-z]`.
const PAGEVIEW_ID_LEN: std::ops::RangeInclusive<usize> = 16..=64;
/// Most properties read from one custom event; [`crate::hit::props`] keeps at most 30 of them.
const PROPS_READ_MAX: usize = 1000;

/// One event as the tracker sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BeaconEvent {
    /// The page `url` was shown; `pageview_id` names this showing.
    Pageview {
        site: String,
        url: String,
        pageview_id: String,
        #[serde(default)]
        referrer: String,
        #[serde(default)]
        title: String,
        #[serde(default)]
        bot: bool,
        /// `navigator.userAgentData`'s `platform` and `platformVersion`, where the browser has
        /// them: the OS version a frozen user agent no longer tells.
        #[serde(default)]
        platform: String,
        #[serde(default)]
        platform_version: String,
    },
    /// The visitor has been engaged with page view `pageview_id` for `engaged_ms` in total so
    /// far, and has seen `scroll_depth` percent of the page at most; later reports of the same
    /// page view supersede earlier ones.
    Engagement {
        site: String,
        url: String,
        pageview_id: String,
        engaged_ms: u32,
        #[serde(default)]
        scroll_depth: u8,
        #[serde(default)]
        bot: bool,
    },
    /// A custom event `event` on page view `pageview_id`, with properties.
    Custom {
        site: String,
        url: String,
        pageview_id: String,
        event: String,
        #[serde(default)]
        props: RawProps,
        #[serde(default)]
        bot: bool,
    },
    /// The customer signed out on page view `pageview_id` (the tracker's `footfall('signout')`).
    Signout {
        site: String,
        url: String,
        pageview_id: String,
        #[serde(default)]
        bot: bool,
    },
}

impl BeaconEvent {
    pub fn site(&self) -> &str {
        match self {
            Self::Pageview { site, .. }
            | Self::Engagement { site, .. }
            | Self::Custom { site, .. }
            | Self::Signout { site, .. } => site,
        }
    }

    /// The client hints the tracker read, on page views.
    pub fn hints(&self) -> (String, String) {
        match self {
            Self::Pageview {
                platform,
                platform_version,
                ..
            } => (platform.clone(), platform_version.clone()),
            _ => Default::default(),
        }
    }

    /// Whether the tracker found the browser driven by automation.
    pub fn bot(&self) -> bool {
        match self {
            Self::Pageview { bot, .. }
            | Self::Engagement { bot, .. }
            | Self::Custom { bot, .. }
            | Self::Signout { bot, .. } => *bot,
        }
    }
}

/// A custom event's properties as sent: a JSON object of strings, numbers and booleans, in
/// the order sent (numbers and booleans as their JSON text; `null` is left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawProps(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for RawProps {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = RawProps;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "an object of at most {PROPS_READ_MAX} strings, numbers or booleans"
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawProps, A::Error> {
                let mut pairs = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    let value = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Number(n) => n.to_string(),
                        serde_json::Value::Bool(b) => b.to_string(),
                        serde_json::Value::Null => continue,
                        _ => return Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
                    };
                    if pairs.len() == PROPS_READ_MAX {
                        return Err(de::Error::invalid_length(pairs.len() + 1, &self));
                    }
                    pairs.push((key, value));
                }
                Ok(RawProps(pairs))
            }
        }
        d.deserialize_map(Object)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    #[error("the body is not valid JSON for an event or an array of events: {0}")]
    Json(String),
    #[error("the body holds no events")]
    Empty,
    #[error("too many events in one body ({0}; at most {MAX_EVENTS})")]
    TooMany(usize),
    #[error("event {index}: `{field}` is longer than {FIELD_MAX} bytes")]
    TooLong { index: usize, field: &'static str },
    #[error("event {index}: `pageview_id` must be 16 to 64 letters and digits")]
    BadPageviewId { index: usize },
    #[error("event {index}: `engaged_ms` is more than a day ({MAX_ENGAGED_MS})")]
    EngagedTooLong { index: usize },
    #[error("event {index}: `scroll_depth` is a percentage, 0 to 100")]
    ScrollDepth { index: usize },
}

/// The events of one body, validated; `index` in errors counts from 0.
pub fn parse(body: &[u8]) -> Result<Vec<BeaconEvent>, BeaconError> {
    let json = |e: serde_json::Error| BeaconError::Json(e.to_string());
    let events = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<BeaconEvent>>(body).map_err(json)?,
        _ => vec![serde_json::from_slice::<BeaconEvent>(body).map_err(json)?],
    };
    if events.is_empty() {
        return Err(BeaconError::Empty);
    }
    if events.len() > MAX_EVENTS {
        return Err(BeaconError::TooMany(events.len()));
    }
    for (index, event) in events.iter().enumerate() {
        check(index, event)?;
    }
    Ok(events)
}

fn check(index: usize, event: &BeaconEvent) -> Result<(), BeaconError> {
    let (url, pageview_id, texts): (&str, &str, [(&'static str, &str); 2]) = match event {
        BeaconEvent::Pageview {
            url,
            pageview_id,
            referrer,
            title,
            ..
        } => (url, pageview_id, [("referrer", referrer), ("title", title)]),
        BeaconEvent::Engagement {
            url,
            pageview_id,
            engaged_ms,
            scroll_depth,
            ..
        } => {
            if *engaged_ms > MAX_ENGAGED_MS {
                return Err(BeaconError::EngagedTooLong { index });
            }
            if *scroll_depth > 100 {
                return Err(BeaconError::ScrollDepth { index });
            }
            (url, pageview_id, [("referrer", ""), ("title", "")])
        }
        BeaconEvent::Custom {
            url,
            pageview_id,
            event,
            ..
        } => (url, pageview_id, [("event", event), ("title", "")]),
        BeaconEvent::Signout {
            url, pageview_id, ..
        } => (url, pageview_id, [("referrer", ""), ("title", "")]),
    };
    for (field, text) in [("url", url)].into_iter().chain(texts) {
        if text.len() > FIELD_MAX {
            return Err(BeaconError::TooLong { index, field });
        }
    }
    if !PAGEVIEW_ID_LEN.contains(&pageview_id.len())
        || !pageview_id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(BeaconError::BadPageviewId { index });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PV: &str = r#"{"kind":"pageview","site":"s","url":"https://example.com/","pageview_id":"abcdefghijABCDEFGHIJ12"}"#;

    #[test]
    fn one_event_or_an_array() {
        let one = parse(PV.as_bytes()).unwrap();
        assert_eq!(
            one,
            [BeaconEvent::Pageview {
                site: "s".into(),
                url: "https://example.com/".into(),
                pageview_id: "abcdefghijABCDEFGHIJ12".into(),
                referrer: String::new(),
                title: String::new(),
                bot: false,
                platform: String::new(),
                platform_version: String::new(),
            }]
        );
        let hinted = PV.replace('}', r#","platform":"Windows","platform_version":"15.0.0"}"#);
        assert_eq!(
            parse(hinted.as_bytes()).unwrap()[0].hints(),
            ("Windows".to_owned(), "15.0.0".to_owned())
        );
        let engagement = r#"{"kind":"engagement","site":"s","url":"https://example.com/","pageview_id":"abcdefghijABCDEFGHIJ12","engaged_ms":1500}"#;
        let both = parse(format!(" [{PV},{engagement}]").as_bytes()).unwrap();
        assert_eq!(both.len(), 2);
        assert!(matches!(
            both[1],
            BeaconEvent::Engagement {
                engaged_ms: 1500,
                ..
            }
        ));
    }

    #[test]
    fn a_signout_names_its_page_view_and_nothing_more() {
        let signout = r#"{"kind":"signout","site":"s","url":"https://example.com/","pageview_id":"abcdefghijABCDEFGHIJ12"}"#;
        assert!(matches!(
            &parse(signout.as_bytes()).unwrap()[0],
            BeaconEvent::Signout { pageview_id, .. } if pageview_id == "abcdefghijABCDEFGHIJ12"
        ));
        let without_view = signout.replace(r#","pageview_id":"abcdefghijABCDEFGHIJ12""#, "");
        assert!(parse(without_view.as_bytes()).is_err());
        let with_customer = signout.replace(r#""site""#, r#""customer_id":"c","site""#);
        assert!(
            parse(with_customer.as_bytes()).is_err(),
            "a customer is named only by a signed link"
        );
    }

    #[test]
    fn custom_events_scroll_depth_and_the_bot_flag() {
        let custom = r#"{"kind":"custom","site":"s","url":"https://example.com/","pageview_id":"abcdefghijABCDEFGHIJ12","event":"Signup","props":{"plan":"pro","seats":3,"trial":true,"none":null},"bot":true}"#;
        let parsed = parse(custom.as_bytes()).unwrap();
        let BeaconEvent::Custom { event, props, .. } = &parsed[0] else {
            panic!("a custom event");
        };
        assert_eq!(event, "Signup");
        assert_eq!(
            props.0,
            [
                ("plan".to_owned(), "pro".to_owned()),
                ("seats".to_owned(), "3".to_owned()),
                ("trial".to_owned(), "true".to_owned())
            ]
        );
        assert!(parsed[0].bot());
        let engagement = r#"{"kind":"engagement","site":"s","url":"https://example.com/","pageview_id":"abcdefghijABCDEFGHIJ12","engaged_ms":1,"scroll_depth":75}"#;
        assert!(matches!(
            parse(engagement.as_bytes()).unwrap()[0],
            BeaconEvent::Engagement {
                scroll_depth: 75,
                bot: false,
                ..
            }
        ));
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let pv = |extra: &str| PV.replacen('{', &format!("{{{extra}"), 1);
        let many = format!("[{}]", vec![PV; MAX_EVENTS + 1].join(","));
        let long_title = pv(&format!(r#""title":"{}","#, "x".repeat(FIELD_MAX + 1)));
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not valid JSON"),
            ("".into(), "not valid JSON"),
            ("[]".into(), "no events"),
            (many, "too many events"),
            (
                PV.replace("pageview\"", "click\""),
                "unknown variant `click`",
            ),
            (
                PV.replace(r#""kind":"pageview","#, ""),
                "missing field `kind`",
            ),
            (pv(r#""color":"red","#), "unknown field `color`"),
            (PV.replace(r#","site":"s""#, ""), "missing field `site`"),
            (PV.replace("abcdefghijABCDEFGHIJ12", "short"), "pageview_id"),
            (
                PV.replace("abcdefghijABCDEFGHIJ12", "abcdefghij-ABCDEFGHIJ12"),
                "pageview_id",
            ),
            (long_title, "`title` is longer"),
            (
                PV.replace("pageview\"", "engagement\"").replacen(
                    '{',
                    r#"{"engaged_ms":86400001,"#,
                    1,
                ),
                "more than a day",
            ),
            (
                PV.replace("pageview\"", "engagement\"")
                    .replacen('{', r#"{"engaged_ms":-5,"#, 1),
                "not valid JSON",
            ),
            (
                PV.replace("pageview\"", "engagement\""),
                "missing field `engaged_ms`",
            ),
            (
                PV.replace("pageview\"", "engagement\"").replacen(
                    '{',
                    r#"{"engaged_ms":1,"scroll_depth":101,"#,
                    1,
                ),
                "`scroll_depth` is a percentage",
            ),
            (
                PV.replace("pageview\"", "custom\""),
                "missing field `event`",
            ),
            (
                PV.replace("pageview\"", "custom\"").replacen(
                    '{',
                    r#"{"event":"E","props":{"a":{"b":1}},"#,
                    1,
                ),
                "an object of at most",
            ),
            (
                PV.replace("pageview\"", "custom\"").replacen(
                    '{',
                    r#"{"event":"E","props":[1],"#,
                    1,
                ),
                "an object of at most",
            ),
            (
                PV.replace("pageview\"", "custom\"").replacen(
                    '{',
                    &format!(r#"{{"event":"{}","#, "x".repeat(FIELD_MAX + 1)),
                    1,
                ),
                "`event` is longer",
            ),
        ];
        for (body, expected) in cases {
            let error = parse(body.as_bytes()).expect_err(&body).to_string();
            assert!(error.contains(expected), "{body:.80}: {error}");
        }
    }
}
