//! The I/O loop: one `mio::Poll` per node, owning the read side of every connection. One
//! thread runs it at a time: the node's I/O thread, or its standby thread while the host's
//! `after_events` runs long (`standby.rs`).
//!
//! Per iteration: drain commands (new connections, listeners, resumes, closes), handle
//! readiness events (accept, read + dispatch, connect completion, flush on writable),
//! expire timed-out callback calls, all inside one [`batch`] scope so that every frame
//! produced during the iteration (responses, calls issued by callbacks) leaves in one
//! write per link at the end.

use super::accept::{Listener, ACCEPT_RETRY_MAX, REFUSED_LOG_EVERY};
use super::answers::on_responses;
use super::batch::batch;
use super::budget::{Budget, Counters};
use super::config::Config;
use super::conn::Conn;
use super::direct::{direct_at_boundary, read_direct, start_direct, Direct};
use super::event::DownReason;
use super::log::{Level, Logger, RateLimit};
use super::node::Inner;
use super::pool::Pool;
use super::requests::{on_requests, peer_text, ReqMeta};
use super::stats::LinkStats;
use crate::wire;
use mio::net::TcpListener;
use mio::{Events, Poll, Registry, Token, Waker};
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{self, Read as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

pub(crate) const WAKER: Token = Token(0);
/// The read buffer, one per I/O thread: large reads cut syscalls for big messages (measured:
/// 512 KiB about doubles 1 MiB calls at concurrency 8 against 256 KiB).
pub(crate) const SCRATCH: usize = 512 << 10;
const NO_DEADLINE: u64 = u64::MAX;
/// A link's reassembler: its declared totals also count against the node's budget.
pub(super) type Reassembler<M> = wire::Reassembler<M, Arc<Budget>>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Read {
    No,
    Yes,
    ToEnd,
    /// The peer hung up: read what is left; a link paused for pushback closes instead (its
    /// peer asks nothing more and reads nothing, so nothing would ever resume it).
    HangUp,
}

pub(crate) enum Cmd {
    AddConn(Arc<Conn>),
    /// A listener and its own bound on accepted links (`None`: only the node's).
    AddListener(Token, TcpListener, Option<usize>),
    Resume(Token),
    Close(Token, DownReason),
    Shutdown,
}

/// What other threads share with the I/O thread.
pub(crate) struct IoShared {
    pub registry: Registry,
    waker: Waker,
    cmds: Mutex<Vec<Cmd>>,
    next_token: AtomicUsize,
    base: Instant,
    /// Earliest callback deadline (ms after `base`), or NO_DEADLINE.
    next_deadline: AtomicU64,
    /// When the I/O thread will wake on its own (ms after `base`); 0 while it runs.
    wake_at: AtomicU64,
    /// The node's I/O thread, and its standby thread when it has one (`standby.rs`).
    pub io_thread: OnceCell<ThreadId>,
    pub standby_thread: OnceCell<ThreadId>,
    /// Large buffers shared by this node's links.
    pub pool: Pool,
    /// Node-wide budgets: open links, bytes queued to send, bytes being reassembled.
    pub links: Budget,
    pub send: Budget,
    pub reasm: Arc<Budget>,
    pub counters: Counters,
    /// Where log lines go (the host's hook, or stderr).
    pub log: Logger,
}

impl IoShared {
    pub fn new(poll: &Poll, cfg: &Config) -> io::Result<IoShared> {
        Ok(IoShared {
            registry: poll.registry().try_clone()?,
            waker: Waker::new(poll.registry(), WAKER)?,
            cmds: Mutex::new(Vec::new()),
            next_token: AtomicUsize::new(1),
            base: Instant::now(),
            next_deadline: AtomicU64::new(NO_DEADLINE),
            wake_at: AtomicU64::new(0),
            io_thread: OnceCell::new(),
            standby_thread: OnceCell::new(),
            pool: Pool::default(),
            links: Budget::new(cfg.max_links),
            send: Budget::new(cfg.max_send_total),
            reasm: Arc::new(Budget::new(cfg.max_reassembly_total)),
            counters: Counters::default(),
            log: Logger::new(cfg.log.clone()),
        })
    }

    pub fn token(&self) -> Token {
        Token(self.next_token.fetch_add(1, Ordering::Relaxed))
    }

    /// Queues a command and wakes the I/O thread.
    pub fn send(&self, cmd: Cmd) {
        self.cmds.lock().push(cmd);
        let _ = self.waker.wake();
    }

    /// True on the node's I/O thread and on its standby thread.
    pub fn on_io_thread(&self) -> bool {
        let me = std::thread::current().id();
        self.io_thread.get().is_some_and(|t| *t == me) || self.standby_thread.get().is_some_and(|t| *t == me)
    }

    /// Makes the thread waiting in `poll` return (an empty round).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_millis() as u64 + 1
    }

    /// A callback call with this deadline was registered: make sure the I/O thread wakes
    /// in time for it.
    pub fn note_deadline(&self, d: Instant) {
        let ms = self.ms(d);
        let prev = self.next_deadline.fetch_min(ms, Ordering::SeqCst);
        if ms < prev && ms < self.wake_at.load(Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

pub(super) struct Entry {
    pub(super) conn: Arc<Conn>,
    pub(super) partial: Vec<u8>,
    /// Set while the rest of a large part goes straight into its reassembly buffer
    /// (`partial` is empty then).
    pub(super) direct: Option<Direct>,
    /// The multi-part message whose header or part was the last frame handled: its next
    /// part is expected to follow.
    pub(super) last_multi: Option<u32>,
    /// Inbound: multi-part requests being joined; meta = (address, push, trace).
    pub(super) req_parts: Option<Reassembler<ReqMeta>>,
    /// Outbound: multi-part responses being joined.
    pub(super) resp_parts: Option<Reassembler<()>>,
    pub(super) trace: Option<Vec<u8>>,
    /// Inbound: the listener that accepted it.
    pub(super) listener: Option<Token>,
    /// When bytes last arrived (the round's clock): idle timeout, heartbeat.
    pub(super) last_in: Instant,
    /// Outbound: the heartbeat probe in flight (its session, when it was sent).
    pub(super) probe: Option<(u32, Instant)>,
    /// Outbound: the TLS hello was sent and its answer is awaited (`tls/hello.rs`).
    pub(crate) hello: bool,
    /// Inbound, TLS on: the first frame is still to come (a hello, or a plain-text peer).
    pub(crate) first_frame: bool,
    /// The TLS handshake must complete by then.
    pub(crate) tls_deadline: Option<Instant>,
}

impl Entry {
    pub(super) fn new(conn: Arc<Conn>, now: Instant) -> Entry {
        let req_parts = conn.inbound.then(|| {
            let cfg = conn_cfg(&conn);
            Reassembler::with_budget(cfg.0, cfg.1, conn.io.reasm.clone())
        });
        Entry {
            conn,
            partial: Vec::new(),
            direct: None,
            last_multi: None,
            req_parts,
            resp_parts: None,
            trace: None,
            listener: None,
            last_in: now,
            probe: None,
            hello: false,
            first_frame: false,
            tls_deadline: None,
        }
    }

    /// The oldest multi-part message being joined on this link, either direction.
    pub(super) fn oldest_multi(&self) -> Option<(u32, Instant)> {
        let a = self.req_parts.as_ref().and_then(|r| r.oldest());
        let b = self.resp_parts.as_ref().and_then(|r| r.oldest());
        match (a, b) {
            (Some(x), Some(y)) => Some(if x.1 <= y.1 { x } else { y }),
            (x, y) => x.or(y),
        }
    }
}

/// Per-link reassembly bounds: (bytes one link may have declared, messages at once).
fn conn_cfg(conn: &Conn) -> (usize, usize) {
    (conn.max_message, conn.max_multi_pending)
}

/// Accepted links closed for a reason worth logging: at most one line per this long.
const INBOUND_CLOSE_LOG_EVERY: Duration = Duration::from_secs(1);
/// A link to one peer node closed (or failed to connect): at most one line per this long.
const OUTBOUND_CLOSE_LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct IoLoop {
    poll: Poll,
    pub(super) inner: Arc<Inner>,
    pub(super) conns: HashMap<Token, Entry>,
    pub(super) listeners: HashMap<Token, Listener>,
    /// The round's clock, read once after `poll` returns.
    pub(super) now: Instant,
    /// Housekeeping (timeouts, heartbeats, accept retries) runs every `tick`, when any is on.
    tick: Option<Duration>,
    next_tick: Instant,
    pub(super) refused_log: RateLimit,
    /// Accepted links open per source address (for `max_links_per_source`).
    pub(super) per_source: HashMap<std::net::IpAddr, usize>,
    /// When a refusal of each source was last logged (one line per source per interval).
    pub(super) source_log: HashMap<std::net::IpAddr, Instant>,
    /// Close lines: accepted links together (a hostile peer could open thousands), and per
    /// peer node (a node that stays down fails a connect attempt per call).
    inbound_close_log: RateLimit,
    outbound_close_log: HashMap<String, RateLimit>,
}

impl IoLoop {
    pub fn new(poll: Poll, inner: Arc<Inner>) -> Self {
        let tick = super::housekeep::tick(&inner.cfg);
        let now = Instant::now();
        IoLoop {
            poll,
            inner,
            conns: HashMap::new(),
            listeners: HashMap::new(),
            now,
            tick,
            next_tick: now + tick.unwrap_or(ACCEPT_RETRY_MAX),
            refused_log: RateLimit::new(REFUSED_LOG_EVERY),
            per_source: HashMap::new(),
            source_log: HashMap::new(),
            inbound_close_log: RateLimit::new(INBOUND_CLOSE_LOG_EVERY),
            outbound_close_log: HashMap::new(),
        }
    }

    /// When housekeeping must run next: the tick, or sooner for a stalled listener.
    fn housekeeping_at(&self) -> Option<Instant> {
        let stall = self.listeners.values().filter_map(|l| l.stall.as_ref().map(|s| s.retry_at)).min();
        let tick = self.tick.map(|_| self.next_tick);
        match (stall, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One round: waits for events (never longer than `cap`, when given), then handles
    /// them inside one [`batch`] scope. Returns true when the node is shutting down.
    /// Runs on whichever thread holds the loop (see `standby.rs`).
    pub fn round(&mut self, events: &mut Events, scratch: &mut [u8], cap: Option<Duration>) -> bool {
        let io = self.inner.io.clone();
        let mut timeout = self.plan_sleep(&io);
        if let Some(c) = cap {
            timeout = Some(timeout.map_or(c, |t| t.min(c)));
        }
        let house = self.housekeeping_at();
        if let Some(h) = house {
            let d = h.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.inner.io.log.error(&format!("poll failed: {e}"));
                return true;
            }
        }
        io.wake_at.store(0, Ordering::SeqCst);
        self.now = Instant::now();
        batch(|| {
            let stop = self.drain_cmds(scratch);
            for ev in events.iter() {
                let t = ev.token();
                if t == WAKER {
                    continue;
                }
                if self.listeners.contains_key(&t) {
                    self.accept(t, scratch);
                    continue;
                }
                let hup = ev.is_read_closed() || ev.is_error();
                let readable = ev.is_readable() || hup;
                let writable = ev.is_writable() || ev.is_error() || ev.is_write_closed();
                // After a hang-up no further edge will come: read to the end.
                let read = if hup {
                    Read::HangUp
                } else if readable {
                    Read::Yes
                } else {
                    Read::No
                };
                self.on_event(t, read, writable, scratch);
            }
            self.expire(&io);
            if house.is_some_and(|h| h <= self.now) {
                self.housekeep(scratch);
                if let Some(t) = self.tick {
                    if self.next_tick <= self.now {
                        self.next_tick = self.now + t;
                    }
                }
            }
            stop
        })
    }

    /// After the last round: every link closes (pending calls fail), listeners close.
    pub fn finish(&mut self) {
        for (_, e) in self.conns.drain() {
            e.conn.close(&DownReason::Shutdown);
        }
        self.listeners.clear();
    }

    fn plan_sleep(&self, io: &IoShared) -> Option<Duration> {
        loop {
            let d = io.next_deadline.load(Ordering::SeqCst);
            io.wake_at.store(d, Ordering::SeqCst);
            if io.next_deadline.load(Ordering::SeqCst) != d {
                continue;
            }
            if d == NO_DEADLINE {
                return None;
            }
            let now = io.ms(Instant::now());
            return Some(Duration::from_millis(d.saturating_sub(now)));
        }
    }

    /// Fails callback calls whose deadline passed.
    fn expire(&mut self, io: &IoShared) {
        let now_i = Instant::now();
        let now = io.ms(now_i);
        if io.next_deadline.load(Ordering::SeqCst) > now {
            return;
        }
        io.next_deadline.store(NO_DEADLINE, Ordering::SeqCst);
        let mut min = NO_DEADLINE;
        let mut expired = Vec::new();
        let mut stalled = Vec::new();
        let mut handshakes = Vec::new();
        for (t, e) in self.conns.iter() {
            if let Some(d) = e.tls_deadline {
                if d <= now_i {
                    handshakes.push(*t);
                } else {
                    min = min.min(io.ms(d));
                }
            }
            if e.conn.inbound {
                continue;
            }
            let mut st = e.conn.st.lock();
            if let (false, None, Some(d)) = (st.connected, &st.closed, e.conn.connect_deadline) {
                if d <= now_i {
                    stalled.push(*t);
                } else {
                    min = min.min(io.ms(d));
                }
            }
            if st.pending.is_empty() {
                continue;
            }
            let mut gone = Vec::new();
            for (s, p) in st.pending.iter() {
                if let Some(d) = p.deadline {
                    if d <= now_i {
                        gone.push(*s);
                    } else {
                        min = min.min(io.ms(d));
                    }
                }
            }
            for s in gone {
                if let Some(p) = st.pending.remove(&s) {
                    expired.push((e.conn.stats.clone(), p));
                }
            }
        }
        if let Some(d) = super::waiting::expire_deferred(&self.inner, now_i) {
            min = min.min(io.ms(d));
        }
        io.next_deadline.fetch_min(min, Ordering::SeqCst);
        for (stats, p) in expired {
            LinkStats::add(&stats.timeouts, 1);
            p.complete(Err(super::CallError::Timeout), &io.log);
        }
        for t in handshakes {
            if let Some(e) = self.conns.get(&t) {
                let why = super::tls::hello::handshake_expired(&self.inner, &e.conn);
                self.close(t, why);
            }
        }
        for t in stalled {
            if self.conns.get(&t).is_some_and(|e| e.hello) {
                let after = self.inner.cfg.connect_timeout;
                let node = self.conns[&t].conn.node.clone();
                self.close(
                    t,
                    DownReason::ConnectFailed(format!("node {node} did not answer the TLS hello within {after:?}")),
                );
                continue;
            }
            let peer = self.conns.get(&t).and_then(|e| e.conn.peer);
            let after = self.inner.cfg.connect_timeout;
            self.close(t, DownReason::ConnectFailed(format!("connect to {peer:?} timed out after {after:?}")));
        }
    }

    fn drain_cmds(&mut self, scratch: &mut [u8]) -> bool {
        let cmds = std::mem::take(&mut *self.inner.io.cmds.lock());
        let mut stop = false;
        for c in cmds {
            match c {
                Cmd::AddConn(conn) => {
                    let t = conn.token;
                    self.conns.insert(t, Entry::new(conn, self.now));
                    // The first edge may have fired before we knew the token.
                    self.on_event(t, Read::ToEnd, true, scratch);
                }
                Cmd::AddListener(t, sock, max_clients) => {
                    self.listeners.insert(t, Listener::new(sock, max_clients));
                    self.accept(t, scratch);
                }
                Cmd::Resume(t) => self.on_event(t, Read::ToEnd, false, scratch),
                Cmd::Close(t, why) => self.close(t, why),
                Cmd::Shutdown => stop = true,
            }
        }
        stop
    }

    /// Closes link `t`: fails its pending calls, releases its socket (the I/O thread's and
    /// the node map's references go now; responders hold the link weakly), tells the host.
    pub(super) fn close(&mut self, t: Token, why: DownReason) {
        let Some(e) = self.conns.remove(&t) else {
            return;
        };
        if let Some(l) = e.listener.and_then(|l| self.listeners.get_mut(&l)) {
            l.open -= 1;
        }
        if let (true, Some(ip)) = (e.conn.inbound, e.conn.peer.map(|p| p.ip())) {
            if let Some(n) = self.per_source.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&ip);
                }
            }
        }
        let conn = e.conn.clone();
        drop(e);
        let first = conn.close(&why);
        if !conn.inbound {
            self.inner.retire(&conn);
        }
        if !first {
            return;
        }
        if !matches!(why, DownReason::PeerClosed | DownReason::Reload | DownReason::Shutdown) {
            let peer = peer_text(&conn);
            let log = &self.inner.io.log;
            if conn.inbound {
                let text = || format!("accepted link ({peer}) closed: {why}");
                self.inbound_close_log.log(log, Level::Warn, Some(&why), self.now, text);
            } else {
                let node = conn.node.clone();
                let limit =
                    self.outbound_close_log.entry(node).or_insert_with(|| RateLimit::new(OUTBOUND_CLOSE_LOG_EVERY));
                let text = || format!("link to [{}] ({peer}) closed: {why}", conn.node);
                limit.log(log, Level::Warn, Some(&why), self.now, text);
            }
        }
        self.inner.link_event(conn.event(Some(why)));
    }

    pub(super) fn on_event(&mut self, t: Token, read: Read, writable: bool, scratch: &mut [u8]) {
        let Some(e) = self.conns.get(&t) else { return };
        let conn = e.conn.clone();
        if !conn.inbound {
            let (connected, closed) = {
                let st = conn.st.lock();
                (st.connected, st.closed.is_some())
            };
            if closed {
                // Closed by another thread (a reload): drop it here too.
                self.close(t, DownReason::Reload);
                return;
            }
            let hello = self.conns.get(&t).is_some_and(|e| e.hello);
            if !connected && !hello {
                match connect_status(&conn) {
                    Ok(true) if self.inner.tls.mode != super::TlsMode::Off => {
                        // Connected: the TLS hello goes first; the link is up once answered.
                        if let Err(err) = super::tls::hello::send(&conn) {
                            self.close(t, DownReason::Io(format!("write failed: {err}")));
                            return;
                        }
                        if let Some(e) = self.conns.get_mut(&t) {
                            e.hello = true;
                        }
                    }
                    Ok(true) => {
                        {
                            let mut st = conn.st.lock();
                            st.connected = true;
                            st.ever_connected = true;
                        }
                        LinkStats::add(&conn.stats.connects, 1);
                        self.inner.link_event(conn.event(None));
                        conn.flush_or_report();
                    }
                    Ok(false) => return,
                    Err(err) => {
                        let peer = conn.peer.map_or_else(|| "?".into(), |p| p.to_string());
                        self.close(t, DownReason::ConnectFailed(format!("connect to {peer} failed: {err}")));
                        return;
                    }
                }
            } else if writable {
                conn.flush_or_report();
            }
        } else if writable {
            conn.flush_or_report();
        }
        if read != Read::No {
            if let Some(e) = self.conns.get_mut(&t) {
                e.last_in = self.now;
            }
            if read == Read::HangUp && conn.inbound && conn.st.lock().paused {
                self.close(t, DownReason::PeerClosed);
                return;
            }
            if let Err(why) = self.read(t, scratch, read != Read::Yes) {
                self.close(t, why);
            }
        }
    }

    /// Reads until the socket is drained (or reading is paused), dispatching every complete
    /// frame. `Err` closes the link. Without `to_end`, a short read ends the loop (the
    /// next arrival raises a new edge); with it, reading goes on to `WouldBlock` or EOF.
    fn read(&mut self, t: Token, scratch: &mut [u8], to_end: bool) -> Result<(), DownReason> {
        let inner = self.inner.clone();
        let Some(e) = self.conns.get_mut(&t) else {
            return Ok(());
        };
        loop {
            if e.conn.inbound && e.conn.st.lock().paused {
                return Ok(());
            }
            let tls = e.conn.tls.get().is_some();
            let (n, room) = if e.direct.is_some() {
                match read_direct(&inner, e, scratch)? {
                    Some(r) => r,
                    None => return Ok(()),
                }
            } else if tls {
                let carried = e.partial.len();
                scratch[..carried].copy_from_slice(&e.partial);
                let room = scratch.len() - carried;
                let Some(n) = super::tls::hello::read(&inner, e, &mut scratch[carried..])? else {
                    return Ok(());
                };
                LinkStats::add(&e.conn.stats.bytes_in, n as u64);
                process(&inner, e, &scratch[..carried + n])?;
                (n, room)
            } else {
                let carried = e.partial.len();
                scratch[..carried].copy_from_slice(&e.partial);
                let room = scratch.len() - carried;
                let n = match (&e.conn.stream).read(&mut scratch[carried..]) {
                    Ok(0) => return Err(DownReason::PeerClosed),
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(DownReason::Io(format!("read failed: {err}"))),
                };
                LinkStats::add(&e.conn.stats.bytes_in, n as u64);
                process(&inner, e, &scratch[..carried + n])?;
                (n, room)
            };
            if e.conn.inbound {
                let mut st = e.conn.st.lock();
                if e.conn.above_pause(&st) {
                    st.paused = true;
                }
            }
            // TLS: decrypted bytes may wait in rustls whatever the socket holds: read on
            // until it has nothing more.
            if n < room && !to_end && !tls {
                // A short read drained the socket; epoll reports the next arrival.
                return Ok(());
            }
            if n == room {
                // More is waiting: let the answers produced so far leave now.
                super::batch::flush_batch_early();
            }
        }
    }
}

/// Handles the complete frames at the front of `data` and keeps the incomplete rest: in
/// `partial`, or, when it starts a large part of a message being joined, in that
/// message's buffer (the rest of the part is then read straight there: [`read_direct`]).
pub(super) fn process(inner: &Arc<Inner>, e: &mut Entry, data: &[u8]) -> Result<(), DownReason> {
    let first = if e.hello {
        Some(super::tls::hello::on_answer(inner, e, data, Instant::now())?)
    } else if e.first_frame {
        super::tls::hello::on_first(inner, e, data, Instant::now())?
    } else {
        None
    };
    let used = match first {
        Some(used) => used,
        None if e.conn.inbound => on_requests(inner, e, data)?,
        None => on_responses(e, data)?,
    };
    let rest = &data[used..];
    e.partial.clear();
    // TLS links read decrypted bytes: none goes straight into a reassembly buffer.
    let plain = e.conn.tls.get().is_none();
    if !(plain && (start_direct(e, rest) || (rest.is_empty() && direct_at_boundary(e)))) {
        e.partial.extend_from_slice(rest);
    }
    if e.partial.capacity() > 2 * wire::MAX_FRAME_BODY && e.partial.is_empty() {
        e.partial = Vec::new();
    }
    Ok(())
}

/// `Ok(true)`: connected; `Ok(false)`: still in progress.
fn connect_status(conn: &Conn) -> Result<bool, String> {
    if let Ok(Some(err)) | Err(err) = conn.stream.take_error() {
        return Err(err.to_string());
    }
    match conn.stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(err) => Err(err.to_string()),
    }
}
