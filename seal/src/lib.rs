//! Sealing of client IP addresses at rest.
//!
//! The collector must store every client IP so that a data subject can get a copy of their data,
//! yet it must never be able to read an IP back. It therefore holds only a public key. Public-key
//! operations are far too slow to do per hit, so sealing works in two layers:
//!
//! 1. An [`EpochKey`] is a random 256-bit data key made for a short epoch (a minute, say). It is
//!    sealed once to the X25519 [`PublicKey`] (a libsodium-compatible sealed box) and that sealed
//!    copy is stored beside the events (the `ip_keys` table), named by a random 64-bit key id.
//! 2. Each IP is encrypted under the epoch's data key with AES-256-GCM and a random 96-bit nonce.
//!    When the epoch ends, the collector drops the data key (it is zeroed on drop).
//!
//! AES-256-GCM rather than (X)ChaCha20-Poly1305 because the message is one 16-byte block: with
//! the AES and carry-less multiply instructions of every server CPU it costs a few dozen
//! nanoseconds, where ChaCha20-Poly1305 spends hundreds computing keystream and Poly1305 set-up
//! for a single block (see BENCHMARKS.md). Random 96-bit nonces are safe for far more IPs than
//! one key ever seals: at a million hits a second, a one-minute epoch seals 6·10⁷, and the
//! chance that two of them share a nonce is about 10⁻¹⁴. IPs sealed by earlier versions under
//! XChaCha20-Poly1305 ([`LEGACY_SEALED_IP_LEN`] bytes) still open with the same data key.
//!
//! Only the holder of the [`SecretKey`] (the aggregator's `subject` commands) can open a sealed
//! data key ([`SecretKey::open_epoch_key`]) and with it the IPs ([`OpenedEpochKey::open_ip`]).
//! Deleting an epoch's sealed key makes every IP sealed under it unreadable (crypto-shredding).
//!
//! [`key_file`] keeps the key pair on disk.
//!
//! Every IP is encrypted as 16 bytes (IPv4 as an IPv4-mapped IPv6 address) so that the
//! ciphertext's length does not tell IPv4 from IPv6.

pub mod key_file;

use std::net::{IpAddr, Ipv6Addr};

use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;
use zeroize::Zeroizing;

/// Length of a sealed IP: nonce, 16 bytes of address, authentication tag.
pub const SEALED_IP_LEN: usize = NONCE_LEN + 16 + TAG_LEN;
const NONCE_LEN: usize = 12;
/// Length of an IP sealed by earlier versions: 24-byte XChaCha20 nonce, address, tag.
pub const LEGACY_SEALED_IP_LEN: usize = LEGACY_NONCE_LEN + 16 + TAG_LEN;
const LEGACY_NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// What can go wrong when reading keys or opening sealed data.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a key: expected 32 bytes in base64 (as written by `footfall-aggregator keygen`)")]
    BadKeyText,
    #[error(
        "this is the {found} IP-sealing key, where the {wanted} one belongs (`ip-seal.pub` is the public key, `ip-seal.key` the private one)"
    )]
    WrongKeyType {
        found: &'static str,
        wanted: &'static str,
    },
    #[error("the sealed data key could not be opened: wrong private key, or the data is damaged")]
    BadSealedKey,
    #[error("the sealed IP could not be opened: wrong epoch key, or the data is damaged")]
    BadSealedIp,
}

/// The X25519 public key the collector seals epoch keys to.
#[derive(Clone)]
pub struct PublicKey(crypto_box::PublicKey);

/// The X25519 private key that opens sealed epoch keys. Zeroed on drop.
pub struct SecretKey(crypto_box::SecretKey);

/// The type header of a public key's text form. Key files say what they hold, so the private
/// key cannot be given where the public one belongs: both are 32 bytes, and the collector
/// once sealed IPs to a private key taken as public, which nobody could open.
const PUBLIC_HEADER: &str = "footfall-ip-seal-public-key:";
/// The type header of a private key's text form.
const PRIVATE_HEADER: &str = "footfall-ip-seal-private-key:";

impl PublicKey {
    /// Parses the text form: the type header and base64 (surrounding whitespace is ignored).
    /// Bare base64, as written before keys carried a header, is still read; a private key is
    /// refused.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let key = typed(text, PUBLIC_HEADER, PRIVATE_HEADER, "public", "private")?;
        Ok(Self(crypto_box::PublicKey::from(*decode_key(key)?)))
    }

    /// The text form: type header and base64.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_HEADER}{}", BASE64.encode(self.0.as_bytes()))
    }
}

/// The base64 of `text` with its type header `own`; an error if it carries `other`'s.
fn typed<'a>(
    text: &'a str,
    own: &str,
    other: &str,
    wanted: &'static str,
    found: &'static str,
) -> Result<&'a str, SealError> {
    let text = text.trim();
    if text.starts_with(other) {
        return Err(SealError::WrongKeyType { found, wanted });
    }
    Ok(text.strip_prefix(own).unwrap_or(text))
}

impl SecretKey {
    /// Makes a new random key pair.
    pub fn generate() -> Self {
        Self(crypto_box::SecretKey::generate(&mut OsRng))
    }

