//! Native cluster transport (issue 5): listeners, links to peer nodes, session tables,
//! multi-part reassembly, name queries, pushes, trace tags, timeouts, over real TCP.
//!
//! Host-agnostic: no skynet, no Lua. A host (Rust code, the CLI, later the C API and the
//! skynet adapter) sends through a [`Handle`] and serves through a [`Service`].
//!
//! # Threads and ownership
//!
//! * One **I/O thread per [`Node`]** (`skc-io`) runs a `mio::Poll`. It owns the listeners
//!   and the read side of every socket, reassembles multi-part messages, runs the host's
//!   [`Service`] for every inbound request, completes calls, runs [`Callback`]s and expires
//!   callback timeouts.
//! * **Sending needs no thread hop.** A caller on any thread locks the link (one mutex per
//!   link), takes a session, encodes the frames straight into the link's send buffer and,
//!   if nobody else is writing, writes them itself. Writers combine: frames appended while
//!   someone writes leave with that writer's next `write`. On the I/O thread (handlers,
//!   callbacks) and inside [`Handle::batch`], writes are deferred to the end of the
//!   iteration/scope: all frames queued for a link leave in one `write`.
//! * A blocking [`Handle::call`] parks its thread until the I/O thread hands it the answer
//!   (one wake-up per call). [`Handle::call_with`] avoids even that: its callback runs on
//!   the I/O thread, and calls it issues from there are batched.
//! * A [`Responder`] is `Send`: a host may answer later from any thread.
//!
//! # Ordering per link
//!
//! Frames leave a link in the order their `send` calls took the link's lock, whole
//! messages at a time: the parts of a multi-part message are never interleaved with other
//! frames by us, and a small message is never overtaken by, nor overtakes, a large one
//! sent earlier/later from the same thread (stock may reorder messages of 32 KiB and more
//! behind small ones). Inbound requests are handed to the service in the order their last
//! frame arrived, so we accept stock peers that interleave multi-part frames.
//! Answers may be sent in any order (the host answers when it likes).
//!
//! # Why mio and not tokio
//!
//! The engine needs exactly one thing from an I/O crate: readiness over epoll. mio gives
//! that with no runtime, no task scheduler, no allocation per operation and no executor
//! thread pool to size against a 2-core box or to embed into a skynet process that has its
//! own threads. With tokio, every call would cross into a runtime (a task spawn or channel
//! send plus a wake per call) and a C host would inherit a runtime it cannot see. Our
//! hot path (lock, encode into the send buffer, one `write`) is shorter than a tokio task
//! wake-up, and the batching we want (one write per poll iteration per link) falls out of
//! a hand-written loop.
//!
//! # Memory
//!
//! An idle link holds its socket, a small struct, a ~14 KiB latency histogram (outbound)
//! and at most one 16 KiB spare send chunk: the read buffer (512 KiB) is one per I/O
//! thread and only an incomplete frame is kept per link (measured: ~9-15 KiB per idle link
//! on the calling side, ~5 KiB on the serving side). Large buffers (send chunks and
//! reassembled messages of 16 KiB - 4 MiB) come from a per-node pool capped at 32 MiB,
//! because with glibc a malloc/free per large message costs more than the copy.
//! Send queues are bounded (`Config::max_send_queue`): callers get
//! [`CallError::Overloaded`]; accepted links stop being read while their answers are queued
//! or in service beyond the limits, so TCP pushes back on the peer instead of memory growing.
//! Beyond the per-link bounds, node-wide budgets (`budget.rs`) cap what all links together
//! hold: open links (`Config::max_links`, listeners' `max_clients`), bytes being reassembled
//! (`max_reassembly_total`) and bytes queued to send (`max_send_total`). When one is full,
//! the link that asks for more is the one refused or paused; the others go on.
//!
//! # Link lifecycle
//!
//! A closed link releases its socket at once: the I/O thread and the node map drop their
//! references, and a [`Responder`] holds its link weakly (an answer that comes later is
//! dropped and counted in [`Health::late_answers`]). Housekeeping (`housekeep.rs`) runs on
//! a clock: listeners stalled for lack of descriptors are retried with backoff, unfinished
//! multi-part messages (`multi_timeout`) and silent accepted links (`idle_timeout`) close
//! their link, and idle outbound links are probed ([`Heartbeat`]: a name query for the
//! reserved [`HEARTBEAT_NAME`], which stock answers too). The host learns of every link going
//! up or down through [`Handle::set_link_hook`] ([`LinkEvent`], a typed [`DownReason`]).
//!
//! # Copies
//!
//! Sending from a slice (`call`, `call_with`, `push`, `Responder::ok`): the payload is
//! copied once, into the link's send chunk with its frame headers, then written with
//! `writev`. Sending `Bytes` (`call_with_bytes`, `push_bytes`, `Responder::ok_bytes`): a
//! multi-part message is not copied at all; `writev` takes its 32 KiB slices straight
//! from the caller's buffer between the 7-byte part headers. Receiving: a single-frame
//! payload is handed to the host borrowed from the I/O thread's read buffer (no copy); a
//! multi-part one is copied at most once, from the read buffer into its reassembly buffer:
//! once a read has stopped inside a message (after a part has begun), the rest of it is
//! read straight into that buffer with `readv`, the 7-byte part headers landing in a small
//! array between the parts and checked (a frame that is not the expected part, e.g. a
//! stock peer interleaving sessions, is handled as usual). The reassembled payload the
//! host gets borrowed ([`Inbound::payload`]), shared ([`Inbound::take_payload`]: so an
//! echo answers a 1 MiB request with no copy at all) or owned ([`Reply::into_vec`]).
//!
//! # Node map
//!
//! [`Handle::reload`] is `cluster.reload`: `Some("host:port")` or `None` (marked down).
//! A call to a node with no entry waits for the reload that gives it one (within its
//! timeout), as stock does, unless `nowaiting` (stock's `__nowaiting`): blocking calls
//! park, callback calls and pushes are held (payload copied, at most 65536) and sent when
//! the address arrives. A changed address closes the old link (its pending calls fail with
//! `LinkDown`); the next call connects to the new one. Connecting is non-blocking and
//! started by the first caller; calls made meanwhile queue on the connecting link, so
//! there is one connection attempt per node at a time; an attempt still in progress after
//! `connect_timeout` (5 s) is abandoned. After a failed attempt the next one
//! waits `backoff_min`, doubling up to `backoff_max`; calls during the wait fail at once
//! with `ConnectFailed`. A link that was up and dropped reconnects on the next call.
//! Sessions continue across reconnects, as in stock's clustersender.

