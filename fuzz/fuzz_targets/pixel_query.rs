//! The pixel's query string, page URL and referrer: any bytes parse or are refused, never panic,
//! what is kept stays within its bounds, a value decodes as `form_urlencoded` decodes it, and a
//! stored URL keeps only allowed parameters.
#![no_main]

use footfall_collector::hit::page::{KeptParams, Page, Referrer, URL_MAX};
use footfall_collector::hit::query::PixelQuery;
use footfall_store::site::valid_site;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let query = PixelQuery::parse(&text);
    if !text.contains('&') {
        let value = format!("url={text}");
        let (_, expected) = form_urlencoded::parse(value.as_bytes()).next().unwrap();
        assert_eq!(PixelQuery::parse(&value).url.as_deref(), Some(expected.as_ref()), "{text:?}");
    }
    if let Some(site) = &query.site {
        let _ = valid_site(site);
    }
    let kept: KeptParams = "q,page".parse().unwrap();
    for raw in [query.url.as_deref(), query.referrer.as_deref(), Some(text.as_ref())].into_iter().flatten() {
        if let Ok(page) = Page::parse(raw, &kept) {
            assert!(page.url.len() <= URL_MAX && page.path.len() <= URL_MAX);
            // Only allowed parameters are stored (a cut URL may end in a partial one).
            if let Some((_, query)) = page.url.split_once('?') {
                if !page.truncated {
                    for (key, _) in form_urlencoded::parse(query.as_bytes()) {
                        assert!(key.starts_with("utm_") || key == "q" || key == "page", "{key} kept from {raw:?}");
                    }
                }
            }
        }
        let mut truncated = false;
        assert!(Referrer::parse(raw, &kept, &mut truncated).url.len() <= URL_MAX);
    }
});
