//! uap-core's browser and OS rules, matched by us rather than by the `ua-parser` crate's
//! extractors, with the same answers: first matching rule in file order wins, its groups and
//! replacements (`$1`..`$9`) give the name and versions exactly as `ua-parser` resolves them, and
//! every pattern is compiled from the same rewritten text (ASCII `\d` and `\w`, long bounded
//! repetitions unbounded).
//!
//! Why ours: on the 3,787 distinct agents of the browser corpora, `ua-parser` spent about 62,000
//! instructions per agent in its two extractors (callgrind), a third of them in an overlapping
//! Aho-Corasick scan per extractor over ASCII-case-insensitive atoms, the rest in propagating atom
//! hits through its AND/OR tree (allocating per call) and testing about 3.4 candidate rules per
//! agent. Here the two rule lists share one case-sensitive automaton (their patterns have no
//! `(?i)`), so one scan per agent, and each rule needs only a few clauses (sets of literals, one of
//! each in every match, read off the pattern's syntax tree with small classes such as `[Bb]ot`
//! expanded), which marks 2.3 candidates per agent: about 20,500 instructions per agent in all
//! (BENCHMARKS.md, User agents). The automaton is a DFA (3.8 MB; the contiguous NFA took a fifth
//! more instructions), stepped by [`super::scan`]. A rule is made a candidate when its last clause
//! is seen, rather than by a pass over all 563 rules, and a candidate is tested with `captures`
//! alone (an `is_match` first scanned the winner twice): 2,600 instructions less per corpus agent
//! for the whole classification.
//!
//! A rule is only skipped when one of its clauses has no literal in the agent, which no match
//! can do; `ua-parser` stays the reference: a test compares both on every vendored corpus
//! agent, and the `uap_rules` fuzz target on anything else (RELIABILITY.md).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use ua_parser::{Regexes, os, user_agent};

use super::literals::{required, shortest};
use super::scan::Literals;

/// uap-core's rules, vendored.
pub const RULES_JSON: &str = include_str!("uap-regexes.json");

/// A browser or OS as the first matching rule names it; `name` is empty where the rule gives
/// none, the versions `None` where absent or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted<'a> {
    pub name: Cow<'a, str>,
    pub major: Option<Cow<'a, str>>,
    pub minor: Option<Cow<'a, str>>,
}

/// Browser and OS of `user_agent`, each `None` if no rule matches.
pub fn extract(user_agent: &str) -> (Option<Extracted<'_>>, Option<Extracted<'_>>) {
    RULES.extract(user_agent)
}

/// What the `ua-parser` crate's extractors, which [`extract`] replaces, make of `user_agent`:
/// the reference the tests and the `uap_rules` fuzz target compare it with. Their rules are
/// built at the first call.
pub fn reference(user_agent: &str) -> (Option<Extracted<'_>>, Option<Extracted<'_>>) {
    static REFERENCE: LazyLock<(user_agent::Extractor<'static>, os::Extractor<'static>)> =
        LazyLock::new(|| {
            let rules: Regexes<'static> = serde_json::from_str(RULES_JSON).expect("rules parse");
            (
                user_agent::Builder::new()
                    .push_all(rules.user_agent_parsers)
                    .expect("uap-core agent rules compile")
                    .build()
                    .expect("uap-core agent rules build"),
                os::Builder::new()
                    .push_all(rules.os_parsers)
                    .expect("uap-core OS rules compile")
                    .build()
                    .expect("uap-core OS rules build"),
            )
        });
    let (browsers, systems) = &*REFERENCE;
    let browser = browsers.extract(user_agent).map(|v| Extracted {
        name: v.family,
        major: v.major.map(Cow::Borrowed),
        minor: v.minor.map(Cow::Borrowed),
    });
    let os = systems.extract(user_agent).map(|v| Extracted {
        name: v.os,
        major: v.major,
        minor: v.minor,
    });
    (browser, os)
}

/// Builds the rules now ([`super::user_agent::prepare`]).
pub(super) fn build() {
    LazyLock::force(&RULES);
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let rules: Regexes<'static> = serde_json::from_str(RULES_JSON).expect("uap-core rules parse");
    Rules::new(rules.user_agent_parsers, rules.os_parsers)
});

/// How a rule gives one field, after `ua-parser`'s resolvers (which differ by field).
enum Field {
    Absent,
    Fixed(Box<str>),
    Group(usize),
    /// uap's browser family template: `$1` replaced, nothing else.
    FamilyTemplate(Box<str>),
    /// uap's OS templates: `$n` expanded as `regex` does, then trimmed.
    Template(Box<str>),
}

