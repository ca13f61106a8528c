//! Inline dispatch: the engine's I/O thread runs the skynet messages it has just
//! delivered, as one more skynet worker would, and pauses doing so after slow messages.
//! See "Running delivered messages at once" in the module docs.

use super::api::{Api, Dispatch, OwnQueue, SkynetMessage};
use super::lifecycle::config_value;
use super::{catch, Core, ON_IO_THREAD};
use parking_lot::Mutex;
use std::ffi::c_void;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The I/O thread as a skynet worker for the messages it has just delivered: see
/// "Running delivered messages at once" in the module docs.
pub(super) struct Inline {
    pub(super) d: Dispatch,
    /// A `skynet_monitor` of our own: `skynet_context_message_dispatch` records in it which
    /// message runs (skynet's monitor thread only watches its workers' monitors).
    pub(super) monitor: *mut c_void,
    /// Held by the thread that dispatches with `monitor`: the I/O thread, or the engine's
    /// standby thread while the I/O thread is stuck in a long message (then the standby
    /// finds it taken and leaves delivered messages to skynet's workers).
    pub(super) running: Mutex<()>,
    pause: Mutex<Pause>,
}

/// Inline dispatch pauses after a slow message: see [`INLINE_SLOW`].
#[derive(Default)]
pub(super) struct Pause {
    until: Option<Instant>,
    /// The last pause's length, and when the slow message that caused it ended.
    last: Option<(Duration, Instant)>,
    /// The message running now was reported as long-running (see [`Core::stalled`]), and
    /// when skynet's endless-loop check last ran on our monitor for it.
    stall: Option<Instant>,
}

impl Pause {
    /// A slow message just ended: the next pause, doubled when the previous slow message
    /// was recent.
    fn start(&mut self, now: Instant) -> Duration {
        let len = match self.last {
            Some((len, at)) if now.duration_since(at) < INLINE_PAUSE_MEMORY => (len * 2).min(INLINE_PAUSE_MAX),
            _ => INLINE_PAUSE_MIN,
        };
        self.last = Some((len, now));
        self.until = Some(now + len);
        len
    }

    /// A slow message ended: the pause its stall report began (see [`Core::stalled`]) is
    /// counted from now, or a new one starts.
    fn slow_ended(&mut self, now: Instant) -> Duration {
        if self.stall.take().is_some() {
            if let Some((len, _)) = self.last {
                self.last = Some((len, now));
                self.until = Some(now + len);
                return len;
            }
        }
        self.start(now)
    }
}

// SAFETY: `monitor` is skynet's heap object, freed once in Drop; dispatch writes it on the
// thread holding `running`, skynet_monitor_check reads it from another (as skynet's own
// monitor thread does with its workers' monitors).
unsafe impl Send for Inline {}
// SAFETY: see `Send`; dispatching with `monitor` is serialised by `running`.
unsafe impl Sync for Inline {}

impl Drop for Inline {
    fn drop(&mut self) {
        if !self.monitor.is_null() {
            // SAFETY: made by skynet_monitor_new in init, freed once here.
            unsafe { (self.d.monitor_delete)(self.monitor) }
        }
    }
}

/// At most this many messages per round of events are run on the I/O thread, and for at
/// most [`INLINE_TIME`]; what is left goes to skynet's workers (woken as before).
pub(super) const INLINE_BUDGET: u32 = 256;
pub(super) const INLINE_TIME: Duration = Duration::from_micros(500);
/// One message that runs longer than this pauses inline dispatch, for
/// [`INLINE_PAUSE_MIN`] at first and twice as long each time another slow message follows
/// within [`INLINE_PAUSE_MEMORY`] (up to [`INLINE_PAUSE_MAX`]): an occasional long message
/// (a big sort, a GC step) costs little, a service that is often slow ends up leaving the
/// I/O thread alone.
pub(super) const INLINE_SLOW: Duration = Duration::from_millis(5);
pub(super) const INLINE_PAUSE_MIN: Duration = Duration::from_millis(100);
pub(super) const INLINE_PAUSE_MAX: Duration = Duration::from_secs(10);
pub(super) const INLINE_PAUSE_MEMORY: Duration = Duration::from_secs(10);
/// A message that has run this long on the I/O thread makes the engine's standby thread
/// serve the links until it ends (`Config::standby_after`; see [`Core::stalled`]).
pub(super) const STANDBY_AFTER: Duration = INLINE_SLOW;
/// skynet's monitor thread checks each worker every 5 s (skynet_start.c); the same
/// check runs on our monitor at the same pace while a message runs long.
pub(super) const MONITOR_CHECK_EVERY: Duration = Duration::from_secs(5);

