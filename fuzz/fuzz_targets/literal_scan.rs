//! The collector's overlapping literal scan (`enrich::scan`), which steps `aho-corasick`'s DFA by
//! hand, against the crate's own overlapping search: for any literals and any haystack, in both
//! case modes, the same matches in the same order. The first byte picks the case mode; the
//! literals come before the first NUL, one a line, the haystack after it.
#![no_main]

use aho_corasick::AhoCorasick;
use footfall_collector::enrich::scan::Literals;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some(split) = rest.iter().position(|&b| b == 0) else {
        return;
    };
    let (literals, haystack) = (&rest[..split], &rest[split + 1..]);
    let literals: Vec<&[u8]> = literals
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .take(64)
        .collect();
    if literals.is_empty() {
        return;
    }
    let insensitive = mode & 1 == 1;
    let ours = Literals::new(&literals, insensitive);
    let theirs = AhoCorasick::builder()
        .ascii_case_insensitive(insensitive)
        .build(&literals)
        .expect("builds");
    let mut found = Vec::new();
    ours.for_each(haystack, |literal, range| found.push((literal, range)));
    let expected: Vec<_> = theirs
        .find_overlapping_iter(haystack)
        .map(|m| (m.pattern().as_usize(), m.range()))
        .collect();
    assert_eq!(found, expected);
});
