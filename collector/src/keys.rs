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

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use footfall_seal::{PublicKey, SecretKey};

pub const SECRET_FILE: &str = "secret.key";
pub const IP_PUBLIC_FILE: &str = "ip-seal.pub";
pub const IP_PRIVATE_FILE: &str = "ip-seal.key";
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
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
        None if path.exists() => (read(&path)?, path.display().to_string()),
        None if dev => {
            let mut bytes = [0u8; 32];
            rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
            let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            write_private(&path, &text)?;
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
    let path = data_dir.join(IP_PUBLIC_FILE);
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
                PublicKey::from_text(&read(Path::new(text))?).map_err(bad(text.to_owned()))
            }
            Err(e) => Err(bad("FOOTFALL_IP_PUBLIC_KEY".to_owned())(e)),
        },
        None if path.exists() => {
            PublicKey::from_text(&read(&path)?).map_err(bad(path.display().to_string()))
        }
        None if dev => Ok(write_key_pair(data_dir)?.public_key()),
        None => Err(KeyError::Missing {
            what: "IP public key",
            flag: "ip-public-key",
            env: "IP_PUBLIC_KEY",
            path,
            hint: DEV_HINT,
        }),
    }
}

/// The private key that opens sealed IPs, for the aggregator's `subject` commands: the file
/// `given` (FOOTFALL_IP_PRIVATE_KEY), else `ip-seal.key` in the data dir. Never created here.
pub fn load_ip_private_key(data_dir: &Path, given: Option<&Path>) -> Result<SecretKey, KeyError> {
    let path = given.map_or_else(|| data_dir.join(IP_PRIVATE_FILE), Path::to_owned);
    // A file named by option must be there (reading it says why not); the default may be absent.
    if given.is_none() && !path.exists() {
        return Err(KeyError::Missing {
            what: "IP private key",
            flag: "ip-private-key",
            env: "IP_PRIVATE_KEY",
            path,
            hint: "make a key pair with `footfall-aggregator keygen` (collectors then need its ip-seal.pub)",
        });
    }
    SecretKey::from_text(&read(&path)?).map_err(|e| KeyError::Bad {
        what: "the IP private key",
        source_name: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Makes a new IP-sealing key pair in `dir` (`ip-seal.key` readable by the owner only).
pub fn write_key_pair(dir: &Path) -> Result<SecretKey, KeyError> {
    let secret = SecretKey::generate();
    write_private(&dir.join(IP_PRIVATE_FILE), &secret.to_text())?;
    write_file(
        &dir.join(IP_PUBLIC_FILE),
        &secret.public_key().to_text(),
        0o644,
    )?;
    Ok(secret)
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    write_file(path, text, 0o600)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    let io = |action| {
        move |source| KeyError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io("create the folder of"))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(io("create"))?;
    writeln!(file, "{text}").map_err(io("write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("footfall-keys-{}", crate::id::Id::random()));
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
        let private =
            SecretKey::from_text(&fs::read_to_string(dir.join(IP_PRIVATE_FILE)).unwrap()).unwrap();
        assert_eq!(
            private.public_key().to_text(),
            first.ip_public_key.to_text()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(IP_PRIVATE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
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
    fn the_private_key_is_read_from_the_option_or_the_data_dir_and_never_made() {
        let dir = temp_dir();
        let err = load_ip_private_key(&dir, None).err().unwrap().to_string();
        assert!(
            err.contains("--ip-private-key") && err.contains("keygen"),
            "{err}"
        );
        assert!(!dir.join(IP_PRIVATE_FILE).exists());
        let pair = write_key_pair(&dir).unwrap();
        let public = pair.public_key().to_text();
        assert_eq!(
            load_ip_private_key(&dir, None)
                .unwrap()
                .public_key()
                .to_text(),
            public
        );
        let other = temp_dir();
        let given = dir.join(IP_PRIVATE_FILE);
        assert_eq!(
            load_ip_private_key(&other, Some(&given))
                .unwrap()
                .public_key()
                .to_text(),
            public
        );
        fs::write(other.join("bad.key"), "garbage").unwrap();
        assert!(load_ip_private_key(&other, Some(&other.join("bad.key"))).is_err());
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(other).unwrap();
    }

    #[test]
    fn public_key_is_taken_as_text_or_as_a_file() {
        let dir = temp_dir();
        let pair = write_key_pair(&dir).unwrap();
        let text = pair.public_key().to_text();
        let other = temp_dir();
        assert_eq!(
            load_ip_public_key(&other, Some(&text), false)
                .unwrap()
                .to_text(),
            text
        );
        let file = dir.join(IP_PUBLIC_FILE).display().to_string();
        assert_eq!(
            load_ip_public_key(&other, Some(&file), false)
                .unwrap()
                .to_text(),
            text
        );
        assert!(load_ip_public_key(&other, Some("garbage"), false).is_err());
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(other).unwrap();
    }
}