    /// Parses the text form (see [`PublicKey::from_text`]); a public key is refused.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let key = typed(text, PRIVATE_HEADER, PUBLIC_HEADER, "private", "public")?;
        Ok(Self(crypto_box::SecretKey::from(*decode_key(key)?)))
    }

    /// The text form: type header and base64. Handle with care: this is the key that unseals
    /// every IP.
    pub fn to_text(&self) -> Zeroizing<String> {
        let key = Zeroizing::new(BASE64.encode(self.0.to_bytes()));
        Zeroizing::new(format!("{PRIVATE_HEADER}{}", key.as_str()))
    }

    /// The public half, for the collector.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// Opens an epoch's sealed data key, as stored in the `ip_keys` table.
    pub fn open_epoch_key(&self, sealed_key: &[u8]) -> Result<OpenedEpochKey, SealError> {
        let key = Zeroizing::new(
            self.0
                .unseal(sealed_key)
                .map_err(|_| SealError::BadSealedKey)?,
        );
        if key.len() != KEY_LEN {
            return Err(SealError::BadSealedKey);
        }
        Ok(OpenedEpochKey {
            cipher: Aes256Gcm::new_from_slice(&key).map_err(|_| SealError::BadSealedKey)?,
            legacy: XChaCha20Poly1305::new_from_slice(&key).map_err(|_| SealError::BadSealedKey)?,
        })
    }
}

/// A data key for one epoch, able to seal IPs. Holds the cipher, the key's id and its sealed copy.
pub struct EpochKey {
    id: u64,
    cipher: Aes256Gcm,
    sealed_key: Vec<u8>,
}

impl EpochKey {
    /// Makes a new random data key and seals it to `public_key`. Costs one X25519 operation.
    pub fn generate(public_key: &PublicKey) -> Self {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        let sealed_key = public_key
            .0
            .seal(&mut OsRng, key.as_slice())
            .expect("sealing 32 bytes to a valid public key cannot fail");
        Self {
            id: rand::random::<u64>(),
            cipher: Aes256Gcm::new(&key),
            sealed_key,
        }
    }

    /// The random id that names this key in the `ip_keys` table and on every event it sealed.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The data key sealed to the public key: safe to store, useless without the private key.
    pub fn sealed_key(&self) -> &[u8] {
        &self.sealed_key
    }

    /// Encrypts one IP: [`SEALED_IP_LEN`] bytes of nonce, ciphertext and tag, built in place
    /// without allocating. The nonce comes from the thread-local CSPRNG (ChaCha, seeded from the
    /// OS): a system call per hit would cost more than the encryption.
    pub fn seal_ip(&self, ip: IpAddr) -> [u8; SEALED_IP_LEN] {
        let mut out = [0u8; SEALED_IP_LEN];
        let (nonce, rest) = out.split_at_mut(NONCE_LEN);
        let (text, tag) = rest.split_at_mut(16);
        rand::thread_rng().fill_bytes(nonce);
        text.copy_from_slice(&ip_bytes(ip));
        let computed = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(nonce), &[], text)
            .expect("AES-256-GCM encryption of 16 bytes cannot fail");
        tag.copy_from_slice(&computed);
        out
    }
}

/// An epoch's data key opened with the private key: it can read IPs sealed under that epoch.
pub struct OpenedEpochKey {
    cipher: Aes256Gcm,
    /// For IPs sealed before AES-256-GCM (XChaCha20-Poly1305, [`LEGACY_SEALED_IP_LEN`] bytes),
    /// which stay readable for as long as retention keeps them.
    legacy: XChaCha20Poly1305,
}

impl OpenedEpochKey {
    /// Decrypts a sealed IP made by [`EpochKey::seal_ip`] (or by the XChaCha20-Poly1305
    /// sealing of earlier versions, told apart by its length).
    pub fn open_ip(&self, sealed: &[u8]) -> Result<IpAddr, SealError> {
        let octets = match sealed.len() {
            SEALED_IP_LEN => open_with(&self.cipher, sealed, NONCE_LEN),
            LEGACY_SEALED_IP_LEN => open_with(&self.legacy, sealed, LEGACY_NONCE_LEN),
            _ => return Err(SealError::BadSealedIp),
        }
        .map_err(|_| SealError::BadSealedIp)?;
        Ok(Ipv6Addr::from(octets).to_canonical())
    }
}

