//! Serving: a handler callback receives every request and push; a `skc_responder` answers a
//! request now or later, from any thread.

use super::error::{guard, quiet, skc_status, Error};
use super::handle::{cbytes, insert, remove, slice, Obj};
use super::node::{get, in_callback, skc_node};
use crate::engine::{Address, Inbound, Responder, Service};
use std::os::raw::{c_char, c_void};
use std::sync::Arc;

/// The pending answer to one request. Opaque: answer it exactly once with `skc_respond` or
/// `skc_respond_error` (which free it), from any thread, now or later.
pub struct skc_responder {
    _private: [u8; 0],
}

/// One request or push, as the handler sees it. Every pointer in it is borrowed for the
/// duration of the handler call only: copy what you keep.
#[repr(C)]
pub struct skc_request {
    /// The target service name, NUL-terminated (`".db"`, a skynet local name), or NULL when
    /// the request is addressed by number (`id`). `@name`s registered with `skc_register`
    /// arrive already resolved, as their `id`.
    pub name: *const c_char,
    /// Bytes of `name` without the NUL (0 when `name` is NULL).
    pub name_len: usize,
    /// The numeric target address (0 when addressed by `name`).
    pub id: u32,
    /// The request's session on its link (0 for a single-frame push).
    pub session: u32,
    /// The payload (usually skynet.pack bytes; read it with `skc_unpack`). Not NULL.
    pub data: *const u8,
    pub len: usize,
    /// The trace tag sent just before this request, or NULL.
    pub trace: *const u8,
    pub trace_len: usize,
    /// Identifies the accepted link the request came on (unique within the node).
    pub link: u64,
    /// The peer's address as `"ip:port"` (NUL-terminated), or NULL when unknown.
    pub peer: *const c_char,
}

/// The request handler given to `skc_serve`. For a call, `r` is the responder to answer with
/// (exactly once, now or later, from any thread); for a push, `r` is NULL.
///
/// Runs on the node's I/O thread, one request at a time: it must not block (hand slow work to
/// your own threads and answer from there). It must not unwind (no C++ exception may leave it).
/// A blocking `skc_call` from it fails with `SKC_ERR_DEADLOCK`.
/// Ownership: `req` and everything it points to are borrowed for the call; `r` is owned by the
/// handler from now on and is freed by answering it.
pub type skc_handler = Option<unsafe extern "C" fn(ud: *mut c_void, req: *const skc_request, r: *mut skc_responder)>;

struct CService {
    cb: unsafe extern "C" fn(*mut c_void, *const skc_request, *mut skc_responder),
    ud: usize,
    node: usize,
}

impl CService {
    fn run(&self, req: Inbound<'_>, responder: Option<Responder>) {
        let mut namebuf = [0u8; 256];
        let (name, name_len, id) = match req.addr {
            Address::Id(id) => (std::ptr::null(), 0, id),
            Address::Name(n) => {
                let l = n.len().min(255);
                namebuf[..l].copy_from_slice(&n[..l]);
                (namebuf.as_ptr() as *const c_char, l, 0)
            }
        };
        let (trace, trace_len) = match req.trace {
            Some(t) => (t.as_ptr(), t.len()),
            None => (std::ptr::null(), 0),
        };
        let mut peerbuf = [0u8; 64];
        let peer = match req.peer {
            Some(a) => {
                use std::io::Write;
                let mut w = &mut peerbuf[..63];
                match write!(w, "{a}") {
                    Ok(()) => peerbuf.as_ptr() as *const c_char,
                    Err(_) => std::ptr::null(),
                }
            }
            None => std::ptr::null(),
        };
        let r = skc_request {
            name,
            name_len,
            id,
            session: req.session,
            data: req.payload.as_ptr(),
            len: req.payload.len(),
            trace,
            trace_len,
            link: req.link,
            peer,
        };
        let rp = match responder {
            Some(resp) => insert(Obj::Responder(self.node, resp)) as *mut skc_responder,
            None => std::ptr::null_mut(),
        };
        let (cb, ud) = (self.cb, self.ud);
        // SAFETY: the host's handler with its own `ud`, a request whose pointers live until it
        // returns, and a responder token it now owns (documented).
        in_callback(self.node, || unsafe { cb(ud as *mut c_void, &r, rp) });
    }
}

impl Service for CService {
    fn call(&self, req: Inbound<'_>, responder: Responder) {
        quiet(|| self.run(req, Some(responder)));
    }
    fn push(&self, req: Inbound<'_>) {
        quiet(|| self.run(req, None));
    }
}

/// Sets (or replaces) the handler of every request and push arriving on the node's accepted
/// links. `ud` is passed back to every call of `handler`.
///
/// Ownership: `ud` stays the caller's; it must stay valid until the node is destroyed or the
/// handler replaced (the library never frees it).
/// Thread-safety: thread-safe; requests already being handled finish with the old handler.
#[no_mangle]
pub extern "C" fn skc_serve(node: *mut skc_node, handler: skc_handler, ud: *mut c_void) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let Some(cb) = handler else {
            return Err(Error::null("handler"));
        };
        n.handle.set_service(Arc::new(CService { cb, ud: ud as usize, node: n.token }));
        Ok(())
    })
}

fn take(r: *mut skc_responder) -> Result<Responder, Error> {
    remove("skc_responder", r as usize, |o| match o {
        Obj::Responder(_, resp) => Ok(resp),
        o => Err(o),
    })
}

/// Answers a request with `data`/`len` (usually skynet.pack bytes; NULL allowed when `len` is
/// 0). Answers above 32 KiB go multi-part, as stock. If the link dropped meanwhile, the answer
/// is discarded (still `SKC_OK`).
///
/// Ownership: consumes and frees `r` (any later use: `SKC_ERR_HANDLE`, so a double answer is
/// detected and sends nothing). `data` is copied before this returns.
/// Thread-safety: thread-safe; may be called from any thread, inside or after the handler.
/// On an argument error (`SKC_ERR_NULL`) the responder is left untouched.
#[no_mangle]
pub extern "C" fn skc_respond(r: *mut skc_responder, data: *const u8, len: usize) -> skc_status {
    guard(|| {
        let payload = slice(data, len, "data")?;
        take(r)?.ok(payload);
        Ok(())
    })
}

/// Answers a request with an error: the caller's `cluster.call` raises `msg` (truncated to
/// 32 KiB, as stock).
///
/// Ownership: consumes and frees `r` (as `skc_respond`); `msg` is copied.
/// Thread-safety: thread-safe, from any thread.
#[no_mangle]
pub extern "C" fn skc_respond_error(r: *mut skc_responder, msg: *const c_char) -> skc_status {
    guard(|| {
        let m = cbytes(msg, "msg")?;
        take(r)?.error(m);
        Ok(())
    })
}
