//! The corpora's own labels mapped to the collector's names, and `woothee` as the collector
//! used it before uap-core (with its substring bot markers), kept here as the baseline that
//! `footfall-ua-accuracy` and the `enrich` bench compare against.
//!
//! Only the families reports are mostly grouped by are compared; rows labelled with anything
//! else are skipped, so both parsers are judged on the same rows.

/// Matomo's and intoli's device types, as the corpus extraction already mapped them.
pub fn device_class(label: &str) -> Option<&'static str> {
    ["desktop", "mobile", "tablet", "tv", "console"]
        .into_iter()
        .find(|class| *class == label)
}

fn family(name: &str) -> Option<&'static str> {
    ["Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS"]
        .into_iter()
        .find(|f| *f == name)
}

/// Matomo's OS names.
pub fn matomo_os(label: &str) -> Option<&'static str> {
    match label {
        "Mac" => Some("macOS"),
        "iPadOS" => Some("iOS"),
        "Chrome OS" => Some("ChromeOS"),
        "GNU/Linux" | "Ubuntu" | "Debian" | "Fedora" | "Mint" | "openSUSE" | "Arch Linux" => {
            Some("Linux")
        }
        other => family(other),
    }
}

/// uap-core's OS test names.
pub fn uap_os(label: &str) -> Option<&'static str> {
    match label {
        "Mac OS X" => Some("macOS"),
        "Chrome OS" => Some("ChromeOS"),
        "Ubuntu" | "Debian" | "Fedora" | "Red Hat" | "Gentoo" => Some("Linux"),
        other => family(other),
    }
}

/// Matomo's browser names.
pub fn matomo_browser(label: &str) -> Option<&'static str> {
    match label {
        "Chrome" | "Chrome Mobile" | "Chrome Mobile iOS" | "Chrome Webview" => Some("Chrome"),
        "Firefox" | "Firefox Mobile" | "Firefox iOS" => Some("Firefox"),
        "Safari" | "Mobile Safari" => Some("Safari"),
        "Microsoft Edge" => Some("Edge"),
        "Opera" | "Opera Mobile" | "Opera Mini" => Some("Opera"),
        "Internet Explorer" | "IE Mobile" => Some("IE"),
        "Samsung Browser" => Some("Samsung Internet"),
        _ => None,
    }
}

/// What the collector made of an agent with woothee.
pub struct WootheeAgent {
    pub browser: String,
    pub os: String,
    pub device: &'static str,
    pub is_bot: bool,
}

/// The substring markers the collector added to woothee's crawler list.
const OLD_BOT_MARKERS: &[&str] = &[
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

/// woothee's answer, with its names mapped to the collector's families and devices as the
/// collector mapped them (Android without `mobile`, or `tablet` anywhere, was a tablet).
pub fn woothee_agent(user_agent: &str) -> WootheeAgent {
    let parsed = woothee::parser::Parser::new()
        .parse(user_agent)
        .unwrap_or_default();
    let lower = user_agent.to_ascii_lowercase();
    let is_bot = user_agent.trim().is_empty()
        || parsed.category == "crawler"
        || OLD_BOT_MARKERS.iter().any(|m| lower.contains(m));
    let os = match parsed.os {
        "iPhone" | "iPad" | "iPod" => "iOS",
        "Mac OSX" => "macOS",
        other if other.starts_with("Windows") && !other.contains("Phone") => "Windows",
        "ChromeOS" => "ChromeOS",
        other => other,
    };
    let device = if is_bot {
        "bot"
    } else if parsed.os == "iPad"
        || lower.contains("tablet")
        || (parsed.os == "Android" && !lower.contains("mobile"))
    {
        "tablet"
    } else {
        match parsed.category {
            "pc" => "desktop",
            "smartphone" | "mobilephone" => "mobile",
            _ => "other",
        }
    };
    let browser = match parsed.name {
        "Internet Explorer" => "IE",
        other => other,
    };
    WootheeAgent {
        browser: browser.to_owned(),
        os: os.to_owned(),
        device,
        is_bot,
    }
}
