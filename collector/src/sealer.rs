//! Sealing client IPs on the hot path, one data key per epoch.
//!
//! The [`Sealer`] holds the current [`EpochKey`] behind an `ArcSwap`, so sealing an IP is a
//! lock-free load plus one AES-256-GCM encryption. The first hit after an epoch ends makes
//! the next key (one X25519 operation a minute) and drops the old one, which zeroes it: from then
//! on the collector can no longer read IPs it sealed before.
//!
//! Every new key's sealed copy is queued as a [`KeyRow`] for the sink, which spools it with the
//! batch of the first events sealed under it and stores it in `ip_keys` before those events.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use footfall_seal::{EpochKey, PublicKey, SEALED_IP_LEN};
use footfall_store::ip_key::KeyRow;

struct Epoch {
    key: EpochKey,
    ends_at_ms: i64,
}

pub struct Sealer {
    public_key: PublicKey,
    epoch_ms: i64,
    current: ArcSwap<Epoch>,
    rotating: Mutex<()>,
    unsaved: Mutex<Vec<KeyRow>>,
}

impl Sealer {
    /// A sealer whose keys last `epoch_ms` milliseconds, aligned to multiples of it.
    pub fn new(public_key: PublicKey, epoch_ms: i64, now_ms: i64) -> Self {
        let unsaved = Mutex::new(Vec::new());
        let first = Self::make_epoch(&public_key, epoch_ms, now_ms, &unsaved);
        Self {
            public_key,
            epoch_ms,
            current: ArcSwap::from_pointee(first),
            rotating: Mutex::new(()),
            unsaved,
        }
    }

    /// Seals `ip` under the key of the epoch `now_ms` falls in.
    pub fn seal(&self, ip: IpAddr, now_ms: i64) -> (u64, [u8; SEALED_IP_LEN]) {
        let mut epoch = self.current.load();
        if now_ms >= epoch.ends_at_ms {
            let _guard = self.rotating.lock().unwrap_or_else(|e| e.into_inner());
            epoch = self.current.load();
            if now_ms >= epoch.ends_at_ms {
                let next = Self::make_epoch(&self.public_key, self.epoch_ms, now_ms, &self.unsaved);
                self.current.store(Arc::new(next));
                epoch = self.current.load();
            }
        }
        (epoch.key.id(), epoch.key.seal_ip(ip))
    }

    /// The keys made since the last call, for the sink to store before the events that use them.
    pub fn take_unsaved(&self) -> Vec<KeyRow> {
        std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn make_epoch(
        public_key: &PublicKey,
        epoch_ms: i64,
        now_ms: i64,
        unsaved: &Mutex<Vec<KeyRow>>,
    ) -> Epoch {
        let key = EpochKey::generate(public_key);
        unsaved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(KeyRow {
                key_id: key.id(),
                created: u32::try_from(now_ms.div_euclid(1000)).unwrap_or(u32::MAX),
                sealed_key: key.sealed_key().to_vec(),
            });
        Epoch {
            key,
            ends_at_ms: (now_ms.div_euclid(epoch_ms) + 1) * epoch_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_seal::SecretKey;

    #[test]
    fn one_key_per_epoch_and_each_key_is_queued_once() {
        let secret = SecretKey::generate();
        let sealer = Sealer::new(secret.public_key(), 60_000, 120_000);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let (a, _) = sealer.seal(ip, 120_001);
        let (b, _) = sealer.seal(ip, 179_999);
        let (c, sealed) = sealer.seal(ip, 180_000);
        assert_eq!(a, b, "same epoch, same key");
        assert_ne!(b, c, "a new minute, a new key");
        let rows = sealer.take_unsaved();
        assert_eq!(
            rows.iter().map(|r| r.key_id).collect::<Vec<_>>(),
            vec![a, c]
        );
        assert_eq!(rows[1].created, 180);
        assert!(sealer.take_unsaved().is_empty());
        let opened = secret.open_epoch_key(&rows[1].sealed_key).unwrap();
        assert_eq!(opened.open_ip(&sealed).unwrap(), ip);
    }
}
