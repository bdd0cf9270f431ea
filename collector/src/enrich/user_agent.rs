//! User agent → browser, operating system, device class and bot flag.
//!
//! Parsing uses `woothee`: a maintained port of a cross-language UA table, pure Rust with only
//! `regex` underneath (already in the build), and fast enough for the hot path once its answers
//! are cached. `uaparser` covers more rare agents but compiles and loads a large YAML regex set
//! for little gain in the columns reports group by. On top of woothee's crawler list,
//! [`classify`] flags automation and headless browsers that present themselves as ordinary
//! browsers (HeadlessChrome, Lighthouse, HTTP libraries).
//!
//! [`AgentCache`] keeps recent answers keyed by the user agent string: a site's visitors share
//! a few hundred distinct agents, so almost every hit is a cache hit.

use std::sync::Arc;

use compact_str::CompactString;
use quick_cache::sync::Cache;

/// What a user agent says about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// Browser family (`Chrome`, `Firefox`, `Safari`, ...); empty when unknown.
    pub browser: CompactString,
    /// Operating system (`Windows 10`, `macOS`, `iOS`, `Android`, `Linux`, ...); empty when unknown.
    pub os: CompactString,
    pub device: Device,
    pub is_bot: bool,
}

/// The device class of the `device` column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    /// Consoles, TVs, feature phones and agents nobody recognises.
    #[default]
    Other,
}

impl Device {
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Bot => "bot",
            Device::Other => "other",
        }
    }
}

/// Lower-case fragments of automated clients that woothee takes for browsers or does not know.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headless",
    "phantomjs",
    "selenium",
    "webdriver",
    "puppeteer",
    "playwright",
    "lighthouse",
    "pagespeed",
    "pingdom",
    "uptime",
    "monitor",
    "facebookexternalhit",
    "preview",
    "curl/",
    "wget/",
    "python-",
    "python/",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "libwww",
    "httpclient",
    "scrapy",
    "feedfetcher",
];

/// Classifies one user agent, uncached. An empty user agent is a bot: every browser sends one.
pub fn classify(user_agent: &str) -> Agent {
    let parsed = woothee::parser::Parser::new()
        .parse(user_agent)
        .unwrap_or_default();
    let known = |value: &str| {
        if value == woothee::woothee::VALUE_UNKNOWN {
            CompactString::default()
        } else {
            CompactString::new(value)
        }
    };
    let os = match parsed.os {
        "iPhone" | "iPad" | "iPod" => CompactString::const_new("iOS"),
        "Mac OSX" => CompactString::const_new("macOS"),
        other => known(other),
    };
    let lower = user_agent.to_ascii_lowercase();
    let is_bot = user_agent.trim().is_empty()
        || parsed.category == "crawler"
        || BOT_MARKERS.iter().any(|marker| lower.contains(marker));
    let device = if is_bot {
        Device::Bot
    } else if parsed.os == "iPad"
        || lower.contains("tablet")
        || (parsed.os == "Android" && !lower.contains("mobile"))
    {
        Device::Tablet
    } else {
        match parsed.category {
            "pc" => Device::Desktop,
            "smartphone" | "mobilephone" => Device::Mobile,
            _ => Device::Other,
        }
    };
    Agent {
        browser: known(parsed.name),
        os,
        device,
        is_bot,
    }
}

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
        self.0.insert(user_agent.to_owned(), agent.clone());
        agent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
    const CHROME_ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
    const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

    #[test]
    fn browsers_os_and_devices() {
        let table: &[(&str, &str, &str, Device)] = &[
            (CHROME_WINDOWS, "Chrome", "Windows 10", Device::Desktop),
            (SAFARI_IPHONE, "Safari", "iOS", Device::Mobile),
            (SAFARI_IPAD, "Safari", "iOS", Device::Tablet),
            (CHROME_ANDROID_PHONE, "Chrome", "Android", Device::Mobile),
            (CHROME_ANDROID_TABLET, "Chrome", "Android", Device::Tablet),
            (FIREFOX_LINUX, "Firefox", "Linux", Device::Desktop),
            (SAFARI_MAC, "Safari", "macOS", Device::Desktop),
        ];
        for &(ua, browser, os, device) in table {
            let agent = classify(ua);
            assert_eq!(
                (agent.browser.as_str(), agent.os.as_str(), agent.device),
                (browser, os, device),
                "{ua}"
            );
            assert!(!agent.is_bot, "{ua}");
        }
    }

    #[test]
    fn crawlers_headless_browsers_and_tools_are_bots() {
        let bots = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
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
        let agent = classify("SomethingNobodyKnows/1.0");
        assert_eq!(
            agent,
            Agent {
                browser: CompactString::default(),
                os: CompactString::default(),
                device: Device::Other,
                is_bot: false
            }
        );
    }

    #[test]
    fn the_cache_answers_like_classify() {
        let cache = AgentCache::new(2);
        for ua in [
            CHROME_WINDOWS,
            SAFARI_IPHONE,
            FIREFOX_LINUX,
            CHROME_WINDOWS,
            "curl/8.5.0",
            CHROME_WINDOWS,
        ] {
            assert_eq!(*cache.classify(ua), classify(ua), "{ua}");
        }
    }
}
