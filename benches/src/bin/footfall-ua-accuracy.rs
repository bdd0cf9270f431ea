//! Prints how the collector's user-agent classifier scores on the vendored corpora: bot recall
//! and false positives, then device class, OS family and browser family against labelled
//! fixtures, for the collector's classifier (uap-core rules) beside `woothee`, the parser it
//! replaced, so that the choice rests on figures (BENCHMARKS.md).
//!
//! `cargo run --release -p footfall-benches --bin footfall-ua-accuracy [-- --misses]`

use footfall_benches::ua_corpus::{
    BOT_CORPORA, BROWSER_CORPORA, Corpus, Score, agreement, false_positives, recall,
};
use footfall_benches::ua_labels::{self, woothee_agent};
use footfall_collector::enrich::bots::is_bot;
use footfall_collector::enrich::user_agent::classify;

fn print(what: &str, score: &Score, misses: bool) {
    println!(
        "{what}: {}/{} = {:.2} %",
        score.hits,
        score.total,
        100.0 * score.share()
    );
    if misses {
        score.examples.iter().for_each(|e| println!("    {e}"));
    }
}

fn main() -> anyhow::Result<()> {
    let misses = std::env::args().any(|a| a == "--misses");
    for name in BOT_CORPORA {
        print(
            &format!("bot recall, {name}"),
            &recall(&Corpus::load(name)?, is_bot),
            misses,
        );
    }
    for name in BROWSER_CORPORA {
        let score = false_positives(&Corpus::load(name)?, is_bot);
        print(&format!("bot false positives, {name}"), &score, misses);
    }
    let woothee_bots = |ua: &str| woothee_agent(ua).is_bot;
    for name in BOT_CORPORA {
        let score = recall(&Corpus::load(name)?, woothee_bots);
        print(
            &format!("woothee + old markers, bot recall, {name}"),
            &score,
            false,
        );
    }
    for name in BROWSER_CORPORA {
        let score = false_positives(&Corpus::load(name)?, woothee_bots);
        print(
            &format!("woothee + old markers, bot false positives, {name}"),
            &score,
            false,
        );
    }

    let matomo = Corpus::load("browsers-matomo")?;
    let intoli = Corpus::load("browsers-intoli")?;
    let os_uap = Corpus::load("os-uap")?;
    type Label = fn(&str) -> String;
    let parsers: [(&str, Label, Label, Label); 2] = [
        (
            "uap-core (collector)",
            |ua| classify(ua).device.as_str().to_owned(),
            |ua| classify(ua).os.into_string(),
            |ua| classify(ua).browser.into_string(),
        ),
        (
            "woothee",
            |ua| woothee_agent(ua).device.to_owned(),
            |ua| woothee_agent(ua).os,
            |ua| woothee_agent(ua).browser,
        ),
    ];
    for (parser, device, os, browser) in parsers {
        let score = agreement(&matomo, 1, ua_labels::device_class, device);
        print(
            &format!("{parser}: device class, browsers-matomo"),
            &score,
            misses,
        );
        let score = agreement(&intoli, 1, ua_labels::device_class, device);
        print(
            &format!("{parser}: device class, browsers-intoli"),
            &score,
            misses,
        );
        let score = agreement(&matomo, 2, ua_labels::matomo_os, os);
        print(
            &format!("{parser}: OS family, browsers-matomo"),
            &score,
            misses,
        );
        let score = agreement(&os_uap, 1, ua_labels::uap_os, os);
        print(&format!("{parser}: OS family, os-uap"), &score, misses);
        let score = agreement(&matomo, 4, ua_labels::matomo_browser, browser);
        print(
            &format!("{parser}: browser family, browsers-matomo"),
            &score,
            misses,
        );
    }
    Ok(())
}
