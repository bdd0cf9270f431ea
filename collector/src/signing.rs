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
/// Shortest acceptable FOOTFALL_SECRET, in bytes.
pub const SECRET_MIN_LEN: usize = 32;
/// Fewest different bytes a secret must hold: 32 random base64 or hex characters hold far more.
const SECRET_MIN_DISTINCT: usize = 8;

/// Why a secret is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "it must be at least {SECRET_MIN_LEN} bytes and not a repetition of a few characters; make one with `openssl rand -base64 48`"
)]
pub struct WeakSecret;

/// Refuses secrets that anyone could guess from their shape: too short, a short pattern repeated
/// (`aaaa…`, `abcabc…`), or made of a handful of characters. Length alone let 32 × `a` through.
pub fn check_secret(secret: &[u8]) -> Result<(), WeakSecret> {
    let mut seen = [false; 256];
    for &b in secret {
        seen[b as usize] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    let periodic =
        (1..=secret.len() / 2).any(|p| secret[p..].iter().zip(secret).all(|(a, b)| a == b));
    if secret.len() < SECRET_MIN_LEN || distinct < SECRET_MIN_DISTINCT || periodic {
        return Err(WeakSecret);
    }
    Ok(())
}

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
    fn short_repetitive_or_monotonous_secrets_are_refused() {
        for weak in [
            "a".repeat(32),
            "ab".repeat(20),
            "0123456789abcdef0123456789abcdef".to_owned(),
            format!("{}b", "a".repeat(40)),
            "abcdefgh".repeat(4) + "abc",
            "short but varied: 1a2b3c".to_owned(),
        ] {
            assert!(check_secret(weak.as_bytes()).is_err(), "{weak}");
        }
        let message = check_secret(b"aaaa").unwrap_err().to_string();
        assert!(message.contains("openssl rand -base64 48"), "{message}");
        for strong in [
            "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj",
            "3f9a1c7e0b5d2f8a6c4e9b1d7f3a5c0e",
            "correct horse battery staple, again and again",
        ] {
            assert!(check_secret(strong.as_bytes()).is_ok(), "{strong}");
        }
    }

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
