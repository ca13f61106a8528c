//! Handles: what a C caller holds is a token, never a pointer to our memory.
//!
//! Every handle (`skc_node *`, `skc_config *`, `skc_pack *`, `skc_values *`, `skc_queue *`,
//! `skc_responder *`) is a unique, never-reused value looked up in one registry on every entry. So:
//!
//! * NULL, a destroyed handle (double destroy, use after destroy), an answered responder and a
//!   handle of the wrong kind are all detected (`SKC_ERR_HANDLE`), without reading freed
//!   memory: the registry says the handle is not live.
//! * Token values are never reused within a process (a 60-bit counter), so a stale handle
//!   cannot alias a newer one. They are non-canonical addresses on x86-64/aarch64: a caller
//!   that dereferences one faults at once instead of corrupting memory.
//! * Not detectable: a pointer that is not a handle at all but happens to equal a live token
//!   (practically impossible by accident), and a handle destroyed by one thread while another
//!   thread uses it (the user thread either sees it live, holding its own reference for the
//!   rest of the call, or sees `SKC_ERR_HANDLE`; it never touches freed memory).
//!
//! The registry is 16 read-mostly locks (sharded by token); lookups clone an `Arc` and release it at once, so a
//! long blocking call never holds it.

use super::error::{skc_status, Error, Res};
use crate::engine::Responder;
use once_cell::sync::Lazy;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// High bits that make every token a non-canonical address.
#[cfg(target_pointer_width = "64")]
const TAG: usize = 0x5ac0_0000_0000_0000;
#[cfg(not(target_pointer_width = "64"))]
const TAG: usize = 0x8000_0000;

static NEXT: AtomicUsize = AtomicUsize::new(1);

pub(crate) enum Obj {
    Node(Arc<super::node::NodeObj>),
    Pack(Arc<Mutex<super::pack::Builder>>),
    Values(Arc<Vec<crate::seri::Value>>),
    Queue(Arc<super::queue::Queue>),
    /// The node token it belongs to, and the answer-to-be.
    Responder(usize, Responder),
    Config(Arc<Mutex<crate::engine::Config>>),
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::Node(_) => "skc_node",
            Obj::Pack(_) => "skc_pack",
            Obj::Values(_) => "skc_values",
            Obj::Queue(_) => "skc_queue",
            Obj::Responder(..) => "skc_responder",
            Obj::Config(_) => "skc_config",
        }
    }
}

/// Shards of the registry, so that threads working on different handles (the I/O thread
/// registering responders, host threads answering them) rarely meet on one lock.
const SHARDS: usize = 16;

type Shard = RwLock<HashMap<usize, Obj>>;

static REG: Lazy<[Shard; SHARDS]> = Lazy::new(|| std::array::from_fn(|_| RwLock::new(HashMap::new())));

fn shard(t: usize) -> &'static Shard {
    &REG[(t >> 4) % SHARDS]
}

/// Removes every registered object for which `f` is true (e.g. a node's responders) and
/// returns them, so the caller drops them with no lock held.
pub(crate) fn remove_where(f: impl Fn(&Obj) -> bool) -> Vec<Obj> {
    let mut out = Vec::new();
    for sh in REG.iter() {
        let mut m = sh.write();
        let keys: Vec<usize> = m.iter().filter(|(_, o)| f(o)).map(|(k, _)| *k).collect();
        out.extend(keys.into_iter().filter_map(|k| m.remove(&k)));
    }
    out
}

/// A new token, never handed out before.
pub(crate) fn new_token() -> usize {
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    TAG | (serial << 4)
}

/// Registers `o` and returns its new token.
pub(crate) fn insert(o: Obj) -> usize {
    let t = new_token();
    shard(t).write().insert(t, o);
    t
}

/// Registers `o` under a token from `new_token`.
pub(crate) fn insert_at(t: usize, o: Obj) {
    shard(t).write().insert(t, o);
}

fn bad(kind: &str, t: usize, found: Option<&Obj>) -> Error {
    if t == 0 {
        return Error::null(kind);
    }
    let msg = match found {
        Some(o) => format!("handle {t:#x} is a {}, not a {kind}", o.kind()),
        None => format!("{kind} handle {t:#x} is not live (destroyed, already answered, or never created)"),
    };
    Error::new(skc_status::SKC_ERR_HANDLE, msg)
}

