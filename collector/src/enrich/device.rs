//! The device class of a (non-bot) user agent: console, TV, tablet, mobile, desktop or other.
//!
//! uap-core's device rules name models (`iPad`, `Samsung SM-X710`), not classes, and cost more
//! than the rest of the parse together, so the class comes from a few rules over the tokens
//! browsers put in their agents, checked in this order because they overlap: an Xbox says
//! `Windows NT`, an Android TV box says `Android` without `Mobile`, a TV says `Linux`. Accuracy
//! against Matomo's labelled fixtures is in BENCHMARKS.md (Enrichment).

use std::sync::LazyLock;

use regex::Regex;

/// The device class of the `device` column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Tv,
    Console,
    Bot,
    /// Feature phones without a browser we know, cars, and agents nobody recognises.
    #[default]
    Other,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Tv => "tv",
            Device::Console => "console",
            Device::Bot => "bot",
            Device::Other => "other",
        }
    }
}

fn rule(pattern: &str) -> Regex {
    Regex::new(pattern).expect("device rule compiles")
}

struct Rules {
    console: Regex,
    tv: Regex,
    tablet: Regex,
    mobile: Regex,
    android: Regex,
    desktop: Regex,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    // Leading edges only where model codes follow (`Playstation2`, `XBOX_ONE_ED`, `SteamDeck`).
    console: rule(concat!(
        r"(?i)\b(?:playstation|xbox|nintendo|steam ?deck|valve steam gameoverlay)|",
        r"\b(?:wiiu?|psp|ps[2-5]|ps vita|ouya)\b"
    )),
    tv: rule(concat!(
        r"(?i)smart[- ]?tv|\b(?:hbbtv|googletv|google tv|android ?tv|appletv|apple tv|tvos|",
        r"roku|web0s|netcast|bravia|crkey|dtv|viera|philipstv|tizen [\d.]+\) tv|",
        r"espial|opera tv|ce-html|nettv|inettvbrowser|vidaa|tv safari|maple|tv|largescreen|",
        r"brightsign|tivo|smart ?box|tv ?box)\b|",
        // Fire TV models (AFTMM, AFTWI001) and Android TV builds that say ATV in the model.
        r"(?-i:\bAFT[A-Z]{1,4}\d*\b|[a-z]ATV[a-z])"
    )),
    // `Tablet PC` is Windows' pen support on a laptop, not a tablet.
    tablet: rule(concat!(
        r"(?i)\bipad\b|\btablet\b(?: ?pc)?|\bkindle\b|\bsilk\b|\bplaybook\b|",
        r"\bsm-[tpx]\d|\bgt-p\d|\bnexus (?:7|9|10)\b|\bpixel c\b|\blenovo tab|\bmediapad\b|\bmatepad\b"
    )),
    mobile: rule(concat!(
        r"(?i)mobi|\biphone\b|\bipod\b|\bandroid\b.*\bmobile\b|windows phone|\bblackberry\b|\bbb10\b|",
        r"opera mini|\bmidp\b|\bj2me\b|\bsymbian|up\.browser|\bkaios\b|\bwap\b|series ?[46]0|\bfeaturephone\b"
    )),
    android: rule(r"(?i)\bandroid\b"),
    desktop: rule(
        r"(?i)windows nt|\bwindows\b|macintosh|mac os x|\bx11\b|\bcros\b|\blinux\b|\bfreebsd\b|\bopenbsd\b",
    ),
});

/// Builds the rules now ([`super::user_agent::prepare`]).
pub(super) fn build() {
    LazyLock::force(&RULES);
}

/// The class of a user agent that is not a bot.
pub fn class(user_agent: &str) -> Device {
    let rules = &*RULES;
    if rules.console.is_match(user_agent) {
        Device::Console
    } else if rules.tv.is_match(user_agent) {
        Device::Tv
    } else if is_tablet(rules, user_agent) {
        Device::Tablet
    } else if rules.mobile.is_match(user_agent) {
        Device::Mobile
    } else if rules.android.is_match(user_agent) {
        // Android without `Mobile` is a tablet, by Google's own convention for browsers.
        Device::Tablet
    } else if rules.desktop.is_match(user_agent) {
        Device::Desktop
    } else {
        Device::Other
    }
}

fn is_tablet(rules: &Rules, user_agent: &str) -> bool {
    rules.tablet.find_iter(user_agent).any(|m| {
        let token = m.as_str();
        !(token.len() > 6
            && token[..6].eq_ignore_ascii_case("tablet")
            && token.ends_with(['c', 'C']))
    })
}
