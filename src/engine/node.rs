//! The public handle: node map, links to peers, calls, pushes, queries, listening.

use super::budget::Health;
use super::config::{default_nodename, Config, NodeAddr, NodeChange, ReloadReport, HEARTBEAT_NAME, RESERVED_PREFIX};
use super::conn::{batching, Callback, Conn, Pending, Slot, Waiter};
use super::error::CallError;
use super::event::{DownReason, LinkDir, LinkEvent, LinkHook};
use super::io::{Cmd, IoLoop, IoShared};
use super::log::LogHook;
use super::service::Service;
use super::standby::Runner;
use super::stats::{LinkStats, StatsSnapshot};
use super::{pack, sockopt};
use crate::wire::{self, Address, OwnedAddress, RequestKind, MAX_NAME_LEN, MAX_SESSION};
use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) struct Peer {
    name: String,
    st: Mutex<PeerState>,
    stats: Arc<LinkStats>,
}

struct PeerState {
    addr: NodeAddr,
    conn: Option<Arc<Conn>>,
    /// Consecutive failed connect attempts, and until when the next one must wait.
    failures: u32,
    retry_after: Option<(Instant, String)>,
    /// Session to continue from when the link is replaced (stock's clustersender keeps
    /// counting across reconnects).
    next_session: u32,
}

pub(crate) struct Inner {
    pub cfg: Config,
    pub nodename: String,
    pub io: Arc<IoShared>,
    peers: RwLock<HashMap<String, Arc<Peer>>>,
    /// Bumped (and notified) by every reload, for callers waiting for an address.
    map_gen: Mutex<u64>,
    map_cv: Condvar,
    nowaiting: AtomicBool,
    pub names: RwLock<HashMap<Vec<u8>, u32>>,
    pub service: RwLock<Option<Arc<dyn Service>>>,
    pub inbound_stats: Arc<LinkStats>,
    shut: AtomicBool,
    /// Callback calls and pushes to nodes that have no address yet, waiting for a reload.
    deferred: Mutex<Vec<Deferred>>,
    /// The host's link-event hook.
    link_hook: RwLock<Option<LinkHook>>,
}

impl Inner {
    /// Tells the host's hook about a link going up or down. A panicking hook is caught.
    pub(crate) fn link_event(&self, ev: LinkEvent) {
        let Some(hook) = self.link_hook.read().clone() else {
            return;
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&ev))).is_err() {
            self.io.log.error("the link-event hook panicked");
        }
    }

    /// A link to a peer node closed: the node map lets go of it (so its socket closes now),
    /// keeping what the next link needs (the session to continue from, the backoff).
    pub(crate) fn retire(&self, conn: &Arc<Conn>) {
        let Some(peer) = self.peers.read().get(&conn.node).cloned() else {
            return;
        };
        let mut ps = peer.st.lock();
        if ps.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            forget_closed(self, &mut ps);
        }
    }
}

/// Drops the closed link of `ps`: sessions continue from where it stopped; a link that never
/// connected, or that the heartbeat found dead, counts as a failed attempt for the backoff
/// (so a frozen peer whose kernel still accepts connections is retried ever less often);
/// one that was up may reconnect at once, and one that was answered starts the backoff over.
fn forget_closed(inner: &Inner, ps: &mut PeerState) {
    let Some(c) = ps.conn.take() else { return };
    let st = c.st.lock();
    ps.next_session = st.session;
    if st.ever_connected && !st.heartbeat_dead {
        if c.answered.load(Ordering::Relaxed) {
            ps.failures = 0;
        }
    } else {
        ps.failures += 1;
        let wait = backoff(&inner.cfg, ps.failures);
        ps.retry_after =
            Some((st.closed_at.unwrap_or_else(Instant::now) + wait, st.closed.clone().unwrap_or_default()));
    }
}

fn backoff(c: &Config, failures: u32) -> Duration {
    let mult = 1u32 << failures.saturating_sub(1).min(16);
    (c.backoff_min * mult).min(c.backoff_max)
}

/// Most calls and pushes that may wait for node addresses at once (then `Overloaded`).
const MAX_DEFERRED: usize = 65536;

/// A call or push held until its node gets an address: run with `None` to retry it, or
/// with the error that ends it.
struct Deferred {
    node: String,
    deadline: Option<Instant>,
    run: Retry,
}