/// Opens nonce, 16 bytes of ciphertext and tag, as laid out by [`EpochKey::seal_ip`].
fn open_with<A: AeadInPlace>(
    cipher: &A,
    sealed: &[u8],
    nonce_len: usize,
) -> Result<[u8; 16], aes_gcm::aead::Error> {
    let (nonce, rest) = sealed.split_at(nonce_len);
    let (ciphertext, tag) = rest.split_at(16);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(ciphertext);
    cipher.decrypt_in_place_detached(
        aes_gcm::aead::Nonce::<A>::from_slice(nonce),
        &[],
        &mut octets,
        aes_gcm::aead::Tag::<A>::from_slice(tag),
    )?;
    Ok(octets)
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn decode_key(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    let bytes = Zeroizing::new(
        BASE64
            .decode(text.trim())
            .map_err(|_| SealError::BadKeyText)?,
    );
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(SealError::BadKeyText);
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

#[cfg(test)]
mod typed_tests {
    use super::*;

    #[test]
    fn key_files_say_what_they_hold_and_cannot_be_mixed_up() {
        let secret = SecretKey::generate();
        let public = secret.public_key().to_text();
        let private = secret.to_text();
        assert!(public.starts_with(PUBLIC_HEADER) && private.starts_with(PRIVATE_HEADER));
        let err = PublicKey::from_text(&private).err().unwrap().to_string();
        assert!(
            err.contains("private IP-sealing key, where the public one belongs"),
            "{err}"
        );
        assert!(matches!(
            SecretKey::from_text(&public),
            Err(SealError::WrongKeyType {
                found: "public",
                ..
            })
        ));
        let bare = public.strip_prefix(PUBLIC_HEADER).unwrap();
        assert_eq!(
            PublicKey::from_text(bare).unwrap().to_text(),
            public,
            "older files still read"
        );
        assert_eq!(
            SecretKey::from_text(&format!(" {}\n", private.as_str()))
                .unwrap()
                .public_key()
                .to_text(),
            public
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::XNonce;

    #[test]
    fn ip_round_trips_through_seal_and_open() {
        let secret = SecretKey::generate();
        let epoch = EpochKey::generate(&secret.public_key());
        let opened = secret.open_epoch_key(epoch.sealed_key()).unwrap();
        for ip in ["203.0.113.7", "2001:db8::42", "::1", "0.0.0.0"] {
            let ip: IpAddr = ip.parse().unwrap();
            let sealed = epoch.seal_ip(ip);
            assert_eq!(opened.open_ip(&sealed).unwrap(), ip);
        }
    }

    #[test]
    fn ips_sealed_by_earlier_versions_still_open() {
        let secret = SecretKey::generate();
        let epoch = EpochKey::generate(&secret.public_key());
        let key = secret.0.unseal(epoch.sealed_key()).unwrap();
        // What earlier versions stored: nonce, then XChaCha20-Poly1305 of the 16-byte address.
        let legacy = XChaCha20Poly1305::new_from_slice(&key).unwrap();
        let nonce = [7u8; LEGACY_NONCE_LEN];
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let mut sealed = nonce.to_vec();
        sealed.extend(
            chacha20poly1305::aead::Aead::encrypt(
                &legacy,
                XNonce::from_slice(&nonce),
                &ip_bytes(ip)[..],
            )
            .unwrap(),
        );
        assert_eq!(sealed.len(), LEGACY_SEALED_IP_LEN);
        let opened = secret.open_epoch_key(epoch.sealed_key()).unwrap();
        assert_eq!(opened.open_ip(&sealed).unwrap(), ip);
        sealed[LEGACY_NONCE_LEN] ^= 1;
        assert!(matches!(
            opened.open_ip(&sealed),
            Err(SealError::BadSealedIp)
        ));
    }

    #[test]
    fn sealed_ip_hides_the_address_and_never_repeats() {
        let epoch = EpochKey::generate(&SecretKey::generate().public_key());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let (a, b) = (epoch.seal_ip(ip), epoch.seal_ip(ip));
        assert_ne!(a, b, "a random nonce makes equal IPs look different");
        let needle = [203u8, 0, 113, 7];
        assert!(!a.windows(4).any(|w| w == needle));
    }

    #[test]
    fn another_private_key_cannot_open_the_epoch_key() {
        let epoch = EpochKey::generate(&SecretKey::generate().public_key());
        let stranger = SecretKey::generate();
        assert!(matches!(
            stranger.open_epoch_key(epoch.sealed_key()),
            Err(SealError::BadSealedKey)
        ));
    }

    #[test]
    fn tampered_sealed_ip_is_rejected() {
        let secret = SecretKey::generate();
        let epoch = EpochKey::generate(&secret.public_key());
        let opened = secret.open_epoch_key(epoch.sealed_key()).unwrap();
        let mut sealed = epoch.seal_ip("192.0.2.1".parse().unwrap());
        sealed[SEALED_IP_LEN - 1] ^= 1;
        assert!(matches!(
            opened.open_ip(&sealed),
            Err(SealError::BadSealedIp)
        ));
        assert!(matches!(
            opened.open_ip(&sealed[1..]),
            Err(SealError::BadSealedIp)
        ));
    }

    #[test]
    fn keys_round_trip_through_text() {
        let secret = SecretKey::generate();
        let again = SecretKey::from_text(&secret.to_text()).unwrap();
        assert_eq!(again.public_key().to_text(), secret.public_key().to_text());
        let public =
            PublicKey::from_text(&format!("  {}\n", secret.public_key().to_text())).unwrap();
        assert_eq!(public.to_text(), secret.public_key().to_text());
        assert!(matches!(
            PublicKey::from_text("c2hvcnQ="),
            Err(SealError::BadKeyText)
        ));
        assert!(matches!(
            PublicKey::from_text("not base64!"),
            Err(SealError::BadKeyText)
        ));
    }
}
