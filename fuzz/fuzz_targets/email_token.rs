//! The email-open token from `/o/{token}.gif`: no forged token is ever accepted, and every token
//! the signer makes opens to what was signed.
#![no_main]

use footfall_collector::hit::email;
use footfall_collector::signing::Signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let signer = Signer::new(&[42; 32]);
    let text = String::from_utf8_lossy(data);
    // Arbitrary text is (almost surely) not a valid token; if it opens, it must re-sign the same.
    if let Some(open) = email::open(&text, &signer) {
        let again = email::token(&open.campaign, &open.recipient, &signer).unwrap();
        assert_eq!(again, text, "only the signer's own tokens open");
    }
    // Round trip: split the input into campaign and recipient and sign them.
    let (campaign, recipient) = text.split_at(text.floor_char_boundary(text.len() / 2));
    if let Ok(token) = email::token(campaign, recipient, &signer) {
        let open = email::open(&token, &signer).expect("a signed token opens");
        assert_eq!((open.campaign.as_str(), open.recipient.as_str()), (campaign, recipient));
        assert!(email::open(&token, &Signer::new(&[7; 32])).is_none(), "another secret rejects it");
    }
});
