//! One scan of a user agent for what it says in any ASCII case: the plain words of the bot lists
//! ([`super::bots`]) and the literals the device classes need ([`super::device`]). Both were a
//! scan of their own; as one they step over the agent once, about 1,500 instructions less per
//! corpus agent (BENCHMARKS.md, User agents). uap-core's literals are case-sensitive and stay in
//! their own scan ([`super::uap_rules`]).

use std::sync::LazyLock;

use super::scan::Literals;
use super::{bots, device};

/// What the scan of one agent found.
#[derive(Clone, Copy, Default)]
pub(super) struct Found {
    /// A plain word of a bot list is in the agent ([`bots::judge`]).
    pub(super) bot: bool,
    /// A bit for each device rule whose literals are in the agent ([`device::class`]).
    pub(super) device: u8,
}

/// What a literal of the scan stands for.
#[derive(Clone, Copy)]
enum Owner {
    /// isbot's words count in any case.
    BotWord,
    /// The crawler list's words count only in their case (`crawler_words[i]`).
    CrawlerWord(u16),
    DeviceRule(u8),
}

struct Words {
    literals: Literals,
    owners: Vec<Owner>,
    crawler_words: &'static [String],
}

static WORDS: LazyLock<Words> = LazyLock::new(|| {
    let (crawler_words, isbot_words) = bots::words();
    let devices = device::literals();
    let mut literals: Vec<Vec<u8>> = Vec::new();
    let mut owners = Vec::new();
    for (index, word) in (0u16..).zip(crawler_words) {
        literals.push(word.as_bytes().to_vec());
        owners.push(Owner::CrawlerWord(index));
    }
    for word in isbot_words {
        literals.push(word.as_bytes().to_vec());
        owners.push(Owner::BotWord);
    }
    for (literal, rule) in devices {
        literals.push(literal);
        owners.push(Owner::DeviceRule(rule));
    }
    Words {
        literals: Literals::new(&literals, true),
        owners,
        crawler_words,
    }
});

/// Builds the scan now ([`super::user_agent::prepare`]).
pub(super) fn build() {
    LazyLock::force(&WORDS);
}

/// Scans `user_agent` once for every bot word and device literal.
pub(super) fn find(user_agent: &str) -> Found {
    let words = &*WORDS;
    let agent = user_agent.as_bytes();
    let mut found = Found::default();
    words
        .literals
        .for_each(agent, |literal, range| match words.owners[literal] {
            Owner::BotWord => found.bot = true,
            Owner::CrawlerWord(index) => {
                found.bot |= agent[range] == *words.crawler_words[usize::from(index)].as_bytes();
            }
            Owner::DeviceRule(rule) => found.device |= 1 << rule,
        });
    found
}
