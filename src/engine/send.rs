//! What leaves on a link to a peer node: calls (blocking, with a callback, with a `Bytes`
//! payload written in place), pushes and name queries, encoded by `wire` straight into the
//! link's send queue on the caller's thread.

use super::batch::batching;
use super::call::{Callback, Pending, Slot, Waiter};
use super::conn::Conn;
use super::error::CallError;
use super::node::{CallOpts, Handle};
use super::pack;
use super::stats::LinkStats;
use crate::wire::{self, Address, OwnedAddress, RequestKind, MAX_NAME_LEN};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Handle {
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
