//! Status codes, the thread-local last-error text, and the guard every `extern "C"` function
//! runs its body in (no Rust panic crosses the boundary).

use crate::engine::CallError;
use std::cell::RefCell;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What every `skc_*` function that can fail returns. `SKC_OK` (0) is success; every other
/// value is an error whose text `skc_last_error()` gives on the same thread.
///
/// Values are stable: new codes are only ever added.
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum skc_status {
    /// Success.
    SKC_OK = 0,
    /// A required pointer argument was NULL (or a data pointer was NULL with a non-zero length).
    SKC_ERR_NULL = 1,
    /// A handle that is not a live handle of the expected kind: already destroyed (double
    /// destroy, use after destroy), a responder already answered, or a handle of another kind.
    SKC_ERR_HANDLE = 2,
    /// A struct size argument is smaller than the struct this library writes, or a length is
    /// out of range.
    SKC_ERR_SIZE = 3,
    /// An argument is invalid (not UTF-8 where text is needed, a name of 0 or more than 255
    /// bytes, an address that does not parse, a malformed node map, ...).
    SKC_ERR_INVALID = 4,
    /// No answer within the timeout. A late answer is dropped.
    SKC_ERR_TIMEOUT = 5,
    /// The remote node answered with an error; the text is the remote's own message.
    SKC_ERR_REMOTE = 6,
    /// The link dropped (or was closed by a reload) while the call was pending.
    SKC_ERR_LINK_DOWN = 7,
    /// Connecting to the peer node failed (now, or recently: the retry backoff has not expired).
    SKC_ERR_CONNECT = 8,
    /// The link's send queue is full.
    SKC_ERR_OVERLOADED = 9,
    /// The peer node is marked down in the node map.
    SKC_ERR_NODE_DOWN = 10,
    /// The peer node has no address in the node map (and the call does not wait for one).
    SKC_ERR_NODE_ABSENT = 11,
    /// A blocking call (or a node destroy) was made from the node's own callback thread,
    /// where it would deadlock.
    SKC_ERR_DEADLOCK = 12,
    /// The node was destroyed while the operation was under way.
    SKC_ERR_SHUTDOWN = 13,
    /// An operating-system error (listen, eventfd, ...); the text says which.
    SKC_ERR_IO = 14,
    /// Nothing to return yet (an empty completion queue).
    SKC_ERR_AGAIN = 15,
    /// A value is not of the type asked for.
    SKC_ERR_TYPE = 16,
    /// An index is out of range.
    SKC_ERR_RANGE = 17,
    /// Bytes that are not a valid skynet.pack message.
    SKC_ERR_DECODE = 18,
    /// Values that skynet.pack cannot encode (too deep, too large, nil or NaN table key).
    SKC_ERR_ENCODE = 19,
    /// A builder call out of order (a table left open, a key without a value, ...).
    SKC_ERR_STATE = 20,
    /// No such entry (e.g. stats of a peer never used).
    SKC_ERR_NOT_FOUND = 21,
    /// Memory allocation failed.
    SKC_ERR_NOMEM = 22,
    /// An internal error (a bug): a panic was caught at the boundary.
    SKC_ERR_INTERNAL = 99,
}

/// An error on its way to the C caller: a status and its text (any bytes).
#[derive(Debug)]
pub(crate) struct Error {
    pub code: skc_status,
    pub msg: Vec<u8>,
}

impl Error {
    pub fn new(code: skc_status, msg: impl Into<Vec<u8>>) -> Self {
        Error { code, msg: msg.into() }
    }
    pub fn null(what: &str) -> Self {
        Error::new(skc_status::SKC_ERR_NULL, format!("{what} is NULL"))
    }
    pub fn invalid(msg: impl Into<Vec<u8>>) -> Self {
        Error::new(skc_status::SKC_ERR_INVALID, msg)
    }
}

pub(crate) type Res<T> = Result<T, Error>;

/// The status for an engine error, and its text (a remote error's text is the remote's bytes).
pub(crate) fn from_call(e: CallError) -> Error {
    use skc_status::*;
    let code = match &e {
        CallError::Timeout => SKC_ERR_TIMEOUT,
        CallError::Remote(m) => return Error::new(SKC_ERR_REMOTE, m.clone()),
        CallError::LinkDown(_) => SKC_ERR_LINK_DOWN,
        CallError::ConnectFailed(_) => SKC_ERR_CONNECT,
        CallError::Overloaded => SKC_ERR_OVERLOADED,
        CallError::NodeDown(_) => SKC_ERR_NODE_DOWN,
        CallError::NodeAbsent(_) => SKC_ERR_NODE_ABSENT,
        CallError::Invalid(_) => SKC_ERR_INVALID,
        CallError::WouldDeadlock => SKC_ERR_DEADLOCK,
        CallError::Shutdown => SKC_ERR_SHUTDOWN,
    };
    Error::new(code, e.to_string())
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        from_call(e)
    }
}

