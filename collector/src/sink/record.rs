//! The bytes of one event in the spool: the only place that knows how an event is written into
//! a frame, so that changing the record format touches this file alone.
//!
//! An event is spooled as the RowBinary row its insert will send ([`row_binary`]): a batch is
//! read back as the insert's body, with nothing decoded or encoded again (one serialisation
//! per hit; postcard records cost a decode and a second encode per event at insert time).
//!
//! The request handler writes the row ([`Row::of`]) and queues it, not the event: a pixel hit's
//! row takes 300–450 bytes, its boxed event about 900 (every text column is a 24-byte inline
//! string), so 50,000 events queued behind a stalled disk took 45 MiB, and the queue can be
//! bounded by what it holds, in bytes (BENCHMARKS.md, A stalled disk). The encoding costs the
//! request thread what it cost the appender, which shares its core under load.

use std::cell::RefCell;

use footfall_store::event::Event;
use footfall_store::row_binary;

/// Appends the record of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    row_binary::encode(event, out);
}

/// One event's record, allocated at its exact size: a 325-byte row takes a 384-byte block, not
/// the 512 of a buffer sized for the usual row.
pub struct Row(Box<[u8]>);

thread_local! {
    /// Where rows are written before they are copied out: its room stays, so writing never
    /// grows a buffer, and the copy (a few hundred bytes) costs less than measuring the row
    /// first to allocate it at its size.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

impl Row {
    pub fn of(event: &Event) -> Self {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            row_binary::encode(event, scratch);
            Self(Box::from(&scratch[..]))
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}
