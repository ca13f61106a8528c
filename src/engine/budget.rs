//! Node-wide budgets (bytes a peer can make the node hold, links) and the counters of what
//! they refused. Per-link limits live on the link (`Conn`, its `wire::Reassembler`s); these
//! bound the sum over all links, so that many peers together cannot take more than one
//! node's share of memory or descriptors.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// A node-wide amount (bytes, links) with a limit. Taking is all-or-nothing.
pub(crate) struct Budget {
    used: AtomicUsize,
    limit: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Budget { used: AtomicUsize::new(0), limit }
    }

    /// Takes `n` if it fits under the limit.
    pub fn try_take(&self, n: usize) -> bool {
        self.used.fetch_update(Relaxed, Relaxed, |u| u.checked_add(n).filter(|&t| t <= self.limit)).is_ok()
    }

    /// Takes `n` whatever the limit (bytes that must be queued, e.g. an answer).
    pub fn take(&self, n: usize) {
        self.used.fetch_add(n, Relaxed);
    }

    pub fn give(&self, n: usize) {
        let prev = self.used.fetch_sub(n, Relaxed);
        debug_assert!(prev >= n, "budget given back more than taken");
    }

    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// At or above the limit.
    pub fn full(&self) -> bool {
        self.used() >= self.limit
    }
}

/// The node's reassembly budget bounds the declared totals of every link's reassemblers.
impl crate::wire::ReassemblyBudget for Budget {
    #[inline]
    fn try_take(&self, n: usize) -> bool {
        Budget::try_take(self, n)
    }
    #[inline]
    fn give(&self, n: usize) {
        Budget::give(self, n)
    }
}

/// What the node's limits and timers did, node-wide. Relaxed atomics, any thread reads.
#[derive(Default)]
pub(crate) struct Counters {
    pub late_answers: AtomicU64,
    pub refused_links: AtomicU64,
    pub over_budget: AtomicU64,
    pub heartbeat_timeouts: AtomicU64,
    pub expired: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub accept_stalls: AtomicU64,
    pub refused_not_allowed: AtomicU64,
    pub refused_per_source: AtomicU64,
    pub refused_exposure: AtomicU64,
    pub tls_links: AtomicU64,
    pub refused_plain: AtomicU64,
    pub tls_failures: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// A node's health at one moment: what it holds against its budgets, and what its limits
/// and timers did since it started ([`Handle::health`](super::Handle::health)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// Links open now (both directions), and the limit (`Config::max_links`).
    pub links: usize,
    pub max_links: usize,
    /// Bytes of multi-part messages being reassembled, declared by their headers, over all
    /// links; and the limit (`Config::max_reassembly_total`).
    pub reassembly_bytes: usize,
    pub max_reassembly_bytes: usize,
    /// Bytes queued to send over all links, and the limit (`Config::max_send_total`).
    pub send_bytes: usize,
    pub max_send_bytes: usize,
    /// Answers given after their link had closed: dropped.
    pub late_answers: u64,
    /// Connections refused by `max_links` or a listener's `max_clients`.
    pub refused_links: u64,
    /// Messages refused, or reads paused, because a node-wide byte budget was full.
    pub over_budget: u64,
    /// Links declared dead by the heartbeat.
    pub heartbeat_timeouts: u64,
    /// Links closed by `multi_timeout` or `idle_timeout`.
    pub expired: u64,
    /// Protocol errors: answered as stock answers them, or the link closed.
    pub protocol_errors: u64,
    /// Times accepting stopped for lack of file descriptors (EMFILE/ENFILE), once per episode.
    pub accept_stalls: u64,
    /// Connections refused because their source is not in `Config::allow`.
    pub refused_not_allowed: u64,
    /// Connections refused by `Config::max_links_per_source`.
    pub refused_per_source: u64,
    /// Requests and name queries refused by `Config::exposure`.
    pub refused_exposure: u64,
    /// Links that completed a TLS handshake (both directions).
    pub tls_links: u64,
    /// Plain-text peers refused because the mode is `require`: stock senders whose
    /// connection was closed, and links to nodes that did not answer the hello.
    pub refused_plain: u64,
    /// TLS handshakes that failed (unknown CA, a certificate naming another node, expired,
    /// not TLS at all) and hellos not followed by a handshake.
    pub tls_failures: u64,
}
