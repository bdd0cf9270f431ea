//! What hyper is doing with a connection, seen from outside: hyper does not say when an HTTP/1
//! connection is idle, and [`super::connection`] may only take the socket back then.
//!
//! A connection is idle (nothing owed, nothing half read) once hyper has taken the last answer's
//! body in full, flushed everything it wrote, and then asked the socket for the next request and
//! found nothing. [`Watched`] (the socket) and [`Counted`] (an answer's body) record those
//! moments in an [`Activity`]. hyper 1 reads the socket while it answers (to see the client
//! close, or for the body) only when its own buffer is empty, and once a read found nothing it
//! does not read again until the socket is readable: so a read that found nothing after the
//! request's last bytes is a look for the next request, made early. hyper asks the socket only
//! after parsing what it already holds, so a pipelined request read together with the previous
//! one is taken (a new request: busy) before that ask; what it holds of a request not yet
//! complete comes back from `Connection::into_parts` to be replayed. The activity also keeps
//! when the last answer was taken, from which the header timeout runs ([`super::connection`]).
//! Atomics only because hyper wants its socket and service `Send`: one task uses them, so
//! relaxed loads and stores do.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A request is being answered.
const BUSY: u8 = 0;
/// The last answer was taken; hyper has not looked for the next request since.
const ANSWERED: u8 = 1;
/// After the last answer, hyper looked for the next request and found nothing.
const WAITING: u8 = 2;
/// After the last answer, bytes (or the end, or an error) came: hyper is busy with them.
const READ: u8 = 3;
/// A request is being answered, and hyper's last read found the socket empty (so it holds
/// nothing of it): a look for the next request, made early.
const BUSY_LOOKED: u8 = 4;

/// One hyper connection's progress, shared by its socket, its service and its answers.
#[derive(Debug)]
pub(super) struct Activity {
    phase: AtomicU8,
    /// hyper's last write has not been flushed yet.
    unflushed: AtomicBool,
    /// Requests handed to the service so far.
    requests: AtomicU32,
    /// When hyper took over the connection.
    born: Instant,
    /// When the last answer was taken, in nanoseconds after `born` (0: none yet).
    answered_at: AtomicU64,
}

impl Activity {
    /// A fresh hyper connection, which owes nothing.
    pub(super) fn new() -> Self {
        Self {
            phase: AtomicU8::new(ANSWERED),
            unflushed: AtomicBool::new(false),
            requests: AtomicU32::new(0),
            born: Instant::now(),
            answered_at: AtomicU64::new(0),
        }
    }

    /// hyper handed a request to the service.
    pub(super) fn request(&self) {
        self.phase.store(BUSY, Relaxed);
        self.requests
            .store(self.requests.load(Relaxed).wrapping_add(1), Relaxed);
    }

    /// Requests handed to the service so far (wrapping): one more means the connection was busy.
    pub(super) fn requests(&self) -> u32 {
        self.requests.load(Relaxed)
    }

    /// Whether hyper holds nothing but an empty connection: dropping it loses nothing.
    pub(super) fn idle(&self) -> bool {
        self.phase.load(Relaxed) == WAITING && !self.unflushed.load(Relaxed)
    }

    /// A request is being answered: no request head is outstanding.
    pub(super) fn answering(&self) -> bool {
        matches!(self.phase.load(Relaxed), BUSY | BUSY_LOOKED)
    }

    /// When the connection last owed nothing: its last answer was taken, or hyper took it over.
    pub(super) fn owed_nothing_since(&self) -> Instant {
        self.born + Duration::from_nanos(self.answered_at.load(Relaxed))
    }

    fn answered(&self) {
        let looked = self.phase.load(Relaxed) == BUSY_LOOKED;
        let next = if looked { WAITING } else { ANSWERED };
        self.phase.store(next, Relaxed);
        let after = self.born.elapsed().as_nanos();
        self.answered_at
            .store(u64::try_from(after).unwrap_or(u64::MAX), Relaxed);
    }

