//! Client IP → country, region and city from a MaxMind DB (GeoIP2/GeoLite2 City or Country).
//!
//! The database is read whole into memory and looked up before the IP is sealed. Providers
//! publish new editions every week or so: [`GeoIp::watch`] checks the file's modification time
//! and size every few seconds and swaps in a new edition (`arc-swap`, so lookups never wait)
//! without a restart. A file that cannot be read at start is an error then; a broken new
//! edition is logged and the old one kept.
//!
//! Decoding a GeoLite2 City record is most of a lookup's cost (names in eight languages,
//! continent, location... to be skipped over), and many networks share one record. Each edition
//! therefore keeps a bounded cache of decoded places keyed by the record's offset in the file,
//! the cache key `maxminddb` offers for this; a site's visitors come from a few thousand places
//! at most, so nearly every lookup is a tree walk and a cache hit.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use compact_str::CompactString;
use maxminddb::{MaxMindDbError, Reader, geoip2};
use quick_cache::sync::Cache;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// Where a client IP is, as far as the database knows; fields are empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166-1 alpha-2 code, like `DE`.
    pub country: CompactString,
    /// The largest subdivision (state, province), by its English name.
    pub region: CompactString,
    /// The city, by its English name.
    pub city: CompactString,
}

#[derive(Debug, thiserror::Error)]
pub enum GeoIpError {
    #[error("cannot read the GeoIP database {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: MaxMindDbError,
    },
    #[error(
        "{path} is a '{kind}' database; FOOTFALL_GEOIP_DB needs a GeoIP2/GeoLite2 City or Country database"
    )]
    WrongKind { path: PathBuf, kind: String },
}

/// What identifies one edition of the file on disk.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Distinct records whose places are kept decoded, per edition.
const PLACE_CACHE_CAPACITY: usize = 10_000;

/// A GeoIP database that follows its file.
pub struct GeoIp {
    path: PathBuf,
    edition: ArcSwap<Edition>,
    /// The edition last tried, loaded or not, so a broken file is reported once.
    tried: Mutex<Stamp>,
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<Self, GeoIpError> {
        let tried = stamp(path);
        let reader = read(path)?;
        Ok(Self {
            path: path.to_owned(),
            edition: ArcSwap::from_pointee(Edition::new(reader)),
            tried: Mutex::new(tried),
        })
    }

    /// The place of `ip`; empty for addresses the database does not cover (private ranges,
    /// loopback) and for records it cannot decode.
    pub fn lookup(&self, ip: IpAddr) -> Place {
        let edition = self.edition.load();
        let Ok(found) = edition.reader.lookup(ip) else {
            return Place::default();
        };
        let Some(offset) = found.offset() else {
            return Place::default();
        };
        if let Some(place) = edition.places.get(&offset) {
            return place;
        }
        let place = match found.decode::<geoip2::City>() {
            Ok(Some(record)) => place_of(&record),
            _ => Place::default(),
        };
        edition.places.insert(offset, place.clone());
        place
    }

    /// Loads the file again if it changed since it was last tried. Returns whether a new edition
    /// is now in use; on error the previous one stays.
    pub fn reload_if_changed(&self) -> Result<bool, GeoIpError> {
        let now = stamp(&self.path);
        {
            let mut tried = self
                .tried
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if *tried == now {
                return Ok(false);
            }
            *tried = now;
        }
        self.edition
            .store(Arc::new(Edition::new(read(&self.path)?)));
        Ok(true)
    }

    /// Checks the file every `every` until `stop` turns true, counting reloads in `metrics`.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            // Reading a large database takes a moment: keep it off the request threads.
            let geoip = self.clone();
            match tokio::task::spawn_blocking(move || geoip.reload_if_changed()).await {
                Ok(Ok(true)) => {
                    metrics.geoip_reloads.inc();
                    tracing::info!(path = %self.path.display(), "GeoIP database reloaded");
                }
                Ok(Ok(false)) => {}
                Ok(Err(error)) => {
                    metrics.geoip_reload_failures.inc();
                    tracing::warn!(%error, "GeoIP database not reloaded; keeping the previous one");
                }
                Err(error) => tracing::warn!(%error, "GeoIP reload task failed"),
            }
        }
    }
}

/// One edition of the database with the places decoded from it so far.
struct Edition {
    reader: Reader<Vec<u8>>,
    places: Cache<usize, Place>,
}

impl Edition {
    fn new(reader: Reader<Vec<u8>>) -> Self {
        Self {
            reader,
            places: Cache::new(PLACE_CACHE_CAPACITY),
        }
    }
}

fn place_of(record: &geoip2::City<'_>) -> Place {
    let name = |names: &geoip2::Names| CompactString::new(names.english.unwrap_or_default());
    Place {
        country: CompactString::new(record.country.iso_code.unwrap_or_default()),
        region: record
            .subdivisions
            .first()
            .map(|s| name(&s.names))
            .unwrap_or_default(),
        city: name(&record.city.names),
    }
}

fn read(path: &Path) -> Result<Reader<Vec<u8>>, GeoIpError> {
    let reader = Reader::open_readfile(path).map_err(|source| GeoIpError::Read {
        path: path.to_owned(),
        source,
    })?;
    let kind = &reader.metadata().database_type;
    if !(kind.contains("City") || kind.contains("Country") || kind.contains("Enterprise")) {
        return Err(GeoIpError::WrongKind {
            path: path.to_owned(),
            kind: kind.clone(),
        });
    }
    Ok(reader)
}
