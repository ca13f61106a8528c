//! Using the service's skynet context from any thread: sending, logging, and waking
//! skynet's workers (see "Waking skynet's workers" in the module docs).

use super::{Core, ON_IO_THREAD};
use std::ffi::{c_int, c_void, CString};
use std::sync::atomic::Ordering;

#[derive(Clone, Copy)]
pub(super) struct Ctx(pub(super) *mut c_void);
// A skynet_context pointer is used only for skynet_send / skynet_error / skynet_queryname,
// which skynet makes safe from any thread (skynet's own socket and timer threads call them);
// it stays valid until `skcluster_release`, which joins the engine's I/O thread first.
// SAFETY: per the above, a Ctx may move to and be used from the engine's threads.
unsafe impl Send for Ctx {}
// SAFETY: see `Send`.
unsafe impl Sync for Ctx {}

impl Core {
    /// Runs `f` with the service's skynet context, unless the service is released.
    /// Callers' workers (direct path) use the context concurrently with
    /// `skcluster_release`, which closes `ctx_gate` (waiting until no `f` runs), so the
    /// context is never used after skynet frees it.
    pub(super) fn with_ctx<R>(&self, f: impl FnOnce(*mut c_void) -> R) -> Option<R> {
        self.ctx_gate.run(|| f(self.ctx.0))
    }

    /// `skynet_send` copying `data` (skynet allocates the message itself); -1 when it
    /// failed or the service is released.
    pub(super) fn send(&self, dest: u32, ty: c_int, session: c_int, data: &[u8]) -> c_int {
        let p = if data.is_empty() { std::ptr::null_mut() } else { data.as_ptr() as *mut c_void };
        // SAFETY: ctx is live inside with_ctx; without PTYPE_TAG_DONTCOPY skynet copies `sz`
        // bytes from `p` and never keeps or frees `p`; NULL data with size 0 is an empty message.
        self.with_ctx(|ctx| unsafe { (self.api.send)(ctx, 0, dest, ty, session, p, data.len()) }).unwrap_or(-1)
    }

    pub(super) fn log(&self, msg: &str) {
        let Ok(c) = CString::new(msg.replace('\0', "\\0")) else {
            return;
        };
        // SAFETY: format "%s" with one NUL-terminated string argument; ctx is live inside with_ctx.
        self.with_ctx(|ctx| unsafe { (self.api.error)(ctx, c"%s".as_ptr(), c.as_ptr()) });
    }

    /// After pushing messages into skynet: make sure they run. On the I/O thread this is
    /// done once per round of events, by [`Core::after_events`]; elsewhere (a skynet
    /// worker, which goes on dispatching anyway) the workers are woken at once.
    pub(super) fn wake(&self) {
        if ON_IO_THREAD.with(|c| c.get()) {
            self.delivered.store(true, Ordering::Relaxed);
        } else {
            self.wake_workers();
        }
    }

    /// Wakes a sleeping skynet worker through skynet's socket thread (see "Waking skynet's
    /// workers").
    pub(super) fn wake_workers(&self) {
        if self.wake_fd >= 0 && !self.wake_pending.swap(true, Ordering::SeqCst) {
            // SAFETY: wake_fd is our open, non-blocking end of the socketpair; one byte
            // from a valid buffer. A full buffer (EAGAIN) means wake-ups are pending anyway.
            unsafe { libc::write(self.wake_fd, b"w".as_ptr().cast(), 1) };
        }
    }
}
