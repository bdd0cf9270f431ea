//! The event: one row of `footfall.events`, as the collector writes it to ClickHouse and the
//! aggregator's tests insert it.
//!
//! The collector's handlers build an [`Event`] from a parsed hit; the sink spools it as the
//! RowBinary row its insert sends ([`crate::row_binary`], which ClickHouse checks against the
//! table by column name and type). The client IP appears only sealed (`ip_key_id` +
//! `ip_sealed`) and as its anonymised network (`ip_prefix`).
//!
//! Text columns are [`CompactString`]s: most values (ids, hosts, paths, UTM tags, browser, OS,
//! network prefix) fit in its 24 inline bytes, so an event costs a few heap allocations instead
//! of one per column. On the request path those allocations (and freeing them on the writer's
//! thread) were a quarter of a pixel hit's cost.
//!
//! `Event` deliberately has no `Debug`: it holds visitor and customer ids, which must not reach
//! logs.

use compact_str::CompactString;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// What a row records.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    #[default]
    Pageview,
    Engagement,
    EmailOpen,
    /// A custom event (`event_name`, `props`): the tracker's `footfall()`, tagged elements,
    /// outbound links, downloads, 404s, or the pixel's `event=`.
    Custom,
    /// The customer signed out in this browser (the tracker's `footfall('signout')`): the
    /// browser's later unlinked events are nobody's until the next signed customer link. No
    /// report reads it; subject requests do.
    Signout,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Pageview,
        Kind::Engagement,
        Kind::EmailOpen,
        Kind::Custom,
        Kind::Signout,
    ];

    #[inline]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pageview => "pageview",
            Kind::Engagement => "engagement",
            Kind::EmailOpen => "email_open",
            Kind::Custom => "custom",
            Kind::Signout => "signout",
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <&str>::deserialize(d)?;
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                de::Error::unknown_variant(
                    name,
                    &["pageview", "engagement", "email_open", "custom", "signout"],
                )
            })
    }
}

/// A client IP sealed by the collector ([`footfall_seal::EpochKey::seal_ip`]), stored as a
/// ClickHouse `String`; empty when the hit must not identify anyone.
#[derive(Clone, Default)]
pub struct SealedIp(pub Option<[u8; footfall_seal::SEALED_IP_LEN]>);

impl Serialize for SealedIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0.as_ref().map_or(&[][..], |b| &b[..]))
    }
}

impl<'de> Deserialize<'de> for SealedIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl Visitor<'_> for Bytes {
            type Value = SealedIp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "0 or {} bytes", footfall_seal::SEALED_IP_LEN)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<SealedIp, E> {
                match v.len() {
                    0 => Ok(SealedIp(None)),
                    _ => v
                        .try_into()
                        .map(|b| SealedIp(Some(b)))
                        .map_err(|_| E::invalid_length(v.len(), &self)),
                }
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// Fields match the columns by name. The `clickhouse` crate's derive (`Row`, `Serialize`) lets
/// tests and tools insert events through its typed insert, the reference the collector's own
/// encoder is tested against; `Deserialize` reads events spooled before rows were.
#[derive(Clone, Default, clickhouse::Row, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// Milliseconds since the Unix epoch (`DateTime64(3, 'UTC')`).
    pub ts: i64,
    pub site: CompactString,
    pub kind: Kind,
    pub visitor_id: CompactString,
    pub pageview_id: CompactString,
    pub customer_id: CompactString,
    pub url: CompactString,
    pub host: CompactString,
    pub path: CompactString,
    pub title: CompactString,
    pub referrer: CompactString,
    pub referrer_host: CompactString,
    pub utm_source: CompactString,
    pub utm_medium: CompactString,
    pub utm_campaign: CompactString,
    pub utm_term: CompactString,
    pub utm_content: CompactString,
    pub dwell_ms: u32,
    pub ip_key_id: u64,
    pub ip_sealed: SealedIp,
    pub ip_prefix: CompactString,
    pub country: CompactString,
    pub region: CompactString,
    pub city: CompactString,
    pub browser: CompactString,
    pub os: CompactString,
    pub device: CompactString,
    pub is_bot: bool,
    pub user_agent: CompactString,
    pub campaign: CompactString,
    pub recipient: CompactString,
    /// On `email_open` rows: fetched by a mail provider's image proxy, not the reader's client.
    pub via_proxy: bool,
    /// On `custom` rows: the event's name and its properties (ClickHouse `Map(String, String)`,
    /// bounded by the collector's `hit::props`).
    pub event_name: CompactString,
    pub props: Vec<(CompactString, CompactString)>,
    /// On `engagement` rows: the largest share of the page seen, in percent.
    pub scroll_depth: u8,
    /// Versions of `browser` and `os` (`major` or `major.minor`); families stay in those.
    pub browser_version: CompactString,
    pub os_version: CompactString,
}

impl Event {
    /// A new event of `kind` at `ts` (ms) with a fresh id; the caller fills in the rest.
    #[inline]
    pub fn new(kind: Kind, ts: i64) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            ts,
            kind,
            ..Self::default()
        }
    }
}
