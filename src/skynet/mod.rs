//! The engine as a skynet C service (`cservice/skcluster.so`, a copy of or symlink to
//! `libskynet_cluster.so`), driven by `lualib/skynet/cluster.lua`.
//!
//! # Interface
//!
//! skynet loads a C service by file name from `cpath` and calls `skcluster_create`,
//! `skcluster_init(inst, ctx, parm)`, `skcluster_release`, `skcluster_signal`. The Lua
//! side (`service/skclusterd.lua`) launches it once per process.
//!
//! Messages the service accepts (all `PTYPE_LUA`, values in skynet.pack format):
//!
//! * `node, address, args...` (first value a string): `cluster.call` when the message has
//!   a session, `cluster.send` when it has none. `address` is an integer or a name; the
//!   rest of the message, byte for byte, is the request payload (`skynet.pack(args...)`:
//!   skynet.pack of several values is the concatenation of each value's bytes). The
//!   answer goes **straight to the caller**, one `PTYPE_RESPONSE` message with the remote
//!   payload and the caller's session (so `skynet.call` unpacks it as stock's does), or
//!   one `PTYPE_ERROR` (the caller raises its own `skynet.lua: call failed`, as with stock).
//! * `cmd, ...` (first value an integer, see [`Cmd`]): reload, listen, register, ... The
//!   answer is a `PTYPE_RESPONSE` with packed values, or `PTYPE_ERROR`.
//! * `PTYPE_TRACE` (what `skynet.call` sends before a call from a traced coroutine): the
//!   tag goes with the next call from the same source, as a `0x04` trace frame.
//!
//! # Threads and message flow
//!
//! * `cluster.call`/`cluster.send` normally hand the request to the engine from the
//!   caller's own thread (`direct.rs`): no message to this service at all. Otherwise
//!   (traced calls) a caller's message is handled on the thread that runs this service.
//!   Either way the engine encodes the request into the link's send buffer and (if the
//!   socket is idle) writes it right there. No thread hop, no Lua.
//! * The engine's I/O thread reads the answer and `skynet_send`s it to the caller.
//! * An inbound request is read on the I/O thread, resolved (`@name` by the engine,
//!   `.name`/`:hex` with `skynet_queryname`, numbers as is) and sent to the target as one
//!   `PTYPE_LUA` message with a session of ours. The target's `PTYPE_RESPONSE`/`PTYPE_ERROR`
//!   comes back to this service, which writes the answer frame to the socket.
//!
//! So one `cluster.call` costs at most one skynet message each way on each node: on the
//! calling node only the answer is a message, on the serving node the request and the
//! answer.
//!
//! # Running delivered messages at once
//!
//! After a round of socket events that delivered messages, the I/O thread runs them
//! itself, as one more skynet worker would: `skynet_context_message_dispatch` with a
//! `skynet_monitor` of its own, up to [`INLINE_BUDGET`] messages or [`INLINE_TIME`]; a
//! queue it stops with goes back to skynet's global queue and the workers are woken for
//! it. So the target's handler (and then this service, with the target's answer) runs
//! without a thread hop: a single call crosses two threads per round trip (each node's
//! I/O thread) instead of six (I/O thread, socket thread, worker on each node).
//! skynet's rule of one thread per service at a time holds: the thread takes queues from
//! the global queue like a worker.
//!
//! When skynet hands the I/O thread this service's own queue, its messages (the targets'
//! answers) go straight to the callback, without `skynet_context_message_dispatch` and
//! its two `profile` clock syscalls per message ([`Core::run_own_queue`]); skynet's queue
//! protocol (pop until empty, or give the queue back) is kept.
//!
//! A slow handler must not hold up the node's cluster I/O: once a message has run
//! [`STANDBY_AFTER`] on the I/O thread, the engine's standby thread serves the links
//! until it ends (`engine/standby.rs`), inline dispatch pauses (100 ms, then doubling
//! while slow messages keep coming, up to 10 s; logged) so delivered messages go to
//! skynet's workers, and skynet's endless-loop check runs on our monitor every 5 s, as
//! skynet's monitor thread does for its workers ([`Core::stalled`]).
//! `skcluster_inline = false` in the skynet config turns inline dispatch off. Hosts that
//! do not export the four functions (the CI double does; skynet 1.x and master do) run
//! without it.
//!
//! # Batching
//!
//! The callback does not write to sockets itself: it keeps the skynet message (returns 1)
//! and, with the first kept message, sends itself one empty `PTYPE_TEXT` "flush token".
//! That token comes back after every message already queued for the service; at that
//! point everything kept is encoded inside one engine `batch`, so a burst of answers,
//! calls or pushes leaves in one `write` per link, and the payload is copied once (from
//! the skynet message into the link's send buffer). When the last flush carried a single
//! item, traffic is sparse: the next item is handled at once, without the token (so a
//! lone call pays no extra message), unless it follows the previous one within 50 µs,
//! which switches back to batching. Control messages flush first, so they keep their
//! order.
//!
//! # Waking skynet's workers
//!
//! A message pushed into skynet from a foreign thread does not wake a sleeping worker
//! (only skynet's socket and timer threads do; the timer thread every 2.5 ms). So the
//! service binds one end of a socketpair into skynet's socket server
//! (`skynet_socket_bind`); when the I/O thread leaves delivered messages to the workers
//! (inline dispatch off, paused or over its budget) it writes one byte to the other end,
//! at most one byte in flight: skynet's socket thread reads it, forwards it to this
//! service, and wakes a worker, as it does for any socket data. Without
//! `skynet_socket_bind` (e.g. the test double) the service runs without it.
//!
//! # Configuration (issue 12)
//!
//! Keys of the skynet config file, read once when the service starts (`skynet_getenv`,
//! else `skynet_command(ctx, "GETENV", ...)`). A value that does not parse is logged
//! (`skcluster: bad config KEY = "VALUE": must be ...`, every bad key) and the service
//! does not start (`skcluster_init` fails, so `require "skynet.cluster"` fails with it);
//! the keys that were given are logged once at start (`skcluster: config KEY = VALUE, ...`).
//! Bytes are a whole number (a Lua expression such as `64 * 1024 * 1024` is fine) or a
//! string with a `K`/`M`/`G` suffix (`"512M"`); seconds may have a fraction; `0` (or
//! `false`) turns a timer off.
//!
//! * `cluster_max_links` (16384): links open at once, both directions, node-wide. A
//!   connection accepted beyond it is closed at once; a connect beyond it fails.
//! * `cluster_max_reassembly` (224 MiB): bytes of multi-part messages being joined, all
//!   links together. A multi-part request beyond it is answered with an error; the link
//!   stays up.
//! * `cluster_max_send` (224 MiB): bytes queued to send, all links together. Beyond it,
//!   the links holding 1 MiB or more are the ones refused (their calls and pushes fail
//!   `overloaded`; accepted links stop being read until their answers drain).
//! * `cluster_max_send_queue` (64 MiB): bytes queued to send on one link before its calls
//!   and pushes fail `overloaded` (an accepted link: reading pauses).
//! * `cluster_max_message` (64 MiB): the largest multi-part message a peer may send; a
//!   larger header drops the link.
//! * `cluster_max_inflight` (65536): requests of one accepted link in service at once
//!   before the link stops being read.
//! * `cluster_multi_timeout` (60 s): how long a peer may leave a multi-part message
//!   unfinished before its link is closed.
//! * `cluster_idle_timeout` (off): an accepted link silent this long is closed (stock
//!   never closes one).
//! * `cluster_heartbeat` (off, as stock): an outbound link silent this long is probed with
//!   a name query (any stock node answers it, `name not found`); no answer within as long
//!   again: the link is dead, its pending calls fail at once (`link down: heartbeat: ...`)
//!   and the next call reconnects.
//!
//! The per-link send queue was 1 GiB before the node-wide budget existed; against the
//! 224 MiB node total such a bound is never reached (the node total refuses first), and
//! it would let one peer that stops reading hold the whole node budget. 64 MiB (the
//! engine's default) leaves a stalled peer a quarter of it. `make ab`'s heaviest row
//! (1 MiB calls, 256 in flight on one link) ran without one refused call even with 8 MiB
//! per link: a peer that reads keeps the queue short.
//!
//! `cluster.open(port, maxclient)` keeps at most `maxclient - 1` clients per listener,
//! default `maxclient` 1024, exactly as stock: its gate counts a new client before
//! comparing (`client_number >= maxclient` shuts it). A connection beyond it is closed at
//! once. The node-wide `cluster_max_links` applies on top.
//!
//! # Link events
//!
//! [`LinkHook`] is set on the engine: every link going up or down (outbound: a node of the
//! cluster config; inbound: a peer connected to one of our listeners) is queued for each
//! subscribed service and delivered with `skynet_send`, from the I/O thread, without
//! blocking it (one short lock; the subscriber's queue keeps at most
//! [`LINK_EVENTS_KEPT`] events, more are counted as lost). A subscriber long-polls, as
//! skynet's own `sharedata` / `datacenter.wait` do: [`Cmd::LinkEvents`] `"start"`
//! subscribes the caller (its first events are an `up` for each link open at that moment),
//! `"poll"` is answered with the events queued since the last poll, at once or when the
//! next one comes (one `PTYPE_RESPONSE`: an array of event tables and the number lost),
//! `"stop"` ends it (a waiting poll is answered with no values). `cluster.linkevent(f)`
//! in `lualib/skynet/cluster.lua` runs that loop and calls `f(event)`. A subscriber that
//! exits is forgotten when the answer to its waiting poll cannot be delivered; one that
//! exits with no poll waiting (inside `f`) keeps its queue, at most [`LINK_EVENTS_KEPT`]
//! events, until this service ends. Polls still waiting at release get `PTYPE_ERROR`.
//!
//! Inbound calls whose link closed before their target answered are dropped from the
//! table of calls in service at the end of that round of events (a target that never
//! answers, e.g. skynet's logger, would otherwise keep them forever); the answer, if it
//! ever comes, is freed.

