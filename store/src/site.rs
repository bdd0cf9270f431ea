//! Site names: what may go into the `site` column that every report filters by.

/// A site name: 1 to 128 characters of letters, digits and `.`, `-`, `_`, `:`. Sites are
/// usually domain names; the bound keeps junk out of the `site` column that every report reads.
#[inline]
pub fn valid_site(site: &str) -> bool {
    (1..=128).contains(&site.len())
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_short_names_without_markup() {
        assert!(valid_site("example.com"));
        assert!(valid_site("shop_1:8080"));
        assert!(!valid_site(""));
        assert!(!valid_site("a b"));
        assert!(!valid_site("<script>"));
        assert!(!valid_site(&"a".repeat(129)));
    }
}
