//! One TCP connection: its socket, its send queue, and (for links we opened) the calls
//! waiting for an answer on it.
//!
//! # Threading
//!
//! A [`Conn`] is shared (`Arc`) between the I/O thread and any thread that sends on it.
//! * Reading is done only by the I/O thread.
//! * Everything else lives in [`ConnState`] behind one mutex: the send buffer, the next
//!   session, the pending calls. A caller takes that lock once per call: it allocates the
//!   session, encodes the frames straight into the send buffer (the payload's only copy on
//!   the sending side) and registers the pending call.
//! * Writing is *combining*: whoever finds the socket idle becomes the flusher and writes
//!   everything queued (its own frames and any that others appended meanwhile) with one
//!   `writev` over the queued chunks, outside the lock. Others just append. Inside a
//!   [`batch`] scope (the I/O thread always runs in one) writes are deferred to the end of
//!   the scope, so many frames leave in one syscall.
//! * When the socket is full (`WouldBlock`) the rest waits for the writable edge, which the
//!   I/O thread handles.

use super::call::{Pending, Waiter};
use super::error::CallError;
use super::event::DownReason;
use super::io::{Cmd, IoShared};
use super::pool::Pool;
use super::stats::LinkStats;
use super::tls::TlsLink;
use crate::wire::PART_HEADER;
use bytes::Bytes;
use mio::net::TcpStream;
use mio::Token;
use once_cell::sync::OnceCell;
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Buffers larger than this are released when they become empty, so that an idle link
/// holds little memory after a burst.
const KEEP_SPARE: usize = 16 << 10;
/// Size of a fresh chunk for small frames.
const CHUNK: usize = 16 << 10;
/// Largest chunk sized for sharing (a bigger message gets a chunk of its own size).
const MAX_CHUNK: usize = 1 << 20;
/// Most slices handed to one `writev` (IOV_MAX is 1024): enough for a 1 MiB message sent
/// from `Bytes` (two slices per 32 KiB part) to leave in one call (measured at 1 MiB conc 1:
/// 2 -> 1 writev, ~2.4 -> ~1.1 wake-ups per call per side against 64 slices).
const MAX_IOV: usize = 256;
/// When the node's send budget (`Config::max_send_total`) is full, a link with at least
/// this much queued is the one refused (calls, pushes) or paused (reading requests): a link
/// whose peer reads its answers keeps working while the ones that do not are held back.
pub(crate) const FAIR_SHARE: usize = 1 << 20;
/// A link's queue is charged to the node's send budget in whole granules (rounded down), so
/// that small messages, which come and go within a granule, cost no shared atomic update.
/// What escapes the count is below one granule per link (64 MiB at the default 16384 links).
const BUDGET_GRANULE: usize = 4 << 10;

/// One piece of a link's send queue: bytes we encoded, or a slice of a payload the caller
/// handed over (`bytes::Bytes`), written from where it is.
pub(crate) enum Chunk {
    Buf(Vec<u8>),
    Shared(Bytes),
}

impl Chunk {
    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Buf(v) => v,
            Chunk::Shared(b) => b,
        }
    }
}

pub(crate) struct ConnState {
    /// Frames waiting to be written, in chunks: small frames share a chunk, a large
    /// message gets one of its exact size (no reallocation, no copy when the queue grows).
    /// `out[0][..sent]` was already written.
    out: VecDeque<Chunk>,
    sent: usize,
    /// Bytes not yet written: in `out`, and held by a flusher that is writing right now.
    queued: usize,
    /// The part of `queued` charged to the node's send budget (whole granules).
    charged: usize,
    /// Emptied chunks kept for reuse (small ones only).
    spare: Vec<Vec<u8>>,
    flushing: bool,
    /// A writable edge (or a flush request) arrived while someone was flushing.
    writable_hint: bool,
    /// Already in the current thread's deferred-flush list.
    pub(super) dirty: bool,
    pub connected: bool,
    pub ever_connected: bool,
    pub closed: Option<String>,
    pub closed_at: Option<Instant>,
    /// Closed because the heartbeat found the peer unresponsive: the next connect attempt
    /// waits its backoff, as after a failed connect.
    pub heartbeat_dead: bool,
    /// Next session to use (outbound links).
    pub session: u32,
    pub pending: HashMap<u32, Pending>,
    /// Inbound: reading is paused until the host answers or the queue drains.
    pub paused: bool,
}