impl Core {
    /// End of a round of events on the I/O thread: run what the round delivered (inline
    /// dispatch), or wake skynet's workers for it.
    pub(super) fn after_events(&self) {
        ON_IO_THREAD.with(|c| c.set(true));
        self.purge_closed();
        if !self.delivered.swap(false, Ordering::Relaxed) {
            return;
        }
        let Some(il) = self.inline.as_ref() else {
            return self.wake_workers();
        };
        let start = Instant::now();
        {
            let mut p = il.pause.lock();
            match p.until {
                Some(t) if start < t => {
                    drop(p);
                    return self.wake_workers();
                }
                Some(_) => p.until = None,
                None => {}
            }
        }
        // The standby thread runs this while the I/O thread is stuck in a message: the
        // monitor (and the I/O thread's batch) are in use, so skynet's workers take over.
        let Some(_running) = il.running.try_lock() else {
            return self.wake_workers();
        };
        let Round { queue: q, slow, end: t } = self.dispatch_round(il, start);
        if !q.is_null() {
            // SAFETY: a queue skynet_context_message_dispatch returned to us: giving it
            // back to the global queue is what the next dispatch call would do with it.
            unsafe { (il.d.globalmq_push)(q) };
            self.wake_workers();
        }
        if let Some(took) = slow {
            let len = il.pause.lock().slow_ended(Instant::now());
            self.log(&format!(
                "skcluster: a message took {} ms on the cluster I/O thread; running delivered messages there is paused for {} ms",
                took.as_millis(),
                len.as_millis()
            ));
        } else if t.duration_since(start) >= STANDBY_AFTER {
            // A long round without one slow message (many just under INLINE_SLOW): a stall
            // report it got is over.
            il.pause.lock().stall = None;
        }
        // Messages pushed while we dispatched that no dispatch saw.
        if self.delivered.swap(false, Ordering::Relaxed) {
            self.wake_workers();
        }
    }

    /// Runs delivered messages (inside one engine batch) until the global queue is empty,
    /// one is slow, or the budget is spent. The caller holds `il.running`.
    fn dispatch_round(&self, il: &Inline, start: Instant) -> Round {
        let mut q: *mut c_void = std::ptr::null_mut();
        let mut n = 0;
        let mut slow = None;
        // One clock read per message: each iteration starts where the previous one ended.
        let mut t = start;
        crate::engine::batch(|| loop {
            // `q` is NULL or the queue the previous call returned, which skynet hands to the
            // dispatching thread (not in the global queue) until it is passed back here or
            // pushed back by the caller.
            // SAFETY: the host's skynet_context_message_dispatch (skynet_server.c); `monitor`
            // is ours; `q` as above.
            q = unsafe { (il.d.dispatch)(il.monitor, q, -1) };
            let mut now = Instant::now();
            if now.duration_since(t) > INLINE_SLOW {
                slow = Some(now.duration_since(t));
            }
            n += 1;
            if let (Some(own), false) = (il.d.own_queue, q.is_null()) {
                let before = q;
                q = self.run_own_queue(&own, q, &mut n);
                if q != before {
                    now = Instant::now();
                }
            }
            t = now;
            if q.is_null()
                || slow.is_some()
                || n >= INLINE_BUDGET
                || now.duration_since(start) > INLINE_TIME
                || self.ctx_gate.is_closed()
            {
                break;
            }
        });
        Round { queue: q, slow, end: t }
    }

    /// The engine's standby thread reports that the I/O thread has been inside one round
    /// of inline dispatch for at least [`STANDBY_AFTER`] (the standby serves the links
    /// meanwhile). The first report pauses inline dispatch at once (the slow message is
    /// logged when it ends, as before); then, every [`MONITOR_CHECK_EVERY`], skynet's own
    /// endless-loop check runs on our monitor, so a message stuck on the I/O thread is
    /// logged ("maybe in an endless loop") and marked as one on a worker would be.
    pub(super) fn stalled(&self) {
        let Some(il) = self.inline.as_ref() else {
            return;
        };
        if !il.running.is_locked() {
            // Not in a dispatch (it has just ended): nothing to report.
            return;
        }
        let now = Instant::now();
        let check = {
            let mut p = il.pause.lock();
            match p.stall {
                None => {
                    p.stall = Some(now);
                    p.start(now);
                    true
                }
                Some(t) => {
                    let due = now.duration_since(t) >= MONITOR_CHECK_EVERY;
                    if due {
                        p.stall = Some(now);
                    }
                    due
                }
            }
        };
        if let (true, Some(check)) = (check, il.d.monitor_check) {
            // SAFETY: skynet_monitor_check only reads and writes the monitor's fields (as
            // skynet's monitor thread does concurrently with a worker's dispatch); the
            // monitor lives as long as `il`, which outlives this call.
            unsafe { check(il.monitor) };
        }
    }

