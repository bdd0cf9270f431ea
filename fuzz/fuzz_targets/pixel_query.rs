//! The pixel's query string, page URL and referrer: any bytes parse or are refused, never panic,
//! and what is kept stays within its bounds.
#![no_main]

use footfall_collector::hit::page::{Page, Referrer, URL_MAX};
use footfall_collector::hit::query::PixelQuery;
use footfall_store::site::valid_site;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let query = PixelQuery::parse(&text);
    if let Some(site) = &query.site {
        let _ = valid_site(site);
    }
    for raw in [query.url.as_deref(), query.referrer.as_deref(), Some(text.as_ref())].into_iter().flatten() {
        if let Ok(page) = Page::parse(raw) {
            assert!(page.url.len() <= URL_MAX && page.path.len() <= URL_MAX);
        }
        let mut truncated = false;
        assert!(Referrer::parse(raw, &mut truncated).url.len() <= URL_MAX);
    }
});
