//! User agent → browser and OS families with their versions, device class and bot flag.
//!
//! Three pieces, each in its own file: [`super::bots`] (public crawler lists and word rules),
//! [`super::uap`] (uap-core's rules for browser and OS) and [`super::device`] (the class), the
//! first and last fed by one scan for the words an agent holds in any case ([`super::words`]),
//! with [`super::common_agents`] reading the shapes of the current big browsers without them. The
//! whole agent is classified, however long: bots append their token to a browser's agent, and
//! only the stored copy is cut.
//!
//! [`AgentCache`] keeps recent answers keyed by the user agent string: a site's visitors share
//! a few hundred distinct agents, so almost every hit is a cache hit, and a new agent costs
//! about 1.5 µs once if it has a common shape, about 5 µs otherwise (BENCHMARKS.md, User
//! agents).

use std::sync::Arc;

use compact_str::CompactString;
use quick_cache::sync::Cache;

pub use super::device::Device;
use super::{bots, common_agents, device, uap, uap_rules, words};

/// What a user agent says about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// Browser family (`Chrome`, `Firefox`, `Safari`, `Edge`, ...); empty when unknown.
    pub browser: CompactString,
    /// `major` or `major.minor`; empty when unknown.
    pub browser_version: CompactString,
    /// OS family (`Windows`, `macOS`, `iOS`, `Android`, `Linux`, `ChromeOS`, ...); empty when
    /// unknown.
    pub os: CompactString,
    /// `major` or `major.minor` (`10`, `11`, `XP`, `10.15`, `17.4`); empty when unknown.
    pub os_version: CompactString,
    pub device: Device,
    pub is_bot: bool,
}

/// Classifies one user agent, uncached: the common shapes are read directly
/// ([`super::common_agents`]), any other agent goes through the rules.
pub fn classify(user_agent: &str) -> Agent {
    let found = words::find(user_agent);
    let is_bot = bots::judge(user_agent, found.bot);
    match common_agents::read(user_agent) {
        Some((parsed, device)) => agent(parsed, device, is_bot),
        None => by_rules(user_agent, is_bot, found.device),
    }
}

/// [`classify`] by the rules alone, for every agent: the reference the shortcut is tested and
/// fuzzed against.
pub fn classify_by_rules(user_agent: &str) -> Agent {
    let found = words::find(user_agent);
    by_rules(user_agent, bots::judge(user_agent, found.bot), found.device)
}

/// `device_rules`: the device rules whose literals the agent holds ([`words::Found::device`]).
fn by_rules(user_agent: &str, is_bot: bool, device_rules: u8) -> Agent {
    // A bot's device class is `bot` whatever its agent claims, so the device rules are skipped.
    let device = if is_bot {
        Device::Bot
    } else {
        device::class(user_agent, device_rules)
    };
    agent(uap::parse(user_agent), device, is_bot)
}

fn agent(parsed: uap::Parsed, device: Device, is_bot: bool) -> Agent {
    Agent {
        browser: parsed.browser,
        browser_version: parsed.browser_version,
        os: parsed.os,
        os_version: parsed.os_version,
        device: if is_bot { Device::Bot } else { device },
        is_bot,
    }
}

/// Builds the rule sets, which are otherwise built by the first hit: it would wait for them
/// (about 150 ms in a release build), and the memory they take (about 24 MiB) would look like
/// what that hit's connection left behind. Nothing is matched: the regex engines' scratch space
/// belongs to the threads that match.
pub fn prepare() {
    uap_rules::build();
    words::build();
    bots::build();
    device::build();
}

/// Longest agent kept in the cache: real browsers send 100 to 300 bytes, and a key as long as
/// the header limit (16 KiB) would let a client make the cache hold 160 MiB.
const CACHED_AGENT_MAX: usize = 1024;

/// [`classify`] behind a bounded cache keyed by the user agent string.
pub struct AgentCache(Cache<String, Arc<Agent>>);

impl AgentCache {
    /// A cache of at most `capacity` distinct user agents.
    pub fn new(capacity: usize) -> Self {
        Self(Cache::new(capacity))
    }

