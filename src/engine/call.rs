//! A call waiting for its answer: who waits (a blocked thread, a callback, a heartbeat
//! probe) and what it gets (a [`Reply`], borrowed or owned).

use super::error::CallError;
use super::io::IoShared;
use parking_lot::{Condvar, Mutex};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

/// The answer to a call, handed to a callback: borrowed from the engine's read buffer for
/// a single-frame answer, owned for a reassembled multi-part one. Copy it (or call
/// [`Reply::into_vec`]) to keep it past the callback.
pub struct Reply<'a>(ReplyInner<'a>);

enum ReplyInner<'a> {
    Borrowed(&'a [u8]),
    /// A reassembled answer; its buffer goes back to the node's pool unless taken.
    Owned(Vec<u8>, Option<Arc<IoShared>>),
}

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        if let ReplyInner::Owned(v, Some(io)) = &mut self.0 {
            io.pool.put(std::mem::take(v));
        }
    }
}

impl<'a> Reply<'a> {
    pub(crate) fn borrowed(b: &'a [u8]) -> Self {
        Reply(ReplyInner::Borrowed(b))
    }
    pub(crate) fn pooled(v: Vec<u8>, io: Arc<IoShared>) -> Self {
        Reply(ReplyInner::Owned(v, Some(io)))
    }
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            ReplyInner::Borrowed(b) => b,
            ReplyInner::Owned(v, _) => v,
        }
    }
    /// The payload as an owned vector: a move for a multi-part answer, one copy otherwise.
    pub fn into_vec(mut self) -> Vec<u8> {
        match &mut self.0 {
            ReplyInner::Borrowed(b) => b.to_vec(),
            ReplyInner::Owned(v, io) => {
                *io = None;
                std::mem::take(v)
            }
        }
    }
}

impl Deref for Reply<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// What [`Handle::call_with`](super::Handle::call_with) calls when the call ends. It runs
/// on the engine's I/O thread (or on the thread whose action ended the call, e.g. a
/// reload); it must not block.
pub type Callback = Box<dyn FnOnce(Result<Reply<'_>, CallError>) + Send + 'static>;

/// Where a blocking caller waits.
pub(crate) struct Slot {
    m: Mutex<Option<Result<Vec<u8>, CallError>>>,
    cv: Condvar,
}

impl Slot {
    pub fn new() -> Self {
        Slot { m: Mutex::new(None), cv: Condvar::new() }
    }
    pub fn set(&self, r: Result<Vec<u8>, CallError>) {
        *self.m.lock() = Some(r);
        self.cv.notify_one();
    }
    /// Waits until set or until `deadline`; `None` on timeout.
    pub fn wait(&self, deadline: Option<Instant>) -> Option<Result<Vec<u8>, CallError>> {
        let mut g = self.m.lock();
        loop {
            if let Some(r) = g.take() {
                return Some(r);
            }
            match deadline {
                None => self.cv.wait(&mut g),
                Some(d) => {
                    if self.cv.wait_until(&mut g, d).timed_out() {
                        return g.take();
                    }
                }
            }
        }
    }
}

pub(crate) enum Waiter {
    Slot(Arc<Slot>),
    Callback(Callback),
    /// A heartbeat probe: its answer (any) only proves the peer alive; not a call, so not
    /// in the link's stats.
    Probe,
}

/// A call waiting for its answer.
pub(crate) struct Pending {
    pub waiter: Waiter,
    pub start: Instant,
    /// Only for callbacks: blocking callers time out on their own.
    pub deadline: Option<Instant>,
}

impl Pending {
    /// Ends the call. A panicking callback is caught and logged, so that it cannot take
    /// the I/O thread down.
    pub fn complete(self, r: Result<Reply<'_>, CallError>, log: &super::log::Logger) {
        match self.waiter {
            Waiter::Slot(s) => s.set(r.map(Reply::into_vec)),
            Waiter::Probe => {}
            Waiter::Callback(cb) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(r))).is_err() {
                    log.error("a call_with callback panicked");
                }
            }
        }
    }
}
