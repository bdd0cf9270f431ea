//! Footfall's storage: everything the collector and the aggregator share about ClickHouse.
//!
//! One crate owns it, so that a table, a column or a rule has one definition and the
//! aggregator does not depend on the collector (nor on its HTTP, GeoIP and user-agent stacks):
//!
//! - [`schema`] is the whole schema as one versioned list, applied by [`migrations`], which
//!   fills the rollups for events stored before them;
//! - [`retention`] lists every table holding personal data and sets its TTL;
//! - [`event`] and [`ip_key`] are the rows the collector writes and the aggregator reads, and
//!   [`row_binary`] the collector's encoding of events, the form they are spooled in, and
//!   [`native`] the columns an insert sends them as;
//!   [`id`] the visitor and page-view ids in them, [`site`] which site names are accepted;
//! - [`rollup`] and [`rules`] are the SQL that turns events into reports: the traffic rollups,
//!   and what a visit and time on page are; [`rollup_keys`] the monthly keys of the rollups'
//!   hashes;
//! - [`erasure`] records erasures for the collectors, so hits still in a spool are dropped;
//! - [`config`] holds the ClickHouse options both programs take, and [`cluster`] how the schema
//!   is laid out over a cluster's shards.

mod backfill;
pub mod cluster;
pub mod config;
pub mod erasure;
pub mod event;
pub mod id;
pub mod ip_key;
pub mod migrations;
pub mod native;
pub mod retention;
#[macro_use]
pub mod rollup;
pub mod rollup_keys;
pub mod row_binary;
pub mod rules;
pub mod schema;
pub mod site;
#[cfg(feature = "testing")]
pub mod testing;
