//! Accepting links: listeners, their own bound (stock's `maxclient`), the node's link budget,
//! and what happens when the process runs out of file descriptors.

use super::budget::Counters;
use super::conn::Conn;
use super::io::{Entry, IoLoop, Read};
use super::log::Level;
use super::sockopt;
use super::stats::LinkStats;
use mio::net::TcpListener;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

pub(super) const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

/// Refused connections (link limits) are logged at most once per this long.
pub(super) const REFUSED_LOG_EVERY: Duration = Duration::from_secs(10);

impl Listener {
    pub(super) fn new(sock: TcpListener, max_clients: Option<usize>) -> Listener {
        Listener { sock, max_clients, open: 0, stall: None }
    }
}

impl IoLoop {
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
                Ok((stream, peer)) => {
                    if let Some(s) = l.stall.take() {
                        let (n, after) = (self.conns.len(), self.now.saturating_duration_since(s.since));
                        let text = format!(
                            "accept resumed after {:.1}s without file descriptors ({n} links open)",
                            after.as_secs_f64()
                        );
                        self.inner.io.log.log(Level::Info, None, &text);
                    }
                    if let Some(token) = self.admit(t, stream, peer) {
                        self.on_event(token, Read::ToEnd, false, scratch);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A connection that died in the backlog: the next one.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED) | Some(libc::EPROTO)) => continue,
                Err(e) if out_of_descriptors(&e) => return self.stall(t, &e),
                Err(e) => {
                    let log = &self.inner.io.log;
                    self.refused_log.log(log, Level::Warn, None, self.now, || format!("accept failed: {e}"));
                    return;
                }
            }
        }
    }

    /// Makes a link of a connection listener `t` accepted, within the limits; its token, or
    /// `None` when it was refused (closed at once, counted, logged rate-limited).
    fn admit(&mut self, t: Token, mut stream: mio::net::TcpStream, peer: SocketAddr) -> Option<Token> {
        if let Some(why) = self.not_admitted(peer) {
            return self.refuse_source(peer, why);
        }
        let l = self.listeners.get_mut(&t)?;
        let full = l.max_clients.is_some_and(|m| l.open >= m);
        let io = &self.inner.io;
        if full || !io.links.try_take(1) {
            Counters::add(&io.counters.refused_links);
            let (open, why) = if full {
                (l.open, format!("listener limit of {} links", l.max_clients.unwrap_or(0)))
            } else {
                (io.links.used(), format!("node limit of {} links (max_links)", io.links.limit()))
            };
            self.refused_log.log(&io.log, Level::Warn, None, self.now, || {
                format!("connection from {peer} refused: {why} reached ({open} open)")
            });
            return None;
        }
        let _ = stream.set_nodelay(true);
        sockopt::keepalive(stream.as_raw_fd(), self.inner.cfg.keepalive);
        let token = io.token();
        if let Err(e) = io.registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
            io.log.warn(&format!("register accepted socket: {e}"));
            io.links.give(1);
            return None;
        }
        l.open += 1;
        *self.per_source.entry(peer.ip()).or_insert(0) += 1;
        let stats = self.inner.inbound_stats.clone();
        let conn = Conn::new(token, stream, true, Some(peer), String::new(), stats, io.clone(), &self.inner.cfg, 0);
        LinkStats::add(&self.inner.inbound_stats.connects, 1);
        let ev = conn.event(None);
        let mut e = Entry::new(Arc::new(conn), self.now);
        e.listener = Some(t);
        e.first_frame = self.inner.tls.mode != super::TlsMode::Off;
        self.conns.insert(token, e);
        self.inner.link_event(ev);
        Some(token)
    }

    /// Why a connection from `peer` may not become a link (admission: the allowlist, the
    /// bound per source), or `None`. Counted per reason.
    fn not_admitted(&self, peer: SocketAddr) -> Option<String> {
        let (cfg, c) = (&self.inner.cfg, &self.inner.io.counters);
        let ip = peer.ip().to_canonical();
        if let Some(allow) = &cfg.allow {
            if !allow.iter().any(|net| net.contains(&ip)) {
                Counters::add(&c.refused_not_allowed);
                return Some("not in the allowlist".into());
            }
        }
        if let Some(max) = cfg.max_links_per_source {
            let open = self.per_source.get(&peer.ip()).copied().unwrap_or(0);
            if open >= max {
                Counters::add(&c.refused_per_source);
                return Some(format!("{open} links open from it (max_links_per_source {max})"));
            }
        }
        None
    }

    /// Closes a connection refused by admission (dropping the stream, before reading a byte),
    /// logging at most one line per source per `REFUSED_LOG_EVERY` (never a flood, however
    /// many sources: the table is pruned of old entries past 4096).
    fn refuse_source(&mut self, peer: SocketAddr, why: String) -> Option<Token> {
        let now = self.now;
        let ip = peer.ip();
        if self.source_log.get(&ip).is_some_and(|t| now.saturating_duration_since(*t) < REFUSED_LOG_EVERY) {
            return None;
        }
        if self.source_log.len() >= 4096 {
            self.source_log.retain(|_, t| now.saturating_duration_since(*t) < REFUSED_LOG_EVERY);
        }
        if self.source_log.len() < 4096 {
            self.source_log.insert(ip, now);
            self.inner.io.log.warn(&format!("connection from {peer} refused: {why}"));
        }
        None
    }

    /// Listener `t` ran out of descriptors: retried later, backing off; logged once per
    /// episode.
    fn stall(&mut self, t: Token, e: &io::Error) {
        let now = self.now;
        let n = self.conns.len();
        let Some(l) = self.listeners.get_mut(&t) else { return };
        match &mut l.stall {
            Some(s) => {
                s.backoff = (s.backoff * 2).min(ACCEPT_RETRY_MAX);
                s.retry_at = now + s.backoff;
            }
            None => {
                Counters::add(&self.inner.io.counters.accept_stalls);
                let text = format!("accept paused: {e} ({n} links open); retrying until descriptors free up");
                self.inner.io.log.warn(&text);
                l.stall = Some(Stall { since: now, retry_at: now + ACCEPT_RETRY_MIN, backoff: ACCEPT_RETRY_MIN });
            }
        }
    }
}

/// Accept failed for lack of descriptors or kernel memory: retry later, not now.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}
