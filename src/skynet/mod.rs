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
//! `skynet_monitor` of its own, up to [`INLINE_BUDGET`](inline::INLINE_BUDGET) messages or [`INLINE_TIME`](inline::INLINE_TIME); a
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
//! [`STANDBY_AFTER`](inline::STANDBY_AFTER) on the I/O thread, the engine's standby thread serves the links
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
//! Who may connect and what they may call (issue 14; defaults as stock):
//!
//! * `cluster_allow` (anywhere): CIDR blocks or addresses, IPv4 or IPv6, separated by
//!   commas (`"10.0.0.0/8,127.0.0.1"`); a connection from elsewhere is closed before a
//!   byte of it is read.
//! * `cluster_max_links_per_source` (no bound): links open at once from one address.
//! * `cluster_expose` (everything): `"registered"` (remote callers reach only the names
//!   given to `cluster.register`) or a list of those names (`"echo,db"`); numeric
//!   handles, `.name` and `:hex` addresses are answered `Invalid name`.
//! * `cluster_tls` (`off`): `prefer` or `require`, with `cluster_tls_ca`,
//!   `cluster_tls_cert` and `cluster_tls_key` (PEM files; all three are needed when TLS
//!   is on). Files that cannot be used stop the service from starting (logged, naming the
//!   file); `cluster.reloadtls()` ([`Cmd::ReloadTls`]) reads them again.
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
//! [`LinkHook`](crate::engine::LinkHook) is set on the engine: every link going up or down (outbound: a node of the
//! cluster config; inbound: a peer connected to one of our listeners) is queued for each
//! subscribed service and delivered with `skynet_send`, from the I/O thread, without
//! blocking it (one short lock; the subscriber's queue keeps at most
//! [`LINK_EVENTS_KEPT`](link_events::LINK_EVENTS_KEPT) events, more are counted as lost). A subscriber long-polls, as
//! skynet's own `sharedata` / `datacenter.wait` do: [`Cmd::LinkEvents`] `"start"`
//! subscribes the caller (its first events are an `up` for each link open at that moment),
//! `"poll"` is answered with the events queued since the last poll, at once or when the
//! next one comes (one `PTYPE_RESPONSE`: an array of event tables and the number lost),
//! `"stop"` ends it (a waiting poll is answered with no values). `cluster.linkevent(f)`
//! in `lualib/skynet/cluster.lua` runs that loop and calls `f(event)`. A subscriber that
//! exits is forgotten when the answer to its waiting poll cannot be delivered; one that
//! exits with no poll waiting (inside `f`) keeps its queue, at most [`LINK_EVENTS_KEPT`](link_events::LINK_EVENTS_KEPT)
//! events, until this service ends. Polls still waiting at release get `PTYPE_ERROR`.
//!
//! Inbound calls whose link closed before their target answered are dropped from the
//! table of calls in service at the end of that round of events (a target that never
//! answers, e.g. skynet's logger, would otherwise keep them forever); the answer, if it
//! ever comes, is freed.
//!
//! # Where things are
//!
//! * `entry.rs`: the `extern "C"` entry points skynet calls (`skcluster_create`, `_init`,
//!   `_release`, `_signal`, the message callback); each converts and calls one of:
//! * `lifecycle.rs`: what init and release do (skynet's API, the wake-up channel, the
//!   configuration read by `settings.rs`, the engine and its hooks).
//! * `messages.rs`: the callback's body, by message type; `commands.rs`: the control
//!   commands ([`Cmd`], one function each, and the reload's node-map rules).
//! * `outbound.rs`: calls and pushes handed to the engine and their answers to the caller;
//!   `direct.rs`: the same from the caller's own thread (the `skcluster.direct` Lua module).
//! * `inbound.rs`: the engine's [`Service`](crate::engine::Service): requests from peers
//!   become skynet messages.
//! * `batching.rs`: messages the callback keeps until the flush token, and who frees them.
//! * `inline.rs`: inline dispatch and its pause policy; `gate.rs`: the [`Gate`] that keeps
//!   the context and the instance alive while other threads use them; `context.rs`: send,
//!   log and wake through the skynet context.
//! * `link_events.rs`: `cluster.linkevent`'s subscribers; `packed.rs`: skynet.pack values
//!   read by hand on the hot path; `api.rs`: the skynet functions, resolved at init.

mod api;
mod batching;
mod commands;
mod context;
mod direct;
mod entry;
mod gate;
mod inbound;
mod inline;
mod lifecycle;
mod link_events;
mod messages;
mod outbound;
mod packed;
mod settings;

pub use commands::Cmd;
pub use entry::{skcluster_create, skcluster_init, skcluster_release, skcluster_signal};

use crate::engine::{Handle, Node};
use api::Api;
use batching::Pending;
use context::Ctx;
use gate::Gate;
use inbound::InCall;
use inline::Inline;
use link_events::LinkWatch;
use outbound::DirectBatch;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64};
use std::sync::Arc;

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
    inst: AtomicPtr<Inst>,
    inst_gate: Gate,
    /// Requests from callers' workers written later, in one go: see [`Core::submit_direct`].
    direct: Mutex<DirectBatch>,
}

/// State touched only from the service's skynet callback (skynet runs it one message at
/// a time) and from init/release; the mutex is never contended.
#[derive(Default)]
struct State {
    trace: HashMap<u32, Vec<u8>>,
    names: HashMap<Vec<u8>, u32>,
    name_of: HashMap<u32, Vec<u8>>,
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

impl Inst {
    fn core(&self) -> &Arc<Core> {
        self.core.as_ref().expect("initialised")
    }
}

thread_local! {
    /// True on the engine's I/O thread (set when it first calls into this service).
    static ON_IO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into `default` (nothing unwinds into skynet).
fn catch<R>(default: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}
