//! The IP-sealing key pair on disk: where it is looked for, how it is written, and reading the
//! private half.
//!
//! Here rather than in the collector: the collector seals with the public key and must hold no
//! code that reads the private one; only the aggregator's `subject` commands call
//! [`load_private_key`]. `--dev` collectors and `footfall-aggregator keygen` both make a pair
//! with [`write_key_pair`], so the files and their permissions are the same either way.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{SealError, SecretKey};

/// The public half in a data dir (FOOTFALL_IP_PUBLIC_KEY of collectors).
pub const PUBLIC_FILE: &str = "ip-seal.pub";
/// The private half in a data dir (FOOTFALL_IP_PRIVATE_KEY of the aggregator), owner-only.
pub const PRIVATE_FILE: &str = "ip-seal.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(
        "no IP private key: pass --ip-private-key (or FOOTFALL_IP_PRIVATE_KEY), put one in {0}, \
         or make a key pair with `footfall-aggregator keygen` (collectors then need its ip-seal.pub)"
    )]
    MissingPrivateKey(PathBuf),
    #[error("the key in {path} is not usable: {source}")]
    Bad {
        path: PathBuf,
        #[source]
        source: SealError,
    },
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The private key that opens sealed IPs: the file `given` (FOOTFALL_IP_PRIVATE_KEY), else
/// [`PRIVATE_FILE`] in the data dir. Never created here.
pub fn load_private_key(data_dir: &Path, given: Option<&Path>) -> Result<SecretKey, KeyFileError> {
    let path = given.map_or_else(|| data_dir.join(PRIVATE_FILE), Path::to_owned);
    // A file named by option must be there (reading it says why not); the default may be absent.
    if given.is_none() && !path.exists() {
        return Err(KeyFileError::MissingPrivateKey(path));
    }
    SecretKey::from_text(&read(&path)?).map_err(|source| KeyFileError::Bad { path, source })
}

/// Makes a new IP-sealing key pair in `dir` ([`PRIVATE_FILE`] readable by the owner only).
pub fn write_key_pair(dir: &Path) -> Result<SecretKey, KeyFileError> {
    let secret = SecretKey::generate();
    create(&dir.join(PRIVATE_FILE), &secret.to_text(), 0o600)?;
    create(
        &dir.join(PUBLIC_FILE),
        &secret.public_key().to_text(),
        0o644,
    )?;
    Ok(secret)
}

/// The text of a key file.
pub fn read(path: &Path) -> Result<String, KeyFileError> {
    fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Writes a key file that must not exist yet (a key is never overwritten), with `mode`.
pub fn create(path: &Path, text: &str, mode: u32) -> Result<(), KeyFileError> {
    let io = |action| {
        move |source| KeyFileError::Io {
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
        let dir =
            std::env::temp_dir().join(format!("footfall-keys-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_private_key_is_read_from_the_option_or_the_data_dir_and_never_made() {
        let dir = temp_dir();
        let err = load_private_key(&dir, None).err().unwrap().to_string();
        assert!(
            err.contains("--ip-private-key") && err.contains("keygen"),
            "{err}"
        );
        assert!(!dir.join(PRIVATE_FILE).exists());
        let pair = write_key_pair(&dir).unwrap();
        let public = pair.public_key().to_text();
        assert_eq!(
            load_private_key(&dir, None).unwrap().public_key().to_text(),
            public
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(PRIVATE_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = temp_dir();
        let given = dir.join(PRIVATE_FILE);
        assert_eq!(
            load_private_key(&other, Some(&given))
                .unwrap()
                .public_key()
                .to_text(),
            public
        );
        fs::write(other.join("bad.key"), "garbage").unwrap();
        assert!(load_private_key(&other, Some(&other.join("bad.key"))).is_err());
        assert!(write_key_pair(&dir).is_err(), "never overwritten");
        fs::remove_dir_all(dir).unwrap();
        fs::remove_dir_all(other).unwrap();
    }
}