/// Runs a deferred call or push: `None` retries it, an error ends it.
type Retry = Box<dyn FnOnce(&Handle, Option<CallError>) + Send>;

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

/// A node: one I/O thread, its listeners, its links. Owning value: dropping it shuts the
/// node down (fails every pending call with `LinkDown("node shut down")`, closes every
/// socket, joins the I/O thread). All operations are on [`Handle`], which `Node` derefs to
/// and which can be cloned and moved to any thread (including into callbacks).
pub struct Node {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    /// With [`Config::standby_after`]: the thread that serves the links while the I/O
    /// thread's `after_events` runs long (`standby.rs`).
    standby: Option<JoinHandle<()>>,
}

/// A cheap, cloneable reference to a [`Node`]; every method is thread-safe. After the node
/// is dropped, operations fail with [`CallError::Shutdown`].
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

impl std::ops::Deref for Node {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Node {
    /// Starts a node (its I/O thread). It serves nothing until [`Handle::listen`] and
    /// [`Handle::set_service`], and calls nothing until [`Handle::reload`] gives it peers.
    pub fn new(cfg: Config) -> io::Result<Node> {
        assert!((1..=MAX_SESSION).contains(&cfg.first_session), "first_session must be in 1..=0x7fffffff");
        let poll = Poll::new()?;
        let io = Arc::new(IoShared::new(&poll, &cfg)?);
        let nodename = cfg.nodename.clone().unwrap_or_else(default_nodename);
        let inner = Arc::new(Inner {
            nowaiting: AtomicBool::new(cfg.nowaiting),
            cfg,
            nodename,
            io,
            peers: RwLock::new(HashMap::new()),
            map_gen: Mutex::new(0),
            map_cv: Condvar::new(),
            names: RwLock::new(HashMap::new()),
            service: RwLock::new(None),
            inbound_stats: Arc::new(LinkStats::new()),
            shut: AtomicBool::new(false),
            deferred: Mutex::new(Vec::new()),
            link_hook: RwLock::new(None),
        });
        let runner = Runner::new(IoLoop::new(poll, inner.clone()), inner.clone());
        // The host's callbacks run on these threads, and inside skynet so do Lua services
        // (inline dispatch): give them the stack a pthread gets by default (8 MiB, committed
        // only as used), not Rust's 2 MiB, so deep Lua or C recursion fits as on a worker.
        let standby = if runner.has_standby() {
            let r = runner.clone();
            Some(
                std::thread::Builder::new()
                    .name("skc-standby".into())
                    .stack_size(IO_STACK)
                    .spawn(move || r.run_standby())?,
            )
        } else {
            None
        };
        let thread =
            std::thread::Builder::new().name("skc-io".into()).stack_size(IO_STACK).spawn(move || runner.run_io())?;
        Ok(Node { handle: Handle { inner }, thread: Some(thread), standby })
    }

    /// A cloneable handle to this node.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.handle.inner.shut.store(true, Ordering::SeqCst);
        self.handle.inner.io.send(Cmd::Shutdown);
        {
            let _g = self.handle.inner.map_gen.lock();
            self.handle.inner.map_cv.notify_all();
        }
        let waiting = std::mem::take(&mut *self.handle.inner.deferred.lock());
        for d in waiting {
            (d.run)(&self.handle, Some(CallError::Shutdown));
        }
        if let Some(t) = self.thread.take() {
            if self.handle.inner.io.on_io_thread() {
                // Dropped from a callback: the loop exits on its own, after this returns.
                // Outbound calls still pending fail now, on this thread, while whatever
                // their callbacks use (a host that is going away) is still there.
                let conns: Vec<_> =
                    self.handle.inner.peers.read().values().filter_map(|p| p.st.lock().conn.clone()).collect();
                for c in conns {
                    c.close(&DownReason::Shutdown);
                }
                return;
            }
            let _ = t.join();
            if let Some(s) = self.standby.take() {
                let _ = s.join();
            }
        }
    }
}

/// Stack size of the I/O thread (see `Node::new`).
const IO_STACK: usize = 8 << 20;

/// A call's options beyond node, address and payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallOpts<'a> {
    /// `None`: the node's `default_timeout`.
    pub timeout: Option<Duration>,
    /// A trace tag: a `0x04` frame goes before the request. As stock's clustersender does,
    /// a tag that does not start with `(` is sent as `(<nodename>-<node>-<session>)<tag>`.
    pub trace: Option<&'a [u8]>,
}

