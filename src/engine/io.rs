//! The I/O loop: one `mio::Poll` per node, owning the read side of every connection. One
//! thread runs it at a time: the node's I/O thread, or its standby thread while the host's
//! `after_events` runs long (`standby.rs`).
//!
//! Per iteration: drain commands (new connections, listeners, resumes, closes), handle
//! readiness events (accept, read + dispatch, connect completion, flush on writable),
//! expire timed-out callback calls, all inside one [`batch`] scope so that every frame
//! produced during the iteration (responses, calls issued by callbacks) leaves in one
//! write per link at the end.

use super::budget::{Budget, Counters};
use super::config::Config;
use super::conn::{batch, Conn};
use super::event::{DownReason, LinkDir, LinkEvent};
use super::log::{Level, Logger, RateLimit};
use super::node::Inner;
use super::pool::Pool;
use super::service::{Inbound, Responder};
use super::stats::LinkStats;
use super::{pack, sockopt};
use crate::wire::{self, Address, Begin, OwnedAddress, Part, Request, Response};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use once_cell::sync::OnceCell;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{self, Read as _};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

pub(crate) const WAKER: Token = Token(0);
/// The read buffer, one per I/O thread: large reads cut syscalls for big messages (measured:
/// 512 KiB about doubles 1 MiB calls at concurrency 8 against 256 KiB).
pub(crate) const SCRATCH: usize = 512 << 10;
const NO_DEADLINE: u64 = u64::MAX;
/// Smallest rest of a message worth reading straight into its reassembly buffer.
const DIRECT_MIN: usize = 16 << 10;
/// Most parts one direct read expects after the current one (1 MiB).
const DIRECT_PARTS: usize = 32;
/// Room a direct read that should complete a message of `DIRECT_BIG` bytes or more leaves
/// for what follows: small, so that the next large message's first part is likely cut
/// short and joined directly too. After smaller messages the whole read buffer follows
/// (measured: a 16 KiB tail after 64 KiB messages costs more in syscalls and early writes
/// than the copies it saves).
const DIRECT_TAIL: usize = 16 << 10;
const DIRECT_BIG: usize = 256 << 10;
/// Bytes before the data of a part frame (length prefix, type, session), both directions.
const PART_HEADER: usize = wire::PART_HEADER;
/// A link's reassembler: its declared totals also count against the node's budget.
type Reassembler<M> = wire::Reassembler<M, Arc<Budget>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
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

/// What a multi-part request's header said: address, push flag, the trace tag before it.
type ReqMeta = (OwnedAddress, bool, Option<Vec<u8>>);

/// A part whose body is being read straight into its message's reassembly buffer.
struct Direct {
    session: u32,
    /// Bytes of the part's body still to come.
    left: usize,
    last: bool,
}

pub(super) struct Entry {
    pub(super) conn: Arc<Conn>,
    partial: Vec<u8>,
    /// Set while the rest of a large part goes straight into its reassembly buffer
    /// (`partial` is empty then).
    direct: Option<Direct>,
    /// The multi-part message whose header or part was the last frame handled: its next
    /// part is expected to follow.
    last_multi: Option<u32>,
    /// Inbound: multi-part requests being joined; meta = (address, push, trace).
    req_parts: Option<Reassembler<ReqMeta>>,
    /// Outbound: multi-part responses being joined.
    resp_parts: Option<Reassembler<()>>,
    trace: Option<Vec<u8>>,
    /// Inbound: the listener that accepted it.
    pub(super) listener: Option<Token>,
    /// When bytes last arrived (the round's clock): idle timeout, heartbeat.
    pub(super) last_in: Instant,
    /// Outbound: the heartbeat probe in flight (its session, when it was sent).
    pub(super) probe: Option<(u32, Instant)>,
}

