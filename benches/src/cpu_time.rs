//! CPU-time clocks for the criterion suites. On a shared machine wall time counts every moment
//! another process held the core; the CPU time of the benchmark's own thread does not, so the
//! suites measure with [`ThreadCpuTime`]. On an idle machine the two agree for these
//! single-threaded loops.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// CPU time consumed so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time consumed so far by every thread of this process.
pub fn process_cpu_time() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and `id` is one of Linux's CPU-time clocks.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "CPU-time clocks are available on Linux");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Lends its duration formatter: CPU time reads like wall time.
static WALL: WallTime = WallTime;

/// A criterion measurement of the benchmark thread's CPU time.
pub struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }

    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time() - started
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_advances_with_work_only() {
        let clock = ThreadCpuTime;
        let started = clock.start();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let busy = clock.end(started);
        assert!(busy > Duration::ZERO);
        let started = clock.start();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            clock.end(started) < Duration::from_millis(10),
            "sleeping costs no CPU"
        );
        assert!(process_cpu_time() >= busy);
    }
}