/// Looks a live handle of one kind up and returns what `get` extracts from it.
pub(crate) fn lookup<T>(kind: &str, t: usize, get: impl FnOnce(&Obj) -> Option<T>) -> Res<T> {
    let reg = shard(t).read();
    let o = reg.get(&t);
    match o.and_then(get) {
        Some(v) => Ok(v),
        None => Err(bad(kind, t, o)),
    }
}

/// Removes a live handle of one kind and returns its object.
pub(crate) fn remove<T>(kind: &str, t: usize, take: impl FnOnce(Obj) -> Result<T, Obj>) -> Res<T> {
    let mut reg = shard(t).write();
    let Some(o) = reg.remove(&t) else {
        return Err(bad(kind, t, None));
    };
    match take(o) {
        Ok(v) => Ok(v),
        Err(o) => {
            let e = bad(kind, t, Some(&o));
            reg.insert(t, o);
            Err(e)
        }
    }
}

/// Writes `v` through an out pointer, after checking it.
pub(crate) fn out<T>(p: *mut T, what: &str, v: T) -> Res<()> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: the caller passed a non-NULL pointer to writable storage for a `T`, as every
    // function documents for its out parameters.
    unsafe { p.write(v) };
    Ok(())
}

/// Sets an out pointer to NULL (if it is not NULL itself), so that a failing call leaves no
/// stale value behind.
pub(crate) fn clear<T>(p: *mut *mut T) {
    if !p.is_null() {
        // SAFETY: non-NULL out parameter, documented as writable.
        unsafe { p.write(std::ptr::null_mut()) };
    }
}

/// A NUL-terminated C string argument as UTF-8.
pub(crate) fn cstr<'a>(p: *const c_char, what: &str) -> Res<&'a str> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL, and documented as a NUL-terminated string that stays valid for the call.
    let c = unsafe { std::ffi::CStr::from_ptr(p) };
    c.to_str().map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// A NUL-terminated C string argument as bytes.
pub(crate) fn cbytes<'a>(p: *const c_char, what: &str) -> Res<&'a [u8]> {
    if p.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: as in `cstr`.
    Ok(unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes())
}

/// A `(pointer, length)` argument as a slice; NULL is accepted only with length 0.
pub(crate) fn slice<'a>(p: *const u8, len: usize, what: &str) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Error::new(skc_status::SKC_ERR_NULL, format!("{what} is NULL with length {len}")));
    }
    if len > isize::MAX as usize {
        return Err(Error::new(skc_status::SKC_ERR_SIZE, format!("{what} length {len} is out of range")));
    }
    // SAFETY: non-NULL, length checked against isize::MAX; the caller guarantees `len`
    // readable bytes at `p` for the duration of the call (documented on every function).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Copies `b` into a fresh `malloc` buffer (never NULL, even for 0 bytes) that the C caller
/// frees with `skc_free` (or `free`).
pub(crate) fn malloc_copy(b: &[u8]) -> Res<*mut u8> {
    // SAFETY: plain malloc of at least one byte; checked for NULL below.
    let p = unsafe { libc::malloc(b.len().max(1)) } as *mut u8;
    if p.is_null() {
        return Err(Error::new(skc_status::SKC_ERR_NOMEM, format!("malloc({}) failed", b.len())));
    }
    // SAFETY: p has room for b.len() bytes and does not overlap b.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()) };
    Ok(p)
}

/// Frees a buffer this library returned: an answer of `skc_call`, the bytes of
/// `skc_pack_finish`, the data of a `skc_completion`. NULL is ignored.
///
/// Ownership: takes ownership of `p` and frees it; `p` must come from one of the functions
/// above (they allocate with `malloc`, so plain `free` is equivalent) and must not be used
/// again. A double free is not detectable here.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_free(p: *mut std::ffi::c_void) {
    if !p.is_null() {
        // SAFETY: the caller passes a pointer this library allocated with malloc and has
        // not freed yet (documented).
        unsafe { libc::free(p) };
    }
}