impl ConnState {
    #[inline]
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Brings the node's send budget in line with `queued` (see `BUDGET_GRANULE`).
    #[inline]
    fn charge(&mut self, io: &IoShared) {
        let want = self.queued & !(BUDGET_GRANULE - 1);
        if want > self.charged {
            io.send.take(want - self.charged);
        } else if want < self.charged {
            io.send.give(self.charged - want);
        }
        self.charged = want;
    }

    /// Appends one message of at most `need` bytes through `f`, which encodes into the
    /// tail chunk. On error nothing is left behind.
    pub fn append<R, E>(
        &mut self,
        io: &IoShared,
        need: usize,
        f: impl FnOnce(&mut Vec<u8>) -> Result<R, E>,
    ) -> Result<R, E> {
        let pool = &io.pool;
        let fits = matches!(self.out.back(), Some(Chunk::Buf(b)) if b.capacity() - b.len() >= need);
        if !fits {
            // Chunks grow with the queue: under load many messages share one allocation
            // (a malloc/free per message costs more than the copy, through heap trimming
            // and page faults); an idle link keeps at most one small chunk.
            let cap = need.max(CHUNK).max(self.queued.min(MAX_CHUNK));
            let v = match self.spare.pop() {
                Some(v) if v.capacity() >= cap => v,
                Some(v) => {
                    self.spare.push(v);
                    pool.get(cap)
                }
                None => pool.get(cap),
            };
            self.out.push_back(Chunk::Buf(v));
        }
        let Some(Chunk::Buf(tail)) = self.out.back_mut() else { unreachable!("a Buf chunk is at the back") };
        let mark = tail.len();
        let r = f(tail);
        let added = tail.len() - mark;
        if r.is_err() {
            tail.truncate(mark);
            if tail.is_empty() {
                if let Some(Chunk::Buf(v)) = self.out.pop_back() {
                    self.recycle(v, pool);
                }
            }
        } else {
            self.queued += added;
            self.charge(io);
        }
        r
    }

    /// Appends a multi-part message whose payload is written from `payload` itself (no
    /// copy): `head` encodes what goes before the first part (trace, header or begin
    /// frame), `part_header` gives the 7 bytes before each chunk of `MULTI_PART` bytes.
    pub fn append_shared<E>(
        &mut self,
        io: &IoShared,
        head: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
        payload: &Bytes,
        part_header: impl Fn(usize, bool) -> [u8; PART_HEADER],
    ) -> Result<(), E> {
        let parts = payload.len().div_ceil(crate::wire::MULTI_PART);
        let mut hdrs = Vec::with_capacity(64 + parts * PART_HEADER);
        head(&mut hdrs)?;
        let head_len = hdrs.len();
        for (i, chunk) in payload.chunks(crate::wire::MULTI_PART).enumerate() {
            hdrs.extend_from_slice(&part_header(chunk.len(), i + 1 == parts));
        }
        let hdrs = Bytes::from(hdrs);
        let mut at = 0;
        let mut h = 0;
        for i in 0..parts {
            let end = if i == 0 { head_len + PART_HEADER } else { h + PART_HEADER };
            self.out.push_back(Chunk::Shared(hdrs.slice(h..end)));
            h = end;
            let n = (payload.len() - at).min(crate::wire::MULTI_PART);
            self.out.push_back(Chunk::Shared(payload.slice(at..at + n)));
            at += n;
        }
        self.queued += hdrs.len() + payload.len();
        self.charge(io);
        Ok(())
    }

