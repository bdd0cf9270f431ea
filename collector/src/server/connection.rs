//! One client connection from accept to close, holding hyper's state only while it is busy.
//!
//! hyper's HTTP/1 connection keeps its read buffer (8 KiB) and its write buffer for its whole
//! life: 5,000 keep-alive connections idle after one hit held 93.5 MiB. Turning keep-alive off
//! would free them, but hyper then answers with `Connection: close` and every client reconnects.
//! So a connection waits for its next byte *parked*, costing only its socket and this task (a
//! 1-byte `peek`: `readable()` is ready at once for a new socket), and gets a hyper connection
//! when a byte comes. Once that has been idle ([`Activity::idle`]) for `idle_release`,
//! `Connection::into_parts` gives the socket back, with any bytes hyper read but did not use
//! (the start of a pipelined request) to replay to the next one, and hyper's state is dropped.
//! A busy keep-alive client keeps its hyper connection: the release timer is armed once per
//! `idle_release`, not once per request.
//!
//! The limits stay those of a connection never released: a new connection is closed if its first
//! byte does not come within the header timeout, a request head must be in within the header
//! timeout of the last answer (or of its first byte on a connection hyper has just taken over;
//! a partly read head is never released), so an idle connection is closed the header timeout
//! after its last answer (a released one at most `idle_release` later).
//!
//! That timeout is [`HeadTimer`]'s, not hyper's: hyper's allocates a timer and enters it in
//! tokio's timer wheel for every request, and takes it out again when the head is in, 1.8k of
//! the 29.6k instructions a pixel request cost (`benches/instructions.sh`: 27.8k without it).
//! [`HeadTimer`] keeps one timer per connection and moves it only when it fires; each answer
//! costs a clock read ([`Activity::owed_nothing_since`]): 28.3k in all.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::activity::{Activity, Counted, Watched};
use crate::metrics::ConnectionMetrics;
use crate::response::Body;

/// How every connection of one listener is served.
pub(super) struct Settings {
    pub(super) http: http1::Builder,
    pub(super) header_read_timeout: Duration,
    /// How long an idle connection keeps its hyper state (zero: released after every answer).
    pub(super) idle_release: Duration,
    pub(super) metrics: ConnectionMetrics,
}

/// Serves `stream` until it closes, times out or `stop` is set (what is in flight is answered).
pub(super) async fn serve<H, F>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: H,
    settings: Arc<Settings>,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut replay = Bytes::new();
    let mut deadline = Instant::now() + settings.header_read_timeout;
    loop {
        if replay.is_empty() && !parked(&stream, deadline, &mut stop, &settings.metrics).await {
            return;
        }
        // Boxed: inline, hyper's state would size this task while it is parked too.
        let busy = Box::pin(busy(
            stream,
            replay,
            peer,
            handler.clone(),
            &settings,
            &mut stop,
        ));
        let Some((back, unused)) = busy.await else {
            return;
        };
        settings.metrics.released.inc();
        (stream, replay) = (back, unused);
        // It has been idle for `idle_release` already.
        deadline = Instant::now()
            + settings
                .header_read_timeout
                .saturating_sub(settings.idle_release);
    }
}

/// Waits for the client's next byte (true), or for the end: `deadline`, its close or `stop`.
async fn parked(
    stream: &TcpStream,
    deadline: Instant,
    stop: &mut watch::Receiver<bool>,
    metrics: &ConnectionMetrics,
) -> bool {
    metrics.parked.inc();
    let mut probe = [0u8; 1];
    let readable = tokio::select! {
        peeked = tokio::time::timeout_at(deadline, stream.peek(&mut probe)) => {
            matches!(peeked, Ok(Ok(1..)))
        }
        _ = stop.wait_for(|&stopped| stopped) => false,
    };
    metrics.parked.dec();
    readable
}

