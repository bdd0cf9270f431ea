//! Reused buffers for the bodies of inserts.
//!
//! Each `Native` block of an insert (about 1 MiB) is written into a buffer that goes to the
//! HTTP client as `Bytes`, which drops it once sent. With a fresh buffer per block, every block
//! faulted its pages in anew: the image runs mimalloc with `MIMALLOC_PURGE_DELAY=0`, which gives
//! freed memory back to the OS at once, so the inserter took a page fault for about every 3 KiB
//! it sent, more than one every six rows (see BENCHMARKS.md, "Page faults"). A sent buffer comes
//! back here instead and the next block is written into it; at most [`SPARE`] wait, so what is
//! kept is bounded by a couple of blocks. A static rather than a field: like an allocator's
//! cache, it only changes where memory comes from, and every insert, the quarantine's replays
//! included, shares it.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for the next blocks: the one the client is sending and the one being written.
const SPARE: usize = 2;

static SPARES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer, with the room of one sent before if there is one.
pub(super) fn buffer() -> Vec<u8> {
    SPARES
        .lock()
        .ok()
        .and_then(|mut spares| spares.pop())
        .unwrap_or_default()
}

/// `buf` as a body to send; it returns to the spares once the client has dropped it.
pub(super) fn send(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Returned(buf))
}

struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        if let Ok(mut spares) = SPARES.lock()
            && spares.len() < SPARE
        {
            spares.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_body_is_written_into_again_and_only_a_few_are_kept() {
        let bodies: Vec<Bytes> = (0..SPARE + 2)
            .map(|i| {
                let mut buf = buffer();
                buf.extend_from_slice(&vec![i as u8; 4096]);
                send(buf)
            })
            .collect();
        let sent: Vec<*const u8> = bodies.iter().map(|body| body.as_ptr()).collect();
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(
                body[..],
                vec![i as u8; 4096][..],
                "a body is what was written"
            );
        }
        drop(bodies);
        let again: Vec<Vec<u8>> = (0..SPARE + 1).map(|_| buffer()).collect();
        for buf in &again[..SPARE] {
            assert!(buf.is_empty(), "a spare comes back empty");
            assert!(buf.capacity() >= 4096, "a spare keeps its room");
            assert!(
                sent.contains(&buf.as_ptr()),
                "a spare is a sent body's buffer"
            );
        }
        assert_eq!(again[SPARE].capacity(), 0, "no more than {SPARE} are kept");
    }
}
