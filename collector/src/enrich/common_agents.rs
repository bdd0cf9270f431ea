//! The few shapes of user agent that most hits carry, read without regexes.
//!
//! An agent the cache has not seen costs about 5.5 µs through uap-core's rules and the device
//! rules (BENCHMARKS.md, Enrichment): two prefiltered regex sets, then the captures of the first
//! rule that matches. Since Chrome froze its platform tokens, the agents of current Chrome,
//! Edge, Safari and Firefox on Windows, macOS, Linux, Android, iPhone and iPad have fixed
//! shapes with only the version numbers free, and reading those shapes byte by byte takes a
//! fraction of a microsecond. Anything that differs from a shape by one byte (another product
//! token, a device model, a webview marker) is left to the rules, which stay the reference:
//! the tests compare both on every vendored corpus agent and on every combination of platform,
//! product and version form below, and the `common_agents` fuzz target compares them on
//! anything else.

use compact_str::{CompactString, format_compact};

use super::device::Device;
use super::uap::Parsed;

/// Browser and OS with their versions and the device class, for an agent of one of the
/// shapes; `None` for every other agent.
pub fn read(user_agent: &str) -> Option<(Parsed, Device)> {
    let rest = user_agent.strip_prefix("Mozilla/5.0 (")?;
    let (platform, rest) = rest.split_once(") ")?;
    if let Some(firefox) = firefox(platform, rest) {
        return Some(firefox);
    }
    let platform = Platform::read(platform)?;
    let (browser, browser_version, mobile) = webkit(rest)?;
    let fits = match browser {
        "Chrome" => matches!(
            platform.kind,
            Kind::Windows | Kind::Mac | Kind::Linux | Kind::Android
        ),
        "Edge" => matches!(platform.kind, Kind::Windows | Kind::Mac),
        _ => matches!(platform.kind, Kind::Mac | Kind::IPhone | Kind::IPad),
    };
    let device = match platform.kind {
        Kind::Windows | Kind::Mac | Kind::Linux if !mobile => Device::Desktop,
        Kind::IPhone if mobile => Device::Mobile,
        Kind::IPad if mobile => Device::Tablet,
        Kind::Android if browser == "Chrome" => {
            if mobile {
                Device::Mobile
            } else {
                Device::Tablet
            }
        }
        _ => return None,
    };
    fits.then(|| {
        let parsed = Parsed {
            browser: CompactString::const_new(browser),
            browser_version,
            os: CompactString::const_new(platform.kind.family()),
            os_version: platform.version,
        };
        (parsed, device)
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Windows,
    Mac,
    Linux,
    Android,
    IPhone,
    IPad,
}

impl Kind {
    fn family(self) -> &'static str {
        match self {
            Kind::Windows => "Windows",
            Kind::Mac => "macOS",
            Kind::Linux => "Linux",
            Kind::Android => "Android",
            Kind::IPhone | Kind::IPad => "iOS",
        }
    }
}

struct Platform {
    kind: Kind,
    version: CompactString,
}

impl Platform {
    /// The parenthesis after `Mozilla/5.0` of a WebKit-based browser.
    fn read(platform: &str) -> Option<Self> {
        let (kind, version) = if platform == "Windows NT 10.0; Win64; x64" {
            (Kind::Windows, CompactString::const_new("10"))
        } else if platform == "X11; Linux x86_64" {
            (Kind::Linux, CompactString::default())
        } else if let Some(version) = platform.strip_prefix("Macintosh; Intel Mac OS X ") {
            (Kind::Mac, major_minor(version, b'_')?)
        } else if let Some(version) = platform
            .strip_prefix("Linux; Android ")
            .and_then(|rest| rest.strip_suffix("; K"))
        {
            (Kind::Android, os_version(version, b'.')?)
        } else if let Some(version) = platform
            .strip_prefix("iPhone; CPU iPhone OS ")
            .and_then(|rest| rest.strip_suffix(" like Mac OS X"))
        {
            (Kind::IPhone, major_minor(version, b'_')?)
        } else if let Some(version) = platform
            .strip_prefix("iPad; CPU OS ")
            .and_then(|rest| rest.strip_suffix(" like Mac OS X"))
        {
            (Kind::IPad, major_minor(version, b'_')?)
        } else {
            return None;
        };
        Some(Self { kind, version })
    }
}

/// After the platform: Chrome, Edge or Safari, its `major.minor`, and whether it says `Mobile`.
fn webkit(rest: &str) -> Option<(&'static str, CompactString, bool)> {
    if let Some(rest) = rest.strip_prefix("AppleWebKit/537.36 (KHTML, like Gecko) Chrome/") {
        let (chrome, rest) = rest.split_once(' ')?;
        let chrome = major_minor(chrome, b'.')?;
        let (mobile, rest) = match rest.strip_prefix("Mobile ") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        return match rest.strip_prefix("Safari/537.36") {
            Some("") => Some(("Chrome", chrome, mobile)),
            Some(edge) if !mobile => {
                let edge = major_minor(edge.strip_prefix(" Edg/")?, b'.')?;
                Some(("Edge", edge, false))
            }
            _ => None,
        };
    }
    let rest = rest.strip_prefix("AppleWebKit/605.1.15 (KHTML, like Gecko) Version/")?;
    let (version, rest) = rest.split_once(' ')?;
    let version = major_minor(version, b'.')?;
    if let Some(rest) = rest.strip_prefix("Mobile/") {
        let (build, safari) = rest.split_once(' ')?;
        let alphanumeric = !build.is_empty() && build.bytes().all(|b| b.is_ascii_alphanumeric());
        (alphanumeric && safari == "Safari/604.1").then_some(("Safari", version, true))
    } else {
        (rest == "Safari/605.1.15").then_some(("Safari", version, false))
    }
}

/// Firefox on Windows, macOS and Linux: the platform ends in `rv:` and the agent in
/// `Gecko/20100101 Firefox/`, both with the same version.
fn firefox(platform: &str, rest: &str) -> Option<(Parsed, Device)> {
    let (platform, rv) = platform.rsplit_once("; rv:")?;
    let version = rest.strip_prefix("Gecko/20100101 Firefox/")?;
    if version != rv {
        return None;
    }
    let (os, os_version) = match platform {
        "Windows NT 10.0; Win64; x64" => ("Windows", CompactString::const_new("10")),
        "X11; Linux x86_64" | "X11; Ubuntu; Linux x86_64" => ("Linux", CompactString::default()),
        _ => (
            "macOS",
            major_minor(platform.strip_prefix("Macintosh; Intel Mac OS X ")?, b'.')?,
        ),
    };
    let parsed = Parsed {
        browser: CompactString::const_new("Firefox"),
        browser_version: major_minor(version, b'.')?,
        os: CompactString::const_new(os),
        os_version,
    };
    Some((parsed, Device::Desktop))
}

/// `major.minor` of a version of two or more numbers joined by `separator`; numbers of at most
/// five digits, as the rules' captures take them. With one number alone the rules find no
/// version (macOS), or take another (iOS takes `Version/`), or another browser (Chrome).
fn major_minor(version: &str, separator: u8) -> Option<CompactString> {
    match os_version(version, separator)? {
        two if two.contains('.') => Some(two),
        _ => None,
    }
}

/// `major` or `major.minor`: Android's version may be one number.
fn os_version(version: &str, separator: u8) -> Option<CompactString> {
    let mut parts = version.split(separator as char);
    let major = parts.next().filter(|part| is_number(part))?;
    let Some(minor) = parts.next() else {
        return Some(CompactString::new(major));
    };
    if !is_number(minor) || !parts.all(is_number) {
        return None;
    }
    Some(format_compact!("{major}.{minor}"))
}

fn is_number(part: &str) -> bool {
    (1..=5).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::{device, uap, words};

    /// What the rules say of `user_agent`.
    fn by_rules(user_agent: &str) -> (Parsed, Device) {
        let device = device::class(user_agent, words::find(user_agent).device);
        (uap::parse(user_agent), device)
    }

    const PLATFORMS: &[&str] = &[
        "Windows NT 10.0; Win64; x64",
        "X11; Linux x86_64",
        "X11; Ubuntu; Linux x86_64",
        "Macintosh; Intel Mac OS X 10_15_7",
        "Macintosh; Intel Mac OS X 14_4",
        "Macintosh; Intel Mac OS X 10.15",
        "Macintosh; Intel Mac OS X 10_15",
        "Macintosh; Intel Mac OS X 14",
        "Macintosh; Intel Mac OS X 14.4.1",
        "Linux; Android 10; K",
        "Linux; Android 14; K",
        "Linux; Android 13.0.1; K",
        "Linux; Android 9.0; K",
        "Linux; Android 14; Pixel 8",
        "Linux; Android 10; K; wv",
        "iPhone; CPU iPhone OS 17_4 like Mac OS X",
        "iPhone; CPU iPhone OS 17_4_1 like Mac OS X",
        "iPhone; CPU iPhone OS 18 like Mac OS X",
        "iPad; CPU OS 16_6 like Mac OS X",
        "iPad; CPU OS 17 like Mac OS X",
        "Windows NT 6.1; Win64; x64",
        "X11; CrOS x86_64 14541.0.0",
    ];

    const PRODUCTS: &[&str] = &[
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{V} Safari/537.36",
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{V} Mobile Safari/537.36",
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{V} Safari/537.36 Edg/{V}",
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{V} Mobile Safari/537.36 EdgA/{V}",
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{V} Safari/537.36 OPR/{V}",
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{V} Safari/605.1.15",
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{V} Mobile/15E148 Safari/604.1",
        "AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/{V} Mobile/15E148 Safari/604.1",
        "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "Gecko/20100101 Firefox/{V}",
    ];

    const VERSIONS: &[&str] = &[
        "130.0.0.0",
        "124.0.6367.118",
        "17.4",
        "17.4.1",
        "17",
        "125.0",
        "0.0",
        "99999.1",
        "123456.0",
        "12a.0",
    ];

    /// Every platform with every product and version form, and Firefox's `rv:` in its place.
    fn generated() -> Vec<String> {
        let mut agents = Vec::new();
        for platform in PLATFORMS {
            for product in PRODUCTS {
                for version in VERSIONS {
                    let product = product.replace("{V}", version);
                    agents.push(format!("Mozilla/5.0 ({platform}) {product}"));
                    agents.push(format!("Mozilla/5.0 ({platform}; rv:{version}) {product}"));
                }
            }
        }
        agents
    }

    #[test]
    fn every_generated_shape_reads_as_the_rules_do() {
        let mut shapes = std::collections::BTreeSet::new();
        let wrong: Vec<String> = generated()
            .iter()
            .filter_map(|agent| {
                let fast = read(agent)?;
                shapes.insert(format!("{} {} {:?}", fast.0.browser, fast.0.os, fast.1));
                let rules = by_rules(agent);
                (fast != rules).then(|| format!("{agent}\n  read  {fast:?}\n  rules {rules:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        for shape in [
            "Chrome Windows Desktop",
            "Chrome macOS Desktop",
            "Chrome Linux Desktop",
            "Chrome Android Mobile",
            "Chrome Android Tablet",
            "Edge Windows Desktop",
            "Edge macOS Desktop",
            "Safari macOS Desktop",
            "Safari iOS Mobile",
            "Safari iOS Tablet",
            "Firefox Windows Desktop",
            "Firefox macOS Desktop",
            "Firefox Linux Desktop",
        ] {
            assert!(
                shapes.contains(shape),
                "no {shape} agent was read: {shapes:?}"
            );
        }
    }

    #[test]
    fn the_current_browsers_are_read_and_others_are_left_to_the_rules() {
        let read_ones = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.2849.68",
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        ];
        for agent in read_ones {
            assert_eq!(read(agent), Some(by_rules(agent)), "{agent}");
        }
        let left = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 PTST/240501.120012",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.61",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 ",
        ];
        for agent in left {
            assert_eq!(read(agent), None, "{agent}");
        }
    }
}
