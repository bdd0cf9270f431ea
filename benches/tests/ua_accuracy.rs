//! The bot classifier meets its accuracy targets on the vendored corpora: at least 95 % of the
//! agents on every public crawler list flagged, at most 0.3 % of every real-browser corpus; and
//! the classifier's shortcut for common browsers answers as its rules do.
//! Accuracy, not speed; `footfall-ua-accuracy` prints the full figures.

use footfall_benches::ua_corpus::{BOT_CORPORA, BROWSER_CORPORA, Corpus, false_positives, recall};
use footfall_collector::enrich::bots::is_bot;
use footfall_collector::enrich::user_agent::{classify, classify_by_rules};

#[test]
fn bot_recall_is_at_least_95_percent_on_every_crawler_list() {
    for name in BOT_CORPORA {
        let corpus = Corpus::load(name).expect("corpus is vendored");
        assert!(corpus.rows.len() >= 50, "{name} is a real list");
        let score = recall(&corpus, is_bot);
        assert!(
            score.share() >= 0.95,
            "{name}: {}/{} flagged; missed e.g. {:#?}",
            score.hits,
            score.total,
            score.examples
        );
    }
}

#[test]
fn false_positives_are_at_most_0_3_percent_on_every_browser_corpus() {
    for name in BROWSER_CORPORA {
        let corpus = Corpus::load(name).expect("corpus is vendored");
        assert!(corpus.rows.len() >= 500, "{name} is a real corpus");
        let score = false_positives(&corpus, is_bot);
        assert!(
            score.share() <= 0.003,
            "{name}: {}/{} flagged: {:#?}",
            score.hits,
            score.total,
            score.examples
        );
    }
}

/// The shortcut for the common browser shapes answers as the rules do on every agent of every
/// corpus, the OS fixtures included.
#[test]
fn the_common_shapes_shortcut_agrees_with_the_rules_on_every_corpus() {
    let mut compared = 0;
    for name in BOT_CORPORA
        .iter()
        .chain(&BROWSER_CORPORA)
        .chain(&["os-uap"])
    {
        let corpus = Corpus::load(name).expect("corpus is vendored");
        for agent in corpus.agents() {
            assert_eq!(classify(agent), classify_by_rules(agent), "{name}: {agent}");
            compared += 1;
        }
    }
    assert!(compared >= 5_000, "only {compared} agents compared");
}
