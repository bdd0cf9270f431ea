//! Searches for one ASCII byte in URLs and query strings, with the `memchr` crate's SIMD.
//!
//! `str::find(char)`, `split` and `split_once` find a character one word at a time; on a pixel
//! hit's page URL, referrer and query string they came to 2,400 of the request thread's 26,900
//! instructions (BENCHMARKS.md, where the microseconds go). The byte is ASCII, so every position
//! found is a character boundary and the slices stay `str`.

/// Where `byte` first occurs in `text`.
pub fn find(text: &str, byte: u8) -> Option<usize> {
    debug_assert!(byte.is_ascii());
    memchr::memchr(byte, text.as_bytes())
}

/// [`str::split_once`] at `byte`.
pub fn split_once(text: &str, byte: u8) -> Option<(&str, &str)> {
    find(text, byte).map(|at| (&text[..at], &text[at + 1..]))
}

/// [`str::split`] at `byte`: every piece, empty ones included.
pub fn split(text: &str, byte: u8) -> impl Iterator<Item = &str> {
    debug_assert!(byte.is_ascii());
    let mut start = 0;
    let mut ends = memchr::memchr_iter(byte, text.as_bytes()).chain(std::iter::once(text.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let piece = &text[start..end];
        start = end + 1;
        Some(piece)
    })
}

/// Whether `needle` occurs in `text`.
pub fn contains(text: &str, needle: &str) -> bool {
    memchr::memmem::find(text.as_bytes(), needle.as_bytes()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXTS: &[&str] = &[
        "",
        "&",
        "&&",
        "a",
        "a&",
        "&a",
        "site=s&url=https%3A%2F%2Fx.example%2F&&title=caf\u{e9}&=&x",
        "no separator at all, but long enough for the vector loop to run: 0123456789abcdef",
        "é&ü=ß&€",
    ];

    #[test]
    fn agrees_with_the_standard_library() {
        for text in TEXTS {
            for byte in [b'&', b'=', b'#', b'/'] {
                let c = char::from(byte);
                assert_eq!(find(text, byte), text.find(c), "{text:?} {c}");
                assert_eq!(split_once(text, byte), text.split_once(c), "{text:?} {c}");
                assert_eq!(
                    split(text, byte).collect::<Vec<_>>(),
                    text.split(c).collect::<Vec<_>>(),
                    "{text:?} {c}"
                );
            }
            for needle in ["%40", "/.", "xn--", "", "&&", "a", "é&", "789abcdef"] {
                assert_eq!(
                    contains(text, needle),
                    text.contains(needle),
                    "{text:?} {needle}"
                );
            }
        }
    }
}
