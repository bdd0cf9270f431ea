//! The vendored user-agent corpora (`benches/corpora/`, sources and licences in its README) and
//! what the collector's classifier scores on them: bot recall on public crawler lists, false
//! positives on real browsers, and device, OS and browser family agreement with labelled
//! fixtures. `footfall-ua-accuracy` prints the figures; `tests/ua_accuracy.rs` holds them to the
//! targets. Accuracy, not speed: nothing here is timed.

use std::path::{Path, PathBuf};

/// One corpus file: tab-separated, a `#` header line, the user agent first.
pub struct Corpus {
    pub name: &'static str,
    pub rows: Vec<Vec<String>>,
}

/// Where the corpora live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora")
}

impl Corpus {
    /// Reads `benches/corpora/{name}.tsv`.
    pub fn load(name: &'static str) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(dir().join(format!("{name}.tsv")))?;
        let rows = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect();
        Ok(Self { name, rows })
    }

    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|row| row[0].as_str())
    }
}

/// Public crawler lists: every agent in them is a bot.
pub const BOT_CORPORA: [&str; 3] = ["bots-monperrus", "bots-matomo", "bots-uap"];
/// Real browsers on real devices: no agent in them is a bot.
pub const BROWSER_CORPORA: [&str; 2] = ["browsers-intoli", "browsers-matomo"];

/// How many of `total` agents a rule got right (or, for false positives, wrong).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    pub hits: usize,
    pub total: usize,
    /// Up to a few agents that were counted against the rule, to show what is missed.
    pub examples: Vec<String>,
}

impl Score {
    pub fn share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.hits as f64 / self.total as f64
        }
    }

    fn count(&mut self, hit: bool, agent: &str, keep_misses: bool) {
        self.total += 1;
        if hit {
            self.hits += 1;
        }
        if hit != keep_misses && self.examples.len() < 20 {
            self.examples.push(agent.to_owned());
        }
    }
}

/// Share of the corpus's agents that `is_bot` flags; the examples are the misses.
pub fn recall(corpus: &Corpus, is_bot: impl Fn(&str) -> bool) -> Score {
    let mut score = Score::default();
    for agent in corpus.agents() {
        score.count(is_bot(agent), agent, true);
    }
    score
}

/// Share of the corpus's agents that `is_bot` flags wrongly; the examples are those agents.
pub fn false_positives(corpus: &Corpus, is_bot: impl Fn(&str) -> bool) -> Score {
    let mut score = Score::default();
    for agent in corpus.agents() {
        score.count(is_bot(agent), agent, false);
    }
    score
}

/// Share of rows whose column `column` equals what `label` says of the agent (after
/// `normalise` maps the fixture's own name to ours); rows with an empty label are skipped.
pub fn agreement(
    corpus: &Corpus,
    column: usize,
    normalise: impl Fn(&str) -> Option<&'static str>,
    label: impl Fn(&str) -> String,
) -> Score {
    let mut score = Score::default();
    for row in &corpus.rows {
        let Some(expected) = row.get(column).and_then(|v| normalise(v)) else {
            continue;
        };
        let got = label(&row[0]);
        score.count(
            got == expected,
            &format!("{} => {got} (want {expected})", row[0]),
            true,
        );
    }
    score
}