impl Handle {
    fn check(&self) -> Result<(), CallError> {
        if self.inner.shut.load(Ordering::Relaxed) {
            Err(CallError::Shutdown)
        } else {
            Ok(())
        }
    }

    /// The name used in trace tags.
    pub fn nodename(&self) -> &str {
        &self.inner.nodename
    }

    /// Listens on `addr` (`"host:port"`; port 0 picks a free one) and returns the bound
    /// address. Accepted links are served by the [`Service`] set with [`Handle::set_service`].
    pub fn listen(&self, addr: &str) -> io::Result<SocketAddr> {
        self.listen_with(addr, None)
    }

    /// [`Handle::listen`] with a bound on the links this listener keeps open at once
    /// (stock's `maxclient`; `None`: only the node's `max_links`). A connection beyond it
    /// is closed at once, as stock's gate does.
    pub fn listen_with(&self, addr: &str, max_clients: Option<usize>) -> io::Result<SocketAddr> {
        let std = std::net::TcpListener::bind(addr)?;
        std.set_nonblocking(true)?;
        let mut l = TcpListener::from_std(std);
        let local = l.local_addr()?;
        let t = self.inner.io.token();
        self.inner.io.registry.register(&mut l, t, Interest::READABLE)?;
        self.inner.io.send(Cmd::AddListener(t, l, max_clients));
        Ok(local)
    }

    /// Sets (or replaces) the handler of inbound requests.
    pub fn set_service(&self, s: Arc<dyn Service>) {
        *self.inner.service.write() = Some(s);
    }

    /// Registers `name` (without the `@`) for address `addr`, as `cluster.register`: calls to
    /// `@name` reach the service with `Address::Id(addr)`, and `cluster.query(node, name)`
    /// answers `addr`.
    ///
    /// Names beginning with [`RESERVED_PREFIX`] are the engine's own: `Invalid`.
    pub fn register(&self, name: &str, addr: u32) -> Result<(), CallError> {
        if name.starts_with(RESERVED_PREFIX) {
            return Err(CallError::Invalid(format!("name {name:?} is reserved (prefix {RESERVED_PREFIX:?})")));
        }
        self.inner.names.write().insert(name.as_bytes().to_vec(), addr);
        Ok(())
    }

    /// Sets (or clears: stderr) where the engine's log lines go (see [`LogHook`]).
    pub fn set_log(&self, hook: Option<LogHook>) {
        self.inner.io.log.set(hook);
    }

    /// Sets (or clears) the hook told of every link going up or down (see [`LinkEvent`]).
    /// Links closed by the node's own shutdown are not reported.
    pub fn set_link_hook(&self, hook: Option<LinkHook>) {
        *self.inner.link_hook.write() = hook;
    }

    /// What the node holds against its budgets, and what its limits and timers did.
    pub fn health(&self) -> Health {
        let io = &self.inner.io;
        let c = &io.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Health {
            links: io.links.used(),
            max_links: io.links.limit(),
            reassembly_bytes: io.reasm.used(),
            max_reassembly_bytes: io.reasm.limit(),
            send_bytes: io.send.used(),
            max_send_bytes: io.send.limit(),
            late_answers: get(&c.late_answers),
            refused_links: get(&c.refused_links),
            over_budget: get(&c.over_budget),
            heartbeat_timeouts: get(&c.heartbeat_timeouts),
            expired: get(&c.expired),
            protocol_errors: get(&c.protocol_errors),
            accept_stalls: get(&c.accept_stalls),
        }
    }

    pub fn unregister(&self, name: &str) {
        self.inner.names.write().remove(name.as_bytes());
    }

    /// Stock's `__nowaiting` at run time.
    pub fn set_nowaiting(&self, on: bool) {
        self.inner.nowaiting.store(on, Ordering::SeqCst);
        {
            let mut g = self.inner.map_gen.lock();
            *g += 1;
            self.inner.map_cv.notify_all();
        }
        if on {
            let waiting = std::mem::take(&mut *self.inner.deferred.lock());
            for d in waiting {
                let e = CallError::NodeAbsent(d.node.clone());
                (d.run)(self, Some(e));
            }
        }
    }