    pub fn classify(&self, user_agent: &str) -> Arc<Agent> {
        if let Some(agent) = self.0.get(user_agent) {
            return agent;
        }
        let agent = Arc::new(classify(user_agent));
        if user_agent.len() <= CACHED_AGENT_MAX {
            self.0.insert(user_agent.to_owned(), agent.clone());
        }
        agent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";

    /// (agent, browser, browser version, OS, OS version, device)
    const TABLE: &[(&str, &str, &str, &str, &str, Device)] = &[
        (
            CHROME_WINDOWS,
            "Chrome",
            "124.0",
            "Windows",
            "10",
            Device::Desktop,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
            "Edge",
            "124.0",
            "Windows",
            "10",
            Device::Desktop,
        ),
        (
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
            "IE",
            "11.0",
            "Windows",
            "7",
            Device::Desktop,
        ),
        (
            "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; Tablet PC 2.0)",
            "IE",
            "7.0",
            "Windows",
            "XP",
            Device::Desktop,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "Safari",
            "17.4",
            "macOS",
            "10.15",
            Device::Desktop,
        ),
        (
            FIREFOX_LINUX,
            "Firefox",
            "125.0",
            "Linux",
            "",
            Device::Desktop,
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Chrome",
            "124.0",
            "ChromeOS",
            "14541.0",
            Device::Desktop,
        ),
        (
            SAFARI_IPHONE,
            "Safari",
            "17.4",
            "iOS",
            "17.4",
            Device::Mobile,
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
            "Safari",
            "16.6",
            "iOS",
            "16.6",
            Device::Tablet,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "124.0",
            "Android",
            "14",
            Device::Mobile,
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Chrome",
            "124.0",
            "Android",
            "13",
            Device::Tablet,
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.45 Mobile Safari/537.36",
            "Chrome",
            "96.0",
            "Android",
            "10",
            Device::Mobile,
        ),
        (
            "Mozilla/5.0 (Linux; Android 9; KFMAWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/112.3.1 like Chrome/112.0.5615.213 Safari/537.36",
            "Amazon Silk",
            "112.3",
            "Android",
            "9",
            Device::Tablet,
        ),
        (
            "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/538.1 (KHTML, like Gecko) Version/6.0 TV Safari/538.1",
            "Safari",
            "6.0",
            "Tizen",
            "6.0",
            Device::Tv,
        ),
        (
            "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 Safari/537.36 WebAppManager",
            "Chrome",
            "79.0",
            "webOS",
            "",
            Device::Tv,
        ),
        (
            "Mozilla/5.0 (Linux; Android 9; AFTMM) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.6045.193 Safari/537.36",
            "Chrome",
            "119.0",
            "Android",
            "9",
            Device::Tv,
        ),
        (
            "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
            "Safari",
            "13.0",
            "",
            "",
            Device::Console,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.61",
            "Edge",
            "120.0",
            "Windows",
            "10",
            Device::Console,
        ),
        (
            "Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/609.4 (KHTML, like Gecko) NF/6.0.3.25.0 NintendoBrowser/5.1.0.32061",
            "",
            "",
            "",
            "",
            Device::Console,
        ),
        (
            "Nokia6300/2.0 (05.00) Profile/MIDP-2.0 Configuration/CLDC-1.1",
            "Nokia Services (WAP) Browser",
            "",
            "",
            "",
            Device::Mobile,
        ),
    ];

    #[test]
    fn browsers_os_versions_and_devices() {
        let wrong: Vec<String> = TABLE
            .iter()
            .filter_map(|&(ua, browser, browser_version, os, os_version, device)| {
                let agent = classify(ua);
                let got = (
                    agent.browser.as_str(),
                    agent.browser_version.as_str(),
                    agent.os.as_str(),
                    agent.os_version.as_str(),
                    agent.device,
                    agent.is_bot,
                );
                let want = (browser, browser_version, os, os_version, device, false);
                (got != want).then(|| format!("{ua}\n  got  {got:?}\n  want {want:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn crawlers_headless_browsers_and_tools_are_bots() {
        let bots = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 PTST/240501.120012",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 DatadogSynthetics",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "WhatsApp/2.23.20.0",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
            "",
        ];
        for ua in bots {
            let agent = classify(ua);
            assert!(agent.is_bot, "{ua:?} is a bot");
            assert_eq!(agent.device, Device::Bot, "{ua:?}");
        }
        assert_eq!(
            classify(bots[3]).browser,
            "Chrome",
            "a headless browser keeps its family"
        );
    }

    #[test]
    fn unknown_agents_are_other_with_empty_names() {
        let agent = classify("Mozilla/5.0 (Fridge; U; en) Quux/3.2 (KHTML, like Gecko)");
        assert_eq!(
            agent,
            Agent {
                device: Device::Other,
                ..Agent::default()
            }
        );
    }

    #[test]
    fn the_cache_answers_like_classify() {
        let cache = AgentCache::new(2);
        let long = format!("{CHROME_WINDOWS} {} Googlebot/2.1", "x".repeat(2000));
        for ua in [
            CHROME_WINDOWS,
            SAFARI_IPHONE,
            FIREFOX_LINUX,
            CHROME_WINDOWS,
            "curl/8.5.0",
            &long,
            &long,
            CHROME_WINDOWS,
        ] {
            assert_eq!(*cache.classify(ua), classify(ua), "{ua}");
        }
        assert!(cache.classify(&long).is_bot);
    }
}