mod accept;
mod answers;
mod batch;
mod budget;
mod call;
mod config;
mod conn;
mod direct;
mod error;
mod event;
mod housekeep;
mod io;
mod log;
mod node;
mod nodemap;
mod pack;
mod peer;
mod pool;
mod requests;
mod send;
mod service;
pub mod sockopt;
mod standby;
mod stats;
pub mod tls;
mod waiting;

pub use crate::wire::Address;
pub use batch::{batch, batch_deferred, Deferred};
pub use budget::Health;
pub use call::{Callback, Reply};
pub use config::{
    default_nodename, Config, Exposure, Heartbeat, Keepalive, NodeAddr, NodeChange, ReloadReport, DEFAULT_MAX_LINKS,
    DEFAULT_REASSEMBLY_TOTAL, DEFAULT_SEND_TOTAL, HEARTBEAT_NAME, RESERVED_PREFIX,
};
pub use error::CallError;
pub use event::{DownReason, LinkDir, LinkEvent, LinkHook};
pub use ipnet::IpNet;
pub use log::{Level, LogHook, LogRecord};
pub use node::{CallOpts, Handle, Node};
pub use nodemap::{MapValue, NodeMap};
pub use service::{FnService, Inbound, Responder, Service};
pub use stats::{LinkStats, StatsSnapshot};
pub use tls::{TlsConfig, TlsMode};
