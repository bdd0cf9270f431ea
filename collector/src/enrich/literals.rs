//! Literals a regex's every match holds, read off its syntax tree: what lets a rule set scan an
//! agent once for all its rules' literals and test only the rules whose literals are there
//! ([`super::uap_rules`], [`super::device`]).

use regex_syntax::hir::{Class, Hir, HirKind};

/// Literals shorter than this are not looked for: they are in nearly every agent.
const LITERAL_MIN: usize = 2;
/// Largest set of strings a pattern part is expanded into (`[Ss][Pp]...` grows fast).
const EXACT_MAX: usize = 16;
/// Largest character class expanded into its members.
const CLASS_MAX: usize = 4;

pub(super) type Set = Vec<Vec<u8>>;

/// Clauses of `hir`: sets of literals, every match holding one literal of each set. Few or
/// none where it cannot tell, which only costs a regex test.
pub(super) fn required(hir: &Hir) -> Vec<Set> {
    if let Some(set) = exact(hir) {
        return usable(&set).then_some(set).into_iter().collect();
    }
    match hir.kind() {
        HirKind::Capture(capture) => required(&capture.sub),
        HirKind::Repetition(repetition) if repetition.min >= 1 => required(&repetition.sub),
        HirKind::Concat(parts) => {
            // Runs of exact parts are crossed into longer literals (` NX/` from ` (NX)/`).
            let mut clauses = Vec::new();
            let mut run: Option<Set> = None;
            for part in parts {
                match (exact(part), run.take()) {
                    (Some(set), Some(before)) => match cross(&before, &set) {
                        Some(joined) => run = Some(joined),
                        None => {
                            clauses.extend(usable(&before).then_some(before));
                            run = Some(set);
                        }
                    },
                    (Some(set), None) => run = Some(set),
                    (None, before) => {
                        clauses.extend(before.filter(usable));
                        clauses.extend(required(part));
                    }
                }
            }
            clauses.extend(run.filter(usable));
            clauses
        }
        HirKind::Alternation(branches) => {
            let mut union = Vec::new();
            for branch in branches {
                match required(branch).into_iter().max_by_key(shortest) {
                    Some(set) => union.extend(set),
                    None => return Vec::new(),
                }
            }
            vec![union]
        }
        _ => Vec::new(),
    }
}

/// Every string `hir` can match, if they are few.
fn exact(hir: &Hir) -> Option<Set> {
    match hir.kind() {
        HirKind::Empty => Some(vec![Vec::new()]),
        HirKind::Literal(literal) => Some(vec![literal.0.to_vec()]),
        HirKind::Class(Class::Unicode(class)) => {
            let members = class.ranges().iter().flat_map(|r| r.start()..=r.end());
            (members.clone().count() <= CLASS_MAX).then(|| {
                members
                    .map(|c| c.encode_utf8(&mut [0; 4]).as_bytes().to_vec())
                    .collect()
            })
        }
        HirKind::Class(Class::Bytes(class)) => {
            let members = class.ranges().iter().flat_map(|r| r.start()..=r.end());
            (members.clone().count() <= CLASS_MAX).then(|| members.map(|b| vec![b]).collect())
        }
        HirKind::Capture(capture) => exact(&capture.sub),
        HirKind::Repetition(repetition) if repetition.min == 0 && repetition.max == Some(1) => {
            let mut set = exact(&repetition.sub)?;
            set.push(Vec::new());
            Some(set)
        }
        HirKind::Concat(parts) => parts.iter().try_fold(vec![Vec::new()], |before, part| {
            cross(&before, &exact(part)?)
        }),
        HirKind::Alternation(branches) => {
            let mut union = Vec::new();
            for branch in branches {
                union.extend(exact(branch)?);
                if union.len() > EXACT_MAX {
                    return None;
                }
            }
            Some(union)
        }
        _ => None,
    }
}

fn cross(before: &Set, after: &Set) -> Option<Set> {
    (before.len() * after.len() <= EXACT_MAX).then(|| {
        before
            .iter()
            .flat_map(|b| after.iter().map(move |a| [b.as_slice(), a].concat()))
            .collect()
    })
}

pub(super) fn shortest(set: &Set) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

fn usable(set: &Set) -> bool {
    !set.is_empty() && shortest(set) >= LITERAL_MIN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_hold_literals_every_match_has() {
        let clauses = |pattern: &str| {
            let mut sets = required(&regex_syntax::parse(pattern).expect("parses"));
            sets.iter_mut().for_each(|set| set.sort());
            sets
        };
        let strings = |list: &[&str]| list.iter().map(|s| s.as_bytes().to_vec()).collect::<Set>();
        assert_eq!(
            clauses(r"AppleWebKit.+ (NX)/([0-9]+)"),
            vec![strings(&["AppleWebKit"]), strings(&[" NX/"])]
        );
        assert_eq!(clauses(r"[A-z]+[Bb]ot"), vec![strings(&["Bot", "bot"])]);
        assert_eq!(
            clauses(r"(Chromium|Chrome)/([0-9]+)"),
            vec![strings(&["Chrome/", "Chromium/"])]
        );
        // An optional part or a branch without a literal leaves nothing to look for.
        assert!(clauses(r"(?:Foo)?[0-9]+").is_empty());
        assert!(clauses(r"(Opera|[a-z]+)/").is_empty());
    }
}
