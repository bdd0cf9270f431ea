//! Is a user agent a bot? Two maintained public pattern lists, vendored and refreshed from their
//! registry packages by `benches/corpora/refresh`: the named crawlers of `crawler-user-agents`
//! (`crawler-patterns.txt`) and the generic rules of `isbot` (`isbot-patterns.txt`, less the few
//! that need look-around, which `regex` does not have), plus rules of our own for what such
//! lists cannot name: an agent that carries a URL (crawlers link their documentation; browsers
//! never do), generic bot words as whole words, and an empty agent.
//!
//! Rules match whole words, not substrings: a bare `bot` flagged CUBOT phones and fuboTV, a bare
//! `java/` old J2ME phones, `libwww` the Lynx browser.
//!
//! Of the 1,690 listed patterns, 1,560 are plain words: the agent's one scan for words in any
//! case looks for them ([`super::words`]; the crawler list's words are checked for their case
//! where they match; one automaton per list scanned each agent twice and cost a fifth more; as
//! a DFA, 7 MB, where the default contiguous NFA, 0.3 MB, took 7,000 instructions per corpus
//! agent against 2,800), and only the rest go into one regex, with ASCII classes (`\w`, `\b`, `(?i)`
//! without Unicode's tables). All 1,690 in one Unicode regex was fast only on agents like those
//! it had seen: its lazy DFA outgrew its cache on a corpus of distinct agents and fell back to
//! the NFA, about 300 µs per new agent, where the split costs about 1 µs (BENCHMARKS.md, User
//! agents). A `RegexSet` was slower still, and we only need to know whether any rule matched.
//! Accuracy on the vendored corpora is measured by `footfall-ua-accuracy` (BENCHMARKS.md, Bots).

use std::sync::LazyLock;

use regex::Regex;
use regex::bytes::RegexBuilder;
use regex_syntax::hir::{HirKind, Literal};

/// One pattern a line, in the list's regex dialect (RE2, which `regex` shares); case-sensitive.
const CRAWLER_PATTERNS: &str = include_str!("crawler-patterns.txt");
/// One pattern a line, matched case-insensitively as isbot does.
const ISBOT_PATTERNS: &str = include_str!("isbot-patterns.txt");

/// Our own rules, case-insensitive and bounded by word edges.
const OWN_RULES: &[&str] = &[
    // A URL: crawlers point to a page about themselves, browsers never carry one.
    r"https?://",
    r"\bwww\.",
    // Generic words, as words: `CUBOT` and `fuboTV` are no bots.
    // (Not `bot` alone: "M bot Tab" is a tablet; bots end their name in it, see NAME_ENDS_IN_BOT.)
    r"\b(?:robots?|crawler|spider|scraper|scanner|fetcher|archiver|checker|validator|preview|thumbnails?|monitor|monitoring|synthetics?)\b",
    r"[a-z0-9](?:crawler|spider)\b",
    // Google's own agents name themselves Google-Product (isbot's rule for them needs look-around).
    r"\bgoogle-[a-z]|[a-z]-google\b|\bgoogle_[a-z]|\bgoogle search console\b",
    // Mail and image proxies fetching on someone's behalf (ImageProxy/, SeznamEmailProxy/).
    r"[a-z]proxy/",
    // Automation and headless browsers that otherwise look like browsers.
    r"\b(?:headless\w*|phantomjs|slimerjs|selenium|webdriver|puppeteer|playwright|cypress|lighthouse|pagespeed|gtmetrix|ptst|pingdom|uptime\w*|checkly|thousandeyes|ghost ?inspector|site24x7|alwaysonline|catchpoint|newrelic\w*|dynatrace|statuscake)\b",
    // Assistants fetching a page for a person (ChatGPT-User, Claude-User, Perplexity-User, ...).
    r"\b[a-z]+-user\b",
    // HTTP libraries and command-line clients, at the start where they name themselves.
    r"^(?:curl|wget|httpie|python|python-\w+|aiohttp|httpx|go-http-client|go-resty|java|apache-httpclient|okhttp|axios|node-fetch|node|undici|got|deno|bun|ruby|faraday|guzzlehttp|php|perl|libwww-perl|lwp|mechanize|scrapy|rest-client|restsharp|postmanruntime|insomnia|dart|reqwest|hyper|colly|nutch|heritrix|wordpress|feedparser|rss|winhttp|powershell|okhttp3)\b",
];

/// Case-sensitive, so that `CUBOT` (a phone brand) is not caught: `Googlebot`, `YandexBot`.
const NAME_ENDS_IN_BOT: &str = r"(?:[a-z0-9]bot|Bot)\b";

/// A pattern's text if it matches nothing but itself (`Googlebot\/`, `bingbot`), as regex's
/// own parser reads it.
fn literal(pattern: &str) -> Option<String> {
    match regex_syntax::parse(pattern).ok()?.into_kind() {
        HirKind::Literal(Literal(bytes)) => String::from_utf8(bytes.into_vec()).ok(),
        _ => None,
    }
}

/// The lines of `list` split into plain words and the patterns that need a regex.
fn split(list: &str) -> (Vec<String>, Vec<&str>) {
    let mut words = Vec::new();
    let mut patterns = Vec::new();
    for line in list.lines().filter(|line| !line.is_empty()) {
        match literal(line) {
            Some(word) => words.push(word),
            None => patterns.push(line),
        }
    }
    (words, patterns)
}

