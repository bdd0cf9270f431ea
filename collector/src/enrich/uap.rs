//! Browser and operating system, with their versions, by uap-core's rules (the maintained
//! rule set behind the `ua-parser` crate, vendored as `uap-regexes.json` and refreshed by
//! `benches/corpora/refresh`), named by stable families.
//!
//! Chosen over `woothee` (last release 2021) by figures (BENCHMARKS.md, Enrichment): on the
//! vendored OS corpus uap-core names the family right far more often, it knows ChromeOS, TV and
//! console systems, and it gives versions in their own fields where woothee mixes them into the
//! name ("Windows 10", "Windows UNKNOWN Ver"). It is slower uncached, which the cache hides.
//! Only the agent and OS extractors are built: the device rules are the largest part of the
//! set and name models, not the classes we report (see [`super::device`]).

use std::sync::LazyLock;

use compact_str::{CompactString, format_compact};
use ua_parser::{Regexes, os, user_agent};

const RULES: &str = include_str!("uap-regexes.json");

struct Extractors {
    browser: user_agent::Extractor<'static>,
    os: os::Extractor<'static>,
}

static EXTRACTORS: LazyLock<Extractors> = LazyLock::new(|| {
    let rules: Regexes<'static> = serde_json::from_str(RULES).expect("uap-core rules parse");
    Extractors {
        browser: user_agent::Builder::new()
            .push_all(rules.user_agent_parsers)
            .expect("uap-core agent rules compile")
            .build()
            .expect("uap-core agent rules build"),
        os: os::Builder::new()
            .push_all(rules.os_parsers)
            .expect("uap-core OS rules compile")
            .build()
            .expect("uap-core OS rules build"),
    }
});

/// Builds the rules now ([`super::user_agent::prepare`]).
pub(super) fn build() {
    LazyLock::force(&EXTRACTORS);
}

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
    if let Some(browser) = EXTRACTORS.browser.extract(user_agent)
        && let Some(family) = browser_family(&browser.family)
    {
        parsed.browser = family;
        parsed.browser_version = version(browser.major, browser.minor);
    }
    if let Some(os) = EXTRACTORS.os.extract(user_agent)
        && let Some(family) = os_family(&os.os)
    {
        parsed.os = family;
        parsed.os_version = version(os.major.as_deref(), os.minor.as_deref());
    }
    parsed
}

fn version(major: Option<&str>, minor: Option<&str>) -> CompactString {
    match (
        major.filter(|m| !m.is_empty()),
        minor.filter(|m| !m.is_empty()),
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
