//! What the host implements to serve requests, and how it answers.

use super::budget::Counters;
use super::conn::Conn;
use super::io::IoShared;
use crate::wire::Address;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

/// One request or push that arrived on an accepted link, borrowed from the engine's read
/// buffer for the duration of the handler call. Copy what you need to keep.
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'a> {
    /// The target: a numeric address, or a name. `@name`s are already resolved through
    /// the names registered with [`Handle::register`](super::Handle::register), so they
    /// arrive as `Address::Id`; other names (skynet's `.local` names) arrive as is.
    pub addr: Address<'a>,
    /// The request's session on its link (0 for a single-frame push).
    pub session: u32,
    pub payload: &'a [u8],
    /// The trace tag sent just before this request (a `0x04` frame), if any.
    pub trace: Option<&'a [u8]>,
    /// The peer's socket address.
    pub peer: Option<SocketAddr>,
    /// Identifies the accepted link (unique within the node).
    pub link: u64,
    /// The reassembled buffer behind `payload` for a multi-part request.
    pub(crate) owned: Option<&'a bytes::Bytes>,
}

impl Inbound<'_> {
    /// The payload as `Bytes` that may outlive the handler: a multi-part request's buffer is
    /// shared without a copy (a reference count), a single-frame one is copied.
    pub fn take_payload(&self) -> bytes::Bytes {
        match self.owned {
            Some(b) => b.clone(),
            None => bytes::Bytes::copy_from_slice(self.payload),
        }
    }
}

/// The host's request handler. Both methods run on the engine's I/O thread, one request
/// at a time in arrival order per link: keep them short and never block in them (hand
/// slow work to your own threads and answer later through the [`Responder`]).
///
/// A handler that blocks stalls every link of the node; it also makes TCP push back on
/// the peers, which is how memory stays bounded when the host is slower than the peers.
pub trait Service: Send + Sync + 'static {
    /// A call: answer through `responder`, now or later, from any thread.
    fn call(&self, req: Inbound<'_>, responder: Responder);
    /// A push: no answer is sent.
    fn push(&self, req: Inbound<'_>) {
        let _ = req;
    }
    /// Runs on the I/O thread after each round of socket events, once the round's writes
    /// are flushed and before the thread sleeps again. A host that hands requests to its
    /// own scheduler can use it to run or wake that scheduler once per round instead of
    /// once per request. Same rules as the handlers (short, never blocking) unless the
    /// node has [`Config::standby_after`](super::Config::standby_after): then it may run
    /// long, and it also runs on the standby thread (after the standby's rounds) while a long
    /// call is still running on the I/O thread.
    fn after_events(&self) {}
    /// With [`Config::standby_after`](super::Config::standby_after): the I/O thread has been
    /// inside one `after_events` call for `running` (at least `standby_after`). Called on
    /// the standby thread, which serves the links meanwhile (and calls `after_events`
    /// itself after each of its rounds), before each of its rounds: at least every
    /// `standby_after` until that call returns. Short, never blocking.
    fn stalled(&self, running: std::time::Duration) {
        let _ = running;
    }
}

/// Answers one call. `Send`: it may move to any thread. Consumed by answering; dropping it
/// unanswered sends the error `no response`, so the caller never hangs because of us.
/// If the link has dropped meanwhile, the answer is discarded and counted
/// ([`Health::late_answers`](super::Health::late_answers)).
///
/// A responder does not keep its link open: it holds the link weakly, so a closed link's
/// socket is released at once however many requests from it are still in service.
pub struct Responder {
    conn: Option<Weak<Conn>>,
    io: Arc<IoShared>,
    session: u32,
}

impl Responder {
    pub(crate) fn new(conn: &Arc<Conn>, session: u32) -> Self {
        Responder { conn: Some(Arc::downgrade(conn)), io: conn.io.clone(), session }
    }

    /// The link, if it is still there; counts a late answer otherwise.
    fn take_conn(&mut self) -> Option<Arc<Conn>> {
        let c = self.conn.take()?.upgrade();
        if c.is_none() {
            Counters::add(&self.io.counters.late_answers);
        }
        c
    }

    /// The session this answer goes to.
    pub fn session(&self) -> u32 {
        self.session
    }

    /// Sends `payload` as the answer (multi-part when above 32 KiB, as stock). The payload
    /// is copied once, into the link's send buffer.
    pub fn ok(self, payload: &[u8]) {
        self.respond(Ok(payload))
    }

    /// Sends an error frame with `msg` (truncated to 32 KiB, as stock).
    pub fn error(self, msg: &[u8]) {
        self.respond(Err(msg))
    }

    /// Sends `payload` as the answer without copying it when it goes multi-part (above
    /// 32 KiB): the frames are written straight from it. Use with [`Inbound::take_payload`]
    /// to answer with (part of) a large request at no copy.
    pub fn ok_bytes(mut self, payload: bytes::Bytes) {
        if let Some(c) = self.take_conn() {
            c.respond_bytes(self.session, payload);
        }
    }

    pub fn respond(mut self, r: Result<&[u8], &[u8]>) {
        if let Some(c) = self.take_conn() {
            c.respond(self.session, r);
        }
    }
}

impl Drop for Responder {
    /// Unanswered: `no response`, if the link is still there. A responder dropped after its
    /// link closed is not a late answer (nothing was answered), so it is not counted.
    fn drop(&mut self) {
        if let Some(c) = self.conn.take().and_then(|w| w.upgrade()) {
            c.respond_or_drop(self.session, Err(b"no response"), false);
        }
    }
}

/// A [`Service`] made of two closures.
pub struct FnService<C, P> {
    pub call: C,
    pub push: P,
}

impl<C, P> Service for FnService<C, P>
where
    C: Fn(Inbound<'_>, Responder) + Send + Sync + 'static,
    P: Fn(Inbound<'_>) + Send + Sync + 'static,
{
    fn call(&self, req: Inbound<'_>, responder: Responder) {
        (self.call)(req, responder)
    }
    fn push(&self, req: Inbound<'_>) {
        (self.push)(req)
    }
}
