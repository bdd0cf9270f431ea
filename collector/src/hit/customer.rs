//! Signed customer links: tying a visitor cookie to a customer account, unforgeably.
//!
//! A site's backend signs the id of a logged-in customer (`footfall-collector sign customer`, or
//! its own HMAC code) and adds `cid=ID&cs=SIGNATURE` to the pixel and beacon hits of that
//! customer's pages. [`verify`] is the one check every handler runs: only a valid signature puts
//! `customer_id` on an event; a forged or damaged one is ignored (the hit is still recorded, just
//! not linked) and counted.
//!
//! The signature is HMAC-SHA256 of the id under FOOTFALL_SECRET (purpose `CustomerLink`), first
//! 16 bytes, base64url without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::signing::{Purpose, Signer};

/// Query parameter (and beacon field) carrying the customer id.
pub const ID_PARAM: &str = "cid";
/// Query parameter (and beacon field) carrying its signature.
pub const SIGNATURE_PARAM: &str = "cs";
/// Longest customer id, in bytes.
pub const ID_MAX: usize = 128;

/// A customer id whose link was validly signed. No `Debug`: it identifies a person.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerId(String);

impl CustomerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// What a hit says about its customer.
#[derive(PartialEq, Eq)]
pub enum Link {
    /// No `cid` on the hit.
    Absent,
    Valid(CustomerId),
    /// A `cid` without a valid signature: ignored, counted.
    Forged,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "a customer id is 1 to {ID_MAX} visible ASCII characters (letters, digits, punctuation; no spaces)"
)]
pub struct BadCustomerId;

fn valid_id(id: &str) -> bool {
    (1..=ID_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The query parameters (`cid=...&cs=...`, URL-encoded) that link a hit to customer `id`.
pub fn sign(id: &str, signer: &Signer) -> Result<String, BadCustomerId> {
    if !valid_id(id) {
        return Err(BadCustomerId);
    }
    let signature = URL_SAFE_NO_PAD.encode(signer.tag(Purpose::CustomerLink, id.as_bytes()));
    Ok(form_urlencoded::Serializer::new(String::new())
        .append_pair(ID_PARAM, id)
        .append_pair(SIGNATURE_PARAM, &signature)
        .finish())
}

/// Checks a hit's `cid` and `cs` (already URL-decoded).
pub fn verify(id: Option<&str>, signature: Option<&str>, signer: &Signer) -> Link {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return Link::Absent;
    };
    let valid = valid_id(id)
        && signature
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .is_some_and(|tag| signer.verify(Purpose::CustomerLink, id.as_bytes(), &tag));
    if valid {
        Link::Valid(CustomerId(id.to_owned()))
    } else {
        Link::Forged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(b"0123456789abcdef0123456789abcdef")
    }

    fn params(query: &str) -> (Option<String>, Option<String>) {
        let mut id = None;
        let mut sig = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                ID_PARAM => id = Some(v.into_owned()),
                SIGNATURE_PARAM => sig = Some(v.into_owned()),
                _ => {}
            }
        }
        (id, sig)
    }

    #[test]
    fn a_signed_link_verifies_and_round_trips_through_the_query_string() {
        let query = sign("alice@example.com", &signer()).unwrap();
        assert!(query.starts_with("cid=alice%40example.com&cs="), "{query}");
        let (id, sig) = params(&query);
        match verify(id.as_deref(), sig.as_deref(), &signer()) {
            Link::Valid(c) => assert_eq!(c.as_str(), "alice@example.com"),
            _ => panic!("a signed link must verify"),
        }
    }

    #[test]
    fn forged_tampered_or_foreign_links_are_not_accepted() {
        let (_, sig) = params(&sign("c-1", &signer()).unwrap());
        let sig = sig.unwrap();
        let other = Signer::new(b"another secret, also 32 characters!");
        let (_, foreign) = params(&sign("c-1", &other).unwrap());
        let cases: [(Option<&str>, Option<&str>); 6] = [
            (Some("c-2"), Some(&sig)),
            (Some("c-1"), None),
            (Some("c-1"), Some("")),
            (Some("c-1"), Some("not base64!")),
            (Some("c-1"), Some(&sig[..10])),
            (Some("c-1"), foreign.as_deref()),
        ];
        for (id, s) in cases {
            assert!(verify(id, s, &signer()) == Link::Forged, "{id:?} {s:?}");
        }
        assert!(verify(None, Some(&sig), &signer()) == Link::Absent);
        assert!(verify(Some(""), None, &signer()) == Link::Absent);
    }

    #[test]
    fn customer_ids_are_bounded() {
        assert!(sign("", &signer()).is_err());
        assert!(sign("has space", &signer()).is_err());
        assert!(sign(&"x".repeat(ID_MAX + 1), &signer()).is_err());
        assert!(sign(&"x".repeat(ID_MAX), &signer()).is_ok());
    }
}
