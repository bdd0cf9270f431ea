//! From events to ClickHouse: queue → batch → insert, with retry.
//!
//! Request handlers only ever call [`Queue::push`], which never waits: the event goes into a
//! bounded lock-free queue or, when that is full, is refused at once (the caller counts it).
//! One [`writer`] task drains the queue into [`batch::Batch`]es of up to N rows or one flush
//! interval, and [`insert`]s each into ClickHouse, retrying with [`backoff::Backoff`] until it
//! is stored. Encoding, batching, retry and I/O are separate pieces so each can be tested alone.
//!
//! The writer polls the queue every few milliseconds instead of being woken per event: a wake-up
//! per hit (a futex call when the writer's thread sleeps) cost more than the rest of the pixel
//! path together. Past half capacity a push wakes the writer early.

pub mod backoff;
pub mod batch;
pub mod insert;
pub mod writer;

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use tokio::sync::Notify;

use crate::event::Event;

/// The request handlers' side of the writer's queue. Cloning shares the queue.
#[derive(Clone)]
pub struct Queue {
    events: Arc<ArrayQueue<Box<Event>>>,
    wake: Arc<Notify>,
}

impl Queue {
    /// A queue holding up to `capacity` events (boxed, so an empty queue costs 8 bytes a slot).
    pub fn bounded(capacity: usize) -> Self {
        Self {
            events: Arc::new(ArrayQueue::new(capacity.max(1))),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Hands `event` to the writer without waiting. Gives it back when the queue is full.
    pub fn push(&self, event: Event) -> Result<(), Box<Event>> {
        self.events.push(Box::new(event))?;
        if self.events.len() * 2 > self.events.capacity() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Takes the oldest waiting event.
    pub fn pop(&self) -> Option<Box<Event>> {
        self.events.pop()
    }

    /// Resolves when a push finds the queue more than half full.
    pub async fn filling(&self) {
        self.wake.notified().await;
    }

    /// Events waiting for the writer.
    pub fn depth(&self) -> usize {
        self.events.len()
    }

    pub fn capacity(&self) -> usize {
        self.events.capacity()
    }
}
