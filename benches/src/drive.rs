//! The load loops: N keep-alive connections, each sending one request at a time.
//!
//! - **Closed loop** measures the most the collector answers: a connection sends its next
//!   request as soon as the last is answered; latency runs from send to answer.
//! - **Open loop** offers a fixed rate, each connection on its own schedule. Latency runs from
//!   the request's *intended* send time whenever the previous answer came too late to send on
//!   time, so a stalled server is charged for every request it held up (no coordinated
//!   omission). When a request goes out late only because of the load generator's own timer
//!   (tokio's timers tick in milliseconds), it is timed from its actual send: the server could
//!   not have seen it earlier. The same tick makes requests due within one millisecond go out
//!   together, a burst of at most rate/1000; spinning to the exact microsecond instead would
//!   take a core from the server on a shared machine and skew more than it fixes.
//!
//! Both stop at the deadline or when the request budget is spent, whichever is first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

use crate::http::Connection;
use crate::report::{Counts, latency_histogram};
use crate::traffic::{Catalog, HitKind, Visitors};

/// Back-off after a failed connect, so a dead target is not hammered.
const RECONNECT_DELAY: Duration = Duration::from_millis(20);
/// How long past the deadline an open loop that fell behind may go on sending what was due.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(5);

/// How a run sends.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: SocketAddr,
    pub connections: u32,
    /// Open loop at this many requests per second in all; closed loop when `None`.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub max_requests: u64,
    /// Returning visitors in all, shared out between the connections.
    pub visitors: u32,
    pub seed: u64,
}

/// What the connections measured together.
pub struct Outcome {
    pub counts: Counts,
    pub histogram: Histogram<u64>,
    pub elapsed: Duration,
}

/// Runs `plan` with traffic from `catalog`. Must be called inside a tokio runtime.
pub async fn run(plan: &Plan, catalog: Arc<Catalog>) -> Outcome {
    let start = Instant::now();
    let deadline = start + plan.duration;
    let budget = Arc::new(AtomicU64::new(plan.max_requests));
    let per_connection = (plan.visitors / plan.connections) as usize;
    let tasks: Vec<_> = (0..plan.connections)
        .map(|n| {
            let schedule = plan
                .rate
                .map(|rate| Schedule::new(rate, plan.connections, n, start));
            let worker = Worker {
                target: plan.target,
                catalog: catalog.clone(),
                visitors: Visitors::new(per_connection, catalog.config().new_visitor_share),
                rng: StdRng::seed_from_u64(plan.seed.wrapping_add(u64::from(n))),
                budget: budget.clone(),
                deadline,
                counts: Counts::default(),
                histogram: latency_histogram(),
            };
            tokio::spawn(worker.run(schedule))
        })
        .collect();
    let mut counts = Counts::default();
    let mut histogram = latency_histogram();
    for task in tasks {
        let (c, h) = task.await.expect("a load task does not panic");
        counts.add(&c);
        histogram.add(&h).expect("histograms share bounds");
    }
    Outcome {
        counts,
        histogram,
        elapsed: start.elapsed(),
    }
}

/// One open-loop connection's send times: every `interval`, offset so that the connections
/// together send evenly at the rate.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    first: Instant,
    interval: Duration,
}

impl Schedule {
    pub fn new(rate: f64, connections: u32, n: u32, start: Instant) -> Self {
        let interval = Duration::from_secs_f64(f64::from(connections) / rate);
        Self {
            first: start + Duration::from_secs_f64(f64::from(n) / rate),
            interval,
        }
    }

    /// When request `i` of this connection is meant to go out.
    pub fn at(&self, i: u32) -> Instant {
        self.first + self.interval * i
    }
}

struct Worker {
    target: SocketAddr,
    catalog: Arc<Catalog>,
    visitors: Visitors,
    rng: StdRng,
    budget: Arc<AtomicU64>,
    deadline: Instant,
    counts: Counts,
    histogram: Histogram<u64>,
}

impl Worker {
    async fn run(mut self, schedule: Option<Schedule>) -> (Counts, Histogram<u64>) {
        let mut connection = None;
        for i in 0u32.. {
            let intended = schedule.map(|s| s.at(i));
            let now = Instant::now();
            let over = match intended {
                // An open loop still sends what was due before the deadline, within a grace.
                Some(at) => at >= self.deadline || now >= self.deadline + OPEN_LOOP_GRACE,
                None => now >= self.deadline,
            };
            if over {
                break;
            }
            if !self.take_one() {
                break;
            }
            let from = match intended {
                Some(at) if Instant::now() < at => {
                    tokio::time::sleep_until(at).await;
                    Instant::now()
                }
                // Behind schedule: the last answer held this request up; charge it from its time.
                Some(at) => at,
                None => Instant::now(),
            };
            if connection.is_none() {
                match Connection::open(self.target).await {
                    Ok(c) => connection = Some(c),
                    Err(error) => {
                        tracing::debug!(%error, "connect failed");
                        self.counts.requests += 1;
                        self.counts.errors += 1;
                        tokio::time::sleep(RECONNECT_DELAY).await;
                        continue;
                    }
                }
            }
            let conn = connection.as_mut().expect("connected above");
            if !self.hit(conn, from).await {
                connection = None;
            }
        }
        (self.counts, self.histogram)
    }

    /// Takes one request from the run's budget; false when it is spent.
    fn take_one(&self) -> bool {
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// Sends one hit and records it; false when the connection is broken.
    async fn hit(&mut self, conn: &mut Connection, from: Instant) -> bool {
        let kind = self.catalog.kind(&mut self.rng);
        let who = self.visitors.pick(&mut self.rng);
        let cookie = self.visitors.cookie(who);
        self.counts.requests += 1;
        self.counts.with_cookie += u64::from(cookie.is_some());
        match kind {
            HitKind::Pixel => self.counts.pixel_hits += 1,
            HitKind::Beacon => self.counts.beacon_hits += 1,
        }
        let request = self.catalog.request(kind, cookie, &mut self.rng);
        match conn.send(request).await {
            Ok(answer) => {
                let took = from.elapsed().as_micros() as u64;
                self.histogram.saturating_record(took.max(1));
                let acknowledged = match kind {
                    HitKind::Pixel => {
                        answer.status == StatusCode::OK && answer.visitor_cookie.is_some()
                    }
                    HitKind::Beacon => answer.status == StatusCode::NO_CONTENT,
                };
                if acknowledged {
                    self.counts.acknowledged += 1;
                } else {
                    self.counts.refused += 1;
                }
                if let Some(cookie) = answer.visitor_cookie {
                    self.visitors.remember(who, cookie);
                }
                true
            }
            Err(error) => {
                tracing::debug!(%error, "request failed");
                self.counts.errors += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_connections_interleave_evenly_at_the_rate() {
        let start = Instant::now();
        let a = Schedule::new(1000.0, 4, 0, start);
        let b = Schedule::new(1000.0, 4, 1, start);
        assert_eq!(a.at(0), start);
        assert_eq!(b.at(0) - start, Duration::from_millis(1));
        assert_eq!(a.at(1) - start, Duration::from_millis(4));
        assert_eq!(b.at(3) - start, Duration::from_millis(13));
    }
}
