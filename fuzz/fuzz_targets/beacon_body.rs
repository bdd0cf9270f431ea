//! Beacon bodies (`POST /e`) and user agents: any bytes parse or are refused with a reason,
//! never panic, and what is accepted stays within its bounds.
#![no_main]

use footfall_collector::enrich::user_agent::classify;
use footfall_collector::hit::beacon::{self, BeaconEvent, MAX_ENGAGED_MS, MAX_EVENTS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match beacon::parse(data) {
        Ok(events) => {
            assert!((1..=MAX_EVENTS).contains(&events.len()));
            for event in events {
                if let BeaconEvent::Engagement { engaged_ms, .. } = event {
                    assert!(engaged_ms <= MAX_ENGAGED_MS);
                }
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    let agent = classify(&String::from_utf8_lossy(data));
    assert_eq!(agent.is_bot, agent.device.as_str() == "bot");
});
