//! Calls, pushes, name queries and trace tags: the client side.
//!
//! Addressing, as `cluster.call(node, address, ...)`: every function takes the peer node's name
//! (`peer`, a name from the node map) and a service address, given either as `name` (a
//! NUL-terminated service name: `"@sdb"` for a name registered with `cluster.register`,
//! `".db"` for a skynet local name) or, when `name` is NULL, as the numeric address `id`.

use super::error::{guard, skc_status, Error, Res};
use super::handle::{cbytes, cstr, malloc_copy, out, slice};
use super::node::{get, in_callback, skc_node};
use super::queue::{self, skc_queue, Done};
use crate::engine::{Address, CallOpts};
use std::cell::RefCell;
use std::os::raw::{c_char, c_void};
use std::time::Duration;

/// What `skc_call_async` calls when the call ends. `status` is `SKC_OK` with the answer in
/// `data`/`len`, or an error code with its text in `data`/`len` (NUL-terminated, the NUL not
/// counted).
///
/// Runs exactly once, on the node's I/O thread (or on the thread whose action ended the call,
/// e.g. `skc_reload` or `skc_node_destroy`). It must not block; it may start other calls
/// (`skc_call_async`, `skc_push`, ...) but a blocking `skc_call` from it fails with
/// `SKC_ERR_DEADLOCK`. It must not unwind (no C++ exception may leave it).
/// Ownership: `data` is borrowed for the duration of the callback; copy what you keep.
pub type skc_call_cb = Option<unsafe extern "C" fn(ud: *mut c_void, status: skc_status, data: *const u8, len: usize)>;

thread_local! {
    static TRACE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

fn trace() -> Option<Vec<u8>> {
    TRACE.with(|t| t.borrow().clone())
}

/// The peer, address and payload every call and push takes, checked in that order.
fn request_args<'a>(
    peer: *const c_char,
    name: *const c_char,
    id: u32,
    data: *const u8,
    len: usize,
) -> Res<(&'a str, Address<'a>, &'a [u8])> {
    Ok((cstr(peer, "peer")?, address(name, id)?, slice(data, len, "data")?))
}

pub(crate) fn address<'a>(name: *const c_char, id: u32) -> Res<Address<'a>> {
    if name.is_null() {
        return Ok(Address::Id(id));
    }
    let n = cbytes(name, "name")?;
    if n.is_empty() || n.len() > 255 {
        return Err(Error::invalid(format!("name length {} is invalid, must be between 1 and 255", n.len())));
    }
    Ok(Address::Name(n))
}

fn timeout(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

/// Sets the trace tag of the calls the calling thread makes from now on (`skc_call`,
/// `skc_call_async`, `skc_call_queued`, `skc_query`), like `skynet.trace`: each such call is
/// preceded by a trace frame. A tag that does not start with `(` is sent as
/// `(<nodename>-<peer>-<session>)<tag>`, as stock does. NULL turns tracing off.
///
/// Ownership: `tag` is copied. Thread-safety: thread-safe; the setting is per thread.
#[no_mangle]
pub extern "C" fn skc_trace(tag: *const c_char) -> skc_status {
    guard(|| {
        let t = if tag.is_null() { None } else { Some(cbytes(tag, "tag")?.to_vec()) };
        if t.as_ref().is_some_and(|t| t.len() > 0x8000) {
            return Err(Error::new(skc_status::SKC_ERR_SIZE, "trace tag longer than 32768 bytes"));
        }
        TRACE.with(|c| *c.borrow_mut() = t);
        Ok(())
    })
}

/// Calls a service on peer node `peer` and waits for its answer (`cluster.call` with a packed
/// request). `data`/`len`: the request, usually skynet.pack bytes from `skc_pack_finish` (may
/// be NULL when `len` is 0). `timeout_ms`: 0 waits forever (stock's behaviour); a call to a
/// peer with no address yet waits for a reload until then, unless `skc_set_nowaiting`.
///
/// On `SKC_OK`, `*resp` and `*resp_len` hold the answer (never NULL, even when empty). On an
/// error they are NULL / 0 and `skc_last_error()` has the text; for `SKC_ERR_REMOTE` that is the
/// remote's error message.
///
/// Ownership: `peer`, `name` and `data` are borrowed for the call; the caller owns `*resp` and
/// frees it with `skc_free`.
/// Thread-safety: thread-safe; blocks the calling thread. From a node callback it fails with
/// `SKC_ERR_DEADLOCK`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn skc_call(
    node: *mut skc_node,
    peer: *const c_char,
    name: *const c_char,
    id: u32,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    resp: *mut *mut u8,
    resp_len: *mut usize,
) -> skc_status {
    super::handle::clear(resp);
    if !resp_len.is_null() {
        // SAFETY: non-NULL out parameter, documented as writable.
        unsafe { resp_len.write(0) };
    }
    guard(|| {
        let n = get(node)?;
        let (peer, a, payload) = request_args(peer, name, id, data, len)?;
        if resp.is_null() || resp_len.is_null() {
            return Err(Error::null("resp or resp_len"));
        }
        let tr = trace();
        let r =
            n.handle.call_opts(peer, a, payload, CallOpts { timeout: timeout(timeout_ms), trace: tr.as_deref() })?;
        let p = malloc_copy(&r)?;
        out(resp_len, "resp_len", r.len())?;
        out(resp, "resp", p)
    })
}