    /// Updates the node map, like `cluster.reload`: each entry is `(name, Some("host:port"))`
    /// or `(name, None)` = marked down. Nodes not named keep their entry. A node whose
    /// address changed loses its link (pending calls fail with `LinkDown`); the next call
    /// connects to the new address. Callers waiting for an address are woken.
    pub fn reload(&self, map: &[(&str, Option<&str>)]) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut closing = Vec::new();
        for (name, addr) in map {
            let peer = self.peer(name);
            let new = NodeAddr::from_option(*addr);
            let mut ps = peer.st.lock();
            let old = ps.addr.clone();
            let changed = old != new;
            if changed {
                ps.addr = new.clone();
                ps.failures = 0;
                ps.retry_after = None;
                if let Some(c) = ps.conn.take() {
                    ps.next_session = c.st.lock().session;
                    closing.push(c);
                }
            }
            let link_up = ps.conn.as_ref().is_some_and(|c| {
                let st = c.st.lock();
                st.connected && st.closed.is_none()
            });
            report.nodes.push(NodeChange { name: name.to_string(), old, new, changed, link_up });
        }
        // Fail the pending calls of replaced links now, from here, with no lock held (their
        // callbacks may call again); the I/O thread forgets the sockets.
        for c in closing {
            if c.close(&DownReason::Reload) {
                self.inner.link_event(LinkEvent {
                    dir: LinkDir::Outbound,
                    node: c.node.clone(),
                    peer: c.peer,
                    link: c.token.0 as u64,
                    down: Some(DownReason::Reload),
                });
            }
            self.inner.io.send(Cmd::Close(c.token, DownReason::Reload));
        }
        {
            let mut g = self.inner.map_gen.lock();
            *g += 1;
            self.inner.map_cv.notify_all();
        }
        // Calls and pushes that waited for these nodes go now (or fail: marked down).
        let ready: Vec<Deferred> = {
            let mut q = self.inner.deferred.lock();
            let (ready, keep): (Vec<_>, Vec<_>) =
                q.drain(..).partition(|d| !matches!(self.node_addr(&d.node), NodeAddr::Absent));
            *q = keep;
            ready
        };
        for d in ready {
            (d.run)(self, None);
        }
        report
    }

    /// Holds a non-blocking call or push for a node without an address (unless
    /// `nowaiting`). `make` builds the retry; it is only called when deferring.
    fn defer_if_absent(
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

    /// The node map entry of `node`.
    pub fn node_addr(&self, node: &str) -> NodeAddr {
        match self.inner.peers.read().get(node) {
            Some(p) => p.st.lock().addr.clone(),
            None => NodeAddr::Absent,
        }
    }

    /// True when a link to `node` is connected right now.
    pub fn link_up(&self, node: &str) -> bool {
        let Some(p) = self.inner.peers.read().get(node).cloned() else {
            return false;
        };
        let ps = p.st.lock();
        ps.conn.as_ref().is_some_and(|c| {
            let st = c.st.lock();
            st.connected && st.closed.is_none()
        })
    }

    /// `(TCP_NODELAY, SO_KEEPALIVE)` of the current link to `node`, as the kernel reports
    /// them (diagnostics; `None` without a link).
    pub fn link_sockopts(&self, node: &str) -> Option<(bool, bool)> {
        let p = self.inner.peers.read().get(node).cloned()?;
        let ps = p.st.lock();
        let fd = ps.conn.as_ref()?.stream.as_raw_fd();
        let nd = sockopt::get_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0;
        let ka = sockopt::get_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0;
        Some((nd, ka))
    }

    /// Counters of the link(s) to `node` (they survive reconnects).
    pub fn stats(&self, node: &str) -> Option<StatsSnapshot> {
        self.inner.peers.read().get(node).map(|p| p.stats.snapshot())
    }

    /// Counters of all accepted links together.
    pub fn inbound_stats(&self) -> StatsSnapshot {
        self.inner.inbound_stats.snapshot()
    }

    /// Runs `f` with socket writes deferred: the calls and pushes made inside leave in one
    /// write per link when `f` returns. Use it to send many pushes or calls at once.
    pub fn batch<R>(&self, f: impl FnOnce() -> R) -> R {
        super::conn::batch(f)
    }

    fn peer(&self, node: &str) -> Arc<Peer> {
        if let Some(p) = self.inner.peers.read().get(node) {
            return p.clone();
        }
        self.inner
            .peers
            .write()
            .entry(node.to_string())
            .or_insert_with(|| {
                Arc::new(Peer {
                    name: node.to_string(),
                    st: Mutex::new(PeerState {
                        addr: NodeAddr::Absent,
                        conn: None,
                        failures: 0,
                        retry_after: None,
                        next_session: self.inner.cfg.first_session,
                    }),
                    stats: Arc::new(LinkStats::new()),
                })
            })
            .clone()
    }

    /// The live link to `node`, connecting if needed (at most one attempt at a time: the
    /// peer lock is held while a connection is started, and a connecting link is reused).
    fn link(&self, node: &str, deadline: Option<Instant>, may_wait: bool) -> Result<Arc<Conn>, CallError> {
        self.check()?;
        let peer = self.peer(node);
        let mut ps = peer.st.lock();
        loop {
            match &ps.addr {
                NodeAddr::Down => return Err(CallError::NodeDown(node.to_string())),
                NodeAddr::Absent => {
                    if !may_wait || self.inner.nowaiting.load(Ordering::SeqCst) {
                        return Err(CallError::NodeAbsent(node.to_string()));
                    }
                    drop(ps);
                    self.wait_for_map(deadline)?;
                    ps = peer.st.lock();
                }
                NodeAddr::At(a) => {
                    let a = a.clone();
                    if let Some(c) = &ps.conn {
                        let st = c.st.lock();
                        if st.closed.is_none() {
                            let ok = st.connected;
                            drop(st);
                            let c = c.clone();
                            if ok && c.answered.load(Ordering::Relaxed) {
                                ps.failures = 0;
                            }
                            return Ok(c);
                        }
                        drop(st);
                        forget_closed(&self.inner, &mut ps);
                    }
                    if let Some((t, why)) = &ps.retry_after {
                        if Instant::now() < *t {
                            return Err(CallError::ConnectFailed(format!(
                                "{why} (next attempt in {:?})",
                                *t - Instant::now()
                            )));
                        }
                        ps.retry_after = None;
                    }
                    match self.connect(&peer, &a, ps.next_session) {
                        Ok(c) => {
                            ps.conn = Some(c.clone());
                            return Ok(c);
                        }
                        Err(e) => {
                            ps.failures += 1;
                            let wait = backoff(&self.inner.cfg, ps.failures);
                            let why = format!("connect to {a} failed: {e}");
                            ps.retry_after = Some((Instant::now() + wait, why.clone()));
                            return Err(CallError::ConnectFailed(why));
                        }
                    }
                }
            }
        }
    }

    fn wait_for_map(&self, deadline: Option<Instant>) -> Result<(), CallError> {
        let mut g = self.inner.map_gen.lock();
        let start = *g;
        while *g == start {
            self.check()?;
            match deadline {
                None => self.inner.map_cv.wait(&mut g),
                Some(d) => {
                    if self.inner.map_cv.wait_until(&mut g, d).timed_out() {
                        return Err(CallError::Timeout);
                    }
                }
            }
        }
        self.check()
    }

    /// Starts a non-blocking connect; the I/O thread completes it.
    fn connect(&self, peer: &Arc<Peer>, addr: &str, session: u32) -> io::Result<Arc<Conn>> {
        let sa = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing"))?;
        if !self.inner.io.links.try_take(1) {
            super::budget::Counters::add(&self.inner.io.counters.refused_links);
            let limit = self.inner.io.links.limit();
            return Err(io::Error::other(format!("node limit of {limit} links (max_links) reached")));
        }
        // From here the Conn (made below) gives the link back when it drops.
        let mut stream = match TcpStream::connect(sa) {
            Ok(s) => s,
            Err(e) => {
                self.inner.io.links.give(1);
                return Err(e);
            }
        };
        let fail = |e: io::Error| {
            self.inner.io.links.give(1);
            e
        };
        stream.set_nodelay(true).map_err(fail)?;
        sockopt::keepalive(stream.as_raw_fd(), self.inner.cfg.keepalive);
        let cfg = &self.inner.cfg;
        let t = self.inner.io.token();
        // Registered before the I/O thread knows the token: an edge that fires before it
        // drains the AddConn command is lost, so AddConn re-checks connect and read state.
        self.inner.io.registry.register(&mut stream, t, Interest::READABLE | Interest::WRITABLE).map_err(fail)?;
        let mut conn = Conn::new(
            t,
            stream,
            false,
            Some(sa),
            peer.name.clone(),
            peer.stats.clone(),
            self.inner.io.clone(),
            cfg,
            session,
        );
        let deadline = Instant::now() + cfg.connect_timeout;
        conn.connect_deadline = Some(deadline);
        let conn = Arc::new(conn);
        self.inner.io.note_deadline(deadline);
        self.inner.io.send(Cmd::AddConn(conn.clone()));
        Ok(conn)
    }

    /// Queues one request on the link to `node`; returns the link and the session used.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        node: &str,
        addr: Address<'_>,
        payload: Payload<'_>,
        trace: Option<&[u8]>,
        waiter: Waiter,
        deadline: Option<Instant>,
        may_wait: bool,
        force: bool,
    ) -> Result<(Arc<Conn>, u32), CallError> {
        check_addr(addr)?;
        let conn = self.link(node, deadline, may_wait)?;
        let cb_deadline = if matches!(waiter, Waiter::Callback(_)) { deadline } else { None };
        let nodename = &self.inner.nodename;
        let session = conn.send_with(force, |st| {
            if conn.refuse_send(st) {
                return Err(CallError::Overloaded);
            }
            let session = st.session;
            let next = wire::next_session(session);
            let tag_len = trace.map_or(0, |t| t.len() + nodename.len() + node.len() + 16);
            let put_trace = |b: &mut Vec<u8>| -> Result<(), wire::EncodeError> {
                if let Some(tag) = trace {
                    if tag.first() == Some(&b'(') {
                        wire::encode_trace(&mut *b, tag)?;
                    } else {
                        let mut full = format!("({nodename}-{node}-{next})").into_bytes();
                        full.extend_from_slice(tag);
                        wire::encode_trace(&mut *b, &full)?;
                    }
                }
                Ok(())
            };
            match payload {
                Payload::Shared(p) if wire::request_is_multi(p.len()) => st.append_shared(
                    &conn.io,
                    |b| {
                        put_trace(b)?;
                        wire::encode_multi_header(b, addr, session, p.len(), RequestKind::Call)
                    },
                    p,
                    |n, last| wire::request_part_header(session, n, last),
                ),
                _ => st.append(&conn.io, super::conn::frame_room(payload.len(), tag_len), |b| {
                    put_trace(b)?;
                    wire::encode_request(b, addr, session, payload.as_slice(), RequestKind::Call)
                }),
            }
            .map_err(|e| CallError::Invalid(e.to_string()))?;
            st.session = next;
            st.pending.insert(session, Pending { waiter, start: Instant::now(), deadline: cb_deadline });
            Ok(session)
        })?;
        LinkStats::add(&conn.stats.calls, 1);
        if let Some(d) = cb_deadline {
            self.inner.io.note_deadline(d);
        }
        Ok((conn, session))
    }

    fn deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        timeout.or(self.inner.cfg.default_timeout).map(|t| Instant::now() + t)
    }

    /// Calls `addr` on `node` and waits for the answer (`cluster.call` with a packed
    /// payload). Blocks the calling thread; must not be called on the I/O thread (from a
    /// service handler or a callback): that fails with `WouldDeadlock`.
    ///
    /// A node with no address yet is waited for (until the timeout) unless `nowaiting`.
    pub fn call(
        &self,
        node: &str,
        addr: Address<'_>,
        payload: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, CallError> {
        self.call_opts(node, addr, payload, CallOpts { timeout, trace: None })
    }

    /// [`Handle::call`] with options (trace tag).
    pub fn call_opts(
        &self,
        node: &str,
        addr: Address<'_>,
        payload: &[u8],
        opts: CallOpts<'_>,
    ) -> Result<Vec<u8>, CallError> {
        if self.inner.io.on_io_thread() {
            return Err(CallError::WouldDeadlock);
        }
        let deadline = self.deadline(opts.timeout);
        let slot = Arc::new(Slot::new());
        let force = batching();
        let (conn, session) = self.submit(
            node,
            addr,
            Payload::Slice(payload),
            opts.trace,
            Waiter::Slot(slot.clone()),
            deadline,
            true,
            force,
        )?;
        match slot.wait(deadline) {
            Some(r) => r,
            None => {
                let removed = conn.st.lock().pending.remove(&session).is_some();
                if removed {
                    LinkStats::add(&conn.stats.timeouts, 1);
                    Err(CallError::Timeout)
                } else {
                    // Being completed right now.
                    slot.wait(None).unwrap_or(Err(CallError::Timeout))
                }
            }
        }
    }

    /// Calls `addr` on `node` without blocking: `cb` runs once with the answer or the error
    /// (on the I/O thread, or on a thread whose action ended the call). If this returns
    /// `Err`, the call was not sent and `cb` is dropped uncalled.
    ///
    /// A node with no address yet: the call (payload copied) waits for the reload that
    /// gives one, within its timeout, unless `nowaiting` (then `NodeAbsent` at once).
    pub fn call_with<F>(
        &self,
        node: &str,
        addr: Address<'_>,
        payload: &[u8],
        opts: CallOpts<'_>,
        cb: F,
    ) -> Result<(), CallError>
    where
        F: FnOnce(Result<super::Reply<'_>, CallError>) + Send + 'static,
    {
        self.call_with_payload(node, addr, Payload::Slice(payload), opts, Box::new(cb))
    }

    /// [`Handle::call_with`] for a payload the caller hands over as `Bytes`: a multi-part
    /// request (32 KiB and more) is written straight from it, with no copy. Cloning a
    /// `Bytes` is a reference count, so one payload can go to many calls.
    pub fn call_with_bytes<F>(
        &self,
        node: &str,
        addr: Address<'_>,
        payload: Bytes,
        opts: CallOpts<'_>,
        cb: F,
    ) -> Result<(), CallError>
    where
        F: FnOnce(Result<super::Reply<'_>, CallError>) + Send + 'static,
    {
        self.call_with_payload(node, addr, Payload::Shared(&payload), opts, Box::new(cb))
    }

    fn call_with_payload(
        &self,
        node: &str,
        addr: Address<'_>,
        payload: Payload<'_>,
        opts: CallOpts<'_>,
        cb: Callback,
    ) -> Result<(), CallError> {
        check_addr(addr)?;
        let deadline = self.deadline(opts.timeout);
        let mut cb: Option<Callback> = Some(cb);
        let deferred = self.defer_if_absent(node, deadline, || {
            let cb = cb.take().expect("once");
            let (node, addr, payload, trace) =
                (node.to_string(), OwnedAddress::of(addr), payload.to_bytes(), opts.trace.map(|t| t.to_vec()));
            Box::new(move |h: &Handle, err: Option<CallError>| {
                if let Some(e) = err {
                    return cb(Err(e));
                }
                if deadline.is_some_and(|d| d <= Instant::now()) {
                    return cb(Err(CallError::Timeout));
                }
                // Hand the callback to the retry; take it back if the retry fails.
                let cell = Arc::new(Mutex::new(Some(cb)));
                let c2 = cell.clone();
                let w = Waiter::Callback(Box::new(move |r| {
                    if let Some(cb) = c2.lock().take() {
                        cb(r)
                    }
                }));
                let r = h.submit(
                    &node,
                    addr.as_addr(),
                    Payload::Shared(&payload),
                    trace.as_deref(),
                    w,
                    deadline,
                    false,
                    false,
                );
                if let Err(e) = r {
                    if let Some(cb) = cell.lock().take() {
                        cb(Err(e));
                    }
                }
            })
        })?;
        if deferred {
            return Ok(());
        }
        let cb = cb.take().expect("not deferred");
        self.submit(node, addr, payload, opts.trace, Waiter::Callback(cb), deadline, false, false).map(|_| ())
    }

    /// Sends a push (`cluster.send`): no answer. A single-frame push carries session 0 and
    /// does not use a session; a multi-part one (>= 32 KiB) uses one, as stock.
    /// Fails at once on a full queue (`Overloaded`) or a down link; a link being connected
    /// queues it. To a node with no address yet it waits (payload copied) for the reload
    /// that gives one, as stock's `cluster.send` does, unless `nowaiting`.
    pub fn push(&self, node: &str, addr: Address<'_>, payload: &[u8]) -> Result<(), CallError> {
        self.push_payload(node, addr, Payload::Slice(payload))
    }

    /// [`Handle::push`] for a payload handed over as `Bytes`: a multi-part push is written
    /// straight from it, with no copy.
    pub fn push_bytes(&self, node: &str, addr: Address<'_>, payload: Bytes) -> Result<(), CallError> {
        self.push_payload(node, addr, Payload::Shared(&payload))
    }

    fn push_payload(&self, node: &str, addr: Address<'_>, payload: Payload<'_>) -> Result<(), CallError> {
        check_addr(addr)?;
        let deferred = self.defer_if_absent(node, None, || {
            let (node, addr, payload) = (node.to_string(), OwnedAddress::of(addr), payload.to_bytes());
            Box::new(move |h: &Handle, err: Option<CallError>| {
                if err.is_none() {
                    let _ = h.push_bytes(&node, addr.as_addr(), payload);
                }
            })
        })?;
        if deferred {
            return Ok(());
        }
        let conn = self.link(node, None, false)?;
        conn.send_with(false, |st| {
            if conn.refuse_send(st) {
                return Err(CallError::Overloaded);
            }
            let session = st.session;
            let multi = wire::request_is_multi(payload.len());
            match payload {
                Payload::Shared(p) if multi => st.append_shared(
                    &conn.io,
                    |b| wire::encode_multi_header(b, addr, session, p.len(), RequestKind::Push),
                    p,
                    |n, last| wire::request_part_header(session, n, last),
                ),
                _ => st.append(&conn.io, super::conn::frame_room(payload.len(), 0), |b| {
                    wire::encode_request(b, addr, session, payload.as_slice(), RequestKind::Push)
                }),
            }
            .map_err(|e| CallError::Invalid(e.to_string()))?;
            if multi {
                st.session = wire::next_session(session);
            }
            Ok(())
        })?;
        LinkStats::add(&conn.stats.pushes, 1);
        Ok(())
    }

    /// `cluster.query(node, name)`: the address registered as `name` on `node`.
    pub fn query(&self, node: &str, name: &str, timeout: Option<Duration>) -> Result<u32, CallError> {
        let mut p = Vec::with_capacity(name.len() + 5);
        pack::pack_str(&mut p, name.as_bytes());
        let r = self.call(node, Address::Id(0), &p, timeout)?;
        match pack::unpack_int(&r) {
            Some((v, _)) => Ok(v as u32),
            None => Err(CallError::Invalid("query answer is not a packed integer".into())),
        }
    }

    /// The next session the link to `node` will use (tests and diagnostics).
    pub fn next_session(&self, node: &str) -> Option<u32> {
        let p = self.inner.peers.read().get(node).cloned()?;
        let ps = p.st.lock();
        Some(match &ps.conn {
            Some(c) => c.st.lock().session,
            None => ps.next_session,
        })
    }
}

/// A request payload: borrowed (copied into the send queue), or handed over as `Bytes`
/// (a multi-part message is written from it).
#[derive(Clone, Copy)]
enum Payload<'a> {
    Slice(&'a [u8]),
    Shared(&'a Bytes),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Slice(s) => s,
            Payload::Shared(b) => b,
        }
    }
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn to_bytes(self) -> Bytes {
        match self {
            Payload::Slice(s) => Bytes::copy_from_slice(s),
            Payload::Shared(b) => b.clone(),
        }
    }
}

fn check_addr(addr: Address<'_>) -> Result<(), CallError> {
    if let Address::Name(n) = addr {
        if n.is_empty() || n.len() > MAX_NAME_LEN {
            return Err(CallError::Invalid(format!("name length {} is invalid, must be between 1 and 255", n.len())));
        }
    }
    Ok(())
}

/// Sends a heartbeat probe on an outbound link: a name query for [`HEARTBEAT_NAME`], which
/// every stock agent answers (`name not found`). Its answer is dropped; the I/O thread sees
/// the session leave the pending table. Returns the session, or `None` when the link is
/// closed or full.
pub(crate) fn send_probe(conn: &Arc<Conn>) -> Option<u32> {
    let mut p = Vec::with_capacity(HEARTBEAT_NAME.len() + 5);
    pack::pack_str(&mut p, HEARTBEAT_NAME.as_bytes());
    conn.send_with(false, |st| {
        let session = st.session;
        st.append(&conn.io, p.len() + 16, |b| wire::encode_request(b, Address::Id(0), session, &p, RequestKind::Call))
            .map_err(|e| CallError::Invalid(e.to_string()))?;
        st.session = wire::next_session(session);
        let waiter = Waiter::Probe;
        st.pending.insert(session, Pending { waiter, start: Instant::now(), deadline: None });
        Ok(session)
    })
    .ok()
}