impl Field {
    /// The browser family: a template only with `$1`, else the replacement, else group 1.
    fn family(replacement: Option<&str>, groups: usize) -> Self {
        match replacement {
            Some(s) if s.contains("$1") => {
                assert!(groups >= 1, "uap-core family template without a group");
                Self::FamilyTemplate(s.into())
            }
            Some(s) if !s.is_empty() => Self::Fixed(s.into()),
            _ if groups >= 1 => Self::Group(1),
            _ => Self::Absent,
        }
    }

    /// A browser version: the replacement as it is, else group `index`.
    fn version(replacement: Option<&str>, groups: usize, index: usize) -> Self {
        match replacement {
            Some(s) if !s.is_empty() => Self::Fixed(s.into()),
            _ if groups >= index => Self::Group(index),
            _ => Self::Absent,
        }
    }

    /// An OS field: a template if it holds `$` and a digit, else the replacement, else group
    /// `index`.
    fn templated(replacement: Option<&str>, groups: usize, index: usize) -> Self {
        match replacement {
            Some(s) if !s.trim().is_empty() => {
                let substitutes = s
                    .as_bytes()
                    .windows(2)
                    .any(|w| w[0] == b'$' && w[1].is_ascii_digit());
                if substitutes {
                    Self::Template(s.into())
                } else {
                    Self::Fixed(s.into())
                }
            }
            _ if groups >= index => Self::Group(index),
            _ => Self::Absent,
        }
    }

    fn resolve<'a>(&'a self, captures: &Captures<'a>) -> Option<Cow<'a, str>> {
        let group = |index: usize| {
            captures
                .get(index)
                .map(|g| g.as_str())
                .filter(|s| !s.is_empty())
        };
        match self {
            Self::Absent => None,
            Self::Fixed(s) => Some(Cow::Borrowed(s)),
            Self::Group(index) => group(*index).map(Cow::Borrowed),
            Self::FamilyTemplate(t) => Some(Cow::Owned(t.replace("$1", group(1).unwrap_or("")))),
            Self::Template(t) => {
                let mut expanded = String::new();
                captures.expand(t, &mut expanded);
                match expanded.trim() {
                    "" => None,
                    trimmed if trimmed.len() == expanded.len() => Some(Cow::Owned(expanded)),
                    trimmed => Some(Cow::Owned(trimmed.to_owned())),
                }
            }
        }
    }
}

struct Rule {
    regex: Regex,
    name: Field,
    major: Field,
    minor: Field,
}

impl Rule {
    fn new(pattern: &str, fields: impl FnOnce(usize) -> [Field; 3]) -> (Self, Vec<Vec<Vec<u8>>>) {
        let pattern = rewrite(pattern);
        let regex = Regex::new(&pattern).expect("uap-core rule compiles");
        let [name, major, minor] = fields(regex.captures_len() - 1);
        let hir = regex_syntax::parse(&pattern).expect("uap-core rule parses");
        let mut clauses = required(&hir);
        clauses.sort_by_key(|clause| std::cmp::Reverse(shortest(clause)));
        clauses.truncate(8);
        (
            Self {
                regex,
                name,
                major,
                minor,
            },
            clauses,
        )
    }

    fn resolve<'a>(&'a self, user_agent: &'a str) -> Option<Extracted<'a>> {
        let captures = self.regex.captures(user_agent)?;
        Some(Extracted {
            name: self.name.resolve(&captures).unwrap_or_default(),
            major: self.major.resolve(&captures),
            minor: self.minor.resolve(&captures),
        })
    }
}

/// Which rule's which clause a literal satisfies.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Trigger {
    rule: u16,
    clause: u8,
}

struct Rules {
    /// The browser rules, then the OS rules, each list in its file order.
    rules: Vec<Rule>,
    /// Bit per clause of each rule: all set when each clause has a literal in the agent.
    masks: Vec<u8>,
    /// The rules without clauses, candidates for every agent, in order.
    unconditional: Vec<u16>,
    browsers: usize,
    literals: Literals,
    triggers: Vec<Vec<Trigger>>,
}

