//! Calls and pushes to a node that has no address yet: held (payload copied) until the reload
//! that gives one, as stock's `cluster.call`/`cluster.send` wait, unless `nowaiting`.

use super::config::NodeAddr;
use super::error::CallError;
use super::node::{Handle, Inner};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Most calls and pushes that may wait for node addresses at once (then `Overloaded`).
const MAX_DEFERRED: usize = 65536;
/// A call or push held until its node gets an address: run with `None` to retry it, or
/// with the error that ends it.
pub(super) struct Deferred {
    pub(super) node: String,
    pub(super) deadline: Option<Instant>,
    pub(super) run: Retry,
}
/// Runs a deferred call or push: `None` retries it, an error ends it.
pub(super) type Retry = Box<dyn FnOnce(&Handle, Option<CallError>) + Send>;
/// Runs (fails) deferred entries whose deadline passed; returns the earliest remaining
/// deadline. Called by the I/O thread.
pub(crate) fn expire_deferred(inner: &Arc<Inner>, now: Instant) -> Option<Instant> {
    let (gone, min) = {
        let mut q = inner.deferred.lock();
        if q.is_empty() {
            return None;
        }
        let (gone, keep): (Vec<_>, Vec<_>) = q.drain(..).partition(|d| d.deadline.is_some_and(|t| t <= now));
        *q = keep;
        let min = q.iter().filter_map(|d| d.deadline).min();
        (gone, min)
    };
    let h = Handle { inner: inner.clone() };
    for d in gone {
        (d.run)(&h, Some(CallError::Timeout));
    }
    min
}

impl Handle {
    /// Holds a non-blocking call or push for a node without an address (unless
    /// `nowaiting`). `make` builds the retry; it is only called when deferring.
    pub(super) fn defer_if_absent(
        &self,
        node: &str,
        deadline: Option<Instant>,
        make: impl FnOnce() -> Retry,
    ) -> Result<bool, CallError> {
        if self.inner.nowaiting.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let mut q = self.inner.deferred.lock();
        if !matches!(self.node_addr(node), NodeAddr::Absent) {
            return Ok(false);
        }
        if q.len() >= MAX_DEFERRED {
            return Err(CallError::Overloaded);
        }
        q.push(Deferred { node: node.to_string(), deadline, run: make() });
        drop(q);
        if let Some(d) = deadline {
            self.inner.io.note_deadline(d);
        }
        Ok(true)
    }
}
