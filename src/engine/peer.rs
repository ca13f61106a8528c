//! Links to peer nodes: one per node of the map at a time, connected by the first caller
//! (one attempt at a time, with backoff after failures), released when it closes, and the
//! heartbeat probe the I/O thread sends on an idle one.

use super::call::{Pending, Waiter};
use super::config::{Config, NodeAddr, HEARTBEAT_NAME};
use super::conn::Conn;
use super::error::CallError;
use super::io::Cmd;
use super::node::{Handle, Inner};
use super::stats::LinkStats;
use super::{pack, sockopt};
use crate::wire::{self, Address, RequestKind};
use mio::net::TcpStream;
use mio::Interest;
use parking_lot::Mutex;
use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Peer {
    pub(super) name: String,
    pub(super) st: Mutex<PeerState>,
    pub(super) stats: Arc<LinkStats>,
}
pub(super) struct PeerState {
    pub(super) addr: NodeAddr,
    pub(super) conn: Option<Arc<Conn>>,
    /// Consecutive failed connect attempts, and until when the next one must wait.
    pub(super) failures: u32,
    pub(super) retry_after: Option<(Instant, String)>,
    /// Session to continue from when the link is replaced (stock's clustersender keeps
    /// counting across reconnects).
    pub(super) next_session: u32,
}
/// Drops the closed link of `ps`: sessions continue from where it stopped; a link that never
/// connected, or that the heartbeat found dead, counts as a failed attempt for the backoff
/// (so a frozen peer whose kernel still accepts connections is retried ever less often);
/// one that was up may reconnect at once, and one that was answered starts the backoff over.
pub(super) fn forget_closed(inner: &Inner, ps: &mut PeerState) {
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
pub(super) fn backoff(c: &Config, failures: u32) -> Duration {
    let mult = 1u32 << failures.saturating_sub(1).min(16);
    (c.backoff_min * mult).min(c.backoff_max)
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

impl Inner {
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

impl Handle {
    pub(super) fn peer(&self, node: &str) -> Arc<Peer> {
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
    pub(super) fn link(&self, node: &str, deadline: Option<Instant>, may_wait: bool) -> Result<Arc<Conn>, CallError> {
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
    pub(super) fn wait_for_map(&self, deadline: Option<Instant>) -> Result<(), CallError> {
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
    pub(super) fn connect(&self, peer: &Arc<Peer>, addr: &str, session: u32) -> io::Result<Arc<Conn>> {
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
}
