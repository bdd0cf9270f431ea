//! Finding (or, with `--dev`, making) the key material the collector needs.
//!
//! A key given by option wins. Otherwise it is read from FOOTFALL_DATA_DIR, where `--dev` and
//! `footfall-aggregator keygen` put it, so `serve --dev`, `sign` and the aggregator's `subject`
//! commands work together on one laptop:
//!
//! | file | holds |
//! |---|---|
//! | `secret.key` | FOOTFALL_SECRET: HMAC key for email tokens and customer links |
//! | `ip-seal.pub` | FOOTFALL_IP_PUBLIC_KEY: seals client IPs |
//! | `ip-seal.key` | the private half; only the aggregator's `subject` commands read it |
//!
//! The key-pair files themselves are `footfall_seal::key_file`'s: `--dev` writes a pair with it,
//! and nothing here reads the private half.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use footfall_seal::PublicKey;
use footfall_seal::key_file::{self, KeyFileError, PUBLIC_FILE};

pub const SECRET_FILE: &str = "secret.key";
/// How to get a missing key on a laptop.
const DEV_HINT: &str = "run with --dev on a laptop to create one";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no {what}: pass --{flag} (or FOOTFALL_{env}), put one in {path}, or {hint}")]
    Missing {
        what: &'static str,
        flag: &'static str,
        env: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("{what} in {source_name} is not usable: {reason}")]
    Bad {
        what: &'static str,
        source_name: String,
        reason: String,
    },
    #[error(transparent)]
    File(#[from] KeyFileError),
}

/// Keys a serving collector needs.
pub struct Keys {
    pub secret: Vec<u8>,
    pub ip_public_key: PublicKey,
}

/// Resolves the collector's keys: option, else data dir, else (with `dev`) a new one there.
pub fn load(
    data_dir: &Path,
    secret: Option<&str>,
    ip_public_key: Option<&str>,
    dev: bool,
) -> Result<Keys, KeyError> {
    Ok(Keys {
        secret: load_secret(data_dir, secret, dev)?,
        ip_public_key: load_ip_public_key(data_dir, ip_public_key, dev)?,
    })
}

pub fn load_secret(data_dir: &Path, given: Option<&str>, dev: bool) -> Result<Vec<u8>, KeyError> {
    let path = data_dir.join(SECRET_FILE);
    let (text, source_name) = match given {
        Some(text) => (text.to_owned(), "FOOTFALL_SECRET".to_owned()),
        None if path.exists() => (key_file::read(&path)?, path.display().to_string()),
        None if dev => {
            let mut bytes = [0u8; 32];
            rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            key_file::create(&path, &text, 0o600)?;
            (text, path.display().to_string())
        }
        None => {
            return Err(KeyError::Missing {
                what: "secret",
                flag: "secret",
                env: "SECRET",
                path,
                hint: DEV_HINT,
            });
        }
    };
    let text = text.trim();
    crate::signing::check_secret(text.as_bytes()).map_err(|weak| KeyError::Bad {
        what: "the secret",
        source_name,
        reason: weak.to_string(),
    })?;
    Ok(text.as_bytes().to_vec())
}

pub fn load_ip_public_key(
    data_dir: &Path,
    given: Option<&str>,
    dev: bool,
) -> Result<PublicKey, KeyError> {
    let path = data_dir.join(PUBLIC_FILE);
    let bad = |source_name: String| {
        move |e: footfall_seal::SealError| KeyError::Bad {
            what: "the IP public key",
            source_name,
            reason: e.to_string(),
        }
    };
    match given {
        Some(text) => match PublicKey::from_text(text) {
            Ok(key) => Ok(key),
            Err(_) if Path::new(text).is_file() => {
                PublicKey::from_text(&key_file::read(Path::new(text))?)
                    .map_err(bad(text.to_owned()))
            }
            Err(e) => Err(bad("FOOTFALL_IP_PUBLIC_KEY".to_owned())(e)),
        },
        None if path.exists() => {
            PublicKey::from_text(&key_file::read(&path)?).map_err(bad(path.display().to_string()))
        }
        None if dev => Ok(key_file::write_key_pair(data_dir)?.public_key()),
        None => Err(KeyError::Missing {
            what: "IP public key",
            flag: "ip-public-key",
            env: "IP_PUBLIC_KEY",
            path,
            hint: DEV_HINT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "footfall-keys-{}",
            footfall_store::id::Id::random()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn dev_creates_keys_once_and_reuses_them() {
        let dir = temp_dir();
        let first = load(&dir, None, None, true).unwrap();
        let again = load(&dir, None, None, false).unwrap();
        assert_eq!(first.secret, again.secret);
        assert_eq!(first.ip_public_key.to_text(), again.ip_public_key.to_text());
        assert!(
            dir.join(key_file::PRIVATE_FILE).exists(),
            "the private half is left for the aggregator"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn without_dev_missing_keys_are_a_clear_error() {
        let dir = temp_dir();
        let err = load(&dir, None, None, false).err().unwrap().to_string();
        assert!(err.contains("--secret") && err.contains("--dev"), "{err}");
        let err = load(
            &dir,
            Some("Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj"),
            None,
            false,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("--ip-public-key"), "{err}");
        assert!(load_secret(&dir, Some("short"), false).is_err());
        let weak = load_secret(&dir, Some(&"a".repeat(32)), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            weak.contains("FOOTFALL_SECRET") && weak.contains("openssl rand -base64 48"),
            "{weak}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn public_key_is_taken_as_text_or_as_a_file() {
        let dir = temp_dir();
        let pair = key_file::write_key_pair(&dir).unwrap();
        let text = pair.public_key().to_text();
        let other = temp_dir();
        assert_eq!(
            load_ip_public_key(&other, Some(&text), false)
                .unwrap()
                .to_text(),
            text
        );
        let file = dir.join(PUBLIC_FILE).display().to_string();
        assert_eq!(
            load_ip_public_key(&other, Some(&file), false)
                .unwrap()
                .to_text(),
            text
        );
        assert!(load_ip_public_key(&other, Some("garbage"), false).is_err());
        let private = dir.join(key_file::PRIVATE_FILE).display().to_string();
        let err = load_ip_public_key(&other, Some(&private), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("private IP-sealing key, where the public one belongs"),
            "the private key is refused as the public one: {err}"
        );
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(other).unwrap();
    }
}
