//! The device class of a (non-bot) user agent: console, TV, tablet, mobile, desktop or other.
//!
//! uap-core's device rules name models (`iPad`, `Samsung SM-X710`), not classes, and cost more
//! than the rest of the parse together, so the class comes from a few rules over the tokens
//! browsers put in their agents, checked in this order because they overlap: an Xbox says
//! `Windows NT`, an Android TV box says `Android` without `Mobile`, a TV says `Linux`. Accuracy
//! against Matomo's labelled fixtures is in BENCHMARKS.md (Enrichment).

use std::sync::LazyLock;

use regex::Regex;

use super::literals::{required, shortest};

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

/// The rules, in the order they are checked (they overlap, see above).
const CONSOLE: usize = 0;
const TV: usize = 1;
const TABLET: usize = 2;
const MOBILE: usize = 3;
const ANDROID: usize = 4;
const DESKTOP: usize = 5;

const PATTERNS: [&str; 6] = [
    // Leading edges only where model codes follow (`Playstation2`, `XBOX_ONE_ED`, `SteamDeck`).
    concat!(
        r"(?i)\b(?:playstation|xbox|nintendo|steam ?deck|valve steam gameoverlay)|",
        r"\b(?:wiiu?|psp|ps[2-5]|ps vita|ouya)\b"
    ),
    concat!(
        r"(?i)smart[- ]?tv|\b(?:hbbtv|googletv|google tv|android ?tv|appletv|apple tv|tvos|",
        r"roku|web0s|netcast|bravia|crkey|dtv|viera|philipstv|tizen [\d.]+\) tv|",
        r"espial|opera tv|ce-html|nettv|inettvbrowser|vidaa|tv safari|maple|tv|largescreen|",
        r"brightsign|tivo|smart ?box|tv ?box)\b|",
        // Fire TV models (AFTMM, AFTWI001) and Android TV builds that say ATV in the model.
        r"(?-i:\bAFT[A-Z]{1,4}\d*\b|[a-z]ATV[a-z])"
    ),
    // `Tablet PC` is Windows' pen support on a laptop, not a tablet.
    concat!(
        r"(?i)\bipad\b|\btablet\b(?: ?pc)?|\bkindle\b|\bsilk\b|\bplaybook\b|",
        r"\bsm-[tpx]\d|\bgt-p\d|\bnexus (?:7|9|10)\b|\bpixel c\b|\blenovo tab|\bmediapad\b|\bmatepad\b"
    ),
    concat!(
        r"(?i)mobi|\biphone\b|\bipod\b|\bandroid\b.*\bmobile\b|windows phone|\bblackberry\b|\bbb10\b|",
        r"opera mini|\bmidp\b|\bj2me\b|\bsymbian|up\.browser|\bkaios\b|\bwap\b|series ?[46]0|\bfeaturephone\b"
    ),
    r"(?i)\bandroid\b",
    r"(?i)windows nt|\bwindows\b|macintosh|mac os x|\bx11\b|\bcros\b|\blinux\b|\bfreebsd\b|\bopenbsd\b",
];

/// Every rule may match: an agent that is not ASCII is tested against all of them, since `(?i)`
/// also folds `K` (Kelvin sign) and `ſ`, which an ASCII-case-insensitive scan does not.
const ALL: u8 = (1 << PATTERNS.len()) - 1;

/// The literals each rule needs ([`super::literals`]), which the agent's scan for words in any
/// case looks for ([`super::words`]): a rule whose literals are not in the agent cannot match
/// and is not tested. Each rule was a scan of its own, six for a desktop agent; with one scan a
/// desktop agent tests one rule, and the class of a corpus agent costs a quarter less
/// (1.17-1.27 against 1.50-1.72 µs in one interleaved run over the vendored agents).
pub(super) fn literals() -> Vec<(Vec<u8>, u8)> {
    let mut literals = Vec::new();
    for (rule, pattern) in (0u8..).zip(PATTERNS) {
        // Without `(?i)` the literals come out as written (lower case), looked for in any case.
        let sensitive = pattern.strip_prefix("(?i)").unwrap_or(pattern);
        let hir = regex_syntax::parse(sensitive).expect("device rule parses");
        let set = required(&hir)
            .into_iter()
            .max_by_key(shortest)
            .expect("every device rule has literals to look for");
        literals.extend(set.into_iter().map(|literal| (literal, rule)));
    }
    literals
}

static REGEXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .map(|p| Regex::new(p).expect("device rule compiles"))
        .collect()
});

/// The rules that may match `user_agent`, a bit each, from the rules whose literals its scan
/// found (`found`).
fn candidates(user_agent: &str, found: u8) -> u8 {
    if user_agent.is_ascii() { found } else { ALL }
}

/// Builds the rules now ([`super::user_agent::prepare`]).
pub(super) fn build() {
    LazyLock::force(&REGEXES);
}

/// The class of a user agent that is not a bot, given the rules whose literals its scan found
/// ([`super::words::Found::device`]).
pub(super) fn class(user_agent: &str, found: u8) -> Device {
    class_among(candidates(user_agent, found), user_agent)
}

/// [`class`] with the rules in `maybe` tested (all of them: the reference the scan is tested
/// against).
fn class_among(maybe: u8, user_agent: &str) -> Device {
    let regexes = &*REGEXES;
    let test = |rule: usize| maybe & (1 << rule) != 0 && regexes[rule].is_match(user_agent);
    if test(CONSOLE) {
        Device::Console
    } else if test(TV) {
        Device::Tv
    } else if maybe & (1 << TABLET) != 0 && is_tablet(&regexes[TABLET], user_agent) {
        Device::Tablet
    } else if test(MOBILE) {
        Device::Mobile
    } else if test(ANDROID) {
        // Android without `Mobile` is a tablet, by Google's own convention for browsers.
        Device::Tablet
    } else if test(DESKTOP) {
        Device::Desktop
    } else {
        Device::Other
    }
}

fn is_tablet(rule: &Regex, user_agent: &str) -> bool {
    rule.find_iter(user_agent).any(|m| {
        let token = m.as_str();
        !(token.len() > 6
            && token[..6].eq_ignore_ascii_case("tablet")
            && token.ends_with(['c', 'C']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_skips_no_rule_that_matches() {
        let class = |agent: &str| class(agent, super::super::words::find(agent).device);
        for agent in &super::super::vendored_agents() {
            assert_eq!(class(agent), class_among(ALL, agent), "{agent}");
        }
        // Upper case, and (?i)'s Unicode folding: `\u{212a}` is a Kelvin sign, which `(?i)k`
        // matches.
        for agent in [
            "Mozilla/5.0 (PLAYSTATION 5)",
            "Mozilla/5.0 (Linux; \u{212a}indle Fire)",
        ] {
            assert_eq!(class(agent), class_among(ALL, agent), "{agent}");
        }
        assert_eq!(
            class("Mozilla/5.0 (Linux; \u{212a}indle Fire)"),
            Device::Tablet
        );
    }
}