    fn read(&self, found: bool) {
        let phase = self.phase.load(Relaxed);
        match (phase, found) {
            (BUSY, false) => self.phase.store(BUSY_LOOKED, Relaxed),
            (BUSY_LOOKED, true) => self.phase.store(BUSY, Relaxed),
            (ANSWERED, false) => self.phase.store(WAITING, Relaxed),
            (ANSWERED | WAITING, true) => self.phase.store(READ, Relaxed),
            _ => {}
        }
    }
}

/// The client's socket as hyper sees it: bytes to replay first, then the stream, watched.
#[derive(Debug)]
pub(super) struct Watched {
    stream: TcpStream,
    replay: Bytes,
    activity: Arc<Activity>,
}

impl Watched {
    /// `stream`, read after `replay` (bytes already taken from it).
    pub(super) fn new(stream: TcpStream, replay: Bytes, activity: Arc<Activity>) -> Self {
        Self {
            stream,
            replay,
            activity,
        }
    }

    /// The stream back, once the connection is [idle](Activity::idle): that takes a read that
    /// found the socket empty, so the replay was all read by then.
    pub(super) fn into_stream(self) -> TcpStream {
        debug_assert!(self.replay.is_empty(), "released with bytes to replay");
        self.stream
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            this.activity.read(true);
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        // Bytes, the end or an error: hyper has something to act on.
        this.activity.read(polled.is_ready());
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.activity.unflushed.store(true, Relaxed);
        Pin::new(&mut this.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes the socket only once its own write buffer is empty.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            this.activity.unflushed.store(false, Relaxed);
        }
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// An answer's body, which tells its connection's [`Activity`] when hyper is done with it.
///
/// hyper drops a body once it has buffered all of it (or gave up on it): from then on the
/// answer costs only what is left to flush.
pub(super) struct Counted<B> {
    body: B,
    activity: Arc<Activity>,
}

impl<B> Counted<B> {
    pub(super) fn new(body: B, activity: Arc<Activity>) -> Self {
        Self { body, activity }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        self.activity.answered();
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(activity: &Arc<Activity>) {
        activity.request();
        drop(Counted::new((), activity.clone()));
    }

    #[test]
    fn idle_only_once_hyper_looked_for_more_after_the_last_bytes_and_flushed() {
        let activity = Arc::new(Activity::new());
        activity.read(true);
        activity.request();
        activity.read(false);
        assert!(!activity.idle(), "waiting for the body while answering");
        activity.read(true);
        drop(Counted::new((), activity.clone()));
        assert!(
            !activity.idle(),
            "answered, but hyper has not looked since the body"
        );
        activity.read(false);
        assert!(activity.idle());
        activity.unflushed.store(true, Relaxed);
        assert!(!activity.idle(), "the answer is not flushed yet");
    }

    #[test]
    fn a_look_that_found_nothing_while_answering_counts() {
        let activity = Arc::new(Activity::new());
        activity.read(true);
        activity.request();
        activity.read(false);
        let before = activity.owed_nothing_since();
        drop(Counted::new((), activity.clone()));
        assert!(
            activity.idle(),
            "hyper reads again only once the socket is readable"
        );
        assert!(
            activity.owed_nothing_since() > before,
            "the answer's time is kept"
        );
        activity.request();
        assert!(!activity.idle(), "a new request forgets the look");
        drop(Counted::new((), activity.clone()));
        assert!(!activity.idle());
    }

    #[test]
    fn bytes_after_the_answer_keep_the_connection_busy() {
        let activity = Arc::new(Activity::new());
        answer(&activity);
        activity.read(true);
        activity.read(false);
        assert!(
            !activity.idle(),
            "part of a next request is in hyper's buffer"
        );
        answer(&activity);
        activity.read(false);
        assert!(activity.idle());
        assert_eq!(activity.requests(), 2);
    }

    #[test]
    fn a_pipelined_request_makes_it_busy_before_hyper_reads_again() {
        let activity = Arc::new(Activity::new());
        answer(&activity);
        activity.request();
        activity.read(false);
        assert!(!activity.idle());
    }
}
