//! `keygen`: a new IP-sealing key pair in the data dir.
//!
//! The collector gets the public half (`ip-seal.pub`, FOOTFALL_IP_PUBLIC_KEY) and can only seal;
//! the private half (`ip-seal.key`, owner-only) stays with whoever answers subject access
//! requests. An existing pair is never overwritten: every IP sealed to it would become
//! unreadable.

use std::path::{Path, PathBuf};

use footfall_seal::key_file::{self, KeyFileError, PRIVATE_FILE, PUBLIC_FILE};

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error(
        "{0} already exists; a new key pair would make every IP sealed to the old one unreadable. \
         Move the old pair away first if that is what you want"
    )]
    Exists(PathBuf),
    #[error(transparent)]
    Key(#[from] KeyFileError),
}

/// What `keygen` wrote.
pub struct KeyPair {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub public_key: String,
}

/// Writes a new key pair into `dir`.
pub fn run(dir: &Path) -> Result<KeyPair, KeygenError> {
    let (private_path, public_path) = (dir.join(PRIVATE_FILE), dir.join(PUBLIC_FILE));
    if let Some(existing) = [&private_path, &public_path]
        .into_iter()
        .find(|p| p.exists())
    {
        return Err(KeygenError::Exists(existing.clone()));
    }
    let public_key = key_file::write_key_pair(dir)?.public_key().to_text();
    Ok(KeyPair {
        private_path,
        public_path,
        public_key,
    })
}

#[cfg(test)]
mod tests {
    use footfall_seal::{PublicKey, SecretKey};

    use super::*;

    #[test]
    fn writes_a_matching_pair_once() {
        let dir = tempfile::tempdir().unwrap();
        let pair = run(dir.path()).unwrap();
        let private =
            SecretKey::from_text(&std::fs::read_to_string(&pair.private_path).unwrap()).unwrap();
        let public =
            PublicKey::from_text(&std::fs::read_to_string(&pair.public_path).unwrap()).unwrap();
        assert_eq!(private.public_key().to_text(), public.to_text());
        assert_eq!(pair.public_key, public.to_text());
        let err = run(dir.path()).err().unwrap().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&pair.public_path).unwrap().trim(),
            public.to_text(),
            "not overwritten"
        );
    }
}
