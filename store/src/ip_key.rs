//! One row of `ip_keys`: an epoch's data key, sealed to the IP public key.
//!
//! The collector writes one for every epoch before the events sealed under it; a subject
//! export reads it back to open those events' IPs with the private key.

use serde::{Deserialize, Serialize};

#[derive(Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct KeyRow {
    pub key_id: u64,
    /// Seconds since the Unix epoch (`DateTime('UTC')`).
    pub created: u32,
    #[serde(with = "serde_bytes")]
    pub sealed_key: Vec<u8>,
}
