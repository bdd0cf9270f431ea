//! The bytes of one event in the spool: the only place that knows how an event is written into
//! a frame, so that changing the record format touches this file alone.
//!
//! An event is spooled as the RowBinary row its insert will send ([`row_binary`]): a batch is
//! read back as the insert's body, with nothing decoded or encoded again (one serialisation
//! per hit; postcard records cost a decode and a second encode per event at insert time).
//!
//! The request handler writes the row ([`Row::of`]) and queues it, not the event: a row takes
//! about 450 bytes, its event about 900 (every text column is a 24-byte inline string), so an
//! event queue held up behind a stalled disk took 45 MiB at 50,000 events, and the queue can
//! be bounded by what it holds, in bytes (BENCHMARKS.md, A stalled disk). The encoding costs the
//! request thread what it cost the appender, which ran on the same core under load.

use footfall_store::event::Event;
use footfall_store::row_binary;

/// Appends the record of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    row_binary::encode(event, out);
}

/// One event's record, allocated once at its exact size.
pub struct Row(Box<[u8]>);

impl Row {
    pub fn of(event: &Event) -> Self {
        let mut bytes = Vec::with_capacity(row_binary::encoded_len(event));
        row_binary::encode(event, &mut bytes);
        Self(bytes.into_boxed_slice())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}
