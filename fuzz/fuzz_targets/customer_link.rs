//! The customer link (`cid`, `cs`): only a signature made with the secret links a hit.
#![no_main]

use footfall_collector::hit::customer::{self, Link};
use footfall_collector::signing::Signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new(&[42; 32]);
    let text = String::from_utf8_lossy(data);
    let (id, signature) = text.split_at(text.floor_char_boundary(text.len() / 2));
    if let Link::Valid(linked) = customer::verify(Some(id), Some(signature), &signer) {
        let params = customer::sign(linked.as_str(), &signer).unwrap();
        assert!(params.ends_with(signature), "only the signer's own signature links");
    }
    if let Ok(params) = customer::sign(id, &signer) {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(params.as_bytes()).into_owned().collect();
        let (cid, cs) = (pairs[0].1.as_str(), pairs[1].1.as_str());
        assert!(matches!(customer::verify(Some(cid), Some(cs), &signer), Link::Valid(c) if c.as_str() == id));
        assert!(matches!(customer::verify(Some(cid), Some(cs), &Signer::new(&[7; 32])), Link::Forged));
    }
});
