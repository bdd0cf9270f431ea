//! Enrichment: what a hit's client IP and user agent say about it, worked out in
//! [`crate::routes`] before the IP is sealed.
//!
//! [`geoip`] maps the IP to country, region and city; [`user_agent`] maps the user agent to
//! browser, OS, device class and the bot flag. Bots are stored like anyone else and left out
//! of reports by the aggregator.

pub mod bots;
pub mod client_hints;
mod common_agents;
mod device;
pub mod geoip;
mod literals;
pub mod scan;
mod uap;
pub mod uap_rules;
pub mod user_agent;
mod words;

use std::net::IpAddr;
use std::sync::Arc;

use compact_str::CompactString;

use client_hints::Hints;
use footfall_store::event::Event;
use geoip::GeoIp;
use user_agent::AgentCache;

/// Every agent of the vendored corpora (`benches/corpora/*.tsv`), for the tests that compare
/// two ways of classifying them.
#[cfg(test)]
fn vendored_agents() -> Vec<String> {
    let corpora = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/corpora");
    let mut agents = Vec::new();
    for entry in std::fs::read_dir(corpora).expect("corpora are vendored") {
        let path = entry.expect("readable").path();
        if path.extension().is_none_or(|ext| ext != "tsv") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        agents.extend(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| l.split('\t').next().unwrap_or_default().to_owned()),
        );
    }
    assert!(
        agents.len() >= 7_500,
        "only {} vendored agents",
        agents.len()
    );
    agents
}

/// Distinct user agents remembered; a few hundred cover nearly all traffic of a site.
const AGENT_CACHE_CAPACITY: usize = 10_000;

/// Everything enrichment needs, shared by the handlers.
pub struct Enricher {
    geoip: Option<Arc<GeoIp>>,
    agents: AgentCache,
}

impl Enricher {
    /// Without a GeoIP database the geo columns stay empty.
    pub fn new(geoip: Option<Arc<GeoIp>>) -> Self {
        Self {
            geoip,
            agents: AgentCache::new(AGENT_CACHE_CAPACITY),
        }
    }

    /// Fills the geo and client columns of `event` from `ip` and `user_agent`, the whole
    /// header as sent (the stored copy may be cut; a bot token at the end still counts).
    /// `hints` are the request's client hints ([`Hints::from_headers`]).
    pub fn apply(&self, event: &mut Event, ip: IpAddr, user_agent: &str, hints: Hints<'_>) {
        if let Some(geoip) = &self.geoip {
            let place = geoip.lookup(ip);
            event.country = place.country;
            event.region = place.region;
            event.city = place.city;
        }
        let agent = self.agents.classify(user_agent);
        event.browser.clone_from(&agent.browser);
        event.os.clone_from(&agent.os);
        event.browser_version.clone_from(&agent.browser_version);
        event.os_version.clone_from(&agent.os_version);
        event.device = CompactString::const_new(agent.device.as_str());
        event.is_bot = agent.is_bot;
        Self::apply_hints(event, hints);
    }

    /// Takes the OS version from client hints that name the event's OS family.
    pub fn apply_hints(event: &mut Event, hints: Hints<'_>) {
        if let Some(version) = hints.os_version(&event.os) {
            event.os_version = version;
        }
    }
}
