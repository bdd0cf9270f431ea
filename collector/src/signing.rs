//! HMAC-SHA256 signatures with FOOTFALL_SECRET: what makes email-open tokens and customer links
//! unforgeable.
//!
//! Each use signs under its own context label, so a tag made for one purpose (a customer link)
//! can never be replayed as another (an email token). Tags are truncated to 128 bits, plenty
//! against forgery and short enough for URLs, and are compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a tag: the first half of the HMAC-SHA256 output.
pub const TAG_LEN: usize = 16;

/// What a signature is for; part of the signed message.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    EmailOpen,
    CustomerLink,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::EmailOpen => b"footfall email-open v1\0",
            // v2 signs site and time of issue too; a v1 link (the id alone) no longer verifies.
            Purpose::CustomerLink => b"footfall customer-link v2\0",
        }
    }
}

/// The signing key (FOOTFALL_SECRET). Deliberately no `Debug`.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    fn keyed(&self, purpose: Purpose, message: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(purpose.label());
        mac.update(message);
        mac
    }

    /// The tag of `message` for `purpose`.
    pub fn tag(&self, purpose: Purpose, message: &[u8]) -> [u8; TAG_LEN] {
        let full = self.keyed(purpose, message).finalize().into_bytes();
        full[..TAG_LEN]
            .try_into()
            .expect("SHA-256 output is longer than a tag")
    }

    /// Whether `tag` is the tag of `message` for `purpose`, in constant time.
    pub fn verify(&self, purpose: Purpose, message: &[u8], tag: &[u8]) -> bool {
        tag.len() == TAG_LEN
            && self
                .keyed(purpose, message)
                .verify_truncated_left(tag)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_only_for_the_same_key_purpose_and_message() {
        let signer = Signer::new(b"a secret of at least thirty-two chars");
        let tag = signer.tag(Purpose::CustomerLink, b"c-42");
        assert!(signer.verify(Purpose::CustomerLink, b"c-42", &tag));
        assert!(!signer.verify(Purpose::CustomerLink, b"c-43", &tag));
        assert!(
            !signer.verify(Purpose::EmailOpen, b"c-42", &tag),
            "a tag is bound to its purpose"
        );
        assert!(!Signer::new(b"another secret of thirty-two chars!").verify(
            Purpose::CustomerLink,
            b"c-42",
            &tag
        ));
        assert!(
            !signer.verify(Purpose::CustomerLink, b"c-42", &tag[..8]),
            "a short tag is not accepted"
        );
        assert!(!signer.verify(Purpose::CustomerLink, b"c-42", &[]));
    }
}