    fn recycle(&mut self, mut v: Vec<u8>, pool: &Pool) {
        v.clear();
        if v.capacity() <= KEEP_SPARE && self.spare.is_empty() {
            self.spare.push(v);
        } else {
            pool.put(v);
        }
    }
}

/// Room reserved for everything around a payload: trace frame header, request header
/// (name up to 255 bytes), and 7 bytes per part.
pub(crate) fn frame_room(payload: usize, extra: usize) -> usize {
    payload + extra + 300 + (payload / crate::wire::MULTI_PART + 1) * 7
}

pub(crate) struct Conn {
    pub token: Token,
    pub stream: TcpStream,
    pub inbound: bool,
    pub peer: Option<SocketAddr>,
    /// Outbound: the name of the node this link goes to.
    pub node: String,
    pub stats: Arc<LinkStats>,
    pub io: Arc<IoShared>,
    pub max_queue: usize,
    pub max_inflight: usize,
    /// Largest multi-part message accepted from the peer, and how many at once.
    pub max_message: usize,
    pub max_multi_pending: usize,
    /// Outbound: when a connect still in progress is abandoned.
    pub connect_deadline: Option<Instant>,
    /// Inbound: requests handed to the host and not answered yet.
    pub inflight: AtomicUsize,
    /// Outbound: an answer arrived on this link (the peer is really there, not only its
    /// kernel accepting connections): the connect backoff starts over.
    pub answered: AtomicBool,
    pub st: Mutex<ConnState>,
    /// Set once the link switched to TLS (after the hello, `tls/hello.rs`): from then on
    /// every byte each way goes through it. Lock order: `st` is never taken while this
    /// is held.
    pub tls: OnceCell<Mutex<TlsLink>>,
}

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        token: Token,
        stream: TcpStream,
        inbound: bool,
        peer: Option<SocketAddr>,
        node: String,
        stats: Arc<LinkStats>,
        io: Arc<IoShared>,
        cfg: &super::Config,
        session: u32,
    ) -> Conn {
        Conn {
            token,
            stream,
            inbound,
            peer,
            node,
            stats,
            io,
            max_queue: cfg.max_send_queue,
            max_inflight: cfg.max_inflight,
            max_message: cfg.max_message,
            max_multi_pending: cfg.max_multi_pending,
            connect_deadline: None,
            inflight: AtomicUsize::new(0),
            answered: AtomicBool::new(false),
            st: Mutex::new(ConnState {
                out: VecDeque::new(),
                sent: 0,
                queued: 0,
                charged: 0,
                spare: Vec::new(),
                flushing: false,
                writable_hint: false,
                dirty: false,
                connected: inbound,
                ever_connected: inbound,
                closed: None,
                closed_at: None,
                heartbeat_dead: false,
                session,
                pending: HashMap::new(),
                paused: false,
            }),
            tls: OnceCell::new(),
        }
    }

    /// Appends frames through `f` (under the lock), then writes them now, or at the end of
    /// the current [`batch`] scope, or when the connection completes. `force` writes now
    /// even inside a batch scope (blocking callers).
    pub fn send_with<R>(
        self: &Arc<Self>,
        force: bool,
        f: impl FnOnce(&mut ConnState) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut st = self.st.lock();
        if let Some(r) = &st.closed {
            return Err(CallError::LinkDown(r.clone()));
        }
        let r = f(&mut st)?;
        let now = self.after_append(&mut st, force);
        drop(st);
        if now {
            self.flush_or_report();
        }
        Ok(r)
    }

    /// Decides who writes what was just appended: true when the caller must flush now.
    fn after_append(self: &Arc<Self>, st: &mut ConnState, force: bool) -> bool {
        if !st.connected || st.flushing {
            // Written when the connection completes, or by the current flusher's loop.
            return false;
        }
        if force {
            return true;
        }
        !super::batch::defer(self, &mut st.dirty)
    }

    /// Flushes; a write error closes the link (through the I/O thread).
    pub fn flush_or_report(&self) {
        if let Err(e) = self.flush() {
            self.io.send(Cmd::Close(self.token, DownReason::Io(format!("write failed: {e}"))));
        }
    }

    /// Writes everything queued, until done or the socket is full.
    pub fn flush(&self) -> io::Result<()> {
        let mut st = self.st.lock();
        if st.flushing {
            st.writable_hint = true;
            return Ok(());
        }
        if !st.connected || st.closed.is_some() {
            return Ok(());
        }
        st.flushing = true;
        let tls = self.tls.get();
        let result = loop {
            // A TLS link writes even with nothing queued: rustls may hold records
            // (handshake messages, what did not fit in the socket before).
            if st.out.is_empty() && tls.is_none() {
                st.sent = 0;
                break Ok(());
            }
            let mut chunks = std::mem::take(&mut st.out);
            let mut sent = std::mem::replace(&mut st.sent, 0);
            st.writable_hint = false;
            drop(st);
            let mut written = 0usize;
            let mut done = Vec::new();
            let res = match tls {
                None => write_chunks(&self.stream, &mut chunks, &mut sent, &mut written, &mut done),
                Some(t) => {
                    write_chunks_tls(&mut t.lock(), &self.stream, &mut chunks, &mut sent, &mut written, &mut done)
                }
            };
            LinkStats::add(&self.stats.bytes_out, written as u64);
            st = self.st.lock();
            // close() may have zeroed the count meanwhile (and given its bytes back).
            st.queued -= written.min(st.queued);
            st.charge(&self.io);
            for c in done {
                match c {
                    Chunk::Buf(v) => st.recycle(v, &self.io.pool),
                    // The last slice of a payload nobody else holds: its buffer (typically a
                    // reassembled request echoed back) goes to the pool instead of free().
                    Chunk::Shared(b) if b.is_unique() && b.len() >= 1024 => self.io.pool.put(Vec::from(b)),
                    Chunk::Shared(_) => {}
                }
            }
            match res {
                Ok(true) if tls.is_some() && st.out.is_empty() && !st.writable_hint => {
                    st.sent = 0;
                    break Ok(());
                }
                Ok(true) => {}
                Ok(false) => {
                    // Socket full: the rest goes back in front of what was appended meanwhile.
                    while let Some(c) = chunks.pop_back() {
                        st.out.push_front(c);
                    }
                    st.sent = sent;
                    if st.writable_hint {
                        st.writable_hint = false;
                        continue;
                    }
                    break Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        st.flushing = false;
        let resume = self.take_resume(&mut st);
        drop(st);
        if resume {
            self.io.send(Cmd::Resume(self.token));
        }
        result
    }

    /// Inbound: clears `paused` when reading may resume; true when the I/O thread must be told.
    fn take_resume(&self, st: &mut ConnState) -> bool {
        let resume = st.paused && self.below_resume(st);
        if resume {
            st.paused = false;
        }
        resume
    }

    /// The end of queuing an answer: resume reading if the queue drained enough, and write
    /// now when this thread is the one to write.
    fn answer_queued(self: &Arc<Self>, mut st: MutexGuard<'_, ConnState>) {
        let resume = self.take_resume(&mut st);
        let now = self.after_append(&mut st, false);
        drop(st);
        if resume {
            self.io.send(Cmd::Resume(self.token));
        }
        if now {
            self.flush_or_report();
        }
    }

    /// Inbound: true when reading may resume (queue and in-service count at half their
    /// limits, and the link's queue below half its fair share while the node's send budget
    /// is full).
    pub fn below_resume(&self, st: &ConnState) -> bool {
        st.queued() <= self.max_queue / 2
            && self.inflight.load(Ordering::Relaxed) <= self.max_inflight / 2
            && !(self.io.send.full() && st.queued() > FAIR_SHARE / 2)
    }

    /// Inbound: true when reading must pause (counted when the node's budget is the cause).
    pub fn above_pause(&self, st: &ConnState) -> bool {
        if st.queued() >= self.max_queue || self.inflight.load(Ordering::Relaxed) >= self.max_inflight {
            return true;
        }
        self.over_budget(st)
    }

    /// The node's send budget is full and this link holds its fair share: it is the one
    /// refused or paused. Counted.
    pub fn over_budget(&self, st: &ConnState) -> bool {
        let over = st.queued() >= FAIR_SHARE && self.io.send.full();
        if over {
            super::budget::Counters::add(&self.io.counters.over_budget);
        }
        over
    }

    /// True when a new call or push on this link must fail with `Overloaded`.
    pub fn refuse_send(&self, st: &ConnState) -> bool {
        st.queued() >= self.max_queue || self.over_budget(st)
    }

    /// Marks the connection closed, shuts the socket down and fails every pending call
    /// with `LinkDown(reason)`. Idempotent. Returns false if it was already closed.
    /// The descriptor itself is closed when the last `Arc` drops: the I/O thread and the
    /// node map let go of it at once, and responders hold only a `Weak`.
    pub fn close(&self, reason: &DownReason) -> bool {
        let heartbeat_dead = matches!(reason, DownReason::Heartbeat(_));
        let reason = reason.to_string();
        let pending = {
            let mut st = self.st.lock();
            if st.closed.is_some() {
                return false;
            }
            st.closed = Some(reason.clone());
            st.closed_at = Some(Instant::now());
            st.heartbeat_dead = heartbeat_dead;
            st.connected = false;
            st.out = VecDeque::new();
            st.spare = Vec::new();
            st.sent = 0;
            st.queued = 0;
            st.charge(&self.io);
            std::mem::take(&mut st.pending)
        };
        let _ = self.stream.shutdown(Shutdown::Both);
        LinkStats::add(&self.stats.drops, 1);
        let calls = pending.values().filter(|p| !matches!(p.waiter, Waiter::Probe)).count();
        if calls > 0 {
            LinkStats::add(&self.stats.errors, calls as u64);
        }
        for (_, p) in pending {
            p.complete(Err(CallError::LinkDown(reason.to_string())), &self.io.log);
        }
        true
    }

    /// This link going up (`down: None`) or down, as the host's link hook is told.
    pub fn event(&self, down: Option<DownReason>) -> super::event::LinkEvent {
        use super::event::LinkDir;
        super::event::LinkEvent {
            dir: if self.inbound { LinkDir::Inbound } else { LinkDir::Outbound },
            node: self.node.clone(),
            peer: self.peer,
            link: self.token.0 as u64,
            down,
        }
    }

    /// Queues a response frame (inbound links). Dropped (and counted as a late answer) if
    /// the link is gone.
    pub fn respond(self: &Arc<Self>, session: u32, r: Result<&[u8], &[u8]>) {
        self.respond_or_drop(session, r, true)
    }

    /// [`Conn::respond`]; on a closed link the answer is dropped, and counted as a late
    /// answer when `late` (an unanswered responder dropped after the close answered nothing).
    pub fn respond_or_drop(self: &Arc<Self>, session: u32, r: Result<&[u8], &[u8]>, late: bool) {
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        let mut st = self.st.lock();
        if st.closed.is_some() {
            if late {
                super::budget::Counters::add(&self.io.counters.late_answers);
            }
            return;
        }
        let len = match r {
            Ok(p) => p.len(),
            Err(m) => m.len().min(crate::wire::MULTI_PART),
        };
        let io = &*self.io;
        if st.append(io, frame_room(len, 0), |b| crate::wire::encode_response(b, session, r)).is_err() {
            let _ = st.append(io, 64, |b| crate::wire::encode_response(b, session, Err(b"response too large")));
        }
        self.answer_queued(st);
    }

    /// Queues a response whose payload is written from `payload` itself when it goes
    /// multi-part (no copy); a single-frame answer is copied as usual.
    pub fn respond_bytes(self: &Arc<Self>, session: u32, payload: Bytes) {
        if !crate::wire::response_is_multi(payload.len()) || u32::try_from(payload.len()).is_err() {
            return self.respond(session, Ok(&payload));
        }
        self.inflight.fetch_sub(1, Ordering::Relaxed);
        let mut st = self.st.lock();
        if st.closed.is_some() {
            super::budget::Counters::add(&self.io.counters.late_answers);
            return;
        }
        let total = payload.len() as u32;
        let io = self.io.clone();
        let _ = st.append_shared::<()>(
            &io,
            |b| {
                crate::wire::encode_response_begin(b, session, total);
                Ok(())
            },
            &payload,
            |n, last| crate::wire::response_part_header(session, n, last),
        );
        self.answer_queued(st);
    }

    /// Answers a request without counting it as in service (engine-answered: name
    /// queries, unknown names).
    pub fn respond_direct(self: &Arc<Self>, session: u32, r: Result<&[u8], &[u8]>) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        self.respond(session, r);
    }
}

impl Drop for Conn {
    /// The socket closes here (the `TcpStream` drops with the struct): the link's place in
    /// the node's link budget is free again. Every `Conn` was counted in before it was made.
    fn drop(&mut self) {
        self.io.links.give(1);
    }
}

/// [`write_chunks`] for a TLS link: the chunks are encrypted by rustls (records may span
/// chunks) and the records written; `Ok(false)` also when rustls holds all it will until
/// its handshake completes (the read side flushes again then). `written` counts plaintext.
fn write_chunks_tls(
    link: &mut TlsLink,
    stream: &TcpStream,
    chunks: &mut VecDeque<Chunk>,
    sent: &mut usize,
    written: &mut usize,
    done: &mut Vec<Chunk>,
) -> io::Result<bool> {
    loop {
        while chunks.front().is_some_and(|c| c.bytes().len() <= *sent) {
            done.push(chunks.pop_front().expect("front"));
            *sent = 0;
        }
        if chunks.is_empty() {
            return link.write_records(stream);
        }
        let parts: Vec<&[u8]> = chunks
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(i, c)| if i == 0 { &c.bytes()[*sent..] } else { c.bytes() })
            .collect();
        let (mut k, all) = link.write_plain(stream, &parts)?;
        drop(parts);
        *written += k;
        while k > 0 {
            let avail = chunks[0].bytes().len() - *sent;
            if k >= avail {
                k -= avail;
                *sent = 0;
                done.push(chunks.pop_front().expect("front"));
            } else {
                *sent += k;
                k = 0;
            }
        }
        if !all {
            return Ok(false);
        }
    }
}

