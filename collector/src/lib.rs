//! Footfall's collector.
//!
//! A tracking hit travels one path, and the modules follow it:
//!
//! 1. [`server`] accepts the HTTP request and hands it to [`routes`];
//! 2. [`routes`] parses it with [`hit`] (query or beacon body, page URL, client IP, visitor
//!    cookie) into an [`footfall_store::event::Event`], adds what the IP and user agent tell
//!    with [`enrich`],
//!    and seals the client IP with [`sealer`];
//! 3. the event goes into the [`sink`]'s bounded queue and the client gets its answer at once;
//! 4. the sink's writer spools each event as the RowBinary row its insert sends
//!    ([`footfall_store::row_binary`]), then inserts them into ClickHouse in batches; the
//!    schema is `footfall-store`'s (the collector applies it, rollups included, on start).
//!
//! [`config`] and [`keys`] say how it is set up; [`metrics`] what it is doing, served by
//! [`metrics_server`] on an address of its own. Before anything is
//! recorded, [`hit::privacy`] decides whether the visitor lets it be (opt-out, DNT, GPC,
//! consent); [`signing`] makes email-open tokens and customer links unforgeable;
//! [`rate_limit`] optionally caps the hits one client may have recorded. [`tracker`] is the
//! script pages embed, and [`cors`] says which pages may send its beacons.

pub mod config;
pub mod cors;
pub mod enrich;
pub mod hit;
pub mod keys;
pub mod metrics;
pub mod metrics_server;
pub mod rate_limit;
pub mod response;
pub mod routes;
pub mod sealer;
pub mod server;
pub mod signing;
pub mod sink;
pub mod tracker;