mod api;
mod direct;
mod settings;

use crate::engine::{
    minipack, Address, CallError, CallOpts, Config, Handle, Health, Inbound, LinkDir, LinkEvent, LinkHook, Node,
    NodeAddr, Reply, Responder, Service,
};
use crate::seri::{self, Value};
use api::*;

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{c_char, c_int, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Control commands (the first packed value of a control message).
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `reload(table)`: node map and `__` options, as `cluster.reload`. Answers `nil`.
    Reload = 1,
    /// `listen(host, port)` or `listen(nodename)`: as `cluster.open`. Answers `host, port`.
    Listen = 2,
    /// `register(name, addr|nil)`: as `cluster.register` (addr defaults to the sender).
    Register = 3,
    /// `unregister(name)`.
    Unregister = 4,
    /// `nodestate(node)`: `"absent"`, `"down"` or `"up"` (cluster.lua's error path).
    NodeState = 5,
    /// Answers with `PTYPE_ERROR`: lets the launcher learn skynet.lua's `call failed` text.
    Probe = 6,
    /// `texts(call_failed, invalid_address, open_answers_address)`: the error texts stock's
    /// clusteragent would send for a target that raised / an unknown local name (skynet.lua
    /// positions), and whether this skynet's `cluster.open(nodename)` answers host and port.
    Texts = 7,
    /// `stats()`: `calls, pushes` served (inbound) and made (outbound).
    Stats = 8,
    /// `linkevents("start" | "poll" | "stop")`: link events for the calling service (see
    /// "Link events"). A `"poll"` may be answered later, when an event comes.
    LinkEvents = 9,
    /// `health()`: a table of the engine's [`Health`] counters and limits, plus
    /// `inflight` (inbound calls waiting for their target), `abandoned` (inbound calls
    /// dropped because their link closed first) and `link_subscribers`.
    Health = 10,
}

#[derive(Clone, Copy)]
struct Ctx(*mut c_void);
// A skynet_context pointer is used only for skynet_send / skynet_error / skynet_queryname,
// which skynet makes safe from any thread (skynet's own socket and timer threads call them);
// it stays valid until `skcluster_release`, which joins the engine's I/O thread first.
// SAFETY: per the above, a Ctx may move to and be used from the engine's threads.
unsafe impl Send for Ctx {}
// SAFETY: see `Send`.
unsafe impl Sync for Ctx {}

struct Texts {
    call_failed: Vec<u8>,
    invalid_address: Vec<u8>,
    /// `cluster.open(nodename)` answers the node's host and port (skynet 1.x's clusterd)
    /// instead of the name and nil (skynet master's).
    open_answers_address: bool,
}

/// What the worker side and the I/O side share.
struct Core {
    api: Api,
    ctx: Ctx,
    /// Inbound calls waiting for their target's answer, by our skynet session.
    inflight: Mutex<HashMap<i32, InCall>>,
    /// Inbound links closed since the last purge of `inflight` (see "Link events").
    closed_links: Mutex<Vec<u64>>,
    /// Inbound calls dropped because their link closed before the target answered.
    abandoned: AtomicU64,
    /// Link events for subscribed services.
    links: Mutex<LinkWatch>,
    next_session: AtomicU32,
    texts: RwLock<Texts>,
    wake_fd: c_int,
    wake_pending: AtomicBool,
    /// The I/O thread pushed messages into skynet during the current round of events.
    delivered: AtomicBool,
    /// Uses of the skynet context from any thread; closed by `skcluster_release` (the
    /// context is gone after it, nothing may be sent with it).
    ctx_gate: Gate,
    /// `None`: the host cannot let us dispatch (or the user turned it off).
    inline: Option<Inline>,
    served_calls: AtomicU32,
    served_pushes: AtomicU32,
    /// Calls and pushes made (outbound), counted without a lock on the hot path.
    made_calls: AtomicU64,
    made_pushes: AtomicU64,
    /// The engine, for calls and pushes (from the service's callback and from callers'
    /// workers, see `direct.rs`); `None` once released.
    handle: RwLock<Option<Handle>>,
    st: Mutex<State>,
    /// The service's own handle (flush tokens are sent to it).
    self_handle: AtomicU32,
    /// The instance, for the I/O thread reading the service's own queue, used inside
    /// `inst_gate`, which `skcluster_release` closes first.
    inst: std::sync::atomic::AtomicPtr<Inst>,
    inst_gate: Gate,
    /// Requests from callers' workers written later, in one go: see [`Core::submit_direct`].
    direct: Mutex<DirectBatch>,
}

#[derive(Default)]
struct DirectBatch {
    /// Links with requests queued and not written yet.
    pending: crate::engine::Deferred,
    /// A flush token is on its way to the service.
    scheduled: bool,
    /// When the last direct request came.
    last: Option<Instant>,
}

