//! The body of `POST /e`: events from the tracker script, as JSON.
//!
//! One event or an array of them. Parsing is strict (unknown fields and kinds are errors with
//! a message saying which) and bounded: the body size is capped by the handler, the number of
//! events and every free-text field here. Page fields are checked later the way the pixel's are
//! ([`crate::hit::page`]), so a page view means the same whichever way it arrived.

use serde::Deserialize;

/// Most events in one body.
pub const MAX_EVENTS: usize = 50;
/// Longest engaged time believed for one page view: a day. More is a broken or forged client.
pub const MAX_ENGAGED_MS: u32 = 24 * 60 * 60 * 1000;
/// Longest free-text field accepted, in bytes (URLs are cut to their own bound afterwards).
const FIELD_MAX: usize = 8192;
/// Page-view ids are made by the tracker: 16 to 64 characters of `[0-9A-Za-z]`.
const PAGEVIEW_ID_LEN: std::ops::RangeInclusive<usize> = 16..=64;

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
    },
    /// The visitor has been engaged with page view `pageview_id` for `engaged_ms` in total so
    /// far; later reports of the same page view supersede earlier ones.
    Engagement {
        site: String,
        url: String,
        pageview_id: String,
        engaged_ms: u32,
    },
}

impl BeaconEvent {
    pub fn site(&self) -> &str {
        match self {
            Self::Pageview { site, .. } | Self::Engagement { site, .. } => site,
        }
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
            ..
        } => {
            if *engaged_ms > MAX_ENGAGED_MS {
                return Err(BeaconError::EngagedTooLong { index });
            }
            (url, pageview_id, [("referrer", ""), ("title", "")])
        }
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
            }]
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
        ];
        for (body, expected) in cases {
            let error = parse(body.as_bytes()).expect_err(&body).to_string();
            assert!(error.contains(expected), "{body:.80}: {error}");
        }
    }
}
