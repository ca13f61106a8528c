//! Where the engine's log lines go, and the rate limit for lines a peer could make flood.
//!
//! One home for the engine's output, so that a host hook (skynet_error, a C callback) can
//! replace stderr in one place.

use std::time::{Duration, Instant};

/// Writes one line of the engine's log.
pub(crate) fn warn(msg: &str) {
    eprintln!("skynet-cluster engine: {msg}");
}

/// At most one line per `every`; the lines held back are counted and reported with the
/// next one let through.
pub(crate) struct RateLimit {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl RateLimit {
    pub const fn new(every: Duration) -> Self {
        RateLimit { every, last: None, held: 0 }
    }

    /// Logs `msg` unless a line went out less than `every` ago.
    pub fn warn(&mut self, now: Instant, msg: impl FnOnce() -> String) {
        if self.last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.held += 1;
            return;
        }
        self.last = Some(now);
        let held = std::mem::take(&mut self.held);
        if held > 0 {
            warn(&format!("{} ({held} more like it not shown)", msg()));
        } else {
            warn(&msg());
        }
    }
}
