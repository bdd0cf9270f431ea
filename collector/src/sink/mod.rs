//! From events to ClickHouse: queue → batch → insert, with retry.
//!
//! Request handlers only ever call [`Queue::push`], which never waits: the event goes into a
//! bounded in-memory channel or, when that is full, is refused at once (the caller counts it).
//! One [`writer`] task drains the channel into [`batch::Batch`]es of up to N rows or one flush
//! interval, and [`insert`]s each into ClickHouse, retrying with [`backoff::Backoff`] until it
//! is stored. Encoding, batching, retry and I/O are separate pieces so each can be tested alone
//! and a disk spool can slot in between retry and I/O.

pub mod backoff;
pub mod batch;
pub mod insert;
pub mod writer;

use tokio::sync::mpsc;

use crate::event::Event;

/// The sending side of the writer's channel, held by the request handlers.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Event>,
}

impl Queue {
    /// A queue of `capacity` events and the receiver the writer drains.
    pub fn bounded(capacity: usize) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    /// Hands `event` to the writer without waiting. Gives it back when the queue is full or the
    /// writer has stopped.
    pub fn push(&self, event: Event) -> Result<(), Event> {
        self.tx.try_send(event).map_err(|e| match e {
            mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
        })
    }

    /// Events waiting for the writer.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}
