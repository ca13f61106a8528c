//! The engine's log lines, to the host: a C callback per node instead of stderr (after
//! rustls-ffi's log callback).

use super::error::{guard, quiet, skc_status};
use super::event::reason_code;
use super::node::{get, in_callback, skc_node};
use super::slot::Slot;
use crate::engine::{Level, LogHook, LogRecord};
use std::os::raw::{c_char, c_void};
use std::sync::Arc;

pub use super::event::skc_down_reason;

/// How much a log line matters.
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum skc_log_level {
    /// The node cannot do its job (its poll failed, a callback of yours panicked).
    SKC_LOG_ERROR = 0,
    /// What a peer or a limit did: a link closed on an error, a connection refused by a
    /// limit, accept paused for lack of descriptors, a message refused by a budget.
    SKC_LOG_WARN = 1,
    /// A state that ended well (accept resumed).
    SKC_LOG_INFO = 2,
}

/// One log line, as the log callback sees it; borrowed for the call only.
#[repr(C)]
pub struct skc_log_record {
    pub level: skc_log_level,
    /// When the line reports a link going down: why (as in `skc_link_event`), else
    /// `SKC_DOWN_NONE`.
    pub reason: skc_down_reason,
    /// The text, NUL-terminated, never NULL.
    pub text: *const c_char,
    /// Bytes of `text` without the NUL.
    pub text_len: usize,
}

/// The log callback given to `skc_set_log_callback`. Runs on the thread that logs (usually
/// the node's I/O thread), one line at a time per thread: it must not block and must not
/// unwind. The same rules as the link callback apply to what it may call.
/// Ownership: `rec` and its text are borrowed for the call.
pub type skc_log_cb = Option<unsafe extern "C" fn(ud: *mut c_void, rec: *const skc_log_record)>;

type Cb = unsafe extern "C" fn(*mut c_void, *const skc_log_record);

/// A node's log callback (see `slot.rs`).
pub(crate) type LogSlot = Slot<Cb>;

/// The engine hook that hands each line to `slot`'s callback for node `token`, or to stderr
/// when none is set.
pub(crate) fn hook(slot: &Arc<LogSlot>, token: usize) -> LogHook {
    let slot = Arc::downgrade(slot);
    LogHook::new(move |r: &LogRecord<'_>| {
        let Some(s) = slot.upgrade() else { return };
        quiet(|| {
            let Some((cb, ud, _running)) = s.enter(token) else {
                eprintln!("skynet-cluster engine: {}", r.text);
                return;
            };
            let mut text = r.text.as_bytes().to_vec();
            let text_len = text.len();
            text.push(0);
            let rec = skc_log_record {
                level: match r.level {
                    Level::Error => skc_log_level::SKC_LOG_ERROR,
                    Level::Warn => skc_log_level::SKC_LOG_WARN,
                    Level::Info => skc_log_level::SKC_LOG_INFO,
                },
                reason: r.reason.map_or(skc_down_reason::SKC_DOWN_NONE, reason_code),
                text: text.as_ptr().cast(),
                text_len,
            };
            // SAFETY: the host's callback with its own `ud`, and a record whose text (NUL-
            // terminated, in `text`) lives until it returns (documented as borrowed).
            in_callback(token, || unsafe { cb(ud as *mut c_void, &rec) });
        })
    })
}

/// Sets (or replaces) where the node's log lines go: `cb` gets each line (level, the reason
/// when it reports a link going down, the text) instead of stderr. A NULL `cb` sends them to
/// stderr again (`ud` is then ignored). Lines a peer could make flood are rate-limited by the
/// engine before they reach the callback.
///
/// When this returns, the previous callback is not running on any other thread and will not
/// be called again, so its `ud` may be freed (called from inside a callback of the node, it
/// does not wait).
///
/// Ownership: `ud` stays the caller's; it must stay valid until the callback is replaced or
/// cleared, or the node destroyed. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_set_log_callback(node: *mut skc_node, cb: skc_log_cb, ud: *mut c_void) -> skc_status {
    guard(|| {
        let n = get(node)?;
        n.logs.set(n.token, cb.map(|f| (f, ud as usize)));
        Ok(())
    })
}
