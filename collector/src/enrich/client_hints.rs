//! User-Agent Client Hints: the OS version that current browsers no longer put in the agent.
//!
//! Chromium-based browsers freeze their agent string: every Windows 10 and 11 says
//! `Windows NT 10.0`, every Mac `Mac OS X 10_15_7`, every Android `Android 10; K`. The real
//! version comes as a client hint, either the `Sec-CH-UA-Platform` and
//! `Sec-CH-UA-Platform-Version` request headers (where the browser sends them, see the README)
//! or from the tracker, which reads `navigator.userAgentData.getHighEntropyValues`. Only a hint
//! naming the same OS family as the agent is believed, and only its version is taken: it says
//! nothing the agent did not already claim but how recent it is.

use compact_str::{CompactString, format_compact};
use http::{HeaderMap, HeaderName};

/// What the collector asks for in `Accept-CH`. Browsers heed it only on a document of the
/// collector's own origin, not on a script or image a site embeds: for those the site's pages
/// must delegate the hint (README, Enrichment), and the tracker reads it either way.
pub const ACCEPT_CH: &str = "Sec-CH-UA-Platform-Version";

/// Names, not `&str`: looked up by a `&str`, a header name is checked and lowered byte by byte
/// on every request (the two cost 0.3k instructions a request more, `benches/instructions.sh`).
const PLATFORM: HeaderName = HeaderName::from_static("sec-ch-ua-platform");
const PLATFORM_VERSION: HeaderName = HeaderName::from_static("sec-ch-ua-platform-version");

/// The platform hints of a request or a beacon, as sent (without the header's quotes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints<'a> {
    pub platform: &'a str,
    pub platform_version: &'a str,
}

impl<'a> Hints<'a> {
    /// The `Sec-CH-UA-Platform` and `Sec-CH-UA-Platform-Version` headers, if both are sent.
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let get = |name: HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().trim_matches('"'))
                .unwrap_or_default()
        };
        Self {
            platform: get(PLATFORM),
            platform_version: get(PLATFORM_VERSION),
        }
    }

    /// The OS version these hints give for an agent of OS family `os`, if they name that
    /// family and a version we can read.
    pub fn os_version(&self, os: &str) -> Option<CompactString> {
        let mut parts = self.platform_version.split('.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor = parts.next().and_then(|m| m.parse::<u32>().ok());
        match (self.platform, os) {
            // Windows reports its UniversalApiContract version: 1 to 10 are Windows 10, 13 and
            // up Windows 11; 0 is Windows 7 to 8.1, which the agent still tells apart.
            ("Windows", "Windows") => match major {
                0 => None,
                1..=12 => Some(CompactString::const_new("10")),
                _ => Some(CompactString::const_new("11")),
            },
            ("macOS", "macOS") | ("Chrome OS", "ChromeOS") => Some(match minor {
                Some(minor) => format_compact!("{major}.{minor}"),
                None => format_compact!("{major}"),
            }),
            ("Android", "Android") => Some(format_compact!("{major}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(platform: &'static str, platform_version: &'static str) -> Hints<'static> {
        Hints {
            platform,
            platform_version,
        }
    }

    #[test]
    fn windows_11_and_10_are_told_apart_by_the_platform_version() {
        assert_eq!(
            hints("Windows", "15.0.0").os_version("Windows").unwrap(),
            "11"
        );
        assert_eq!(
            hints("Windows", "13.0.0").os_version("Windows").unwrap(),
            "11"
        );
        assert_eq!(
            hints("Windows", "10.0.0").os_version("Windows").unwrap(),
            "10"
        );
        assert_eq!(
            hints("Windows", "1.0.0").os_version("Windows").unwrap(),
            "10"
        );
        assert_eq!(hints("Windows", "0.3.0").os_version("Windows"), None);
    }

    #[test]
    fn frozen_mac_and_android_versions_are_replaced() {
        assert_eq!(
            hints("macOS", "14.4.1").os_version("macOS").unwrap(),
            "14.4"
        );
        assert_eq!(
            hints("Android", "14.0.0").os_version("Android").unwrap(),
            "14"
        );
        assert_eq!(
            hints("Chrome OS", "15633.69.0")
                .os_version("ChromeOS")
                .unwrap(),
            "15633.69"
        );
    }

    #[test]
    fn hints_for_another_family_or_unreadable_ones_are_ignored() {
        assert_eq!(hints("Windows", "15.0.0").os_version("Linux"), None);
        assert_eq!(hints("Linux", "6.1").os_version("Linux"), None);
        assert_eq!(hints("Windows", "").os_version("Windows"), None);
        assert_eq!(hints("Windows", "x.y").os_version("Windows"), None);
        assert_eq!(Hints::default().os_version("Windows"), None);
    }

    #[test]
    fn headers_are_read_without_their_quotes() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-ch-ua-platform", "\"Windows\"".parse().unwrap());
        headers.insert("sec-ch-ua-platform-version", "\"15.0.0\"".parse().unwrap());
        assert_eq!(Hints::from_headers(&headers), hints("Windows", "15.0.0"));
    }
}
