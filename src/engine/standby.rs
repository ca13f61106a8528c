//! Who runs the I/O loop: the node's I/O thread, and while the host's
//! [`Service::after_events`](super::Service::after_events) runs long, a standby thread.
//!
//! The loop's state ([`IoLoop`]: poll, links, partial frames) sits behind a mutex that a
//! thread holds for one round of events at a time. The I/O thread runs a round, lets go of
//! the loop and calls `after_events`. A host that runs its own tasks there (the skynet
//! service runs the messages a round delivered, see `src/skynet`) can take long: a handler
//! that loops or blocks would otherwise leave every link of the node unserved for as long.
//! With [`Config::standby_after`](super::Config::standby_after) set, a second thread looks
//! every `standby_after` whether the I/O thread has been inside one `after_events` call for
//! that long; if so it takes the loop and runs rounds (calling `after_events` itself and
//! [`Service::stalled`](super::Service::stalled)) until the I/O thread comes back, which
//! wakes its poll so the loop changes hands within one round. Only one thread holds the
//! loop at a time, so links are still read in order by one thread at a time.
//!
//! Cost when nothing is slow: the I/O thread writes two atomics per round; the standby
//! wakes every `standby_after` while the node has traffic and sleeps without a timeout
//! once no round has run for [`DEEP_AFTER`] (the next round then wakes it, one futex
//! wake on the I/O thread's path for the first message after an idle second).

use super::io::{IoLoop, SCRATCH};
use super::node::Inner;
use super::service::Service;
use mio::Events;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A standby that has seen no round for this long sleeps until the next one.
const DEEP_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Runner {
    lp: Mutex<IoLoop>,
    inner: Arc<Inner>,
    /// `standby_after` from the config; `None`: no standby thread.
    after: Option<Duration>,
    base: Instant,
    /// When the I/O thread entered its current `after_events` call (ns after `base`, + 1);
    /// 0 while it is not inside one.
    hook_since: AtomicU64,
    /// `after_events` calls started so far (the standby tells quiet periods by it).
    hook_seq: AtomicU64,
    /// The standby holds (or is about to take) the loop.
    standby_active: AtomicBool,
    /// The loop has shut down; both threads leave.
    stopped: AtomicBool,
    /// The standby sleeps without a timeout (the I/O thread wakes it at its next hook).
    deep: AtomicBool,
    sleep: Mutex<()>,
    cv: Condvar,
}

impl Runner {
    pub fn new(lp: IoLoop, inner: Arc<Inner>) -> Arc<Runner> {
        let after = inner.cfg.standby_after;
        Arc::new(Runner {
            lp: Mutex::new(lp),
            inner,
            after,
            base: Instant::now(),
            hook_since: AtomicU64::new(0),
            hook_seq: AtomicU64::new(0),
            standby_active: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            deep: AtomicBool::new(false),
            sleep: Mutex::new(()),
            cv: Condvar::new(),
        })
    }

    pub fn has_standby(&self) -> bool {
        self.after.is_some()
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn service(&self) -> Option<Arc<dyn Service>> {
        self.inner.service.read().clone()
    }

    /// Runs a host hook; a panicking one must not end the thread that runs the loop.
    fn hook(s: &dyn Service, f: impl FnOnce(&dyn Service)) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(s)));
    }

    /// The loop saw the shutdown command: close everything, let the other thread go.
    fn stop(&self) {
        {
            // Under the loop's lock, so that no round runs on the finished loop.
            let mut lp = self.lp.lock();
            lp.finish();
            self.stopped.store(true, SeqCst);
        }
        let _g = self.sleep.lock();
        self.cv.notify_all();
    }

    /// One round on the loop, unless it has been finished: `None` then.
    fn round(&self, events: &mut Events, scratch: &mut [u8], cap: Option<Duration>) -> Option<bool> {
        let mut lp = self.lp.lock();
        if self.stopped.load(SeqCst) {
            return None;
        }
        Some(lp.round(events, scratch, cap))
    }

    /// The I/O thread's body.
    pub fn run_io(self: Arc<Self>) {
        let _ = self.inner.io.io_thread.set(std::thread::current().id());
        let mut events = Events::with_capacity(1024);
        let mut scratch = vec![0u8; SCRATCH];
        loop {
            // None: the standby ran the round that saw the shutdown.
            let Some(stop) = self.round(&mut events, &mut scratch, None) else {
                return;
            };
            if stop {
                return self.stop();
            }
            let Some(s) = self.service() else { continue };
            if self.after.is_some() {
                self.hook_since.store(self.now_ns(), SeqCst);
                self.hook_seq.fetch_add(1, SeqCst);
                if self.deep.load(SeqCst) {
                    let _g = self.sleep.lock();
                    self.deep.store(false, SeqCst);
                    self.cv.notify_all();
                }
            }
            Self::hook(&*s, |s| s.after_events());
            if self.after.is_some() {
                self.hook_since.store(0, SeqCst);
                if self.standby_active.load(SeqCst) {
                    // The standby may be waiting in poll: end its round so it lets go.
                    self.inner.io.wake();
                }
            }
        }
    }

    /// The standby thread's body (only with `standby_after`).
    pub fn run_standby(self: Arc<Self>) {
        let Some(after) = self.after else { return };
        let _ = self.inner.io.standby_thread.set(std::thread::current().id());
        let mut events = Events::with_capacity(1024);
        let mut scratch: Vec<u8> = Vec::new();
        let deep_after = (DEEP_AFTER.as_nanos() / after.as_nanos().max(1)).max(2) as u32;
        let (mut last_seq, mut quiet) = (0u64, 0u32);
        loop {
            {
                let mut g = self.sleep.lock();
                if self.stopped.load(SeqCst) {
                    return;
                }
                if quiet >= deep_after {
                    // Nothing ran for DEEP_AFTER: sleep until the next hook starts.
                    self.deep.store(true, SeqCst);
                    if self.hook_seq.load(SeqCst) == last_seq && self.hook_since.load(SeqCst) == 0 {
                        self.cv.wait(&mut g);
                    }
                    self.deep.store(false, SeqCst);
                    quiet = 0;
                } else {
                    self.cv.wait_for(&mut g, after);
                }
                if self.stopped.load(SeqCst) {
                    return;
                }
            }
            let seq = self.hook_seq.load(SeqCst);
            let since = self.hook_since.load(SeqCst);
            quiet = if since == 0 && seq == last_seq { quiet + 1 } else { 0 };
            last_seq = seq;
            if since == 0 || self.now_ns().saturating_sub(since) < after.as_nanos() as u64 {
                continue;
            }
            self.standby_active.store(true, SeqCst);
            if scratch.is_empty() {
                scratch = vec![0u8; SCRATCH];
            }
            // Serve the links until the I/O thread is back from that same hook call.
            while self.hook_since.load(SeqCst) == since {
                let running = Duration::from_nanos(self.now_ns().saturating_sub(since));
                if let Some(s) = self.service() {
                    Self::hook(&*s, |s| s.stalled(running));
                }
                let stop = self.round(&mut events, &mut scratch, Some(after));
                if stop != Some(false) {
                    self.standby_active.store(false, SeqCst);
                    if stop == Some(true) {
                        self.stop();
                    }
                    return;
                }
                if let Some(s) = self.service() {
                    Self::hook(&*s, |s| s.after_events());
                }
            }
            self.standby_active.store(false, SeqCst);
        }
    }
}