/// Writes the chunks (`chunks[0][*sent..]` first) with `writev`, until all are written
/// (`Ok(true)`) or the socket is full (`Ok(false)`). Written chunks move to `done`.
fn write_chunks(
    stream: &TcpStream,
    chunks: &mut VecDeque<Chunk>,
    sent: &mut usize,
    written: &mut usize,
    done: &mut Vec<Chunk>,
) -> io::Result<bool> {
    let mut s = stream;
    loop {
        while chunks.front().is_some_and(|c| c.bytes().len() <= *sent) {
            done.push(chunks.pop_front().expect("front"));
            *sent = 0;
        }
        if chunks.is_empty() {
            return Ok(true);
        }
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut n = 0;
        for (i, c) in chunks.iter().take(MAX_IOV).enumerate() {
            iov[i] = IoSlice::new(if i == 0 { &c.bytes()[*sent..] } else { c.bytes() });
            n += 1;
        }
        let r = if n == 1 { s.write(&iov[0]) } else { s.write_vectored(&iov[..n]) };
        match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut k) => {
                *written += k;
                while k > 0 {
                    let avail = chunks[0].bytes().len() - *sent;
                    if k >= avail {
                        k -= avail;
                        *sent = 0;
                        done.push(chunks.pop_front().expect("front"));
                    } else {
                        *sent += k;
                        k = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}
