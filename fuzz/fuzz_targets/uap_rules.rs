//! uap-core's rules as the collector matches them against the `ua-parser` crate's extractors,
//! which they replace: for any agent, the same browser and OS (name, major, minor). Half the
//! inputs are taken as they come; the other half are spliced into a real agent, where most
//! rules' literals are present and only the regexes decide.
#![no_main]

use footfall_collector::enrich::uap_rules::{extract, reference};
use libfuzzer_sys::fuzz_target;

const AGENT: &str = "Mozilla/5.0 (Linux; Android 10; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/96.0.4664.45 Mobile Safari/537.36";

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let agent = if first & 1 == 0 {
        text.into_owned()
    } else {
        // AGENT is ASCII, so any byte offset is a char boundary.
        let at = usize::from(first >> 1) % AGENT.len();
        format!("{}{text}{}", &AGENT[..at], &AGENT[at..])
    };
    assert_eq!(extract(&agent), reference(&agent), "{agent:?}");
});
