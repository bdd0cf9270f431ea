//! Heap allocations per pixel hit: the in-process pixel path (as in the `pixel` suite) under a
//! counting allocator. Allocating, and freeing on the writer's thread, was once a quarter of
//! the path's cost; this keeps the count visible.
//!
//! `cargo bench -p footfall-benches --bench allocations`

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use footfall_benches::fixtures::{app, pixel_request};
use footfall_collector::sink::Queue;
use footfall_store::id::Id;

/// The system allocator, counting allocations (a `realloc` counts as one) and bytes asked for.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const HITS: usize = 10_000;

fn main() {
    let queue = Queue::bounded(HITS + 16, u64::MAX);
    let app = app(queue.clone(), None);
    let peer: SocketAddr = "10.0.0.1:40000".parse().expect("a socket address");
    let returning_cookie = format!("_ga=GA1.2.3; ff_id={}; theme=dark", Id::random());
    for (name, cookie) in [
        ("new_visitor", None),
        ("returning_visitor", Some(returning_cookie.as_str())),
    ] {
        let request = pixel_request("/shoes/red", cookie);
        // The first hits fill the user-agent cache; count only the steady state.
        for _ in 0..16 {
            drop(app.handle(&request, peer));
        }
        while queue.pop().is_some() {}
        let (allocations, bytes) = (
            ALLOCATIONS.load(Ordering::Relaxed),
            BYTES.load(Ordering::Relaxed),
        );
        for _ in 0..HITS {
            drop(app.handle(&request, peer));
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations;
        let bytes = BYTES.load(Ordering::Relaxed) - bytes;
        assert_eq!(queue.depth(), HITS, "every hit was queued");
        while queue.pop().is_some() {}
        println!(
            "pixel/{name}: {:.1} allocations, {:.0} bytes per hit",
            allocations as f64 / HITS as f64,
            bytes as f64 / HITS as f64
        );
    }
}
