//! Per-link counters and a latency histogram.
//!
//! Counters are relaxed atomics (any thread may read them). The histogram is written by the
//! I/O thread when a call completes and read under its lock by [`LinkStats::snapshot`].

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one peer (outbound link to a node, surviving reconnects) or of all
/// accepted links together.
pub struct LinkStats {
    pub(crate) calls: AtomicU64,
    pub(crate) pushes: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) drops: AtomicU64,
    latency: Mutex<Histogram<u32>>,
}

/// A copy of a [`LinkStats`] at one moment. Latencies are in microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Calls (and queries) sent, or requests received on accepted links.
    pub calls: u64,
    /// Pushes sent, or received on accepted links.
    pub pushes: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Calls that ended with an error (remote, link down, overloaded...), or dropped links.
    pub errors: u64,
    pub timeouts: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections lost or closed.
    pub drops: u64,
    /// Completed calls in the histogram, and its percentiles.
    pub latency_count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Default for LinkStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkStats {
    pub fn new() -> Self {
        LinkStats {
            calls: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            // 2 significant digits up to 60 s with u32 counts: about 14 KiB per peer.
            latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds")),
        }
    }

    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn record_latency(&self, us: u64) {
        let _ = self.latency.lock().record(us.clamp(1, 60_000_000));
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let h = self.latency.lock();
        StatsSnapshot {
            calls: self.calls.load(Relaxed),
            pushes: self.pushes.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            connects: self.connects.load(Relaxed),
            drops: self.drops.load(Relaxed),
            latency_count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}