/// Serves `stream` (read after `replay`) with hyper until it ends (`None`) or has been idle for
/// `idle_release`: then the stream comes back with what hyper read of it but did not use.
async fn busy<H, F>(
    stream: TcpStream,
    replay: Bytes,
    peer: SocketAddr,
    handler: H,
    settings: &Settings,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, Bytes)>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        service_fn(move |req| {
            activity.request();
            let answer = handler(req, peer);
            let activity = activity.clone();
            async move { Ok::<_, Infallible>(answer.await.map(|body| Counted::new(body, activity))) }
        })
    };
    let io = TokioIo::new(Watched::new(stream, replay, activity.clone()));
    let mut connection = settings.http.serve_connection(io, service);
    let mut stopping = pin!(stop.wait_for(|&stopped| stopped));
    let mut draining = false;
    let mut idle = IdleTimer::new(settings.idle_release);
    let mut head = HeadTimer::new(settings.header_read_timeout);
    let released = poll_fn(|cx| {
        if !draining && stopping.as_mut().poll(cx).is_ready() {
            // hyper answers what is in flight with `Connection: close` and closes when idle.
            Pin::new(&mut connection).graceful_shutdown();
            draining = true;
        }
        if let Poll::Ready(ended) = Pin::new(&mut connection).poll(cx) {
            if let Err(error) = ended {
                tracing::debug!(%error, "connection ended with an error");
            }
            return Poll::Ready(false);
        }
        if head.poll_expired(&activity, cx).is_ready() {
            settings.metrics.timed_out.inc();
            tracing::debug!("closed: no request head within the header timeout");
            return Poll::Ready(false);
        }
        if draining || !activity.idle() {
            return Poll::Pending;
        }
        idle.poll_elapsed(activity.requests(), cx).map(|()| true)
    })
    .await;
    if !released {
        return None;
    }
    let parts = connection.into_parts();
    // A copy: even empty, `read_buf` holds on to hyper's whole read buffer.
    let unused = Bytes::copy_from_slice(&parts.read_buf);
    Some((parts.io.into_inner().into_stream(), unused))
}

/// Says when a connection has owed nothing for `after` without a new request: its next head
/// is late (or the client is silent).
///
/// One timer for the connection's life in hyper, set for the header timeout after the moment it
/// last owed nothing; when it fires early (a request came meanwhile) it is moved to the new
/// deadline, and while a request is being answered it waits one more timeout. So it moves at
/// most once per timeout, not once per request, and still fires on the deadline.
struct HeadTimer {
    after: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl HeadTimer {
    fn new(after: Duration) -> Self {
        Self {
            after,
            sleep: Box::pin(tokio::time::sleep(after)),
        }
    }

    /// Ready once `activity` has owed nothing for `after` with no request since.
    fn poll_expired(&mut self, activity: &Activity, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.sleep.as_mut().poll(cx));
            let now = Instant::now();
            let deadline = if activity.answering() {
                now + self.after
            } else {
                activity.owed_nothing_since() + self.after
            };
            if deadline <= now {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(deadline);
        }
    }
}

/// Says when an idle connection has stayed idle for `after`.
///
/// Armed when the connection is first found idle and left running while it is busy again; when it
/// fires on a connection that was busy meanwhile, it is armed anew. So a busy keep-alive
/// connection costs one timer per `after`, not one per request, and an idle one is released
/// between `after` and twice `after` after its last answer.
struct IdleTimer {
    after: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The connection's request count when the timer was armed.
    armed_at: Option<u32>,
}

impl IdleTimer {
    fn new(after: Duration) -> Self {
        Self {
            after,
            sleep: None,
            armed_at: None,
        }
    }

    /// Polled while the connection is idle, having served `requests` requests so far.
    fn poll_elapsed(&mut self, requests: u32, cx: &mut Context<'_>) -> Poll<()> {
        if self.after.is_zero() {
            return Poll::Ready(());
        }
        loop {
            match (self.armed_at, &mut self.sleep) {
                (Some(at), Some(sleep)) => {
                    ready!(sleep.as_mut().poll(cx));
                    if at == requests {
                        return Poll::Ready(());
                    }
                    self.armed_at = None;
                }
                (_, Some(sleep)) => {
                    sleep.as_mut().reset(Instant::now() + self.after);
                    self.armed_at = Some(requests);
                }
                (_, None) => {
                    self.sleep = Some(Box::pin(tokio::time::sleep(self.after)));
                    self.armed_at = Some(requests);
                }
            }
        }
    }
}
