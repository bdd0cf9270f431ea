//! From an HTTP request to a hit: the pure parsing of everything a tracking request carries.
//!
//! Nothing here does I/O or reads the clock; the handlers in [`crate::routes`] call these
//! functions and turn the result into an [`footfall_store::event::Event`].

pub mod beacon;
mod bytes;
pub mod client_ip;
pub mod customer;
pub mod email;
pub mod mask;
pub mod page;
pub mod privacy;
pub mod props;
pub mod query;
pub mod visitor;
