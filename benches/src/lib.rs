//! Footfall's benchmark harness.
//!
//! - `benches/`: criterion suites for the collector's hot paths (they share [`fixtures`] and
//!   measure CPU time with [`cpu_time`]);
//! - `footfall-loadgen` (`src/bin/`): drives a running collector over loopback HTTP/1.1 with
//!   realistic traffic ([`traffic`]), closed or open loop ([`drive`]), then checks in ClickHouse
//!   that every acknowledged hit was stored ([`verify`]) and reports ([`report`]). Its options
//!   are in [`args`]; [`http`] is its lean client.
//! - `compare.sh`: the collector and nginx side by side on one core each;
//! - `reports.sh`: the aggregator's exports over generated events (see BENCHMARKS.md).

pub mod args;
pub mod cpu_time;
pub mod drive;
pub mod fixtures;
pub mod http;
pub mod report;
pub mod traffic;
pub mod ua_corpus;
pub mod ua_labels;
pub mod verify;