thread_local! {
    /// True on the engine's I/O thread (set when it first calls into this service).
    static ON_IO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many uses of each [`Gate`] this thread is inside.
    static CTX_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    static INST_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Something other threads may use until `skcluster_release` takes it away (the skynet
/// context, the instance): uses are counted, and [`Gate::close`] returns once none runs
/// on another thread. A use on the closing thread itself (skynet entered the release from
/// inside one) is not waited for: it is further up this thread's stack.
struct Gate {
    users: std::sync::atomic::AtomicUsize,
    closed: AtomicBool,
    depth: &'static std::thread::LocalKey<std::cell::Cell<usize>>,
}

impl Gate {
    fn new(depth: &'static std::thread::LocalKey<std::cell::Cell<usize>>) -> Gate {
        Gate { users: std::sync::atomic::AtomicUsize::new(0), closed: AtomicBool::new(false), depth }
    }

    /// Runs `f` unless the gate is closed.
    fn run<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        struct Leave<'a>(&'a Gate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.depth.with(|d| d.set(d.get() - 1));
                self.0.users.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // SeqCst on both sides: either this use sees `closed`, or `close` sees the use.
        self.users.fetch_add(1, Ordering::SeqCst);
        self.depth.with(|d| d.set(d.get() + 1));
        let _leave = Leave(self);
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        Some(f())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let mine = self.depth.with(|d| d.get());
        while self.users.load(Ordering::SeqCst) > mine {
            std::thread::yield_now();
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// The I/O thread as a skynet worker for the messages it has just delivered: see
/// "Running delivered messages at once" in the module docs.
struct Inline {
    d: Dispatch,
    /// A `skynet_monitor` of our own: `skynet_context_message_dispatch` records in it which
    /// message runs (skynet's monitor thread only watches its workers' monitors).
    monitor: *mut c_void,
    /// Held by the thread that dispatches with `monitor`: the I/O thread, or the engine's
    /// standby thread while the I/O thread is stuck in a long message (then the standby
    /// finds it taken and leaves delivered messages to skynet's workers).
    running: Mutex<()>,
    pause: Mutex<Pause>,
}

/// Inline dispatch pauses after a slow message: see [`INLINE_SLOW`].
#[derive(Default)]
struct Pause {
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
const INLINE_BUDGET: u32 = 256;
const INLINE_TIME: Duration = Duration::from_micros(500);
/// One message that runs longer than this pauses inline dispatch, for
/// [`INLINE_PAUSE_MIN`] at first and twice as long each time another slow message follows
/// within [`INLINE_PAUSE_MEMORY`] (up to [`INLINE_PAUSE_MAX`]): an occasional long message
/// (a big sort, a GC step) costs little, a service that is often slow ends up leaving the
/// I/O thread alone.
const INLINE_SLOW: Duration = Duration::from_millis(5);
const INLINE_PAUSE_MIN: Duration = Duration::from_millis(100);
const INLINE_PAUSE_MAX: Duration = Duration::from_secs(10);
const INLINE_PAUSE_MEMORY: Duration = Duration::from_secs(10);
/// A message that has run this long on the I/O thread makes the engine's standby thread
/// serve the links until it ends (`Config::standby_after`; see [`Core::stalled`]).
const STANDBY_AFTER: Duration = INLINE_SLOW;
/// skynet's monitor thread checks each worker every 5 s (skynet_start.c); the same
/// check runs on our monitor at the same pace while a message runs long.
const MONITOR_CHECK_EVERY: Duration = Duration::from_secs(5);

impl Core {
    /// Runs `f` with the service's skynet context, unless the service is released.
    /// Callers' workers (direct path) use the context concurrently with
    /// `skcluster_release`, which closes `ctx_gate` (waiting until no `f` runs), so the
    /// context is never used after skynet frees it.
    fn with_ctx<R>(&self, f: impl FnOnce(*mut c_void) -> R) -> Option<R> {
        self.ctx_gate.run(|| f(self.ctx.0))
    }

    /// `skynet_send` copying `data` (skynet allocates the message itself); -1 when it
    /// failed or the service is released.
    fn send(&self, dest: u32, ty: c_int, session: c_int, data: &[u8]) -> c_int {
        let p = if data.is_empty() { std::ptr::null_mut() } else { data.as_ptr() as *mut c_void };
        // SAFETY: ctx is live inside with_ctx; without PTYPE_TAG_DONTCOPY skynet copies `sz`
        // bytes from `p` and never keeps or frees `p`; NULL data with size 0 is an empty message.
        self.with_ctx(|ctx| unsafe { (self.api.send)(ctx, 0, dest, ty, session, p, data.len()) }).unwrap_or(-1)
    }

    fn log(&self, msg: &str) {
        let Ok(c) = CString::new(msg.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: format "%s" with one NUL-terminated string argument; ctx is live inside with_ctx.
        self.with_ctx(|ctx| unsafe { (self.api.error)(ctx, c"%s".as_ptr(), c.as_ptr()) });
    }

    /// After pushing messages into skynet: make sure they run. On the I/O thread this is
    /// done once per round of events, by [`Core::after_events`]; elsewhere (a skynet
    /// worker, which goes on dispatching anyway) the workers are woken at once.
    fn wake(&self) {
        if ON_IO_THREAD.with(|c| c.get()) {
            self.delivered.store(true, Ordering::Relaxed);
        } else {
            self.wake_workers();
        }
    }

    /// Wakes a sleeping skynet worker through skynet's socket thread (see "Waking skynet's
    /// workers").
    fn wake_workers(&self) {
        if self.wake_fd >= 0 && !self.wake_pending.swap(true, Ordering::SeqCst) {
            // SAFETY: wake_fd is our open, non-blocking end of the socketpair; one byte
            // from a valid buffer. A full buffer (EAGAIN) means wake-ups are pending anyway.
            unsafe { libc::write(self.wake_fd, b"w".as_ptr().cast(), 1) };
        }
    }

    /// End of a round of events on the I/O thread: run what the round delivered (inline
    /// dispatch), or wake skynet's workers for it.
    fn after_events(&self) {
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
        let mut q: *mut c_void = std::ptr::null_mut();
        let mut n = 0;
        let mut slow = None;
        // One clock read per message: each iteration starts where the previous one ended.
        let mut t = start;
        crate::engine::batch(|| loop {
            // `q` is NULL or the queue the previous call returned, which skynet hands to the
            // dispatching thread (not in the global queue) until it is passed back here or
            // pushed back below.
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

    /// Sends a call (`session != 0`) or push; holds it when the node has no address yet
    /// and `__nowaiting` is off, as stock does.
    fn submit(
        self: &Arc<Self>,
        node: &str,
        source: u32,
        session: c_int,
        addr: Address<'_>,
        payload: &[u8],
        trace: Option<&[u8]>,
    ) {
        let core = self;
        let guard = self.handle.read();
        let Some(handle) = guard.as_ref() else {
            // Being released: the caller gets its error while the context still lets us.
            drop(guard);
            if session != 0 {
                self.send(source, PTYPE_ERROR, session, &[]);
            }
            return;
        };
        let r = if session != 0 {
            let c = core.clone();
            let name = node.to_string();
            handle.call_with(node, addr, payload, CallOpts { timeout: None, trace }, move |r| {
                c.reply(&name, source, session, r)
            })
        } else {
            handle.push(node, addr, payload)
        };
        drop(guard);
        let made = if session != 0 { &self.made_calls } else { &self.made_pushes };
        made.fetch_add(1, Ordering::Relaxed);
        let e = match r {
            Ok(()) => return,
            Err(e) => e,
        };
        if matches!(e, CallError::NodeAbsent(_)) {
            let mut st = self.st.lock();
            if !st.nowaiting {
                let q = st.waiting.entry(node.to_string()).or_default();
                if q.is_empty() {
                    core.log(&format!("Waiting for cluster node [{node}]"));
                }
                let addr = match addr {
                    Address::Id(n) => OwnedAddr::Id(n),
                    Address::Name(n) => OwnedAddr::Name(n.to_vec()),
                };
                q.push(Waiting { source, session, addr, payload: payload.to_vec(), trace: trace.map(|t| t.to_vec()) });
                return;
            }
        }
        let what = if session != 0 { "call" } else { "push" };
        core.log(&format!("cluster {what} to [{node}] failed: {}", describe(&e)));
        if session != 0 {
            core.send(source, PTYPE_ERROR, session, &[]);
        }
    }

    /// Resubmits the held requests of nodes that now have an address (or all of them once
    /// `__nowaiting` is on: they fail as stock's do).
    fn flush_waiting(self: &Arc<Self>) {
        let guard = self.handle.read();
        let Some(handle) = guard.as_ref() else { return };
        let ready: Vec<(String, Vec<Waiting>)> = {
            let mut st = self.st.lock();
            let all = st.nowaiting;
            let names: Vec<String> =
                st.waiting.keys().filter(|n| all || handle.node_addr(n) != NodeAddr::Absent).cloned().collect();
            names.into_iter().filter_map(|n| st.waiting.remove(&n).map(|q| (n, q))).collect()
        };
        let ready: Vec<(String, Option<String>, Vec<Waiting>)> = ready
            .into_iter()
            .map(|(n, q)| {
                let a = match handle.node_addr(&n) {
                    NodeAddr::At(a) => Some(a),
                    _ => None,
                };
                (n, a, q)
            })
            .collect();
        drop(guard);
        for (node, a, q) in ready {
            if let Some(a) = a {
                self.log(&format!("Cluster node [{node}] resolved : {a}"));
            }
            for w in q {
                self.submit(&node, w.source, w.session, w.addr.as_addr(), &w.payload, w.trace.as_deref());
            }
        }
    }

    /// The engine's standby thread reports that the I/O thread has been inside one round
    /// of inline dispatch for at least [`STANDBY_AFTER`] (the standby serves the links
    /// meanwhile). The first report pauses inline dispatch at once (the slow message is
    /// logged when it ends, as before); then, every [`MONITOR_CHECK_EVERY`], skynet's own
    /// endless-loop check runs on our monitor, so a message stuck on the I/O thread is
    /// logged ("maybe in an endless loop") and marked as one on a worker would be.
    fn stalled(&self) {
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

    /// A call or push from a caller's own thread (`direct.rs`). On the I/O thread it joins
    /// the round's batch. On a skynet worker a lone request is written at once; one that
    /// follows another within [`BURST`] is queued on its link and written when the flush
    /// token sent to the service comes back (after the messages queued meanwhile), so a
    /// burst of pushes or calls leaves in one write per link, as on the message path.
    fn submit_direct(self: &Arc<Self>, node: &str, source: u32, session: c_int, addr: Address<'_>, payload: &[u8]) {
        if ON_IO_THREAD.with(|c| c.get()) {
            return self.submit(node, source, session, addr, payload, None);
        }
        let now = Instant::now();
        let burst = {
            let mut d = self.direct.lock();
            let burst = d.scheduled || d.last.is_some_and(|t| now.duration_since(t) < BURST);
            d.last = Some(now);
            burst
        };
        if !burst {
            return self.submit(node, source, session, addr, payload, None);
        }
        let ((), queued) = crate::engine::batch_deferred(|| self.submit(node, source, session, addr, payload, None));
        let mut d = self.direct.lock();
        d.pending.merge(queued);
        if !d.scheduled && !d.pending.is_empty() {
            d.scheduled = true;
            drop(d);
            if self.send_flush_token() < 0 {
                self.flush_direct();
            }
        }
    }

    /// An empty `PTYPE_TEXT` to ourselves: it comes back after the messages queued for us
    /// meanwhile, and then kept work is written (see "Batching").
    fn send_flush_token(&self) -> c_int {
        self.send(self.self_handle.load(Ordering::Relaxed), PTYPE_TEXT, 0, &[])
    }

    /// The flush token came back: write what direct requests queued.
    fn flush_direct(&self) {
        let pending = {
            let mut d = self.direct.lock();
            d.scheduled = false;
            std::mem::take(&mut d.pending)
        };
        pending.flush();
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

    fn session(&self) -> i32 {
        loop {
            let s = self.next_session.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff;
            if s != 0 {
                return s as i32;
            }
        }
    }

    /// The skynet handle of a request's target; `None` when skynet knows no such service.
    fn resolve(&self, addr: Address<'_>) -> Option<u32> {
        match addr {
            Address::Id(0) => None,
            Address::Id(n) => Some(n),
            Address::Name(n) if matches!(n.first(), Some(b'.') | Some(b':')) => {
                let c = CString::new(n).ok()?;
                // SAFETY: NUL-terminated name; ctx is live inside with_ctx; skynet_queryname
                // only reads the handle table under its lock (or parses `:hex`).
                let h = self.with_ctx(|ctx| unsafe { (self.api.queryname)(ctx, c.as_ptr()) })?;
                (h != 0).then_some(h)
            }
            Address::Name(_) => None,
        }
    }

    /// Delivers the end of an outbound call to the Lua caller.
    fn reply(&self, node: &str, source: u32, session: c_int, r: Result<Reply<'_>, CallError>) {
        match r {
            Ok(p) => {
                self.send(source, PTYPE_RESPONSE, session, &p);
            }
            Err(e) => {
                self.log(&format!("cluster call to [{node}] failed: {}", describe(&e)));
                self.send(source, PTYPE_ERROR, session, &[]);
            }
        }
        self.wake();
    }
}

impl Core {
    /// The engine's link hook (I/O thread, or the thread of a reload): queue the event for
    /// every subscriber and answer the polls that wait. Never blocks: one short lock, and
    /// `skynet_send`s after it.
    fn on_link_event(&self, ev: &LinkEvent) {
        if ev.dir == LinkDir::Inbound && ev.down.is_some() {
            self.closed_links.lock().push(ev.link);
        }
        let answers: Vec<(u32, c_int, Vec<u8>)> = {
            let mut w = self.links.lock();
            if ev.is_up() {
                w.up.insert(ev.link, ev.clone());
            } else {
                w.up.remove(&ev.link);
            }
            w.subs
                .iter_mut()
                .filter_map(|(&h, sub)| {
                    sub.push(ev);
                    let session = sub.waiting.take()?;
                    Some((h, session, sub.take()))
                })
                .collect()
        };
        self.answer_polls(answers);
    }

    /// Sends poll answers; a subscriber that no longer exists is forgotten.
    fn answer_polls(&self, answers: Vec<(u32, c_int, Vec<u8>)>) {
        if answers.is_empty() {
            return;
        }
        let gone: Vec<u32> = answers
            .into_iter()
            .filter(|(h, session, m)| self.send(*h, PTYPE_RESPONSE, *session, m) < 0)
            .map(|a| a.0)
            .collect();
        if !gone.is_empty() {
            let mut w = self.links.lock();
            for h in gone {
                w.subs.remove(&h);
            }
        }
        self.wake();
    }

    /// [`Cmd::LinkEvents`] from `source`; `session` is its call's (0: a send, ignored).
    fn link_events_cmd(&self, source: u32, session: c_int, what: &[u8]) -> Result<(), String> {
        if session == 0 {
            return Ok(());
        }
        // (destination, session, message); an empty message: no values (no more events).
        let mut answers: Vec<(u32, c_int, Vec<u8>)> = Vec::new();
        {
            let mut w = self.links.lock();
            match what {
                b"start" => {
                    let queue: VecDeque<LinkEvent> = w.up.values().cloned().collect();
                    let old = w.subs.insert(source, Subscriber { waiting: None, queue, lost: 0 });
                    if let Some(prev) = old.and_then(|o| o.waiting) {
                        answers.push((source, prev, Vec::new()));
                    }
                    answers.push((source, session, Vec::new()));
                }
                b"stop" => {
                    if let Some(prev) = w.subs.remove(&source).and_then(|o| o.waiting) {
                        answers.push((source, prev, Vec::new()));
                    }
                    answers.push((source, session, Vec::new()));
                }
                b"poll" => match w.subs.get_mut(&source) {
                    None => answers.push((source, session, Vec::new())),
                    Some(sub) => {
                        if let Some(prev) = sub.waiting.take() {
                            answers.push((source, prev, Vec::new()));
                        }
                        if sub.queue.is_empty() && sub.lost == 0 {
                            sub.waiting = Some(session);
                        } else {
                            answers.push((source, session, sub.take()));
                        }
                    }
                },
                other => {
                    return Err(format!(
                        "skcluster: linkevents: unknown request {:?} (start, poll or stop)",
                        String::from_utf8_lossy(other)
                    ))
                }
            }
        }
        for (h, session, m) in answers {
            self.send(h, PTYPE_RESPONSE, session, &m);
        }
        Ok(())
    }

    /// Drops the inbound calls whose link has closed (their targets have not answered):
    /// once per round of events that closed links. The responders go with no answer to
    /// send (their links are gone).
    fn purge_closed(&self) {
        let closed: HashSet<u64> = {
            let mut c = self.closed_links.lock();
            if c.is_empty() {
                return;
            }
            c.drain(..).collect()
        };
        let dropped: Vec<InCall> = {
            let mut m = self.inflight.lock();
            let gone: Vec<i32> = m.iter().filter(|(_, c)| closed.contains(&c.link)).map(|(&s, _)| s).collect();
            gone.iter().filter_map(|s| m.remove(s)).collect()
        };
        self.abandoned.fetch_add(dropped.len() as u64, Ordering::Relaxed);
    }

    /// [`Cmd::Health`]'s table.
    fn health_value(&self, h: &Health) -> Value {
        let n = |x: usize| Value::Integer(x as i64);
        let c = |x: u64| Value::Integer(x as i64);
        let fields = [
            ("links", n(h.links)),
            ("max_links", n(h.max_links)),
            ("reassembly_bytes", n(h.reassembly_bytes)),
            ("max_reassembly_bytes", n(h.max_reassembly_bytes)),
            ("send_bytes", n(h.send_bytes)),
            ("max_send_bytes", n(h.max_send_bytes)),
            ("late_answers", c(h.late_answers)),
            ("refused_links", c(h.refused_links)),
            ("over_budget", c(h.over_budget)),
            ("heartbeat_timeouts", c(h.heartbeat_timeouts)),
            ("expired", c(h.expired)),
            ("protocol_errors", c(h.protocol_errors)),
            ("accept_stalls", c(h.accept_stalls)),
            ("inflight", n(self.inflight.lock().len())),
            ("abandoned", c(self.abandoned.load(Ordering::Relaxed))),
            ("link_subscribers", n(self.links.lock().subs.len())),
        ];
        let kv = fields.into_iter().map(|(k, v)| (Value::String(k.as_bytes().to_vec()), v)).collect();
        Value::Table(seri::Table::from_pairs(kv))
    }
}

fn describe(e: &CallError) -> String {
    match e {
        CallError::Remote(m) => String::from_utf8_lossy(m).into_owned(),
        e => e.to_string(),
    }
}

/// The engine's view of this service: inbound requests become skynet messages.
struct Inbox(Arc<Core>);

impl Service for Inbox {
    fn call(&self, req: Inbound<'_>, responder: Responder) {
        let core = &self.0;
        core.served_calls.fetch_add(1, Ordering::Relaxed);
        let Some(target) = core.resolve(req.addr) else {
            let t = core.texts.read().invalid_address.clone();
            return responder.error(&t);
        };
        let s = core.session();
        core.inflight.lock().insert(s, InCall { link: req.link, responder });
        if let Some(tag) = req.trace {
            core.send(target, PTYPE_TRACE, 0, tag);
        }
        if core.send(target, PTYPE_LUA, s, req.payload) < 0 {
            if let Some(c) = core.inflight.lock().remove(&s) {
                let t = core.texts.read().invalid_address.clone();
                c.responder.error(&t);
            }
        }
        core.wake();
    }

    fn push(&self, req: Inbound<'_>) {
        let core = &self.0;
        core.served_pushes.fetch_add(1, Ordering::Relaxed);
        match core.resolve(req.addr) {
            Some(target) => {
                if core.send(target, PTYPE_LUA, 0, req.payload) < 0 {
                    core.log(&format!("cluster push to :{target:08x} dropped: no such service"));
                }
                core.wake();
            }
            None => core.log(&format!("cluster push to {} dropped: invalid address", show_addr(req.addr))),
        }
    }

    fn after_events(&self) {
        self.0.after_events();
    }

    fn stalled(&self, _running: Duration) {
        // Core keeps its own clock (the pause and the 5 s monitor checks).
        self.0.stalled();
    }
}

fn show_addr(a: Address<'_>) -> String {
    match a {
        Address::Id(n) => format!(":{n:08x}"),
        Address::Name(n) => String::from_utf8_lossy(n).into_owned(),
    }
}

#[derive(Clone, Debug)]
enum OwnedAddr {
    Id(u32),
    Name(Vec<u8>),
}

impl OwnedAddr {
    fn as_addr(&self) -> Address<'_> {
        match self {
            OwnedAddr::Id(n) => Address::Id(*n),
            OwnedAddr::Name(n) => Address::Name(n),
        }
    }
}

/// A call or push held until its node gets an address (stock without `__nowaiting`).
/// The engine now waits for the address itself (its `call_with`/`push` hold requests to
/// an address-less node until a reload); this queue only serves an engine that answers
/// `NodeAbsent` at once.
struct Waiting {
    source: u32,
    session: c_int,
    addr: OwnedAddr,
    payload: Vec<u8>,
    trace: Option<Vec<u8>>,
}

/// An inbound call in service: its answer goes through `responder`; `link` is the
/// accepted link it came on (dropped when that link closes, see "Link events").
struct InCall {
    link: u64,
    responder: Responder,
}

/// Events kept for a subscriber that has not polled yet; more are counted as lost.
const LINK_EVENTS_KEPT: usize = 8192;

/// Link events for subscribed services (`cluster.linkevent`): see "Link events".
#[derive(Default)]
struct LinkWatch {
    /// Links up now, by link id: a new subscriber's first events.
    up: BTreeMap<u64, LinkEvent>,
    /// By the subscriber's handle.
    subs: HashMap<u32, Subscriber>,
}

#[derive(Default)]
struct Subscriber {
    /// The session of the subscriber's poll waiting for events.
    waiting: Option<c_int>,
    queue: VecDeque<LinkEvent>,
    /// Events not kept since the last poll (the queue was full).
    lost: u64,
}

impl Subscriber {
    fn push(&mut self, ev: &LinkEvent) {
        if self.queue.len() < LINK_EVENTS_KEPT {
            self.queue.push_back(ev.clone());
        } else {
            self.lost += 1;
        }
    }

    /// The answer to a poll: the queued events (an array of tables) and the number lost.
    fn take(&mut self) -> Vec<u8> {
        let events: Vec<Value> = self.queue.drain(..).map(|e| event_value(&e)).collect();
        let lost = std::mem::take(&mut self.lost);
        seri::encode(&[Value::Table(seri::Table::from_array(events)), Value::Integer(lost as i64)]).unwrap_or_default()
    }
}

/// One event as cluster.linkevent hands it to Lua: `{ node =, up =, reason =, dir =,
/// peer =, link = }` (`node` only for outbound links, `reason` only for a down).
fn event_value(ev: &LinkEvent) -> Value {
    let s = |x: &str| Value::String(x.as_bytes().to_vec());
    let mut kv = vec![
        (s("up"), Value::Boolean(ev.is_up())),
        (s("dir"), s(if ev.dir == LinkDir::Outbound { "outbound" } else { "inbound" })),
        (s("link"), Value::Integer(ev.link as i64)),
    ];
    if ev.dir == LinkDir::Outbound {
        kv.push((s("node"), s(&ev.node)));
    }
    if let Some(p) = ev.peer {
        kv.push((s("peer"), s(&p.to_string())));
    }
    if let Some(r) = &ev.down {
        kv.push((s("reason"), s(&r.to_string())));
    }
    Value::Table(seri::Table::from_pairs(kv))
}

/// State touched only from the service's skynet callback (skynet runs it one message at
/// a time) and from init/release; the mutex is never contended.
#[derive(Default)]
struct State {
    trace: HashMap<u32, Vec<u8>>,
    waiting: HashMap<String, Vec<Waiting>>,
    names: HashMap<Vec<u8>, u32>,
    name_of: HashMap<u32, Vec<u8>>,
    nowaiting: bool,
}

/// One service instance (what `skcluster_create` returns).
pub struct Inst {
    core: Option<Arc<Core>>,
    /// Answers and requests kept (with their skynet messages) until the flush token.
    pending: Mutex<Pending>,
    node: Option<Node>,
    wake_id: c_int,
    wake_fd: c_int,
}

/// A skynet-allocated buffer we own: a message the service kept (its callback returned 1)
/// or a `skynet.pack` message taken by `direct.rs`; freed with skynet_free on drop.
struct MsgBuf {
    ptr: *mut c_void,
    len: usize,
    free: unsafe extern "C" fn(*mut c_void),
}

impl MsgBuf {
    fn as_slice(&self) -> &[u8] {
        if self.ptr.is_null() || self.len == 0 {
            return &[];
        }
        // SAFETY: a message skynet handed us (len readable bytes) that we own until drop.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for MsgBuf {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the message was allocated by skynet (skynet_malloc) and given to us
            // when the callback returned 1; freed once, here.
            unsafe { (self.free)(self.ptr) }
        }
    }
}

/// Work kept until the flush token: see "Batching" in the module docs.
enum Item {
    /// A target's answer to an inbound call.
    Answer { responder: Responder, msg: MsgBuf },
    /// A call or push from Lua: node = msg[node.0..node.1], payload = msg[payload..].
    Request {
        msg: MsgBuf,
        source: u32,
        session: c_int,
        node: (usize, usize),
        addr: OwnedAddr,
        payload: usize,
        trace: Option<Vec<u8>>,
    },
}

#[derive(Default)]
struct Pending {
    items: Vec<Item>,
    scheduled: bool,
    /// The last flush carried at most one item: traffic is sparse, so the next item is
    /// handled at once (no flush token) unless it follows the previous one within
    /// [`BURST`].
    lone: bool,
    last_immediate: Option<Instant>,
}

/// Two items closer than this are a burst: batching pays off again.
const BURST: Duration = Duration::from_micros(50);

fn catch<R>(default: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// `skcluster_create`: a new, uninitialised instance.
#[no_mangle]
pub extern "C" fn skcluster_create() -> *mut c_void {
    catch(std::ptr::null_mut(), || {
        let inst = Box::new(Inst {
            core: None,
            pending: Mutex::new(Pending::default()),
            node: None,
            wake_id: -1,
            wake_fd: -1,
        });
        Box::into_raw(inst).cast()
    })
}

/// `skcluster_init`: resolves skynet's API, starts the engine, installs the callback.
/// `parm` is unused (configuration comes as messages). Returns 0 on success.
///
/// # Safety
/// `inst` comes from `skcluster_create`; `ctx` is the service's live skynet context.
#[no_mangle]
pub unsafe extern "C" fn skcluster_init(inst: *mut c_void, ctx: *mut c_void, parm: *const c_char) -> c_int {
    let _ = parm;
    catch(1, || {
        if inst.is_null() || ctx.is_null() {
            return 1;
        }
        // SAFETY: caller contract: a live instance from skcluster_create, used by one
        // thread at a time during init.
        let inst = unsafe { &mut *(inst as *mut Inst) };
        let api = match Api::resolve() {
            Ok(a) => a,
            Err(missing) => {
                eprintln!(
                    "skcluster: the host does not export {missing} (is this a skynet process built with -Wl,-E?)"
                );
                return 1;
            }
        };
        // The wake-up channel.
        let mut fds = [-1 as c_int; 2];
        let (mut wake_fd, mut wake_id) = (-1, -1);
        if let Some(bind) = api.socket_bind {
            // SAFETY: fds is a valid array of two ints for socketpair to fill.
            let rc = unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    0,
                    fds.as_mut_ptr(),
                )
            };
            if rc == 0 {
                // SAFETY: ctx is live; skynet takes ownership of fds[0] (closes it with the socket).
                let id = unsafe { bind(ctx, fds[0]) };
                if id >= 0 {
                    wake_id = id;
                    wake_fd = fds[1];
                } else {
                    // SAFETY: both fds are ours and open.
                    unsafe {
                        libc::close(fds[0]);
                        libc::close(fds[1]);
                    }
                }
            }
        }
        let core = Arc::new(Core {
            inline: inline_dispatch(&api, ctx),
            api,
            ctx: Ctx(ctx),
            inflight: Mutex::new(HashMap::new()),
            closed_links: Mutex::new(Vec::new()),
            abandoned: AtomicU64::new(0),
            links: Mutex::new(LinkWatch::default()),
            next_session: AtomicU32::new(1),
            texts: RwLock::new(Texts {
                call_failed: b"call failed".to_vec(),
                invalid_address: b"call to invalid address".to_vec(),
                open_answers_address: false,
            }),
            wake_fd,
            wake_pending: AtomicBool::new(false),
            delivered: AtomicBool::new(false),
            ctx_gate: Gate::new(&CTX_DEPTH),
            served_calls: AtomicU32::new(0),
            served_pushes: AtomicU32::new(0),
            made_calls: AtomicU64::new(0),
            made_pushes: AtomicU64::new(0),
            handle: RwLock::new(None),
            st: Mutex::new(State::default()),
            self_handle: AtomicU32::new(0),
            inst: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
            inst_gate: Gate::new(&INST_DEPTH),
            direct: Mutex::new(DirectBatch::default()),
        });
        // Limits and timers from the skynet config (see "Configuration"); the engine's
        // defaults otherwise. With inline dispatch, user messages run on the I/O thread: a
        // standby thread keeps the links served while one of them runs long.
        let standby_after = core.inline.as_ref().map(|_| STANDBY_AFTER);
        let settings =
            match settings::read(Config { standby_after, ..Config::default() }, |k| config_value(&core.api, ctx, k)) {
                Ok(s) => s,
                Err(errors) => {
                    for e in &errors {
                        core.log(e);
                    }
                    core.log("skcluster: not started: fix the cluster_* keys above in the skynet config");
                    return 1;
                }
            };
        if let Some(g) = &settings.given {
            core.log(g);
        }
        for w in &settings.warnings {
            core.log(w);
        }
        let node = match Node::new(settings.cfg) {
            Ok(n) => n,
            Err(e) => {
                core.log(&format!("skcluster: cannot start the engine: {e}"));
                return 1;
            }
        };
        // SAFETY: ctx is live; "REG" with a NULL name returns our handle as ":%08x" in a
        // buffer owned by the context (copied out at once).
        let reg = unsafe { (core.api.command)(ctx, c"REG".as_ptr(), std::ptr::null()) };
        let mut me = 0;
        if !reg.is_null() {
            // SAFETY: skynet_command returns a NUL-terminated string.
            let text = unsafe { std::ffi::CStr::from_ptr(reg) }.to_string_lossy();
            me = text.strip_prefix(':').and_then(|h| u32::from_str_radix(h, 16).ok()).unwrap_or(0);
        }
        if me == 0 {
            core.log("skcluster: cannot learn the service's own handle");
            return 1;
        }
        core.self_handle.store(me, Ordering::Relaxed);
        node.set_service(Arc::new(Inbox(core.clone())));
        // Weak: the engine holds the hook, and the core holds the engine's handle.
        let weak = Arc::downgrade(&core);
        let hook: LinkHook = Arc::new(move |ev: &LinkEvent| {
            if let Some(core) = weak.upgrade() {
                core.on_link_event(ev);
            }
        });
        node.handle().set_link_hook(Some(hook));
        *core.handle.write() = Some(node.handle());
        inst.node = Some(node);
        inst.wake_fd = wake_fd;
        inst.wake_id = wake_id;
        // SAFETY: ctx is live; `inst` outlives the callback registration (skynet stops
        // calling it before skcluster_release); `on_message` matches skynet_cb.
        unsafe { (core.api.callback)(ctx, (inst as *mut Inst).cast(), on_message) };
        direct::set_current(core.clone());
        inst.core = Some(core.clone());
        // Read by the I/O thread only for queues skynet hands out, i.e. after init returned.
        core.inst.store(inst as *mut Inst, Ordering::SeqCst);
        0
    })
}

/// `skcluster_release`: stops the engine (pending outbound calls fail and their callers
/// get `PTYPE_ERROR`), then frees the instance.
///
/// # Safety
/// `inst` comes from `skcluster_create` and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn skcluster_release(inst: *mut c_void) {
    if inst.is_null() {
        return;
    }
    catch((), || {
        // First make sure the I/O thread no longer reads the instance (it only ever takes
        // shared references), then take it back.
        // SAFETY: caller contract: a live instance from skcluster_create; read shared.
        if let Some(core) = unsafe { (*(inst as *const Inst)).core.clone() } {
            core.inst_gate.close();
        }
        // SAFETY: caller contract: the pointer came from Box::into_raw in skcluster_create.
        let mut inst = unsafe { Box::from_raw(inst as *mut Inst) };
        let kept = std::mem::take(&mut inst.pending.lock().items);
        drop(kept); // unanswered inbound calls get "no response"; kept messages are freed
        if let Some(core) = inst.core.as_ref() {
            // No new calls from callers' workers; breaks the core -> engine -> core cycle.
            direct::clear_current(core);
            if let Some(h) = core.handle.write().take() {
                h.set_link_hook(None);
            }
        }
        drop(inst.node.take()); // joins the I/O thread (unless this is the I/O thread)
        if let Some(core) = inst.core.take() {
            if inst.wake_id >= 0 {
                if let Some(close) = core.api.socket_close {
                    // SAFETY: ctx is still live during release; the id is our bound socket.
                    unsafe { close(core.ctx.0, inst.wake_id) };
                }
            }
            // Link-event polls still waiting end with an error (the Lua loop stops).
            let polls: Vec<(u32, c_int)> =
                core.links.lock().subs.drain().filter_map(|(h, sub)| sub.waiting.map(|s| (h, s))).collect();
            for (h, session) in polls {
                core.send(h, PTYPE_ERROR, session, &[]);
            }
            // From here on the context is gone: callers' workers still in the direct path
            // and an I/O thread still running (we were released from its inline dispatch)
            // stop using it.
            core.ctx_gate.close();
            let pending: Vec<InCall> = core.inflight.lock().drain().map(|(_, c)| c).collect();
            drop(pending);
        }
        if inst.wake_fd >= 0 {
            // SAFETY: our end of the socketpair, closed once.
            unsafe { libc::close(inst.wake_fd) };
        }
    })
}

/// A key of the skynet config file: `skynet_getenv`, else `skynet_command(ctx, "GETENV")`.
fn config_value(api: &Api, ctx: *mut c_void, key: &str) -> Option<String> {
    let key = CString::new(key).ok()?;
    let v = match api.getenv {
        // SAFETY: NUL-terminated key; skynet_getenv returns NULL or a NUL-terminated string
        // owned by skynet's environment (copied at once below).
        Some(getenv) => unsafe { getenv(key.as_ptr()) },
        // SAFETY: ctx is live; GETENV answers as skynet_getenv does.
        None => unsafe { (api.command)(ctx, c"GETENV".as_ptr(), key.as_ptr()) },
    };
    if v.is_null() {
        return None;
    }
    // SAFETY: see above: a NUL-terminated string, valid while we copy it.
    Some(unsafe { std::ffi::CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

/// The inline dispatch of this host, unless the host lacks it or the skynet config says
/// `skcluster_inline = false`.
fn inline_dispatch(api: &Api, ctx: *mut c_void) -> Option<Inline> {
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

/// `skcluster_signal`: nothing to do.
#[no_mangle]
pub extern "C" fn skcluster_signal(_inst: *mut c_void, _sig: c_int) {}

/// The skynet callback. Returns 0: skynet frees `msg` afterwards.
unsafe extern "C" fn on_message(
    _ctx: *mut c_void,
    ud: *mut c_void,
    ty: c_int,
    session: c_int,
    source: u32,
    msg: *const c_void,
    sz: usize,
) -> c_int {
    catch(0, || {
        // SAFETY: ud is the Inst registered in init; skynet calls back one message at a
        // time and never after release.
        let inst = unsafe { &*(ud as *const Inst) };
        let data: &[u8] = if msg.is_null() || sz == 0 {
            &[]
        } else {
            // SAFETY: skynet hands a message of `sz` readable bytes, valid during the callback.
            unsafe { std::slice::from_raw_parts(msg as *const u8, sz) }
        };
        inst.on_message(ty, session, source, msg, data)
    })
}

impl Inst {
    fn core(&self) -> &Arc<Core> {
        self.core.as_ref().expect("initialised")
    }

    /// Returns what the skynet callback returns: 1 when the message was kept.
    fn on_message(&self, ty: c_int, session: c_int, source: u32, msg: *const c_void, data: &[u8]) -> c_int {
        let core = self.core();
        match ty {
            PTYPE_RESPONSE => {
                let r = core.inflight.lock().remove(&session);
                if let Some(InCall { responder, .. }) = r {
                    self.defer(Item::Answer { responder, msg: self.keep(msg, data.len()) });
                    return 1;
                }
            }
            PTYPE_TEXT if source == core.self_handle.load(Ordering::Relaxed) => {
                core.flush_direct();
                self.flush();
            }
            PTYPE_ERROR => {
                if session != 0 {
                    let r = core.inflight.lock().remove(&session);
                    if let Some(c) = r {
                        let t = core.texts.read().call_failed.clone();
                        c.responder.error(&t);
                    }
                }
            }
            PTYPE_SOCKET => {
                if data.len() >= std::mem::size_of::<SocketMessage>() {
                    // SAFETY: a PTYPE_SOCKET message is a skynet_socket_message (maybe
                    // followed by padding); read unaligned to be safe.
                    let sm = unsafe { std::ptr::read_unaligned(msg as *const SocketMessage) };
                    if sm.ty == SKYNET_SOCKET_TYPE_DATA && !sm.buffer.is_null() {
                        // SAFETY: the data buffer of a socket DATA message belongs to the
                        // receiver, allocated with skynet_malloc.
                        unsafe { (core.api.free)(sm.buffer.cast()) };
                    }
                    if sm.id == self.wake_id {
                        core.wake_pending.store(false, Ordering::SeqCst);
                    }
                }
            }
            PTYPE_TRACE => {
                self.core().st.lock().trace.insert(source, data.to_vec());
            }
            PTYPE_LUA => return self.on_lua(session, source, msg, data),
            _ => {
                core.log(&format!("skcluster: unexpected message type {ty} from :{source:08x}"));
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
            }
        }
        0
    }

    fn keep(&self, msg: *const c_void, len: usize) -> MsgBuf {
        MsgBuf { ptr: msg as *mut c_void, len, free: self.core().api.free }
    }

    /// Keeps `item` until the flush token, which is sent to ourselves with the first item:
    /// it comes back after the messages already queued for us, so everything that arrived
    /// meanwhile leaves in one write per link (and a lone call waits one message longer).
    fn defer(&self, item: Item) {
        if ON_IO_THREAD.with(|c| c.get()) {
            // Inline dispatch: the round's batch scope already gathers every write of the
            // round into one per link; no flush token needed. Items a worker kept go
            // first (a caller's pushes stay in order).
            let mut items = std::mem::take(&mut self.pending.lock().items);
            items.push(item);
            return self.run(items);
        }
        let mut p = self.pending.lock();
        if p.lone && !p.scheduled {
            let now = Instant::now();
            let burst = p.last_immediate.is_some_and(|t| now.duration_since(t) < BURST);
            p.last_immediate = Some(now);
            if !burst {
                drop(p);
                return self.run(vec![item]);
            }
            p.lone = false;
        }
        p.items.push(item);
        if !p.scheduled {
            p.scheduled = true;
            drop(p);
            self.core().send_flush_token();
        }
    }

    fn flush(&self) {
        let items = {
            let mut p = self.pending.lock();
            p.scheduled = false;
            let items = std::mem::take(&mut p.items);
            if items.len() <= 1 {
                p.lone = true;
            }
            items
        };
        self.run(items);
    }

    fn run(&self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        crate::engine::batch(|| {
            for it in items {
                match it {
                    Item::Answer { responder, msg } => responder.ok(msg.as_slice()),
                    Item::Request { msg, source, session, node, addr, payload, trace } => {
                        let b = msg.as_slice();
                        // Checked to be UTF-8 when the request was kept.
                        let node = std::str::from_utf8(&b[node.0..node.1]).unwrap_or("");
                        self.core().submit(node, source, session, addr.as_addr(), &b[payload..], trace.as_deref());
                    }
                }
            }
        });
    }

    fn on_lua(&self, session: c_int, source: u32, msg: *const c_void, data: &[u8]) -> c_int {
        let core = self.core();
        // Node name first: the hot path reads two values by hand and forwards the rest.
        if let Some((node, used)) = minipack::unpack_str(data) {
            let rest = &data[used..];
            let Some((addr, used2)) = read_addr(rest) else {
                core.log("skcluster: bad cluster request (address must be a number or a string)");
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
                return 0;
            };
            if std::str::from_utf8(node).is_err() {
                core.log("skcluster: node name is not UTF-8");
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
                return 0;
            }
            let node_start = used - node.len();
            let trace = if session != 0 { self.core().st.lock().trace.remove(&source) } else { None };
            let msg = self.keep(msg, data.len());
            self.defer(Item::Request {
                msg,
                source,
                session,
                node: (node_start, used),
                addr,
                payload: used + used2,
                trace,
            });
            return 1;
        }
        // Control: whatever was kept goes first.
        self.flush();
        if session != 0 {
            self.core().st.lock().trace.remove(&source);
        }
        let values = match seri::decode(data) {
            Ok(v) => v,
            Err(e) => {
                core.log(&format!("skcluster: bad control message: {}", e.stock_message()));
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
                return 0;
            }
        };
        if values.first().and_then(|c| c.as_integer()) == Some(Cmd::LinkEvents as i64) {
            // Answered here, maybe later (a poll waits for the next event).
            let what = values.get(1).and_then(|v| v.as_bytes()).unwrap_or(b"poll");
            if let Err(e) = core.link_events_cmd(source, session, what) {
                core.log(&e);
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
            }
            return 0;
        }
        match self.control(source, &values) {
            Ok(ret) => {
                if session != 0 {
                    match ret {
                        Some(vals) => {
                            let out = seri::encode(&vals).unwrap_or_default();
                            core.send(source, PTYPE_RESPONSE, session, &out);
                        }
                        None => {
                            core.send(source, PTYPE_RESPONSE, session, &[]);
                        }
                    }
                }
            }
            Err(e) => {
                if !e.is_empty() {
                    core.log(&e);
                }
                if session != 0 {
                    core.send(source, PTYPE_ERROR, session, &[]);
                }
            }
        }
        0
    }

    /// A control command. `Ok(None)`: answer an empty message (Lua sees no values).
    /// `Err(text)`: log `text`, answer `PTYPE_ERROR`.
    fn control(&self, source: u32, v: &[Value]) -> Result<Option<Vec<Value>>, String> {
        let core = self.core();
        let handle: &Handle = self.node.as_ref().expect("initialised");
        let cmd = v.first().and_then(|c| c.as_integer()).ok_or("skcluster: bad control message")?;
        let arg = |i: usize| v.get(i).cloned().unwrap_or(Value::Nil);
        match cmd {
            c if c == Cmd::Reload as i64 => {
                let Value::Table(t) = arg(1) else {
                    return Err("skcluster: reload needs a table".into());
                };
                let mut entries: Vec<(String, Option<String>)> = Vec::new();
                let pairs = t
                    .array
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (Value::Integer(i as i64 + 1), v.clone()))
                    .chain(t.hash.iter().cloned());
                for (k, val) in pairs {
                    let Some(name) = k.as_str().map(str::to_string) else {
                        return Err(format!("skcluster: reload: node name {k:?} is not a string"));
                    };
                    if let Some(opt) = name.strip_prefix("__") {
                        core.log(&format!("Config {opt} = {}", show_value(&val)));
                        if opt == "nowaiting" {
                            let on = val.truthy();
                            self.core().st.lock().nowaiting = on;
                            handle.set_nowaiting(on);
                        }
                        continue;
                    }
                    match val {
                        Value::String(s) => entries.push((name, Some(String::from_utf8_lossy(&s).into_owned()))),
                        Value::Boolean(false) => entries.push((name, None)),
                        other => {
                            return Err(format!(
                                "skcluster: reload: address of [{name}] must be a string or false, got {}",
                                other.type_name()
                            ))
                        }
                    }
                }
                let map: Vec<(&str, Option<&str>)> = entries.iter().map(|(n, a)| (n.as_str(), a.as_deref())).collect();
                handle.reload(&map);
                core.flush_waiting();
                Ok(Some(vec![Value::Nil]))
            }
            c if c == Cmd::Listen as i64 => {
                let host = arg(1);
                let host = host.as_str().ok_or("skcluster: listen: address must be a string")?;
                match arg(2) {
                    Value::Nil => {
                        let NodeAddr::At(a) = handle.node_addr(host) else {
                            return Err(format!("{host} is down"));
                        };
                        handle
                            .listen_with(&a, listener_bound(&arg(3))?)
                            .map_err(|e| format!("skcluster: listen on {a} failed: {e}"))?;
                        core.log(&format!("cluster listen {a} ({host})"));
                        if core.texts.read().open_answers_address {
                            // skynet 1.x's clusterd: the node's host and port, as numbers go.
                            let (h, p) = a.rsplit_once(':').unwrap_or((a.as_str(), ""));
                            let port = p.parse::<i64>().map(Value::Integer).unwrap_or(Value::Nil);
                            return Ok(Some(vec![Value::String(h.as_bytes().to_vec()), port]));
                        }
                        Ok(Some(vec![Value::String(host.as_bytes().to_vec()), Value::Nil]))
                    }
                    p => {
                        let port = p.as_integer().ok_or("skcluster: listen: port must be an integer")?;
                        let a = format!("{host}:{port}");
                        let got = handle
                            .listen_with(&a, listener_bound(&arg(3))?)
                            .map_err(|e| format!("skcluster: listen on {a} failed: {e}"))?;
                        core.log(&format!("cluster listen {got}"));
                        Ok(Some(vec![
                            Value::String(got.ip().to_string().into_bytes()),
                            Value::Integer(got.port() as i64),
                        ]))
                    }
                }
            }
            c if c == Cmd::Register as i64 => {
                let name = arg(1).as_bytes().ok_or("skcluster: register: name must be a string")?.to_vec();
                let addr = match arg(2) {
                    Value::Nil => source,
                    a => a.as_integer().ok_or("skcluster: register: address must be a number")? as u32,
                };
                let mut st = self.core().st.lock();
                if st.names.contains_key(&name) {
                    return Err(format!(
                        "skcluster: register: name [{}] is already registered",
                        String::from_utf8_lossy(&name)
                    ));
                }
                let n = String::from_utf8_lossy(&name).into_owned();
                handle.register(&n, addr).map_err(|e| format!("skcluster: register: {e}"))?;
                if let Some(old) = st.name_of.remove(&addr) {
                    st.names.remove(&old);
                    handle.unregister(&String::from_utf8_lossy(&old));
                }
                st.names.insert(name.clone(), addr);
                st.name_of.insert(addr, name.clone());
                core.log(&format!("Register [{n}] :{addr:08x}"));
                Ok(None)
            }
            c if c == Cmd::Unregister as i64 => {
                let name = arg(1).as_bytes().ok_or("skcluster: unregister: name must be a string")?.to_vec();
                let mut st = self.core().st.lock();
                if let Some(addr) = st.names.remove(&name) {
                    st.name_of.remove(&addr);
                    let n = String::from_utf8_lossy(&name).into_owned();
                    handle.unregister(&n);
                    core.log(&format!("Unregister [{n}] :{addr:08x}"));
                }
                Ok(None)
            }
            c if c == Cmd::NodeState as i64 => {
                let node = arg(1);
                let s = match handle.node_addr(node.as_str().unwrap_or("")) {
                    NodeAddr::Absent => "absent",
                    NodeAddr::Down => "down",
                    NodeAddr::At(_) => "up",
                };
                Ok(Some(vec![Value::String(s.as_bytes().to_vec())]))
            }
            c if c == Cmd::Probe as i64 => Err(String::new()),
            c if c == Cmd::Texts as i64 => {
                let mut t = core.texts.write();
                if let Some(s) = arg(1).as_bytes() {
                    t.call_failed = s.to_vec();
                }
                if let Some(s) = arg(2).as_bytes() {
                    t.invalid_address = s.to_vec();
                }
                t.open_answers_address = arg(3).truthy();
                Ok(None)
            }
            c if c == Cmd::Stats as i64 => Ok(Some(vec![
                Value::Integer(core.served_calls.load(Ordering::Relaxed) as i64),
                Value::Integer(core.served_pushes.load(Ordering::Relaxed) as i64),
                Value::Integer(core.made_calls.load(Ordering::Relaxed) as i64),
                Value::Integer(core.made_pushes.load(Ordering::Relaxed) as i64),
            ])),
            c if c == Cmd::Health as i64 => Ok(Some(vec![core.health_value(&handle.health())])),
            other => Err(format!("skcluster: unknown command {other}")),
        }
    }
}

/// What `cluster.open(..., maxclient)` bounds a listener to. Stock's gate
/// (`lualib/snax/gateserver.lua`) counts a new client first and shuts it when
/// `client_number >= maxclient` (`maxclient` defaults to 1024): it keeps at most
/// `ceil(maxclient) - 1` clients. `None`: no bound of its own (NaN or infinity, which
/// stock's comparison never reaches).
fn listener_bound(maxclient: &Value) -> Result<Option<usize>, String> {
    let m = match maxclient {
        Value::Nil => 1024.0,
        Value::Integer(n) => *n as f64,
        Value::Real(f) => *f,
        other => return Err(format!("skcluster: listen: maxclient must be a number, got {}", other.type_name())),
    };
    if m.is_nan() || m == f64::INFINITY {
        return Ok(None);
    }
    Ok(Some((m.ceil() - 1.0).max(0.0).min(usize::MAX as f64) as usize))
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::String(s) => String::from_utf8_lossy(s).into_owned(),
        other => other.type_name().to_string(),
    }
}

/// Reads the packed address value: an integer (numeric address, truncated to 32 bits as
/// stock's `packrequest`), a float (integral: that number; else 0, as `lua_tointeger`),
/// or a string (a name).
fn read_addr(b: &[u8]) -> Option<(OwnedAddr, usize)> {
    if let Some((v, used)) = minipack::unpack_int(b) {
        return Some((OwnedAddr::Id(v as u32), used));
    }
    if let Some((s, used)) = minipack::unpack_str(b) {
        return Some((OwnedAddr::Name(s.to_vec()), used));
    }
    // A float: type 2 (number), cookie 8 (real), 8 bytes little-endian.
    if b.first() == Some(&(2 | (8 << 3))) && b.len() >= 9 {
        let f = f64::from_le_bytes(b[1..9].try_into().ok()?);
        let n = if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 { f as i64 } else { 0 };
        return Some((OwnedAddr::Id(n as u32), 9));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn gate_close_waits_for_uses_on_other_threads() {
        let gate = Arc::new(Gate::new(&CTX_DEPTH));
        let (inside_tx, inside_rx) = std::sync::mpsc::channel();
        let finished = Arc::new(AtomicUsize::new(0));
        let user = {
            let (gate, finished) = (gate.clone(), finished.clone());
            std::thread::spawn(move || {
                gate.run(|| {
                    inside_tx.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                    finished.store(1, Ordering::SeqCst);
                })
            })
        };
        inside_rx.recv().unwrap();
        gate.close();
        // close returned: the use that had started is over
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        assert_eq!(user.join().unwrap(), Some(()));
        // and no use starts any more
        assert_eq!(gate.run(|| 7), None);
        assert!(gate.is_closed());
    }

    #[test]
    fn gate_closed_from_inside_a_use_on_the_same_thread_does_not_wait_for_itself() {
        let gate = Gate::new(&INST_DEPTH);
        // skynet re-entering the release from inside a use of the same thread
        let r = gate.run(|| {
            gate.close();
            "closed"
        });
        assert_eq!(r, Some("closed"));
        assert_eq!(gate.users.load(Ordering::SeqCst), 0);
        assert_eq!(gate.run(|| ()), None);
    }

    #[test]
    fn gate_use_that_panics_still_leaves() {
        let gate = Gate::new(&CTX_DEPTH);
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| gate.run(|| panic!("in a use"))));
        assert!(r.is_err());
        assert_eq!(gate.users.load(Ordering::SeqCst), 0);
        gate.close(); // would spin forever if the use were still counted
        assert_eq!(CTX_DEPTH.with(|d| d.get()), 0);
    }

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

    /// `cluster.open(port, maxclient)`: stock's gate keeps `ceil(maxclient) - 1` clients.
    #[test]
    fn maxclient_as_stocks_gate_counts_it() {
        assert_eq!(listener_bound(&Value::Nil), Ok(Some(1023)));
        assert_eq!(listener_bound(&Value::Integer(3)), Ok(Some(2)));
        assert_eq!(listener_bound(&Value::Integer(1)), Ok(Some(0)));
        assert_eq!(listener_bound(&Value::Integer(-5)), Ok(Some(0)));
        assert_eq!(listener_bound(&Value::Real(2.5)), Ok(Some(2)));
        assert_eq!(listener_bound(&Value::Real(f64::NAN)), Ok(None));
        assert_eq!(listener_bound(&Value::Real(f64::INFINITY)), Ok(None));
        assert!(listener_bound(&Value::String(b"9".to_vec())).unwrap_err().contains("maxclient must be a number"));
    }

    /// A message reported while it ran (`Core::stalled` starts the pause then) keeps that
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
