//! Idle polling: keep the cores awake for a short window after each request.
//!
//! On a virtual machine a core with nothing to run halts, and waking it again (a packet
//! arrives, a futex is signalled) costs tens of microseconds. A forwarded search wakes a core
//! four to six times (client → query → storage → query → client), so on an otherwise idle
//! machine most of a single client's latency is wake-ups, not work. For `window` after the
//! last request started or finished, one thread per process spins at `SCHED_IDLE` priority,
//! yielding between short spins: its core stays awake, and anything else that wants the CPU
//! (a search, a build, another process) runs first, so throughput under load is not
//! affected. The price is CPU time burned while a client is active and the machine has
//! nothing else to do (shown as this process's CPU use). The same trade as Seastar's
//! `--idle-poll-time-us`. A window of zero turns it off.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

struct Poller {
    start: Instant,
    window_ns: u64,
    /// Nanoseconds since `start` of the last request event.
    last: AtomicU64,
    /// Set by the spinners before they park; cleared by the `touch` that unparks them.
    parked: AtomicBool,
    threads: Vec<Thread>,
}

static POLLER: OnceLock<Poller> = OnceLock::new();

/// A request started or finished: keep the cores awake for the next `window`.
#[inline]
pub fn touch() {
    if let Some(p) = POLLER.get() {
        p.last
            .store(p.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if p.parked.load(Ordering::Relaxed) && p.parked.swap(false, Ordering::AcqRel) {
            for t in &p.threads {
                t.unpark();
            }
        }
    }
}

/// Start the spinner (once per process; later calls do nothing).
pub fn start(window: Duration) {
    if window.is_zero() || POLLER.get().is_some() {
        return;
    }
    // One spinner per process: with one per core, the spinners of query and storage (and
    // the client's process) crowd each other and real work out (SCHED_IDLE is a very low
    // weight, not a strict priority): measured p99 of one Rust client 0.5 → 1.1-2.3 ms.
    let cores = 1;
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..cores {
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("akidb-idle-poll-{i}"))
            .spawn(move || {
                lowest_priority();
                let _ = tx.send(std::thread::current());
                drop(tx);
                let Some(p) = wait_for_poller() else { return };
                spin(p);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "idle polling thread not started");
        }
    }
    drop(tx);
    let threads: Vec<Thread> = rx.iter().collect();
    let n = threads.len();
    let _ = POLLER.set(Poller {
        start: Instant::now(),
        window_ns: window.as_nanos() as u64,
        last: AtomicU64::new(0),
        parked: AtomicBool::new(false),
        threads,
    });
    tracing::info!(
        window_us = window.as_micros() as u64,
        threads = n,
        "idle polling on"
    );
}

fn wait_for_poller() -> Option<&'static Poller> {
    for _ in 0..1000 {
        if let Some(p) = POLLER.get() {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn spin(p: &'static Poller) {
    loop {
        let now = p.start.elapsed().as_nanos() as u64;
        if now.saturating_sub(p.last.load(Ordering::Relaxed)) < p.window_ns {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            std::thread::yield_now();
            continue;
        }
        p.parked.store(true, Ordering::Release);
        // A request between the check above and here has cleared `parked` and unparked us
        // (park returns at once then); the timeout is only a safety net.
        let now = p.start.elapsed().as_nanos() as u64;
        if now.saturating_sub(p.last.load(Ordering::Relaxed)) >= p.window_ns {
            std::thread::park_timeout(Duration::from_secs(1));
        }
    }
}

/// `SCHED_IDLE`: run only when no other thread of any process wants the core.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a zeroed sched_param,
    // which SCHED_IDLE requires.
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            tracing::warn!("idle polling thread runs at normal priority (SCHED_IDLE refused)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinners_park_when_idle_and_wake_on_touch() {
        start(Duration::from_millis(5));
        let p = POLLER.get().expect("started");
        assert!(!p.threads.is_empty());
        // Idle: after the window the spinners park.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.parked.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "spinners never parked");
            std::thread::sleep(Duration::from_millis(1));
        }
        touch();
        assert!(!p.parked.load(Ordering::Acquire), "touch unparks");
        // And they park again once the window has passed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !p.parked.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "spinners never parked again");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