impl Rules {
    fn new(browsers: Vec<user_agent::Parser<'_>>, systems: Vec<os::Parser<'_>>) -> Self {
        let browser_rules = browsers.iter().map(|p| {
            Rule::new(&p.regex, |groups| {
                [
                    Field::family(p.family_replacement.as_deref(), groups),
                    Field::version(p.v1_replacement.as_deref(), groups, 2),
                    Field::version(p.v2_replacement.as_deref(), groups, 3),
                ]
            })
        });
        let os_rules = systems.iter().map(|p| {
            Rule::new(&p.regex, |groups| {
                [
                    Field::templated(p.os_replacement.as_deref(), groups, 1),
                    Field::templated(p.os_v1_replacement.as_deref(), groups, 2),
                    Field::templated(p.os_v2_replacement.as_deref(), groups, 3),
                ]
            })
        });
        let mut rules = Vec::new();
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut triggers: Vec<Vec<Trigger>> = Vec::new();
        let mut masks = Vec::new();
        let mut unconditional = Vec::new();
        for (rule, clauses) in browser_rules.chain(os_rules) {
            let id = u16::try_from(rules.len()).expect("fewer than 65,536 rules");
            masks.push((1u16 << clauses.len()).wrapping_sub(1) as u8);
            if clauses.is_empty() {
                unconditional.push(id);
            }
            for (clause, set) in (0u8..).zip(clauses) {
                for literal in set {
                    let at = *index.entry(literal.clone()).or_insert_with(|| {
                        literals.push(literal);
                        triggers.push(Vec::new());
                        literals.len() - 1
                    });
                    triggers[at].push(Trigger { rule: id, clause });
                }
            }
            rules.push(rule);
        }
        for list in &mut triggers {
            list.sort_unstable();
            list.dedup();
        }
        Self {
            rules,
            masks,
            unconditional,
            browsers: browsers.len(),
            literals: Literals::new(&literals, false),
            triggers,
        }
    }

    fn extract<'a>(
        &'a self,
        user_agent: &'a str,
    ) -> (Option<Extracted<'a>>, Option<Extracted<'a>>) {
        // A rule becomes a candidate when its last clause is seen: only the rules the
        // literals name are visited, not all of them.
        let mut seen = vec![0u8; self.rules.len()];
        let mut candidates = Vec::with_capacity(self.unconditional.len() + 8);
        candidates.extend_from_slice(&self.unconditional);
        self.literals.for_each(user_agent.as_bytes(), |literal, _| {
            for trigger in &self.triggers[literal] {
                let rule = usize::from(trigger.rule);
                let before = seen[rule];
                seen[rule] |= 1 << trigger.clause;
                if before != seen[rule] && seen[rule] == self.masks[rule] {
                    candidates.push(trigger.rule);
                }
            }
        });
        candidates.sort_unstable();
        let split = candidates.partition_point(|&rule| usize::from(rule) < self.browsers);
        // No `is_match` first: a failed `captures` costs the same forward scan, and the
        // winner's would be scanned twice.
        let first = |rules: &[u16]| {
            rules
                .iter()
                .find_map(|&rule| self.rules[usize::from(rule)].resolve(user_agent))
        };
        (first(&candidates[..split]), first(&candidates[split..]))
    }
}

/// `ua-parser`'s rewrite of a uap-core pattern (`rewrite_regex` in ua-parser 0.2, Apache-2.0),
/// so that every rule compiles to the same regex: `\d`, `\D`, `\w`, `\W` as ASCII classes, and
/// `{0,n}` / `{1,n}` with three or more digits in `n` as `*` / `+`.
fn rewrite(re: &str) -> Cow<'_, str> {
    let mut from = 0;
    let mut out = String::new();
    let mut it = re.char_indices();
    let mut escape = false;
    let mut inclass = 0;
    'main: while let Some((idx, c)) = it.next() {
        match c {
            '\\' if !escape => {
                escape = true;
                continue;
            }
            '{' if !escape && inclass == 0 => {
                if idx == 0 {
                    return re.into();
                }
                let Some((_, start)) = it.next() else {
                    continue;
                };
                if start != '0' && start != '1' {
                    continue;
                }
                if !matches!(it.next(), Some((_, ','))) {
                    continue;
                }
                let mut digits = 0;
                for (ri, rc) in it.by_ref() {
                    match rc {
                        '}' if digits > 2 => {
                            out.push_str(&re[from..idx]);
                            from = ri + 1;
                            out.push_str(if start == '0' { "*" } else { "+" });
                            break;
                        }
                        c if c.is_ascii_digit() => digits += 1,
                        _ => continue 'main,
                    }
                }
            }
            '[' if !escape => inclass += 1,
            ']' if !escape => inclass -= 1,
            'd' | 'D' | 'w' | 'W' if escape => {
                out.push_str(&re[from..idx - 1]);
                from = idx + 1;
                out.push_str(match c {
                    'd' => "[0-9]",
                    'D' => "[^0-9]",
                    'w' => "[A-Za-z0-9_]",
                    _ => "[^A-Za-z0-9_]",
                });
            }
            _ => (),
        }
        escape = false;
    }
    if from == 0 {
        re.into()
    } else {
        out.push_str(&re[from..]);
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_agent_extracts_as_ua_parser_does() {
        for agent in &super::super::vendored_agents() {
            assert_eq!(extract(agent), reference(agent), "{agent}");
        }
    }
}
