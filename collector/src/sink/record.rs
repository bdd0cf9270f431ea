//! The bytes of one event in the spool: the only place that knows how an event is written into
//! a frame and read back, so that changing the record format touches this file alone.
//!
//! postcard: compact (varints, no field names) and serde-derived, so no hand-written codec.

use footfall_store::event::Event;

/// A spooled event record that does not decode: damaged in a way its checksum missed, or
/// written by an incompatible version.
#[derive(Debug, thiserror::Error)]
#[error("undecodable event record: {0}")]
pub struct DecodeError(postcard::Error);

/// Appends the record of `event` to `out`.
pub fn encode(event: &Event, out: Vec<u8>) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_extend(event, out)
}

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    postcard::from_bytes(bytes).map_err(DecodeError)
}
