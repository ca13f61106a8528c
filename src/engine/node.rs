//! The public handle: starting and stopping a node, listening, names, hooks, the node map
//! (`reload`) and what the node can tell about itself. Links to peers are in `peer.rs`,
//! calls and pushes in `send.rs`, calls waiting for an address in `waiting.rs`.

use super::budget::Health;
use super::config::{default_nodename, Config, NodeAddr, NodeChange, ReloadReport, RESERVED_PREFIX};
use super::error::CallError;
use super::event::{DownReason, LinkEvent, LinkHook};
use super::io::{Cmd, IoLoop, IoShared};
use super::log::LogHook;
use super::peer::Peer;
use super::service::Service;
use super::sockopt;
use super::standby::Runner;
use super::stats::{LinkStats, StatsSnapshot};
use super::waiting::Deferred;
use crate::wire::MAX_SESSION;
use mio::net::TcpListener;
use mio::{Interest, Poll};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) struct Inner {
    pub cfg: Config,
    pub nodename: String,
    pub io: Arc<IoShared>,
    pub(super) peers: RwLock<HashMap<String, Arc<Peer>>>,
    /// Bumped (and notified) by every reload, for callers waiting for an address.
    pub(super) map_gen: Mutex<u64>,
    pub(super) map_cv: Condvar,
    pub(super) nowaiting: AtomicBool,
    pub names: RwLock<HashMap<Vec<u8>, u32>>,
    pub service: RwLock<Option<Arc<dyn Service>>>,
    pub inbound_stats: Arc<LinkStats>,
    pub(super) shut: AtomicBool,
    /// Callback calls and pushes to nodes that have no address yet, waiting for a reload.
    pub(super) deferred: Mutex<Vec<Deferred>>,
    /// The host's link-event hook.
    pub(super) link_hook: RwLock<Option<LinkHook>>,
    /// TLS mode and certificates.
    pub(crate) tls: super::tls::Tls,
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
    pub(super) inner: Arc<Inner>,
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
        let tls = super::tls::Tls::new(&cfg.tls).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
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
            tls,
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
    pub(super) fn check(&self) -> Result<(), CallError> {
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

    /// Reads the TLS certificate files again (the paths of `Config::tls`), without a restart:
    /// links made from now on use them; links already up keep theirs. On error (a file
    /// missing or not valid PEM, a key that does not match) the certificates in use stay
    /// and the error says which file. With TLS off: nothing to do.
    pub fn reload_tls(&self) -> Result<(), String> {
        let r = self.inner.tls.reload();
        match &r {
            Ok(()) if self.inner.tls.mode != super::TlsMode::Off => {
                self.inner.io.log.log(super::Level::Info, None, "tls: certificates reloaded")
            }
            Ok(()) => {}
            Err(e) => self.inner.io.log.warn(&format!("{e} (the certificates in use stay)")),
        }
        r
    }

    /// The node's TLS mode.
    pub fn tls_mode(&self) -> super::TlsMode {
        self.inner.tls.mode
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
            refused_not_allowed: get(&c.refused_not_allowed),
            refused_per_source: get(&c.refused_per_source),
            refused_exposure: get(&c.refused_exposure),
            tls_links: get(&c.tls_links),
            refused_plain: get(&c.refused_plain),
            tls_failures: get(&c.tls_failures),
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
                self.inner.link_event(c.event(Some(DownReason::Reload)));
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
        super::batch::batch(f)
    }
}
