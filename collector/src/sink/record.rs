//! The bytes of one event in the spool: the only place that knows how an event is written into
//! a frame, so that changing the record format touches this file alone.
//!
//! An event is spooled as the RowBinary row its insert will send ([`row_binary`]): a batch is
//! read back as the insert's body, with nothing decoded or encoded again (one serialisation
//! per hit; postcard records cost a decode and a second encode per event at insert time).

use footfall_store::event::Event;
use footfall_store::row_binary;

/// Appends the record of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    row_binary::encode(event, out);
}