thread_local! {
    /// The last error text of this thread, NUL-terminated (the NUL is not counted in its length).
    static LAST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn set_last(msg: &[u8]) {
    // try_with: a call made while this thread's locals are being torn down loses its text
    // instead of panicking.
    let _ = LAST.try_with(|l| {
        let mut l = l.borrow_mut();
        l.clear();
        l.extend_from_slice(msg);
        l.push(0);
    });
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `f`, turning its error into a status (and the thread's last-error text) and a panic
/// into `SKC_ERR_INTERNAL`. Every exported function goes through here.
pub(crate) fn guard(f: impl FnOnce() -> Res<()>) -> skc_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => skc_status::SKC_OK,
        Ok(Err(e)) => {
            set_last(&e.msg);
            e.code
        }
        Err(p) => {
            set_last(format!("internal error (caught panic): {}", panic_text(&*p)).as_bytes());
            skc_status::SKC_ERR_INTERNAL
        }
    }
}

/// Runs Rust code around a C callback on an engine thread: a panic is swallowed (it cannot
/// be reported to anyone) instead of unwinding into the engine.
pub(crate) fn quiet(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// The text of the last error on the calling thread, NUL-terminated (an empty string when no
/// call on this thread has failed yet). A remote error's text may contain NUL bytes: use
/// `skc_last_error_len` for its full length.
///
/// Ownership: the string belongs to the library and stays valid until the next `skc_*` call
/// on the same thread that fails; copy it to keep it. Never free it.
/// Thread-safety: thread-safe; each thread has its own last error.
#[no_mangle]
pub extern "C" fn skc_last_error() -> *const c_char {
    let r = catch_unwind(|| {
        LAST.with(|l| {
            let mut l = l.borrow_mut();
            if l.is_empty() {
                l.push(0);
            }
            l.as_ptr() as *const c_char
        })
    });
    r.unwrap_or(c"internal error".as_ptr())
}

/// The length in bytes of `skc_last_error()`, without its terminating NUL.
///
/// Ownership: nothing is allocated or freed. Thread-safety: thread-safe (per thread).
#[no_mangle]
pub extern "C" fn skc_last_error_len() -> usize {
    catch_unwind(|| LAST.with(|l| l.borrow().len().saturating_sub(1))).unwrap_or(0)
}

/// A static name for a status code, e.g. `"SKC_ERR_TIMEOUT"` (`"SKC_ERR_UNKNOWN"` for a value
/// that is not a status).
///
/// Ownership: the string is static; never free it. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_status_name(status: i32) -> *const c_char {
    use skc_status::*;
    let all = [
        (SKC_OK, c"SKC_OK"),
        (SKC_ERR_NULL, c"SKC_ERR_NULL"),
        (SKC_ERR_HANDLE, c"SKC_ERR_HANDLE"),
        (SKC_ERR_SIZE, c"SKC_ERR_SIZE"),
        (SKC_ERR_INVALID, c"SKC_ERR_INVALID"),
        (SKC_ERR_TIMEOUT, c"SKC_ERR_TIMEOUT"),
        (SKC_ERR_REMOTE, c"SKC_ERR_REMOTE"),
        (SKC_ERR_LINK_DOWN, c"SKC_ERR_LINK_DOWN"),
        (SKC_ERR_CONNECT, c"SKC_ERR_CONNECT"),
        (SKC_ERR_OVERLOADED, c"SKC_ERR_OVERLOADED"),
        (SKC_ERR_NODE_DOWN, c"SKC_ERR_NODE_DOWN"),
        (SKC_ERR_NODE_ABSENT, c"SKC_ERR_NODE_ABSENT"),
        (SKC_ERR_DEADLOCK, c"SKC_ERR_DEADLOCK"),
        (SKC_ERR_SHUTDOWN, c"SKC_ERR_SHUTDOWN"),
        (SKC_ERR_IO, c"SKC_ERR_IO"),
        (SKC_ERR_AGAIN, c"SKC_ERR_AGAIN"),
        (SKC_ERR_TYPE, c"SKC_ERR_TYPE"),
        (SKC_ERR_RANGE, c"SKC_ERR_RANGE"),
        (SKC_ERR_DECODE, c"SKC_ERR_DECODE"),
        (SKC_ERR_ENCODE, c"SKC_ERR_ENCODE"),
        (SKC_ERR_STATE, c"SKC_ERR_STATE"),
        (SKC_ERR_NOT_FOUND, c"SKC_ERR_NOT_FOUND"),
        (SKC_ERR_NOMEM, c"SKC_ERR_NOMEM"),
        (SKC_ERR_INTERNAL, c"SKC_ERR_INTERNAL"),
    ];
    all.iter().find(|(s, _)| *s as i32 == status).map_or(c"SKC_ERR_UNKNOWN".as_ptr(), |(_, n)| n.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_internal_error_with_text() {
        let rc = guard(|| panic!("boom in test"));
        assert_eq!(rc, skc_status::SKC_ERR_INTERNAL);
        // SAFETY: the library's own NUL-terminated thread-local text.
        let t = unsafe { std::ffi::CStr::from_ptr(skc_last_error()) }.to_str().unwrap().to_string();
        assert!(t.contains("boom in test"), "{t}");
        assert_eq!(skc_last_error_len(), t.len());
        let rc = guard(|| Err(Error::new(skc_status::SKC_ERR_REMOTE, b"a\0b".to_vec())));
        assert_eq!(rc, skc_status::SKC_ERR_REMOTE);
        assert_eq!(skc_last_error_len(), 3);
        assert_eq!(guard(|| Ok(())), skc_status::SKC_OK);
        assert_eq!(skc_last_error_len(), 3, "success leaves the last error alone");
    }
}
