//! Browser and operating system, with their versions, by uap-core's rules (the maintained
//! rule set behind the `ua-parser` crate, vendored as `uap-regexes.json` and refreshed by
//! `benches/corpora/refresh`), named by stable families.
//!
//! Chosen over `woothee` (last release 2021) by figures (BENCHMARKS.md, Enrichment): on the
//! vendored OS corpus uap-core names the family right far more often, it knows ChromeOS, TV and
//! console systems, and it gives versions in their own fields where woothee mixes them into the
//! name ("Windows 10", "Windows UNKNOWN Ver"). It is slower uncached, which the cache hides.
//! Only the agent and OS rules are used, matched by [`super::uap_rules`]: the device rules are
//! the largest part of the set and name models, not the classes we report (see
//! [`super::device`]).

use compact_str::{CompactString, format_compact};

use super::uap_rules::{self, Extracted};

/// Families and versions (`major` or `major.minor`); empty where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub browser: CompactString,
    pub browser_version: CompactString,
    pub os: CompactString,
    pub os_version: CompactString,
}

/// Parses `user_agent` with uap-core's rules.
pub fn parse(user_agent: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let (browser, os) = uap_rules::extract(user_agent);
    if let Some(browser) = browser
        && let Some(family) = browser_family(&browser.name)
    {
        parsed.browser = family;
        parsed.browser_version = version(&browser);
    }
    if let Some(os) = os
        && let Some(family) = os_family(&os.name)
    {
        parsed.os = family;
        parsed.os_version = version(&os);
    }
    parsed
}

fn version(extracted: &Extracted<'_>) -> CompactString {
    match (
        extracted.major.as_deref().filter(|m| !m.is_empty()),
        extracted.minor.as_deref().filter(|m| !m.is_empty()),
    ) {
        (Some(major), Some(minor)) => format_compact!("{major}.{minor}"),
        (Some(major), None) => CompactString::new(major),
        _ => CompactString::default(),
    }
}

/// One name per product: uap-core tells `Chrome Mobile` from `Chrome`, which the device column
/// already says.
fn browser_family(family: &str) -> Option<CompactString> {
    let name = match family {
        "Other" | "" => return None,
        "Chrome Mobile"
        | "Chrome Mobile iOS"
        | "Chrome Mobile WebView"
        | "Chromium"
        | "HeadlessChrome" => "Chrome",
        "Mobile Safari" | "Mobile Safari UI/WKWebView" | "Safari" => "Safari",
        "Firefox Mobile" | "Firefox iOS" | "Firefox Focus" => "Firefox",
        "Edge Mobile" => "Edge",
        "Opera Mobile" | "Opera Mini" => "Opera",
        "Samsung Internet" => "Samsung Internet",
        other => other,
    };
    Some(CompactString::new(name))
}

/// Stable OS families: `Mac OS X` is macOS, every Linux distribution is Linux.
fn os_family(family: &str) -> Option<CompactString> {
    let name = match family {
        "Other" | "" => return None,
        "Mac OS X" | "Mac OS" => "macOS",
        "Chrome OS" => "ChromeOS",
        "Ubuntu" | "Debian" | "Fedora" | "Red Hat" | "Gentoo" | "Linux Mint" | "Mandriva"
        | "SUSE" | "openSUSE" | "Kubuntu" | "Slackware" | "CentOS" | "Arch Linux" => "Linux",
        "ATV OS X" => "tvOS",
        "Web0S" => "webOS",
        "Chromecast Android"
        | "Chromecast Fuchsia"
        | "Chromecast Linux"
        | "Chromecast SmartSpeaker" => "Chromecast",
        other => other,
    };
    Some(CompactString::new(name))
}
