//! The page URL's fast path against the `url` crate: whenever `plain_url` splits a URL in
//! place, `url` must parse it to the same serialisation (fragment dropped), host, path and
//! query, and what it saw of an e-mail address on the way must be what a search finds.
#![no_main]

use footfall_collector::hit::page::plain_url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some(plain) = plain_url(&text) else {
        return;
    };
    let mut url = url::Url::parse(&text).expect("the url crate parses what the fast path takes");
    url.set_fragment(None);
    assert!(matches!(url.scheme(), "http" | "https"));
    assert_eq!(plain.as_str(), url.as_str(), "serialisation of {text:?}");
    assert_eq!(Some(plain.host()), url.host_str(), "host of {text:?}");
    assert_eq!(plain.path(), url.path(), "path of {text:?}");
    assert_eq!(plain.query(), url.query().unwrap_or_default(), "query of {text:?}");
    let email = |part: &str| part.contains('@') || part.contains("%40");
    assert_eq!(
        plain.may_hold_email(),
        email(plain.path()) || email(plain.query()),
        "an address in {text:?}"
    );
});
