//! The `Cookie` header: whatever a browser (or attacker) sends, a visitor id is only ever one
//! this collector could have minted.
#![no_main]

use footfall_collector::hit::visitor::Visitor;
use footfall_store::id::Id;
use http::{HeaderMap, HeaderValue, header::COOKIE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for part in data.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(part) {
            headers.append(COOKIE, value);
        }
    }
    let visitor = Visitor::from_headers(&headers);
    assert_eq!(Id::parse(visitor.id.as_str()), Some(visitor.id));
});
