//! Grouping events into batches, one ClickHouse insert each.

use uuid::Uuid;

use crate::event::Event;

/// Events inserted together. The token is sent as `insert_deduplication_token`, so a retried
/// insert that had in fact succeeded is not stored twice.
pub struct Batch {
    pub token: Uuid,
    pub events: Vec<Event>,
}

/// Collects events until a batch is full or the writer's timer asks for it.
pub struct Batcher {
    max_rows: usize,
    events: Vec<Event>,
}

impl Batcher {
    pub fn new(max_rows: usize) -> Self {
        let max_rows = max_rows.max(1);
        Self {
            max_rows,
            events: Vec::with_capacity(max_rows),
        }
    }

    /// Adds `event`; returns the batch when this filled it.
    pub fn push(&mut self, event: Event) -> Option<Batch> {
        self.events.push(event);
        (self.events.len() >= self.max_rows)
            .then(|| self.take())
            .flatten()
    }

    /// Whatever has been collected, if anything.
    pub fn take(&mut self) -> Option<Batch> {
        if self.events.is_empty() {
            return None;
        }
        let events = std::mem::replace(&mut self.events, Vec::with_capacity(self.max_rows));
        Some(Batch {
            token: Uuid::new_v4(),
            events,
        })
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    #[test]
    fn full_batches_come_out_at_max_rows_with_fresh_tokens() {
        let mut b = Batcher::new(3);
        assert!(b.push(Event::new(Kind::Pageview, 1)).is_none());
        assert!(b.push(Event::new(Kind::Pageview, 2)).is_none());
        let first = b
            .push(Event::new(Kind::Pageview, 3))
            .expect("third event fills the batch");
        assert_eq!(
            first.events.iter().map(|e| e.ts).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(b.is_empty());
        b.push(Event::new(Kind::Pageview, 4));
        let rest = b.take().unwrap();
        assert_eq!(rest.events.len(), 1);
        assert_ne!(rest.token, first.token);
        assert!(b.take().is_none());
    }
}
