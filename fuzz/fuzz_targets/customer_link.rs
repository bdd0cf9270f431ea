//! The customer link (`cid`, `cs`): only a signature made with the secret, for this site and a
//! fresh time of issue, links a hit.
#![no_main]

use footfall_collector::hit::customer::{self, Link, LinkPolicy, Rejected};
use footfall_collector::signing::Signer;
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_780_000_000;

fuzz_target!(|data: &[u8]| {
    let policy = LinkPolicy { signer: Signer::new(&[42; 32]), max_age_secs: 900 };
    let text = String::from_utf8_lossy(data);
    let (id, token) = text.split_at(text.floor_char_boundary(text.len() / 2));
    if let Link::Valid(linked) = customer::verify(Some(id), Some(token), "s", NOW, true, &policy) {
        let (issued, _) = token.split_once('.').unwrap();
        let params = customer::sign(linked.as_str(), "s", issued.parse().unwrap(), &policy.signer).unwrap();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(params.as_bytes()).into_owned().collect();
        assert_eq!(pairs[1].1, token, "only the signer's own signature links");
    }
    if let Ok(params) = customer::sign(id, "s", NOW, &policy.signer) {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(params.as_bytes()).into_owned().collect();
        let (cid, cs) = (pairs[0].1.as_str(), pairs[1].1.as_str());
        let check = |site, now, own_page, policy: &LinkPolicy| customer::verify(Some(cid), Some(cs), site, now, own_page, policy);
        assert!(matches!(check("s", NOW, true, &policy), Link::Valid(c) if c.as_str() == id));
        assert!(check("t", NOW, true, &policy) == Link::Rejected(Rejected::Forged));
        assert!(check("s", NOW + 901, true, &policy) == Link::Rejected(Rejected::Expired));
        assert!(check("s", NOW, false, &policy) == Link::Rejected(Rejected::Refused));
        let other = LinkPolicy { signer: Signer::new(&[7; 32]), max_age_secs: 900 };
        assert!(check("s", NOW, true, &other) == Link::Rejected(Rejected::Forged));
    }
});