impl Entry {
    fn new(conn: Arc<Conn>, now: Instant) -> Entry {
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

/// A listening socket, its own bound on accepted links, and its state after running out
/// of file descriptors.
pub(super) struct Listener {
    sock: TcpListener,
    max_clients: Option<usize>,
    /// Links it accepted that are still open.
    pub(super) open: usize,
    /// Accepting stopped (EMFILE/ENFILE) at `since`; retried at `retry_at`, backing off.
    pub(super) stall: Option<Stall>,
}

pub(super) struct Stall {
    pub since: Instant,
    pub retry_at: Instant,
    pub backoff: Duration,
}

/// First and longest wait before accepting again after running out of descriptors.
const ACCEPT_RETRY_MIN: Duration = Duration::from_millis(10);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);
/// Refused connections (link limits) are logged at most once per this long.
const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);
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
    refused_log: RateLimit,
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
        for (t, e) in self.conns.iter() {
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
        if let Some(d) = super::node::expire_deferred(&self.inner, now_i) {
            min = min.min(io.ms(d));
        }
        io.next_deadline.fetch_min(min, Ordering::SeqCst);
        for (stats, p) in expired {
            LinkStats::add(&stats.timeouts, 1);
            p.complete(Err(super::CallError::Timeout), &io.log);
        }
        for t in stalled {
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
                    self.listeners.insert(t, Listener { sock, max_clients, open: 0, stall: None });
                    self.accept(t, scratch);
                }
                Cmd::Resume(t) => self.on_event(t, Read::ToEnd, false, scratch),
                Cmd::Close(t, why) => self.close(t, why),
                Cmd::Shutdown => stop = true,
            }
        }
        stop
    }

    /// Accepts every waiting connection of listener `t`. Beyond the node's `max_links` or
    /// the listener's own bound a connection is closed at once (counted, logged rate-limited),
    /// as stock's gate does past `maxclient`. Out of descriptors (EMFILE, ENFILE, ENOBUFS,
    /// ENOMEM), the listener stalls: housekeeping retries it with backoff (no spinning, and
    /// with edge-triggered polling no new edge would come for connections already waiting),
    /// logged once per episode.
    pub(super) fn accept(&mut self, t: Token, scratch: &mut [u8]) {
        loop {
            let Some(l) = self.listeners.get_mut(&t) else {
                return;
            };
            match l.sock.accept() {
                Ok((mut stream, peer)) => {
                    if let Some(s) = l.stall.take() {
                        let n = self.conns.len();
                        self.inner.io.log.log(
                            Level::Info,
                            None,
                            &format!(
                                "accept resumed after {:.1}s without file descriptors ({n} links open)",
                                self.now.saturating_duration_since(s.since).as_secs_f64()
                            ),
                        );
                    }
                    let full = l.max_clients.is_some_and(|m| l.open >= m);
                    if full || !self.inner.io.links.try_take(1) {
                        Counters::add(&self.inner.io.counters.refused_links);
                        let (open, why) = if full {
                            (l.open, format!("listener limit of {} links", l.max_clients.unwrap_or(0)))
                        } else {
                            (
                                self.inner.io.links.used(),
                                format!("node limit of {} links (max_links)", self.inner.io.links.limit()),
                            )
                        };
                        let log = &self.inner.io.log;
                        self.refused_log.log(log, Level::Warn, None, self.now, || {
                            format!("connection from {peer} refused: {why} reached ({open} open)")
                        });
                        drop(stream);
                        continue;
                    }
                    l.open += 1;
                    let _ = stream.set_nodelay(true);
                    sockopt::keepalive(stream.as_raw_fd(), self.inner.cfg.keepalive);
                    let token = self.inner.io.token();
                    if let Err(e) =
                        self.inner.io.registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        self.inner.io.log.warn(&format!("register accepted socket: {e}"));
                        l.open -= 1;
                        self.inner.io.links.give(1);
                        continue;
                    }
                    let conn = Arc::new(Conn::new(
                        token,
                        stream,
                        true,
                        Some(peer),
                        String::new(),
                        self.inner.inbound_stats.clone(),
                        self.inner.io.clone(),
                        &self.inner.cfg,
                        0,
                    ));
                    LinkStats::add(&self.inner.inbound_stats.connects, 1);
                    let mut e = Entry::new(conn, self.now);
                    e.listener = Some(t);
                    self.conns.insert(token, e);
                    self.inner.link_event(LinkEvent {
                        dir: LinkDir::Inbound,
                        node: String::new(),
                        peer: Some(peer),
                        link: token.0 as u64,
                        down: None,
                    });
                    self.on_event(token, Read::ToEnd, false, scratch);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if out_of_descriptors(&e) => {
                    let now = self.now;
                    match &mut l.stall {
                        Some(s) => {
                            s.backoff = (s.backoff * 2).min(ACCEPT_RETRY_MAX);
                            s.retry_at = now + s.backoff;
                        }
                        None => {
                            Counters::add(&self.inner.io.counters.accept_stalls);
                            self.inner.io.log.warn(&format!(
                                "accept paused: {e} ({} links open); retrying until descriptors free up",
                                self.conns.len()
                            ));
                            l.stall =
                                Some(Stall { since: now, retry_at: now + ACCEPT_RETRY_MIN, backoff: ACCEPT_RETRY_MIN });
                        }
                    }
                    return;
                }
                Err(e) => {
                    // A connection that died in the backlog (ECONNABORTED...): next one.
                    if e.raw_os_error() == Some(libc::ECONNABORTED) || e.raw_os_error() == Some(libc::EPROTO) {
                        continue;
                    }
                    let log = &self.inner.io.log;
                    self.refused_log.log(log, Level::Warn, None, self.now, || format!("accept failed: {e}"));
                    return;
                }
            }
        }
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
        self.inner.link_event(LinkEvent {
            dir: if conn.inbound { LinkDir::Inbound } else { LinkDir::Outbound },
            node: conn.node.clone(),
            peer: conn.peer,
            link: t.0 as u64,
            down: Some(why),
        });
    }

    fn on_event(&mut self, t: Token, read: Read, writable: bool, scratch: &mut [u8]) {
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
            if !connected {
                match connect_status(&conn) {
                    Ok(true) => {
                        {
                            let mut st = conn.st.lock();
                            st.connected = true;
                            st.ever_connected = true;
                        }
                        LinkStats::add(&conn.stats.connects, 1);
                        self.inner.link_event(LinkEvent {
                            dir: LinkDir::Outbound,
                            node: conn.node.clone(),
                            peer: conn.peer,
                            link: t.0 as u64,
                            down: None,
                        });
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
            let (n, room) = if e.direct.is_some() {
                match read_direct(&inner, e, scratch)? {
                    Some(r) => r,
                    None => return Ok(()),
                }
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
            if n < room && !to_end {
                // A short read drained the socket; epoll reports the next arrival.
                return Ok(());
            }
            if n == room {
                // More is waiting: let the answers produced so far leave now.
                super::conn::flush_batch_early();
            }
        }
    }
}

/// Handles the complete frames at the front of `data` and keeps the incomplete rest: in
/// `partial`, or, when it starts a large part of a message being joined, in that
/// message's buffer (the rest of the part is then read straight there: [`read_direct`]).
fn process(inner: &Arc<Inner>, e: &mut Entry, data: &[u8]) -> Result<(), DownReason> {
    let used = if e.conn.inbound { on_requests(inner, e, data)? } else { on_responses(e, data)? };
    let rest = &data[used..];
    e.partial.clear();
    if !(start_direct(e, rest) || (rest.is_empty() && direct_at_boundary(e))) {
        e.partial.extend_from_slice(rest);
    }
    if e.partial.capacity() > 2 * wire::MAX_FRAME_BODY && e.partial.is_empty() {
        e.partial = Vec::new();
    }
    Ok(())
}

/// If `rest` (an incomplete frame) is a part of a message being joined, with its header
/// complete and at least `DIRECT_MIN` bytes of its body still to come: moves what is there
/// into the message's buffer and sets `e.direct`.
fn start_direct(e: &mut Entry, rest: &[u8]) -> bool {
    let head =
        if e.conn.inbound { wire::decode_request_part_header(rest) } else { wire::decode_response_part_header(rest) };
    let Some(wire::PartHeader { session, len: body, last }) = head else {
        return false;
    };
    let have = rest.len() - PART_HEADER;
    if have >= body {
        return false;
    }
    let pool = &e.conn.io.pool;
    let found = if e.conn.inbound {
        e.req_parts.as_mut().and_then(|r| r.direct(session, body, last, pool))
    } else {
        e.resp_parts.as_mut().and_then(|r| r.direct(session, body, last, pool))
    };
    let Some((buf, total)) = found else {
        return false;
    };
    if total - buf.len() - have < DIRECT_MIN {
        return false;
    }
    buf.extend_from_slice(&rest[PART_HEADER..]);
    e.direct = Some(Direct { session, left: body - have, last });
    true
}

/// When the data ended right after a header or part of a message still being joined of
/// at least `DIRECT_MIN` more bytes: expects its next part at the start of the next read
/// (sets `e.direct` with nothing left of a current part).
fn direct_at_boundary(e: &mut Entry) -> bool {
    let Some(session) = e.last_multi else {
        return false;
    };
    let pool = &e.conn.io.pool;
    let found = if e.conn.inbound {
        e.req_parts.as_mut().and_then(|r| r.direct(session, 0, false, pool))
    } else {
        e.resp_parts.as_mut().and_then(|r| r.direct(session, 0, false, pool))
    };
    match found {
        Some((buf, total)) if total - buf.len() >= DIRECT_MIN => {
            e.direct = Some(Direct { session, left: 0, last: false });
            true
        }
        _ => false,
    }
}

/// One `readv` while `e.direct` is set: the rest of the current part goes straight into
/// its message's buffer, and so do the following parts of the same message (up to
/// `DIRECT_PARTS`), whose 7-byte headers land in a small array between them and are
/// checked against what they must be. Whatever does not match (a stock peer interleaving
/// other frames) and what follows the message is then handled as usual. Returns the bytes
/// read and the room offered, or `None` on `WouldBlock`.
fn read_direct(inner: &Arc<Inner>, e: &mut Entry, scratch: &mut [u8]) -> Result<Option<(usize, usize)>, DownReason> {
    let d = e.direct.take().expect("direct read without a direct part");
    let session = d.session;
    let inbound = e.conn.inbound;
    let fd = e.conn.stream.as_raw_fd();
    let found = if inbound {
        e.req_parts.as_mut().and_then(|r| r.buf(session))
    } else {
        e.resp_parts.as_mut().and_then(|r| r.buf(session))
    };
    let Some((buf, total)) = found else {
        return Err(DownReason::Protocol(format!("multi-part session {session} vanished")));
    };
    // The parts expected: (data bytes, last), the current one first.
    let mut parts = [(0usize, false); DIRECT_PARTS + 1];
    let mut expect = [[0u8; PART_HEADER]; DIRECT_PARTS];
    parts[0] = (d.left, d.last);
    let mut np = 1;
    let mut pos = buf.len() + d.left;
    if !d.last {
        while pos < total && np <= DIRECT_PARTS {
            let chunk = (total - pos).min(wire::MULTI_PART);
            let last = pos + chunk == total;
            expect[np - 1] = if inbound {
                wire::request_part_header(session, chunk, last)
            } else {
                wire::response_part_header(session, chunk, last)
            };
            parts[np] = (chunk, last);
            np += 1;
            pos += chunk;
        }
    }
    debug_assert!(pos <= total && total <= buf.capacity());
    let completes = parts[np - 1].1;
    let tail = match (completes, total >= DIRECT_BIG) {
        (false, _) => 0,
        (true, true) => DIRECT_TAIL.min(scratch.len()),
        (true, false) => scratch.len(),
    };
    let mut hdrs = [[0u8; PART_HEADER]; DIRECT_PARTS];
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(2 * np + 1);
    let base = buf.as_mut_ptr();
    let mut off = buf.len();
    for (i, &(len, _)) in parts[..np].iter().enumerate() {
        if i > 0 {
            iov.push(libc::iovec { iov_base: hdrs[i - 1].as_mut_ptr().cast(), iov_len: PART_HEADER });
        }
        if len == 0 {
            continue; // at a frame boundary: the plan starts with the next part's header
        }
        // SAFETY: `off + len <= pos <= total <= buf.capacity()` (the plan above stops at the
        // declared total and the buffer was taken with that capacity), so the pointer stays
        // inside the buffer's allocation.
        iov.push(libc::iovec { iov_base: unsafe { base.add(off) }.cast(), iov_len: len });
        off += len;
    }
    if tail > 0 {
        iov.push(libc::iovec { iov_base: scratch.as_mut_ptr().cast(), iov_len: tail });
    }
    let room: usize = iov.iter().map(|v| v.iov_len).sum();
    let r = loop {
        // Every iovec describes memory we own and nobody else touches during the call:
        // spare capacity of `buf` (in bounds, see above), the `hdrs` array, the front of
        // `scratch`; the kernel writes at most `iov_len` bytes to each.
        // SAFETY: as above; `fd` is the link's open socket, kept alive by `e.conn`.
        let r = unsafe { libc::readv(fd, iov.as_ptr(), iov.len() as libc::c_int) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    drop(iov);
    if r < 0 {
        let err = io::Error::last_os_error();
        e.direct = Some(d);
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(DownReason::Io(format!("read failed: {err}"))),
        };
    }
    if r == 0 {
        return Err(DownReason::PeerClosed);
    }
    let n = r as usize;
    LinkStats::add(&e.conn.stats.bytes_in, n as u64);
    // Walk what arrived, in stream order.
    let mut k = n;
    let mut len = buf.len();
    let mut off = len;
    let mut leftover: Option<Vec<u8>> = None;
    let mut complete = false;
    for (i, &(plen, last)) in parts[..np].iter().enumerate() {
        if k == 0 {
            break;
        }
        let hm = if i > 0 { k.min(PART_HEADER) } else { 0 };
        k -= hm;
        let dm = k.min(plen);
        k -= dm;
        let matched = leftover.is_none() && (i == 0 || (hm == PART_HEADER && hdrs[i - 1] == expect[i - 1]));
        if matched {
            // SAFETY: the kernel wrote these `dm` bytes right after the buffer's current
            // length (`off == len` while every part so far matched), within its capacity.
            unsafe { buf.set_len(len + dm) };
            len += dm;
            if dm < plen {
                e.direct = Some(Direct { session, left: plen - dm, last });
                debug_assert_eq!(k, 0);
                return Ok(Some((n, room)));
            }
            complete = last;
        } else {
            let lo = leftover.get_or_insert_with(Vec::new);
            lo.extend_from_slice(&hdrs[i - 1][..hm]);
            // SAFETY: the kernel wrote these `dm` bytes at `off` inside the buffer's
            // capacity (the iovec above), so they are initialized; nothing else aliases them.
            lo.extend_from_slice(unsafe { std::slice::from_raw_parts(base.add(off), dm) });
        }
        off += plen;
    }
    if complete {
        if inbound {
            if let Some((meta, payload)) = e.req_parts.as_mut().and_then(|r| r.take_full(session)) {
                request_done(inner, &e.conn, session, meta, payload);
            }
        } else if let Some(((), payload)) = e.resp_parts.as_mut().and_then(|r| r.take_full(session)) {
            complete_multi(&e.conn, session, payload);
        }
    }
    match leftover {
        Some(mut lo) => {
            lo.extend_from_slice(&scratch[..k]);
            process(inner, e, &lo)?;
        }
        None => process(inner, e, &scratch[..k])?,
    }
    Ok(Some((n, room)))
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

/// Handles the complete request frames at the front of `data`; returns the bytes used.
fn on_requests(inner: &Arc<Inner>, e: &mut Entry, data: &[u8]) -> Result<usize, DownReason> {
    let mut cut = wire::FrameCutter::new(data);
    for body in cut.by_ref() {
        let req = wire::decode_request(body).map_err(|err| protocol(&e.conn, format!("bad request frame: {err}")))?;
        e.last_multi = match req {
            Request::MultiHeader { session, .. } | Request::Part { session, last: false, .. } => Some(session),
            _ => None,
        };
        match req {
            Request::Trace { tag } => e.trace = Some(tag.to_vec()),
            Request::Single { addr, session, payload } => {
                let trace = e.trace.take();
                dispatch(inner, &e.conn, addr, session, payload, trace.as_deref(), session == 0, None);
            }
            Request::MultiHeader { addr, session, total, push } => {
                let trace = e.trace.take();
                let r = e.req_parts.as_mut().expect("inbound");
                match r.begin(session, total, (OwnedAddress::of(addr), push, trace)) {
                    Ok(Begin::Joining) => {}
                    // Counted when its last part is answered.
                    Ok(Begin::Spoiled) => {}
                    Ok(Begin::Refused) => {
                        // The node's reassembly budget is full: this message is the one
                        // refused, now; the link and the other messages go on.
                        Counters::add(&inner.io.counters.over_budget);
                        inner.io.log.warn(&format!(
                            "multi-part request of {total} bytes from {} refused: node reassembly budget of {} bytes is full",
                            peer_text(&e.conn),
                            inner.io.reasm.limit()
                        ));
                        if !push {
                            e.conn.respond_direct(session, Err(REASSEMBLY_FULL));
                        }
                    }
                    Err(err) => return Err(protocol(&e.conn, err.to_string())),
                }
            }
            Request::Part { session, data, last } => {
                let r = e.req_parts.as_mut().expect("inbound");
                match r.part(session, data, last, &inner.io.pool) {
                    Ok(Part::More) | Ok(Part::Dropped) => {}
                    Ok(Part::Done(meta, payload)) => request_done(inner, &e.conn, session, meta, payload),
                    // Stock answers these and keeps the link (see wire/reassembly.rs).
                    Ok(Part::Invalid(_)) => {
                        Counters::add(&inner.io.counters.protocol_errors);
                        e.conn.respond_direct(session, Err(b"Invalid large req"));
                    }
                    Ok(Part::Orphan) => {
                        Counters::add(&inner.io.counters.protocol_errors);
                        e.conn.respond_direct(session, Err(b"Invalid name"));
                    }
                    Err(err) => return Err(protocol(&e.conn, err.to_string())),
                }
            }
        }
    }
    Ok(cut.consumed())
}

/// The error text of a request refused because the node's reassembly budget is full.
pub(crate) const REASSEMBLY_FULL: &[u8] = b"overloaded: node reassembly budget is full";

/// A protocol error that closes the link (counted).
fn protocol(conn: &Conn, why: String) -> DownReason {
    Counters::add(&conn.io.counters.protocol_errors);
    DownReason::Protocol(why)
}

fn peer_text(conn: &Conn) -> String {
    conn.peer.map_or_else(|| "?".into(), |p| p.to_string())
}

/// A reassembled request.
fn request_done(inner: &Arc<Inner>, conn: &Arc<Conn>, session: u32, meta: ReqMeta, payload: Vec<u8>) {
    let (addr, push, trace) = meta;
    // As `Bytes` (no copy), so that the service may keep it (Inbound::take_payload); if it
    // did not, the buffer goes back to the pool.
    let payload = bytes::Bytes::from(payload);
    dispatch(inner, conn, addr.as_addr(), session, &payload, trace.as_deref(), push, Some(&payload));
    if payload.is_unique() {
        inner.io.pool.put(Vec::from(payload));
    }
}

/// A reassembled answer.
fn complete_multi(conn: &Conn, session: u32, payload: Vec<u8>) {
    complete(conn, session, Ok(super::Reply::pooled(payload, conn.io.clone())));
}

/// One whole request: engine-level names first, then the host's service. `owned` is the
/// buffer behind `payload` when the service may keep it without a copy.
#[allow(clippy::too_many_arguments)]
fn dispatch(
    inner: &Arc<Inner>,
    conn: &Arc<Conn>,
    addr: Address<'_>,
    session: u32,
    payload: &[u8],
    trace: Option<&[u8]>,
    push: bool,
    owned: Option<&bytes::Bytes>,
) {
    let stats = &conn.stats;
    LinkStats::add(if push { &stats.pushes } else { &stats.calls }, 1);
    let addr = match addr {
        Address::Id(0) => {
            // cluster.query: the payload is skynet.pack(name), the answer packstring(address).
            if push {
                return;
            }
            let found = pack::unpack_str(payload).and_then(|(name, _)| inner.names.read().get(name).copied());
            match found {
                Some(a) => {
                    let mut out = Vec::with_capacity(9);
                    pack::pack_int(&mut out, a as i64);
                    conn.respond_direct(session, Ok(&out));
                }
                None => conn.respond_direct(session, Err(b"name not found")),
            }
            return;
        }
        Address::Name(n) if n.first() == Some(&b'@') => match inner.names.read().get(&n[1..]) {
            Some(&a) => Address::Id(a),
            None => {
                if !push {
                    conn.respond_direct(session, Err(b"Invalid name"));
                }
                return;
            }
        },
        a => a,
    };
    let service = inner.service.read().clone();
    let req = Inbound { addr, session, payload, trace, peer: conn.peer, link: conn.token.0 as u64, owned };
    // A panicking handler must not take the I/O thread (and every link) down with it: the
    // panic is caught and logged; an unanswered call's Responder is dropped while unwinding,
    // which answers `no response`.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match service {
        Some(s) if push => s.push(req),
        Some(s) => {
            conn.inflight.fetch_add(1, Ordering::Relaxed);
            s.call(req, Responder::new(conn, session));
        }
        None if push => {}
        None => conn.respond_direct(session, Err(b"no service")),
    }));
    if r.is_err() {
        inner.io.log.error(&format!("service handler panicked (session {session}); link kept"));
    }
}

/// Handles the complete response frames at the front of `data`; returns the bytes used.
fn on_responses(e: &mut Entry, data: &[u8]) -> Result<usize, DownReason> {
    let mut cut = wire::FrameCutter::new(data);
    for body in cut.by_ref() {
        let resp =
            wire::decode_response(body).map_err(|err| protocol(&e.conn, format!("bad response frame: {err}")))?;
        e.last_multi = match resp {
            Response::MultiBegin { session, .. } | Response::MultiPart { session, last: false, .. } => Some(session),
            _ => None,
        };
        match resp {
            Response::Ok { session, payload } => complete(&e.conn, session, Ok(super::Reply::borrowed(payload))),
            Response::Error { session, msg } => complete(&e.conn, session, Err(super::CallError::Remote(msg.to_vec()))),
            Response::MultiBegin { session, total } => {
                let conn = &e.conn;
                let r = e.resp_parts.get_or_insert_with(|| {
                    Reassembler::with_budget(conn.max_message, conn.max_multi_pending, conn.io.reasm.clone())
                });
                match r.begin(session, total, ()) {
                    Ok(Begin::Joining) => {}
                    Ok(Begin::Refused) => {
                        // This answer is the one refused: its call fails now, its parts are dropped.
                        Counters::add(&conn.io.counters.over_budget);
                        complete(conn, session, Err(super::CallError::Overloaded));
                    }
                    Ok(Begin::Spoiled) => {
                        return Err(protocol(conn, format!("duplicate multi-part answer for session {session}")))
                    }
                    Err(err) => return Err(protocol(conn, err.to_string())),
                }
            }
            Response::MultiPart { session, data, last } => {
                let Some(r) = e.resp_parts.as_mut() else {
                    return Err(protocol(&e.conn, format!("multi-part piece for unknown session {session}")));
                };
                let pool = &e.conn.io.pool;
                match r.part(session, data, last, pool) {
                    Ok(Part::More) | Ok(Part::Dropped) => {}
                    Ok(Part::Done((), payload)) => complete_multi(&e.conn, session, payload),
                    Ok(Part::Invalid(_)) | Ok(Part::Orphan) => {
                        return Err(protocol(&e.conn, format!("bad multi-part answer for session {session}")))
                    }
                    Err(err) => return Err(protocol(&e.conn, err.to_string())),
                }
            }
        }
    }
    Ok(cut.consumed())
}

fn complete(conn: &Conn, session: u32, r: Result<super::Reply<'_>, super::CallError>) {
    let p = conn.st.lock().pending.remove(&session);
    let Some(p) = p else { return }; // timed out meanwhile: dropped
    if !conn.answered.load(Ordering::Relaxed) {
        conn.answered.store(true, Ordering::Relaxed);
    }
    if matches!(p.waiter, super::conn::Waiter::Probe) {
        return;
    }
    conn.stats.record_latency(p.start.elapsed().as_micros() as u64);
    if r.is_err() {
        LinkStats::add(&conn.stats.errors, 1);
    }
    p.complete(r, &conn.io.log);
}

/// Accept failed for lack of descriptors or kernel memory: retry later, not now.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}
