//! Every occurrence of a rule set's literals in an agent, overlapping: the scan that picks the
//! rules worth testing ([`super::bots`], [`super::device`], [`super::uap_rules`]).
//!
//! The automaton is `aho-corasick`'s DFA; only the loop over the agent is ours. The crate's
//! `find_overlapping_iter` reaches its automaton through a trait object, a call per byte, and
//! returns one match per call through a resumable state: about 250 instructions per match, and
//! the three rule sets' scans took 9,800 of the 26,700 instructions a corpus agent cost. The
//! same DFA stepped here, monomorphic, is two loads per byte and a slice read per match
//! (BENCHMARKS.md, User agents). The test below and the `literal_scan` fuzz target (for which
//! this module is public) check it against the crate's own search.

use std::convert::Infallible;
use std::ops::{ControlFlow, Range};

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

/// A set of literals, found overlapping, in any ASCII case or exactly as given.
pub struct Literals {
    dfa: DFA,
}

impl Literals {
    pub fn new<P: AsRef<[u8]>>(literals: &[P], ascii_case_insensitive: bool) -> Self {
        assert!(
            literals.iter().all(|l| !l.as_ref().is_empty()),
            "an empty literal would match everywhere"
        );
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .ascii_case_insensitive(ascii_case_insensitive)
            .build(literals)
            .expect("literals build");
        Self { dfa }
    }

    /// Calls `found` with the literal's index and its range in `haystack`, for every occurrence,
    /// in order of where they end.
    pub fn for_each(&self, haystack: &[u8], mut found: impl FnMut(usize, Range<usize>)) {
        let _: ControlFlow<Infallible> = self.try_for_each(haystack, |literal, range| {
            found(literal, range);
            ControlFlow::Continue(())
        });
    }

    /// [`Self::for_each`] until `found` breaks.
    pub fn try_for_each<B>(
        &self,
        haystack: &[u8],
        mut found: impl FnMut(usize, Range<usize>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        let dfa = &self.dfa;
        let mut state = dfa
            .start_state(Anchored::No)
            .expect("an unanchored DFA has an unanchored start");
        let mut at = 0;
        while at < haystack.len() {
            // The step alone in the loop: with the matches handled here too, the compiler kept
            // the DFA's fields on the stack: 18 instructions a byte instead of 12.
            state = dfa.next_state(Anchored::No, state, haystack[at]);
            at += 1;
            if dfa.is_special(state) && dfa.is_match(state) {
                self.report(state, at, &mut found)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// The literals matched in `state`, ending at `end`.
    #[inline(never)]
    fn report<B>(
        &self,
        state: StateID,
        end: usize,
        found: &mut impl FnMut(usize, Range<usize>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        for index in 0..self.dfa.match_len(state) {
            let literal = self.dfa.match_pattern(state, index);
            let start = end - self.dfa.pattern_len(literal);
            found(literal.as_usize(), start..end)?;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use aho_corasick::AhoCorasick;

    use super::*;

    /// Every match the crate's own overlapping search reports, in its order, for literals that
    /// overlap, nest and share suffixes, in both case modes.
    #[test]
    fn finds_what_the_crates_overlapping_search_finds() {
        let literals = [
            "Chrome/",
            "Chrom",
            "hrome",
            "e/",
            "Mobile",
            "Mobile Safari",
            "bot",
            "Bot",
        ];
        let mut agents = super::super::vendored_agents();
        agents.push("CHROME/1 mobile SAFARI e/e/e/ Bot bot".to_owned());
        for insensitive in [false, true] {
            let ours = Literals::new(&literals, insensitive);
            let theirs = AhoCorasick::builder()
                .ascii_case_insensitive(insensitive)
                .build(literals)
                .expect("builds");
            let mut matched = 0;
            for agent in &agents {
                let mut found = Vec::new();
                ours.for_each(agent.as_bytes(), |literal, range| {
                    found.push((literal, range))
                });
                let expected: Vec<_> = theirs
                    .find_overlapping_iter(agent)
                    .map(|m| (m.pattern().as_usize(), m.range()))
                    .collect();
                assert_eq!(found, expected, "{agent}");
                matched += found.len();
            }
            assert!(matched > agents.len(), "the literals are in most agents");
        }
    }

    #[test]
    fn a_break_stops_the_scan() {
        let literals = Literals::new(&["a"], false);
        let mut seen = 0;
        let stopped = literals.try_for_each(b"aaaa", |_, range| {
            seen += 1;
            if range.end == 2 {
                ControlFlow::Break(range.start)
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!((stopped, seen), (ControlFlow::Break(1), 2));
    }
}