    /// Inline dispatch was handed `q` as the next queue to run: when it is this
    /// service's own, its messages go straight to the callback, without
    /// `skynet_context_message_dispatch` around each (which costs two
    /// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` syscalls per message when skynet's `profile`
    /// is on: the larger part of a small call's cost on the serving node). Skynet's
    /// protocol for a queue it handed out is kept: pop until empty (`skynet_mq_pop` then
    /// takes it out of the global queue), or stop with the queue still ours. Returns the
    /// queue to go on with (the next one from the global queue when ours ran empty). The
    /// service's CPU and message counts in skynet's `STAT` leave these messages out.
    fn run_own_queue(&self, own: &OwnQueue, q: *mut c_void, n: &mut u32) -> *mut c_void {
        // SAFETY: `q` is a live queue skynet handed us (see after_events).
        if unsafe { (own.handle)(q) } != self.self_handle.load(Ordering::Relaxed) {
            return q;
        }
        let mut q = q;
        self.inst_gate.run(|| {
            let inst = self.inst.load(Ordering::SeqCst);
            if inst.is_null() {
                return;
            }
            // SAFETY: the instance stays alive while we are inside inst_gate (release
            // closes it first and waits).
            let inst = unsafe { &*inst };
            while *n < INLINE_BUDGET {
                let mut m = SkynetMessage::empty();
                // SAFETY: `q` is ours (handed out by skynet, not in the global queue); `m`
                // is a valid out-parameter.
                if unsafe { (own.pop)(q, &mut m) } != 0 {
                    // Empty: skynet_mq_pop took it out of the global queue's care.
                    // SAFETY: no precondition.
                    q = unsafe { (own.globalmq_pop)() };
                    break;
                }
                *n += 1;
                let (ty, sz) = m.type_and_size();
                let data: &[u8] = if m.data.is_null() || sz == 0 {
                    &[]
                } else {
                    // SAFETY: a skynet message of `sz` bytes, ours until freed below or kept.
                    unsafe { std::slice::from_raw_parts(m.data as *const u8, sz) }
                };
                let kept = catch(0, || inst.on_message(ty, m.session, m.source, m.data, data));
                if kept == 0 && !m.data.is_null() {
                    // SAFETY: as dispatch_message does when the callback returns 0.
                    unsafe { (self.api.free)(m.data) };
                }
            }
        });
        q
    }
}

/// What one round of inline dispatch left.
struct Round {
    /// The queue skynet handed out and we stopped with (NULL: none).
    queue: *mut c_void,
    /// How long the slow message ran, if one did.
    slow: Option<Duration>,
    /// When the last message ended.
    end: Instant,
}

/// The inline dispatch of this host, unless the host lacks it or the skynet config says
/// `skcluster_inline = false`.
pub(super) fn inline_dispatch(api: &Api, ctx: *mut c_void) -> Option<Inline> {
    let d = api.dispatch?;
    if matches!(config_value(api, ctx, "skcluster_inline").as_deref(), Some("false" | "0")) {
        return None;
    }
    // SAFETY: exported by skynet; returns a zeroed monitor we own (freed in Inline::drop).
    let monitor = unsafe { (d.monitor_new)() };
    if monitor.is_null() {
        return None;
    }
    Some(Inline { d, monitor, running: Mutex::new(()), pause: Mutex::new(Pause::default()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_doubles_while_slow_messages_keep_coming() {
        let mut p = Pause::default();
        let t0 = Instant::now();
        assert_eq!(p.start(t0), INLINE_PAUSE_MIN);
        assert_eq!(p.start(t0 + Duration::from_secs(1)), INLINE_PAUSE_MIN * 2);
        assert_eq!(p.start(t0 + Duration::from_secs(2)), INLINE_PAUSE_MIN * 4);
        let mut t = t0 + Duration::from_secs(3);
        for _ in 0..20 {
            p.start(t);
            t += Duration::from_secs(1);
        }
        assert_eq!(p.last.unwrap().0, INLINE_PAUSE_MAX, "capped");
        assert_eq!(p.until, Some(t - Duration::from_secs(1) + INLINE_PAUSE_MAX));
        // a slow message long after the last one starts over
        assert_eq!(p.start(t + INLINE_PAUSE_MEMORY), INLINE_PAUSE_MIN);
    }

    /// pause's length when it ends, counted from the end; one that was not reported
    /// starts a pause as `start` does.
    #[test]
    fn a_stalled_message_is_paused_for_once() {
        let mut p = Pause::default();
        let t0 = Instant::now();
        p.stall = Some(t0);
        assert_eq!(p.start(t0), INLINE_PAUSE_MIN);
        let end = t0 + Duration::from_secs(7);
        assert_eq!(p.slow_ended(end), INLINE_PAUSE_MIN);
        assert_eq!(p.until, Some(end + INLINE_PAUSE_MIN));
        assert!(p.stall.is_none());
        // the next slow message (not reported) doubles
        assert_eq!(p.slow_ended(end + Duration::from_secs(1)), INLINE_PAUSE_MIN * 2);
    }
}