/// The two lists, split once into their plain words, which the agent's scan for words in any
/// case looks for ([`super::words`]), and every other pattern, in one regex.
struct Lists {
    /// The crawler list's words count only in their case.
    crawler_words: Vec<String>,
    /// isbot's words count in any case.
    isbot_words: Vec<String>,
    patterns: regex::bytes::Regex,
}

static LISTS: LazyLock<Lists> = LazyLock::new(|| {
    let (crawler_words, crawlers) = split(CRAWLER_PATTERNS);
    let (isbot_words, isbot) = split(ISBOT_PATTERNS);
    let crawlers = crawlers.join("|");
    let isbot = isbot.join("|");
    let own = OWN_RULES.join("|");
    Lists {
        crawler_words,
        isbot_words,
        patterns: RegexBuilder::new(&format!(
            "(?:{crawlers})|{NAME_ENDS_IN_BOT}|(?i:{isbot})|(?i:{own})"
        ))
        .unicode(false)
        .build()
        .expect("bot patterns compile"),
    }
});

/// The lists' plain words: the crawler list's, then isbot's.
pub(super) fn words() -> (&'static [String], &'static [String]) {
    (&LISTS.crawler_words, &LISTS.isbot_words)
}

/// Builds the rules now ([`super::user_agent::prepare`]).
pub(super) fn build() {
    LazyLock::force(&LISTS);
}

/// Apps on phones and TVs that send a bare device model, which isbot's rule for one-word agents
/// (`ApacheBench/2.3`, `collectd/5.5.1`) would take for tools.
static DEVICE_MODEL_ONLY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:iPhone|iPad|iPod|smarttv_)[\w,.]*$").expect("compiles"));

/// Whether `user_agent` is a bot by its text alone. An empty agent is: every browser sends one.
pub fn is_bot(user_agent: &str) -> bool {
    judge(user_agent, super::words::find(user_agent).bot)
}

/// [`is_bot`], given whether the agent's scan found a listed word ([`super::words::Found::bot`]).
pub(super) fn judge(user_agent: &str, listed_word: bool) -> bool {
    user_agent.trim().is_empty()
        || ((listed_word || LISTS.patterns.is_match(user_agent.as_bytes()))
            && !DEVICE_MODEL_ONLY.is_match(user_agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_pattern_compiles_alone() {
        let lines = CRAWLER_PATTERNS.lines().chain(ISBOT_PATTERNS.lines());
        for pattern in lines.filter(|l| !l.is_empty()) {
            Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        }
    }

    /// The split into words and patterns, and ASCII classes, change no answer on the vendored
    /// corpora against all patterns in one Unicode regex.
    #[test]
    fn the_split_rules_answer_as_one_regex_of_every_pattern() {
        let all = |list: &str| {
            list.lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("|")
        };
        let (crawlers, isbot, own) = (
            all(CRAWLER_PATTERNS),
            all(ISBOT_PATTERNS),
            OWN_RULES.join("|"),
        );
        let one = Regex::new(&format!(
            "(?:{crawlers})|{NAME_ENDS_IN_BOT}|(?i:{isbot})|(?i:{own})"
        ))
        .expect("compiles");
        let corpora = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/corpora");
        let mut compared = 0;
        for entry in std::fs::read_dir(corpora).expect("corpora are vendored") {
            let path = entry.expect("readable").path();
            if path.extension().is_none_or(|ext| ext != "tsv") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            for agent in text.lines().filter(|l| !l.starts_with('#')) {
                let agent = agent.split('\t').next().unwrap_or_default();
                let split = super::super::words::find(agent).bot
                    || LISTS.patterns.is_match(agent.as_bytes());
                assert_eq!(split, one.is_match(agent), "{agent}");
                compared += 1;
            }
        }
        assert!(compared >= 5_000, "only {compared} agents compared");
    }

    #[test]
    fn bots_by_list_url_word_and_library() {
        let bots = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; SomeNewCrawler/0.1; +https://example.org/about)",
            "Mozilla/5.0 (compatible; Examplebot/1.0)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 PTST/240501.120012",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ChatGPT-User/1.0; +https://openai.com/bot",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; Acme-User/1.0",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Java/17.0.2",
            "",
            "   ",
        ];
        for ua in bots {
            assert!(is_bot(ua), "{ua:?} is a bot");
        }
    }

    #[test]
    fn words_inside_other_words_are_no_bots() {
        let browsers = [
            // CUBOT phones, fuboTV, Lynx with libwww, a J2ME phone with a Java token.
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.45 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233; fuboTV/4.30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.110 Mobile Safari/537.36",
            "Lynx/2.8.9rel.1 libwww-FM/2.14 SSL-MM/1.4.1 OpenSSL/1.1.1d",
            "Nokia6300/2.0 (05.00) Profile/MIDP-2.0 Configuration/CLDC-1.1 Java/Jbed/v7 UNTRUSTED/1.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        ];
        for ua in browsers {
            assert!(!is_bot(ua), "{ua:?} is a browser");
        }
    }

    #[test]
    fn a_bot_token_far_into_a_long_agent_counts() {
        let ua = format!("Mozilla/5.0 ({}) Googlebot/2.1", "x; ".repeat(300));
        assert!(ua.len() > 512);
        assert!(is_bot(&ua));
    }
}