fn error_text(e: &Error) -> Vec<u8> {
    let mut t = e.msg.clone();
    t.push(0);
    t
}

/// Calls a service without blocking: `cb(ud, status, data, len)` runs once when the call ends
/// (answer, error, or timeout after `timeout_ms`; 0: no timeout). A peer with no address fails
/// at once (`SKC_ERR_NODE_ABSENT`), it is not waited for.
///
/// Returns `SKC_OK` when the call was sent: the callback will run exactly once. Any other
/// status means nothing was sent and the callback will never run.
///
/// Ownership: `peer`, `name` and `data` are borrowed for this call only (the request is copied
/// before it returns); `ud` is passed back untouched, the caller keeps owning what it points to.
/// Thread-safety: thread-safe; never blocks on the network.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn skc_call_async(
    node: *mut skc_node,
    peer: *const c_char,
    name: *const c_char,
    id: u32,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    cb: skc_call_cb,
    ud: *mut c_void,
) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let (peer, a, payload) = request_args(peer, name, id, data, len)?;
        let Some(cb) = cb else {
            return Err(Error::null("cb"));
        };
        let ud = ud as usize;
        let token = n.token;
        let tr = trace();
        n.handle.call_with(
            peer,
            a,
            payload,
            CallOpts { timeout: timeout(timeout_ms), trace: tr.as_deref() },
            move |r| {
                in_callback(token, || match r {
                    // SAFETY: `cb` is the caller's callback, given `ud` back and a slice that lives
                    // until it returns (documented as borrowed for the callback).
                    Ok(p) => unsafe { cb(ud as *mut c_void, skc_status::SKC_OK, p.as_ptr(), p.len()) },
                    Err(e) => {
                        let e = Error::from(e);
                        let t = error_text(&e);
                        // SAFETY: as above; `t` is NUL-terminated and outlives the callback.
                        unsafe { cb(ud as *mut c_void, e.code, t.as_ptr(), t.len() - 1) }
                    }
                })
            },
        )?;
        Ok(())
    })
}

/// Calls a service without blocking; the outcome goes into queue `q` as a `skc_completion`
/// carrying `token` (take it with `skc_queue_pop` / `skc_queue_wait`; the queue's fd becomes
/// readable). `timeout_ms`: 0 = no timeout. A peer with no address fails at once.
///
/// Returns `SKC_OK` when the call was sent: exactly one completion will be queued. Any other
/// status means nothing was sent and nothing will be queued.
///
/// Ownership: `peer`, `name` and `data` are borrowed for this call only; the queue is not
/// consumed (free it with `skc_queue_free`; pending calls keep its internals alive).
/// Thread-safety: thread-safe; never blocks on the network.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn skc_call_queued(
    node: *mut skc_node,
    peer: *const c_char,
    name: *const c_char,
    id: u32,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    q: *mut skc_queue,
    token: u64,
) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let q = queue::get(q)?;
        let (peer, a, payload) = request_args(peer, name, id, data, len)?;
        let tr = trace();
        n.handle.call_with(
            peer,
            a,
            payload,
            CallOpts { timeout: timeout(timeout_ms), trace: tr.as_deref() },
            move |r| {
                let d = match r {
                    Ok(p) => Done { token, status: skc_status::SKC_OK, data: p.into_vec() },
                    Err(e) => {
                        let e = Error::from(e);
                        Done { token, status: e.code, data: e.msg }
                    }
                };
                q.push(d);
            },
        )?;
        Ok(())
    })
}

/// Sends a push (`cluster.send`): no answer. Never waits: fails at once on a peer with no
/// address, a full send queue (`SKC_ERR_OVERLOADED`) or a failed connect; a link still being
/// connected queues it. `SKC_OK` means queued for sending, not delivered.
///
/// Ownership: `peer`, `name` and `data` are borrowed for the call (the request is copied).
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_push(
    node: *mut skc_node,
    peer: *const c_char,
    name: *const c_char,
    id: u32,
    data: *const u8,
    len: usize,
) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let (peer, a, payload) = request_args(peer, name, id, data, len)?;
        n.handle.push(peer, a, payload)?;
        Ok(())
    })
}

/// `cluster.query(peer, name)`: the numeric address registered as `name` (without `@`) on
/// peer node `peer`, written to `*id`. Blocks like `skc_call` (`timeout_ms`: 0 = forever).
/// A name not registered there gives `SKC_ERR_REMOTE` ("name not found" from our nodes; stock
/// nodes answer with their own text).
///
/// Ownership: the strings are borrowed for the call. Thread-safety: thread-safe; blocks; from a
/// node callback it fails with `SKC_ERR_DEADLOCK`.
#[no_mangle]
pub extern "C" fn skc_query(
    node: *mut skc_node,
    peer: *const c_char,
    name: *const c_char,
    timeout_ms: u32,
    id: *mut u32,
) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let peer = cstr(peer, "peer")?;
        let nm = cstr(name, "name")?;
        if id.is_null() {
            return Err(Error::null("id"));
        }
        let v = n.handle.query(peer, nm, timeout(timeout_ms))?;
        out(id, "id", v)
    })
}
