//! Random ids as 22 base62 characters: visitor cookies and page-view ids.
//!
//! An id is a UUID v4 (122 random bits) written as a fixed-width base62 number, so it is short,
//! URL- and cookie-safe, and checkable: [`Id::parse`] accepts exactly the strings [`Id::random`]
//! can produce (22 characters of `[0-9A-Za-z]` that decode to a version-4, RFC 4122 UUID).
//! The codec is our own because it is tiny, fixed-width and allocation-free on the hot path.

use std::fmt;

use uuid::Uuid;

/// Number of characters in an id: the fewest base62 digits that hold 128 bits.
pub const ID_LEN: usize = 22;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A 22-character base62 id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id([u8; ID_LEN]);

impl Id {
    /// A fresh id from 122 random bits.
    #[inline]
    pub fn random() -> Self {
        Self::from_uuid(Uuid::new_v4())
    }

    /// The id of a UUID, for ids derived from another (a pixel hit's page view from its event id).
    #[inline]
    pub fn from_uuid(uuid: Uuid) -> Self {
        // 128-bit division is a slow library call: split the number into base-62^10 chunks with
        // two of them, then write each chunk's digits with cheap 64-bit arithmetic.
        const CHUNK: u128 = 62u128.pow(10);
        let n = uuid.as_u128();
        let (high, low) = (n / CHUNK, (n % CHUNK) as u64);
        let (top, middle) = ((high / CHUNK) as u64, (high % CHUNK) as u64);
        let mut out = [b'0'; ID_LEN];
        let (head, tail) = out.split_at_mut(2);
        let (mid, low_digits) = tail.split_at_mut(10);
        for (mut rest, digits) in [(top, head), (middle, mid), (low, low_digits)] {
            for slot in digits.iter_mut().rev() {
                *slot = ALPHABET[(rest % 62) as usize];
                rest /= 62;
            }
        }
        Self(out)
    }

    /// Accepts only what [`Id::random`] could have made.
    #[inline]
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; ID_LEN] = text.as_bytes().try_into().ok()?;
        let mut n: u128 = 0;
        for &b in &bytes {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'A'..=b'Z' => b - b'A' + 10,
                b'a'..=b'z' => b - b'a' + 36,
                _ => return None,
            };
            n = n.checked_mul(62)?.checked_add(u128::from(digit))?;
        }
        let uuid = Uuid::from_u128(n);
        let minted = uuid.get_version_num() == 4 && uuid.get_variant() == uuid::Variant::RFC4122;
        minted.then_some(Self(bytes))
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base62 digits are ASCII")
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Id {
    // Ids identify people: keep them out of debug output and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Id(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_22_alphanumerics_and_parse_back() {
        for _ in 0..1000 {
            let id = Id::random();
            assert_eq!(id.as_str().len(), ID_LEN);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
            assert_eq!(Id::parse(id.as_str()), Some(id));
        }
        assert_ne!(Id::random(), Id::random());
    }

    #[test]
    fn encoding_is_fixed_width_base62() {
        assert_eq!(
            Id::from_uuid(Uuid::from_u128(0)).as_str(),
            "0000000000000000000000"
        );
        assert_eq!(
            Id::from_uuid(Uuid::from_u128(61)).as_str(),
            "000000000000000000000z"
        );
        assert_eq!(
            Id::from_uuid(Uuid::from_u128(62)).as_str(),
            "0000000000000000000010"
        );
        assert_eq!(
            Id::from_uuid(Uuid::from_u128(u128::MAX)).as_str(),
            "7n42DGM5Tflk9n8mt7Fhc7"
        );
    }

    #[test]
    fn parse_rejects_what_we_could_not_have_minted() {
        let good = Id::random().to_string();
        assert!(Id::parse(&good[1..]).is_none(), "too short");
        assert!(Id::parse(&format!("{good}0")).is_none(), "too long");
        assert!(
            Id::parse(&good.replace(&good[..1], "-")).is_none(),
            "not base62"
        );
        assert!(
            Id::parse("zzzzzzzzzzzzzzzzzzzzzz").is_none(),
            "overflows 128 bits"
        );
        assert!(
            Id::parse("0000000000000000000000").is_none(),
            "not a v4 uuid"
        );
        assert!(Id::parse(&Id::from_uuid(Uuid::from_u128(u128::MAX)).to_string()).is_none());
        assert!(Id::parse("").is_none());
        assert!(Id::parse("ÄÄÄÄÄÄÄÄÄÄÄ").is_none(), "22 bytes but not ASCII");
    }
}
